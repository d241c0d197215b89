"""tree, download, attach, clean and generate (cosign's commands) against the real registry and
OCI layouts: generate + sign-blob + attach signature verifies; attest + download attestation
verifies as a blob attestation of the manifest bytes; attach sbom + download sbom round-trips
the bytes; tree lists everything; clean removes it and verify then fails."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image, write_test_oci_layout

from trustbuild.cli.main import main
from trustbuild.sign.simplesigning import build_payload

PASSWORD = "correct horse"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign")]) == 0
    return tmp_path / "cosign.key", tmp_path / "cosign.pub"


def _out(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def _skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, timeout=60).stdout


def _skopeo_has(ref: str) -> bool:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, timeout=60).returncode == 0


def _tree(capsys: pytest.CaptureFixture[str], image: str) -> dict[str, Any]:
    rc, out, _ = _out(capsys, "tree", "--output", "json", image)
    assert rc == 0
    doc: dict[str, Any] = json.loads(out)
    return doc


def _leaf(tmp: Path, label: str) -> tuple[Path, Path, Path, Path, bytes]:
    """A root CA and a code-signing leaf for release@example.com: (key, cert, chain, root
    files, leaf DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject: str, key: Any, issuer_key: Any, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(name(subject))
             .issuer_name(name("root")).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.RFC822Name("release@example.com")]), critical=False)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = build("root", root_key, root_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(label, key, root_key, False)
    pem = serialization.Encoding.PEM
    paths = [tmp / f"{label}.{ext}" for ext in ("key", "crt", "chain", "root")]
    paths[0].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(root.public_bytes(pem))
    paths[3].write_bytes(root.public_bytes(pem))
    return (*paths, leaf.public_bytes(serialization.Encoding.DER))  # type: ignore[return-value]


def test_generate_sign_blob_attach_signature_verifies(
        registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    ref, digest = push_test_image(registry.host, "attach/sig", "v1")
    rc, out, _ = _out(capsys, "generate", "-a", "build=7", ref)
    assert rc == 0
    assert out.encode() == build_payload(f"{registry.host}/attach/sig", digest, {"build": "7"})
    payload = tmp_path / "payload.json"
    payload.write_text(out)
    rc, sig, _ = _out(capsys, "sign-blob", "--key", str(key), str(payload))
    assert rc == 0
    sig_file = tmp_path / "sig"
    sig_file.write_text(sig)  # with its trailing newline, as a shell redirect writes it

    # Before attaching: no signature, verify fails.
    rc, _, err = _out(capsys, "download", "signature", ref)
    assert rc == 1 and "no signatures associated" in err and len(err.strip().splitlines()) == 1
    rc, _, _ = _out(capsys, "verify", "--key", str(pub), ref)
    assert rc == 1

    rc, out, _ = _out(capsys, "attach", "signature", "--payload", str(payload),
                      "--signature", str(sig_file), ref)
    assert rc == 0
    hexd = digest.split(":")[1]
    sig_manifest = json.loads(_skopeo_raw(f"{registry.host}/attach/sig:sha256-{hexd}.sig"))
    assert out.strip() == "sha256:" + hashlib.sha256(
        _skopeo_raw(f"{registry.host}/attach/sig:sha256-{hexd}.sig")).hexdigest()
    layer = sig_manifest["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert layer["annotations"]["dev.cosignproject.cosign/signature"] == sig.strip()

    rc, out, _ = _out(capsys, "verify", "--key", str(pub), "--output", "json", ref)
    assert rc == 0
    assert json.loads(out)["signatures"][0]["annotations"] == {"build": "7"}

    # download signature: cosign's SignedPayload line, payload byte for byte.
    rc, out, _ = _out(capsys, "download", "signature", ref)
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert list(doc) == ["Base64Signature", "Payload", "Cert", "Chain", "Bundle",
                         "RFC3161Timestamp"]
    assert base64.b64decode(doc["Payload"]) == payload.read_bytes()
    assert doc["Base64Signature"] == sig.strip()
    assert doc["Cert"] is None and doc["Bundle"] is None

    # The signature given as base64 text is the same layer: not appended twice.
    rc, _, _ = _out(capsys, "attach", "signature", "--payload", str(payload), "--signature",
                    sig.strip(), ref)
    assert rc == 0
    assert len(json.loads(_skopeo_raw(f"{registry.host}/attach/sig:sha256-{hexd}.sig"))
               ["layers"]) == 1


def test_attach_signature_refuses_a_payload_for_another_image(
        registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, _pub = keypair
    ref, digest = push_test_image(registry.host, "attach/wrong", "v1")
    other_ref, _ = push_test_image(registry.host, "attach/wrong", "v2", content=b"other\n")
    rc, out, _ = _out(capsys, "generate", other_ref)
    payload = tmp_path / "payload.json"
    payload.write_text(out)
    rc, sig, _ = _out(capsys, "sign-blob", "--key", str(key), str(payload))
    rc, _, err = _out(capsys, "attach", "signature", "--payload", str(payload),
                      "--signature", sig.strip(), ref)
    assert rc == 1 and "not the image's digest" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _out(capsys, "attach", "signature", "--payload", str(payload),
                      "--signature", "not base64!", other_ref)
    assert rc == 1 and "not base64" in err
    hexd = digest.split(":")[1]
    assert not _skopeo_has(f"{registry.host}/attach/wrong:sha256-{hexd}.sig")
    assert _tree(capsys, ref)["tags"] == []


def test_attach_signature_with_certificate_verifies_in_pki_mode(
        registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, _digest = push_test_image(registry.host, "attach/pki", "v1")
    key, cert, chain, root, der = _leaf(tmp_path, "release")
    _okey, other_cert, _c, _r, _d = _leaf(tmp_path, "other")
    payload = tmp_path / "payload.json"
    payload.write_text(_out(capsys, "generate", ref)[1])
    sig = _out(capsys, "sign-blob", "--key", str(key), str(payload))[1].strip()
    attach = ["attach", "signature", "--payload", str(payload), "--signature", sig]
    # A certificate for another key: refused, nothing written.
    rc, _, err = _out(capsys, *attach, "--certificate", str(other_cert), ref)
    assert rc == 1 and "does not verify with the certificate's key" in err
    assert _tree(capsys, ref)["tags"] == []
    rc, _, _ = _out(capsys, *attach, "--certificate", str(cert), "--certificate-chain",
                    str(chain), ref)
    assert rc == 0
    rc, _, _ = _out(capsys, "verify", "--ca-roots", str(root), "--certificate-email",
                    "release@example.com", ref)
    assert rc == 0
    rc, out, _ = _out(capsys, "download", "signature", ref)
    doc = json.loads(out)
    assert base64.b64decode(doc["Cert"]["Raw"]) == der
    assert len(doc["Chain"]) == 1


def test_attest_download_attestation_verifies_as_blob_attestation(
        registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    ref, digest = push_test_image(registry.host, "attach/att", "v1")
    pred = tmp_path / "pred.json"
    pred.write_text('{"buildType": "test"}')
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--type", "custom",
                 "--bundle", ref]) == 0
    rc, out, _ = _out(capsys, "download", "attestation", ref)
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1  # the .att layer and the bundle hold the same envelope
    env = json.loads(lines[0])
    assert list(env) == ["payloadType", "payload", "signatures"]
    envelope = tmp_path / "env.json"
    envelope.write_text(lines[0])
    # The statement is about the manifest bytes: verify-blob-attestation accepts it.
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(_skopeo_raw(ref))
    rc, out, _ = _out(capsys, "verify-blob-attestation", "--key", str(pub), "--signature",
                      str(envelope), "--type", "custom", str(manifest))
    assert rc == 0
    assert json.loads(out)["subject"][0]["digest"] == {"sha256": digest.split(":")[1]}

    rc, out, _ = _out(capsys, "download", "attestation", "--predicate-type", "slsaprovenance",
                      ref)
    assert rc == 0 and out == ""
    rc, out, _ = _out(capsys, "download", "attestation", "--output", "json",
                      "--predicate-type", "https://cosign.sigstore.dev/attestation/v1", ref)
    assert rc == 0 and len(json.loads(out)["attestations"]) == 1


def test_attach_attestation_made_by_attest_blob(registry: Any, keypair: tuple[Path, Path],
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    ref, digest = push_test_image(registry.host, "attach/attblob", "v1")
    pred = tmp_path / "pred.json"
    pred.write_text('{"scanner": "none"}')
    # A statement about another file: refused, nothing written.
    other = tmp_path / "other.txt"
    other.write_text("not the image\n")
    bad = tmp_path / "bad.json"
    assert main(["attest-blob", "--key", str(key), "--predicate", str(pred),
                 "--output-attestation", str(bad), str(other)]) == 0
    rc, _, err = _out(capsys, "attach", "attestation", "--attestation", str(bad), ref)
    assert rc == 1 and f"is not the image digest {digest}" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, _ = _out(capsys, "verify-attestation", "--key", str(pub), ref)
    assert rc == 1

    # A statement about the manifest bytes: its subject is the image digest.
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(_skopeo_raw(ref))
    good = tmp_path / "good.json"
    assert main(["attest-blob", "--key", str(key), "--predicate", str(pred), "--type", "vuln",
                 "--output-attestation", str(good), str(manifest)]) == 0
    rc, _, _ = _out(capsys, "attach", "attestation", "--attestation", str(good), ref)
    assert rc == 0
    rc, out, _ = _out(capsys, "verify-attestation", "--key", str(pub), "--type", "vuln",
                      "--output", "json", ref)
    assert rc == 0, out
    # A Sigstore bundle from attest-blob --bundle becomes a bundle referrer.
    bundle = tmp_path / "att.sigstore.json"
    assert main(["attest-blob", "--key", str(key), "--predicate", str(pred), "--type", "link",
                 "--bundle", str(bundle), str(manifest)]) == 0
    rc, _, _ = _out(capsys, "attach", "attestation", "--attestation", str(bundle), ref)
    assert rc == 0
    referrers = _tree(capsys, ref)["referrers"]
    assert [r["predicateType"] for r in referrers] == ["https://in-toto.io/Link/v1"]
    rc, _, _ = _out(capsys, "verify-attestation", "--key", str(pub), "--type", "link", ref)
    assert rc == 0
    hexd = digest.split(":")[1]
    att = json.loads(_skopeo_raw(f"{registry.host}/attach/attblob:sha256-{hexd}.att"))
    assert att["layers"][0]["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert att["layers"][0]["annotations"]["predicateType"] == \
        "https://cosign.sigstore.dev/attestation/vuln/v1"


def test_attach_sbom_download_sbom_round_trip(registry: Any, tmp_path: Path,
                                               capsysbinary: pytest.CaptureFixture[bytes]
                                               ) -> None:
    ref, digest = push_test_image(registry.host, "attach/sbom", "v1")
    sbom = tmp_path / "bom.cdx.json"
    data = b'{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}\n'
    sbom.write_bytes(data)
    assert main(["attach", "sbom", "--sbom", str(tmp_path / "first.spdx"), ref]) == 2
    (tmp_path / "first.spdx").write_text("SPDXVersion: SPDX-2.3\n")
    assert main(["attach", "sbom", "--sbom", str(tmp_path / "first.spdx"), ref]) == 0
    assert main(["attach", "sbom", "--type", "cyclonedx", "--sbom", str(sbom), ref]) == 0
    capsysbinary.readouterr()
    assert main(["download", "sbom", ref]) == 0
    got = capsysbinary.readouterr()
    assert got.out == data
    assert b"Found SBOM of media type: application/vnd.cyclonedx+json" in got.err
    hexd = digest.split(":")[1]
    m = json.loads(_skopeo_raw(f"{registry.host}/attach/sbom:sha256-{hexd}.sbom"))
    assert [layer["mediaType"] for layer in m["layers"]] == ["application/vnd.cyclonedx+json"]
    assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    out_file = tmp_path / "down.json"
    assert main(["download", "sbom", "--output-file", str(out_file), ref]) == 0
    assert out_file.read_bytes() == data


def test_tree_lists_and_clean_removes(registry: Any, keypair: tuple[Path, Path],
                                      tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    ref, digest = push_test_image(registry.host, "attach/tree", "v1")
    pred = tmp_path / "pred.json"
    pred.write_text("{}")
    (tmp_path / "s.spdx.json").write_text('{"spdxVersion":"SPDX-2.3"}')
    assert main(["sign", "--key", str(key), "--bundle", ref]) == 0
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--bundle", ref]) == 0
    assert main(["attach", "sbom", "--sbom", str(tmp_path / "s.spdx.json"), ref]) == 0

    tree = _tree(capsys, ref)
    assert tree["digest"] == digest
    hexd = digest.split(":")[1]
    tags = {t["kind"]: t for t in tree["tags"]}
    assert tags["signature"]["tag"] == f"sha256-{hexd}.sig"
    assert tags["signature"]["layers"][0]["mediaType"] == \
        "application/vnd.dev.cosign.simplesigning.v1+json"
    assert tags["attestation"]["layers"][0]["predicateType"] == \
        "https://cosign.sigstore.dev/attestation/v1"
    assert tags["sbom"]["layers"][0]["mediaType"] == "text/spdx+json"
    refs = sorted(r["predicateType"] for r in tree["referrers"])
    assert refs == ["https://cosign.sigstore.dev/attestation/v1",
                    "https://sigstore.dev/cosign/sign/v1"]
    assert all(r["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
               for r in tree["referrers"])
    rc, text, _ = _out(capsys, "tree", ref)
    assert rc == 0
    assert f"🔐 Signatures for an image tag: {registry.host}/attach/tree:sha256-{hexd}.sig" \
        in text
    assert "💾 Attestations" in text and "📦 SBOMs" in text and "via OCI referrer" in text

    # clean --type signature: the .sig tag and the signature bundle go; verify fails.
    rc, out, _ = _out(capsys, "clean", "--type", "signature", "--output", "json", ref)
    assert rc == 0
    removed = json.loads(out)["removed"]
    assert f"sha256-{hexd}.sig" in removed and len(removed) == 2
    rc, out, _ = _out(capsys, "verify", "--key", str(pub), ref)
    assert rc == 1
    assert not _skopeo_has(f"{registry.host}/attach/tree:sha256-{hexd}.sig")
    rc, _, _ = _out(capsys, "verify-attestation", "--key", str(pub), ref)
    assert rc == 0
    tree = _tree(capsys, ref)
    assert sorted(t["kind"] for t in tree["tags"]) == ["attestation", "sbom"]
    assert [r["predicateType"] for r in tree["referrers"]] == \
        ["https://cosign.sigstore.dev/attestation/v1"]

    # clean (all): nothing left; verify-attestation fails; a second clean is a no-op.
    rc, _, err = _out(capsys, "clean", ref)
    assert rc == 0 and "Removed" in err
    rc, _, _ = _out(capsys, "verify-attestation", "--key", str(pub), ref)
    assert rc == 1
    tree = _tree(capsys, ref)
    assert tree["tags"] == [] and tree["referrers"] == []
    rc, out, _ = _out(capsys, "clean", "--output", "json", ref)
    assert rc == 0 and json.loads(out)["removed"] == []
    assert _skopeo_has(ref)  # the image itself stays


def test_layout_round_trip(keypair: tuple[Path, Path], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    layout = tmp_path / "layout"
    digest = write_test_oci_layout(layout, tag="v1")
    image = f"oci:{layout}:v1"
    rc, _, err = _out(capsys, "generate", image)
    assert rc == 2 and "--docker-reference" in err
    rc, out, _ = _out(capsys, "generate", "--docker-reference", "r.example/app", image)
    assert rc == 0 and out.encode() == build_payload("r.example/app", digest)
    payload = tmp_path / "p.json"
    payload.write_text(out)
    rc, sig, _ = _out(capsys, "sign-blob", "--key", str(key), str(payload))
    rc, _, _ = _out(capsys, "attach", "signature", "--payload", str(payload), "--signature",
                    sig.strip(), image)
    assert rc == 0
    verify = ["verify", "--key", str(pub), "--docker-reference", "r.example/app", image]
    assert _out(capsys, *verify)[0] == 0
    pred = tmp_path / "pred.json"
    pred.write_text("{}")
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--bundle", image]) == 0
    tree = _tree(capsys, image)
    assert sorted(t["kind"] for t in tree["tags"]) == ["attestation", "signature"]
    assert len(tree["referrers"]) == 1
    rc, out, _ = _out(capsys, "download", "attestation", image)
    assert rc == 0 and len(out.strip().splitlines()) == 1
    rc, out, _ = _out(capsys, "clean", "--output", "json", image)
    assert rc == 0 and len(json.loads(out)["removed"]) == 3
    assert _out(capsys, *verify)[0] == 1
    tree = _tree(capsys, image)
    assert tree["tags"] == [] and tree["referrers"] == []
    index = json.loads((layout / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in index["manifests"]] == ["v1"]


@pytest.mark.parametrize("args,message", [
    (["download", "oci:/x:v1"], "invalid choice"),
    (["download"], "required"),
    (["attach", "signature", "oci:/x:v1"], "--signature"),
    (["attach", "sbom", "--sbom", "x", "--type", "swid", "oci:/x:v1"], "invalid choice"),
    (["clean", "--type", "everything", "oci:/x:v1"], "invalid choice"),
    (["tree", "docker-archive:/tmp/x.tar"], "docker-archive holds no"),
    (["attach", "signature", "--signature", "AAAA", "--certificate-chain", "c.pem",
      "oci:/x:v1"], "--certificate-chain needs --certificate"),
])
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse's own errors
        rc = int(exc.code or 0)
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
