"""Ground truth through the CLI: the cosign vectors copied into an OCI layout and verified with
`trustbuild verify`, the keyless one offline with --ca-roots/--rekor-key and --trusted-root."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from trustbuild.cli.main import main
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.manifest import parse_manifest
from trustbuild.sign.attach import append_cosign_layer

VECTORS = Path(__file__).resolve().parents[2] / "assets" / "sign" / "cosign-vectors"
CASES = sorted(p.name for p in VECTORS.iterdir() if (p / "case.json").is_file())


def _layout(tmp_path: Path, name: str,
            sigs: list[dict] | None = None) -> tuple[str, dict]:  # type: ignore[type-arg]
    # The vectors hold manifests only (no config/layer blobs), so the layout is written by hand.
    root = tmp_path / name
    raw = (VECTORS / name / "manifest.json").read_bytes()
    subject = Descriptor(parse_manifest(raw).media_type, Digest.of(raw), len(raw))
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "blobs" / "sha256" / subject.digest.hex).write_bytes(raw)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {**subject.to_json(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    store = LayoutStore(root)
    if sigs is None:
        sigs = json.loads((VECTORS / name / "signatures.json").read_text())
    for s in sigs:
        append_cosign_layer(store, subject, suffix="sig",
                            layer_bytes=base64.b64decode(s["payload_b64"]),
                            layer_media_type=s["mediaType"], annotations=s["annotations"])
    return f"oci:{tmp_path / name}:v1", json.loads((VECTORS / name / "case.json").read_text())


@pytest.mark.parametrize("name", CASES)
def test_vector_via_cli(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    loc, case = _layout(tmp_path, name)
    ref = ["--docker-reference", case["docker_reference"]]
    if case["public_key"]:
        args = ["--key", str(VECTORS / "keys" / case["public_key"])]
    else:
        args = ["--certificate-identity", "mitr@redhat.com",
                "--certificate-oidc-issuer", "https://github.com/login/oauth",
                "--ca-roots", str(VECTORS / "keys/fulcio_v1.crt.pem"),
                "--rekor-key", str(VECTORS / "keys/rekor.pub")]
    capsys.readouterr()
    rc = main(["verify", "--output", "json", *args, *ref, loc])
    out = json.loads(capsys.readouterr().out)
    assert rc == (0 if case["expected"] == "valid" else 1), out
    assert out["verdict"] == case["expected"]


def test_keyless_vector_with_trusted_root_json(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A Sigstore trusted_root.json built from the vector's Fulcio root and Rekor key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    loc, case = _layout(tmp_path, "fulcio-rekor-valid")
    cert = x509.load_pem_x509_certificate((VECTORS / "keys/fulcio_v1.crt.pem").read_bytes())
    rekor = serialization.load_pem_public_key((VECTORS / "keys/rekor.pub").read_bytes())
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
                   "publicKey": {"rawBytes": b64(rekor.public_bytes(
                       serialization.Encoding.DER,
                       serialization.PublicFormat.SubjectPublicKeyInfo))}}],
        "certificateAuthorities": [{"certChain": {"certificates": [
            {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))}]}}],
    }
    (tmp_path / "trusted_root.json").write_text(json.dumps(root))
    common = ["verify", "--certificate-oidc-issuer", "https://github.com/login/oauth",
              "--trusted-root", str(tmp_path / "trusted_root.json"),
              "--docker-reference", case["docker_reference"]]
    assert main([*common, "--certificate-identity", "mitr@redhat.com", loc]) == 0
    capsys.readouterr()
    assert main([*common, "--certificate-identity-regexp", "^someone@", "--output", "json",
                 loc]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "does not match the regexp" in out["signatures"][0]["reason"]
    (tmp_path / "bad.json").write_text('{"tlogs": [{"publicKey": {"rawBytes": "!!"}}]}')
    assert main(["verify", "--certificate-identity", "x", "--certificate-oidc-issuer", "y",
                 "--trusted-root", str(tmp_path / "bad.json"), loc]) == 1
    assert "not a Sigstore trusted root" in capsys.readouterr().err


def _wrap(text: str, eol: str) -> str:
    return eol.join(text[i:i + 20] for i in range(0, len(text), 20)) + eol


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("name", ["valid", "fulcio-rekor-valid"])
def test_signature_annotation_broken_over_lines_verifies(
        tmp_path: Path, name: str, eol: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Go's base64.StdEncoding (cosign, containers/image) ignores \\r and \\n: so does verify."""
    sigs = json.loads((VECTORS / name / "signatures.json").read_text())
    key = "dev.cosignproject.cosign/signature"
    for s in sigs:
        s["annotations"][key] = _wrap(s["annotations"][key], eol)
    loc, case = _layout(tmp_path, name, sigs)
    if case["public_key"]:
        args = ["--key", str(VECTORS / "keys" / case["public_key"])]
    else:
        args = ["--certificate-identity", "mitr@redhat.com",
                "--certificate-oidc-issuer", "https://github.com/login/oauth",
                "--ca-roots", str(VECTORS / "keys/fulcio_v1.crt.pem"),
                "--rekor-key", str(VECTORS / "keys/rekor.pub")]
    capsys.readouterr()
    rc = main(["verify", "--output", "json", *args, "--docker-reference",
               case["docker_reference"], loc])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    # Anything else that Go refuses is still refused, with the reason.
    for s in sigs:
        s["annotations"][key] = s["annotations"][key].replace(eol, " ", 1)
    loc, _ = _layout(tmp_path / "bad", name, sigs)
    capsys.readouterr()
    assert main(["verify", "--output", "json", *args, "--docker-reference",
                 case["docker_reference"], loc]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "not valid base64" in out["signatures"][0]["reason"]
