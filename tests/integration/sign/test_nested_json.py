"""Deeply nested JSON from outside (a signature layer's annotations, a bundle file, a predicate,
a --signed-identity) is one clear error line, never a RecursionError traceback: every parse of
untrusted JSON in sign/, attest/ and the CLI goes through the bounded load_object."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.registry import write_test_oci_layout

from trustbuild.cli.main import main
from trustbuild.oci.digest import Digest
from trustbuild.oci.layout import LayoutStore
from trustbuild.sign.attach import append_cosign_layer
from trustbuild.sign.sign import BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION
from trustbuild.sign.simplesigning import build_payload

PASSWORD = "nested"
# Small enough to pass every size bound, deep enough for json's recursion limit.
NESTED = "[" * 5_000 + "]" * 5_000


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(args))
    return rc, capsys.readouterr().err


def _one_line(err: str, what: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    assert what in lines[0] and "nested too deeply" in lines[0]


def test_download_signature_with_a_nested_bundle_annotation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = tmp_path / "layout"
    digest = write_test_oci_layout(layout, tag="v1")
    store = LayoutStore(layout)
    subject = store.resolve("v1")
    assert subject.digest == Digest.parse(digest)
    append_cosign_layer(store, subject, suffix="sig",
                        layer_bytes=build_payload("r.example/app", digest),
                        layer_media_type="application/vnd.dev.cosign.simplesigning.v1+json",
                        annotations={SIGNATURE_ANNOTATION: "c2ln",
                                     BUNDLE_ANNOTATION: "{\"a\":" + NESTED + "}"})
    rc, err = _run(capsys, "download", "signature", f"oci:{layout}:v1")
    assert rc == 1
    _one_line(err, "bundle")


def test_verify_blob_with_a_nested_bundle_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    blob, bundle = tmp_path / "blob", tmp_path / "b.json"
    blob.write_bytes(b"hello\n")
    bundle.write_text("{\"mediaType\":" + NESTED + "}")
    rc, err = _run(capsys, "verify-blob", "--key", str(tmp_path / "k.pub"), "--bundle",
                   str(bundle), str(blob))
    assert rc == 1
    _one_line(err, str(bundle))


def test_attest_blob_with_a_nested_predicate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    blob, pred = tmp_path / "blob", tmp_path / "pred.json"
    blob.write_bytes(b"hello\n")
    pred.write_text("{\"a\":" + NESTED + "}")
    rc, err = _run(capsys, "attest-blob", "--key", str(tmp_path / "k.key"), "--predicate",
                   str(pred), "--type", "slsaprovenance", str(blob))
    assert rc == 1
    _one_line(err, "predicate")


def test_signed_identity_nested_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    layout = tmp_path / "layout"
    write_test_oci_layout(layout, tag="v1")
    rc, err = _run(capsys, "verify", "--key", str(tmp_path / "k.pub"), "--signed-identity",
                   "{\"type\":" + NESTED + "}", f"oci:{layout}:v1")
    assert rc in (1, 2)
    _one_line(err, "--signed-identity")
