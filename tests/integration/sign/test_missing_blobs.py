"""Signature and attestation manifests whose blobs are gone: a verdict, exit 1, never a crash.

The blobs are deleted through the real registry's DELETE API (the fixture registry has deletes
enabled), as garbage collection or a partial copy would leave them, and from an OCI layout.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image, write_test_oci_layout

from trustbuild.cli.main import main

PASSWORD = "missing-blobs"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    return tmp_path / "k.key", tmp_path / "k.pub"


def _manifest(host: str, repo: str, ref: str, accept: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ref}",
                                 headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _delete_blob(host: str, repo: str, digest: str) -> None:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/blobs/{digest}", method="DELETE")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 202


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


def test_deleted_signature_and_attestation_blobs_are_verdicts(
        registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    repo = "missing/blobs"
    ref, digest = push_test_image(registry.host, repo, "v1")
    pred = tmp_path / "pred.json"
    pred.write_text("{}")
    assert main(["sign", "--key", str(key), "--bundle", ref]) == 0
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--type", "custom",
                 "--bundle", ref]) == 0
    tag = digest.replace(":", "-")
    oci_m, oci_i = "application/vnd.oci.image.manifest.v1+json", \
        "application/vnd.oci.image.index.v1+json"
    for suffix in ("sig", "att"):
        for layer in _manifest(registry.host, repo, f"{tag}.{suffix}", oci_m)["layers"]:
            _delete_blob(registry.host, repo, layer["digest"])
    for entry in _manifest(registry.host, repo, tag, oci_i)["manifests"]:
        for layer in _manifest(registry.host, repo, entry["digest"], oci_m)["layers"]:
            _delete_blob(registry.host, repo, layer["digest"])

    rc, out, _ = _run(capsys, "verify", "--key", str(pub), "--output", "json", ref)
    assert rc == 1
    verdicts = json.loads(out)["signatures"]
    assert [v["kind"] for v in verdicts] == ["simple-signing", "bundle"]
    assert all(v["verdict"] == "invalid" for v in verdicts)
    assert verdicts[0]["reason"].startswith("layer 0 sha256:")
    assert verdicts[0]["reason"].endswith(f"is missing from docker://{registry.host}/{repo}")
    assert "bundle layer sha256:" in verdicts[1]["reason"] and "missing" in verdicts[1]["reason"]

    rc, out, err = _run(capsys, "verify-attestation", "--key", str(pub), "--type", "custom", ref)
    assert rc == 1 and "is missing from" in out + err

    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""apiVersion: trustbuild.dev/v1alpha1
kind: Policy
spec:
  deploy:
    signatures: [{{key: {pub}}}]
    attestations: [{{type: custom, key: {pub}}}]
""")
    rc, out, _ = _run(capsys, "verify", "--policy", str(policy), ref)
    assert rc == 1 and "DENY" in out and "is missing from" in out


def test_missing_blobs_in_an_oci_layout(keypair: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    layout = tmp_path / "layout"
    write_test_oci_layout(layout, tag="v1")
    loc = f"oci:{layout}:v1"
    assert main(["sign", "--key", str(key), "--docker-reference", "example.com/app", "--bundle",
                 loc]) == 0
    for p in (layout / "blobs/sha256").iterdir():  # the payload and the bundle
        if p.read_bytes().startswith((b'{"critical"', b'{"mediaType":"application/vnd.dev')):
            p.unlink()
    rc, out, _ = _run(capsys, "verify", "--key", str(pub), "--docker-reference",
                      "example.com/app", "--output", "json", loc)
    assert rc == 1
    reasons = [v["reason"] for v in json.loads(out)["signatures"]]
    assert len(reasons) == 2 and all("is missing from oci:" in r for r in reasons), reasons
