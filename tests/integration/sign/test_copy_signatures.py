"""`trustbuild copy` carries signatures, attestations and bundle referrers (cosign copy), against
the real registry: sign, copy to another repository (and an OCI layout), verify the copy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image

from trustbuild.cli.main import main

PASSWORD = "copy"


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    for name in ("a", "b"):
        assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / name)]) == 0
    return tmp_path / "a.key", tmp_path / "a.pub", tmp_path / "b.key", tmp_path / "b.pub"


def _raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, timeout=60).stdout


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main([*args])
    return rc, json.loads(capsys.readouterr().out)


def test_copy_carries_signatures_attestations_and_bundles(
        registry: Any, keys: tuple[Path, Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub, key_b, pub_b = keys
    host = registry.host
    src, digest = push_test_image(host, "copy/src", "v1")
    pred = tmp_path / "pred.json"
    pred.write_text('{"k": "v"}')
    assert main(["sign", "--key", str(key), "--bundle", src]) == 0
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--type",
                 "https://example.com/p/v1", "--bundle", src]) == 0
    dst = f"{host}/copy/dst:v1"
    # the destination already has a signature of its own (key b): it is kept
    push_test_image(host, "copy/dst", "v1")
    assert main(["sign", "--key", str(key_b), dst]) == 0

    capsys.readouterr()
    assert main(["copy", "-q", src, dst]) == 0
    assert capsys.readouterr().out.strip() == digest
    tag = digest.replace(":", "-")
    assert _raw(f"{host}/copy/dst:{tag}.att") == _raw(f"{host}/copy/src:{tag}.att")  # bytes
    assert len(json.loads(_raw(f"{host}/copy/dst:{tag}.sig"))["layers"]) == 2  # merged

    src_repo = f"{host}/copy/src"
    # cosign signatures name the source repository: the copy verifies with an identity rule
    rc, out = _json(capsys, "verify", "--key", str(pub), "--output", "json", dst)
    assert rc == 1
    assert sum("not the image's repository" in s["reason"] for s in out["signatures"]) == 2
    rc, out = _json(capsys, "verify", "--key", str(pub), "--output", "json",
                    "--signed-identity", f"exactRepository:{src_repo}", dst)
    assert rc == 0
    assert sorted(s["kind"] for s in out["signatures"] if s["verdict"] == "valid") == \
        ["bundle", "simple-signing"]
    rc, _ = _json(capsys, "verify", "--key", str(pub_b), "--output", "json", dst)
    assert rc == 0  # the destination's own signature is still there
    rc, out = _json(capsys, "verify-attestation", "--key", str(pub), "--output", "json", dst)
    assert rc == 0
    sources = [a["source"] for a in out["attestations"] if a["verified"]]
    assert any(s.startswith("bundle referrer") for s in sources)
    assert any(".att layer" in s for s in sources)

    # --only=att: the image and its attestations, no signatures
    assert main(["copy", "-q", "--only", "att", src, f"{host}/copy/att-only:v1"]) == 0
    rc, out = _json(capsys, "verify", "--key", str(pub), "--output", "json",
                    "--signed-identity", f"exactRepository:{src_repo}", f"{host}/copy/att-only:v1")
    assert rc == 1 and "no signatures found" in out["signatures"][0]["reason"]
    rc, _ = _json(capsys, "verify-attestation", "--key", str(pub), "--output", "json",
                  f"{host}/copy/att-only:v1")
    assert rc == 0
    # --only=none: the image alone
    assert main(["copy", "-q", "--only", "none", src, f"{host}/copy/bare:v1"]) == 0
    rc, _ = _json(capsys, "verify-attestation", "--key", str(pub), "--output", "json",
                  f"{host}/copy/bare:v1")
    assert rc == 1

    # --sig-only: the signatures of an image that is already there (here: the bare copy)
    assert main(["copy", "-q", "--sig-only", src, f"{host}/copy/bare:v1"]) == 0
    rc, _ = _json(capsys, "verify", "--key", str(pub), "--output", "json", "--signed-identity",
                  f"exactRepository:{src_repo}", f"{host}/copy/bare:v1")
    assert rc == 0

    # to an OCI layout: verified there with the repository it was signed for
    layout = tmp_path / "layout"
    assert main(["copy", "-q", src, f"oci:{layout}:v1"]) == 0
    rc, out = _json(capsys, "verify", "--key", str(pub), "--output", "json",
                    "--docker-reference", src_repo, f"oci:{layout}:v1")
    assert rc == 0
    assert sorted(s["kind"] for s in out["signatures"] if s["verdict"] == "valid") == \
        ["bundle", "simple-signing"]


def _has_tag(ref: str) -> bool:
    res = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, timeout=60)
    return res.returncode == 0


def test_copy_carries_the_sbom_and_only_sbom_carries_nothing_else(
        registry: Any, keys: tuple[Path, Path, Path, Path], tmp_path: Path,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """The ``.sbom`` tag (cosign attach sbom) travels with a copy; ``--only sbom`` takes it alone
    and ``--only sig,att`` leaves it behind, as cosign copy --only does."""
    key, _pub, _key_b, _pub_b = keys
    host = registry.host
    src, digest = push_test_image(host, "copysbom/src", "v1")
    tag = digest.replace(":", "-")
    sbom = tmp_path / "bom.spdx.json"
    data = b'{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"copied"}\n'
    sbom.write_bytes(data)
    pred = tmp_path / "pred.json"
    pred.write_text('{"k": "v"}')
    assert main(["attach", "sbom", "--sbom", str(sbom), src]) == 0
    assert main(["sign", "--key", str(key), src]) == 0
    assert main(["attest", "--key", str(key), "--predicate", str(pred), src]) == 0

    def downloaded(ref: str) -> bytes:
        capsysbinary.readouterr()
        assert main(["download", "sbom", ref]) == 0
        return capsysbinary.readouterr().out

    # all attachments (the default): the .sbom manifest arrives byte for byte
    assert main(["copy", "-q", src, f"{host}/copysbom/all:v1"]) == 0
    assert _raw(f"{host}/copysbom/all:{tag}.sbom") == _raw(f"{host}/copysbom/src:{tag}.sbom")
    assert downloaded(f"{host}/copysbom/all:v1") == data
    # --only sbom: the image and its SBOM, no signatures or attestations
    dst = f"{host}/copysbom/sbom-only"
    assert main(["copy", "-q", "--only", "sbom", src, f"{dst}:v1"]) == 0
    assert downloaded(f"{dst}:v1") == data
    assert _has_tag(f"{dst}:v1")
    assert not _has_tag(f"{dst}:{tag}.sig") and not _has_tag(f"{dst}:{tag}.att")
    # --only sig,att: everything but the SBOM
    dst = f"{host}/copysbom/no-sbom"
    assert main(["copy", "-q", "--only", "sig,att", src, f"{dst}:v1"]) == 0
    assert _has_tag(f"{dst}:{tag}.sig") and _has_tag(f"{dst}:{tag}.att")
    assert not _has_tag(f"{dst}:{tag}.sbom")
    capsysbinary.readouterr()
    assert main(["download", "sbom", f"{dst}:v1"]) != 0
    # to an OCI layout, --only sbom
    layout = tmp_path / "layout"
    assert main(["copy", "-q", "--only", "sbom", src, f"oci:{layout}:v1"]) == 0
    assert downloaded(f"oci:{layout}:v1") == data
    tags = [m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            for m in json.loads((layout / "index.json").read_text())["manifests"]]
    assert f"{tag}.sbom" in tags and f"{tag}.sig" not in tags and f"{tag}.att" not in tags


def test_copy_flag_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["copy", "--only", "sig,bogus", "a.example/x:1", "b.example/y:1"])
    assert exc.value.code == 2 and "expected a comma-separated list" in capsys.readouterr().err
    assert main(["copy", "--sig-only", "--only", "sig", "a.example/x:1", "b.example/y:1"]) == 2
    assert "mutually exclusive" in capsys.readouterr().err


def test_copy_all_carries_the_signatures_of_the_index_and_its_images(
        registry: Any, keys: tuple[Path, Path, Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.images import write_multiarch_layout

    key, pub, _kb, _pb = keys
    host = registry.host
    digests = write_multiarch_layout(tmp_path / "multi", tag="1")
    src = f"{host}/copyall/src:1"
    assert main(["copy", "-q", "--all", f"oci:{tmp_path / 'multi'}:1", src]) == 0
    child = next(v for k, v in digests.items() if k != "index")
    assert main(["sign", "--key", str(key), src]) == 0  # the index
    assert main(["sign", "--key", str(key), "--bundle", f"{host}/copyall/src@{child}"]) == 0
    assert main(["copy", "-q", "--all", src, f"{host}/copyall/dst:1"]) == 0
    ident = ["--signed-identity", f"exactRepository:{host}/copyall/src"]
    rc, _ = _json(capsys, "verify", "--key", str(pub), "--output", "json", *ident,
                  f"{host}/copyall/dst:1")
    assert rc == 0
    rc, out = _json(capsys, "verify", "--key", str(pub), "--output", "json", *ident,
                    f"{host}/copyall/dst@{child}")
    assert rc == 0 and len([s for s in out["signatures"] if s["verdict"] == "valid"]) == 2


def test_copy_with_a_broken_source_signature_fails_in_one_line(
        registry: Any, keys: tuple[Path, Path, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    import urllib.request

    key, *_ = keys
    host = registry.host
    src, digest = push_test_image(host, "copybroken/src", "v1", content=b"broken\n")
    assert main(["sign", "--key", str(key), src]) == 0
    sig = json.loads(_raw(f"{host}/copybroken/src:{digest.replace(':', '-')}.sig"))
    req = urllib.request.Request(
        f"http://{host}/v2/copybroken/src/blobs/{sig['layers'][0]['digest']}", method="DELETE")
    urllib.request.urlopen(req, timeout=30).close()
    capsys.readouterr()
    assert main(["copy", "-q", src, f"{host}/copybroken/dst:v1"]) == 1
    err = capsys.readouterr().err
    assert f"copying the signatures/attestations of {digest} failed" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["copy", "-q", "--only", "none", src, f"{host}/copybroken/dst:v1"]) == 0
