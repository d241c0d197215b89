"""Keyless ``sign-blob`` / ``verify-blob`` / ``attest-blob`` / ``verify-blob-attestation``.

Fulcio, the CT log and Rekor cannot run here: the fake Sigstore on loopback
(``tests/fixtures/fake_sigstore.py``) issues real certificates with an embedded SCT and logs
entries in a real Merkle tree (SET, inclusion proof, signed checkpoint). sigstore-js
(@sigstore/verify, ``tests/js/verify_keyless.js``) is the independent verifier of what trustbuild
writes, against the fake's trusted root; trustbuild in turn verifies a real public-good bundle:

- ``rfc8785-0.1.2-py3-none-any.whl`` and its ``.sigstore.json``: the wheel released from
  trailofbits/rfc8785.py's GitHub Actions workflow (tag v0.1.2) and its Sigstore bundle
  (messageSignature, public-good Fulcio certificate with SCT, Rekor SET and inclusion proof),
  recorded upstream as sigstore-python's ``test/assets/bundle_v3_github.whl{,.sigstore}``
  (Apache-2.0); checked against the public-good trusted root sigstore-python ships, offline.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fixtures.fake_sigstore import FakeSigstore, identity_token

from trustbuild.cli.main import main
from trustbuild.sign.keyless import rekor_annotation_from_bundle
from trustbuild.sign.trust import public_good_root_path

EMAIL = "ci@fake.test"
ISSUER = "https://issuer.fake.test"
JS_DIR = Path(__file__).resolve().parents[2] / "js"
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "sign" / "public-good"
WHEEL = ASSETS / "rfc8785-0.1.2-py3-none-any.whl"
WHEEL_BUNDLE = ASSETS / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json"
WHEEL_IDENTITY = ("https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
                  "@refs/tags/v0.1.2")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def sigstore(tmp_path: Path) -> Iterator[tuple[FakeSigstore, Path, Path]]:
    with FakeSigstore() as fake:
        config, root = fake.write_trust_files(tmp_path)
        yield fake, config, root


def _sigstore_js(bundle: Path, root: Path, identity: str, issuer: str,
                 artifact: Path | None = None) -> dict[str, Any]:
    if shutil.which("node") is None or not (JS_DIR / "node_modules/@sigstore/verify").is_dir():
        pytest.skip("node or tests/js/node_modules missing (run .ci/setup.sh)")
    cmd = ["node", str(JS_DIR / "verify_keyless.js"), str(bundle), str(root), identity, issuer]
    if artifact is not None:
        cmd.append(str(artifact))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _verify_flags(root: Path | None, identity: str = EMAIL, issuer: str = ISSUER) -> list[str]:
    flags = ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]
    return flags + (["--trusted-root", str(root)] if root is not None else [])


@pytest.mark.interop
def test_sign_blob_keyless_verifies_with_sigstore_js_and_trustbuild(
        tmp_path: Path, sigstore: tuple[FakeSigstore, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    fake, config, root = sigstore
    blob = tmp_path / "release.tar.gz"
    blob.write_bytes(b"release bits\n" * 500)
    token = identity_token(EMAIL, ISSUER)
    bundle, sig, cert = tmp_path / "out.sigstore.json", tmp_path / "sig", tmp_path / "cert.pem"
    capsys.readouterr()
    assert main(["sign-blob", "--keyless", "--identity-token", token, "--sigstore-trust-config",
                 str(config), "--bundle", str(bundle), "--output-signature", str(sig),
                 "--output-certificate", str(cert), str(blob)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == sig.read_text()  # the base64 signature, as cosign prints it
    assert token.split(".")[1] not in out.out + out.err  # the token is never printed
    # the bundle: v0.3, a message signature over the blob, the Fulcio certificate and the
    # hashedrekord entry with its SET and inclusion proof
    doc = json.loads(bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["messageSignature"]["signature"] == sig.read_text()
    pem = x509.load_pem_x509_certificate(cert.read_bytes())
    assert base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"]) == \
        pem.public_bytes(serialization.Encoding.DER)
    (entry,) = doc["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"]["kind"] == "hashedrekord"
    assert entry["inclusionPromise"] and entry["inclusionProof"]["checkpoint"]
    assert len(fake.issued) == 1 and len(fake.bodies) == 1

    # sigstore-js verifies it against the fake's trusted root (chain, SCT, tlog, identity)
    js = _sigstore_js(bundle, root, EMAIL, ISSUER, blob)
    assert js == {"ok": True, "content": "messageSignature", "identity": EMAIL,
                  "issuer": ISSUER}, js
    # and trustbuild, with the same engine as `verify`
    assert main(["verify-blob", *_verify_flags(root), "--bundle", str(bundle), str(blob)]) == 0
    err = capsys.readouterr().err
    assert "Verified OK" in err and f"Signed by {EMAIL}" in err
    assert all(c in err for c in ("Rekor SET", "inclusion proof", "checkpoint", "SCT"))

    # a tampered file: both refuse; trustbuild in one line
    other = tmp_path / "tampered.tar.gz"
    other.write_bytes(b"release bits\n" * 499 + b"release bitz\n")
    assert _sigstore_js(bundle, root, EMAIL, ISSUER, other)["ok"] is False
    assert main(["verify-blob", *_verify_flags(root), "--bundle", str(bundle), str(other)]) == 1
    assert "for another file" in _err_line(capsys)
    # another identity, another issuer: refused
    assert _sigstore_js(bundle, root, "someone@else.test", ISSUER, blob)["ok"] is False
    assert main(["verify-blob", *_verify_flags(root, "someone@else.test"), "--bundle",
                 str(bundle), str(blob)]) == 1
    assert "does not match 'someone@else.test'" in _err_line(capsys)
    assert main(["verify-blob", *_verify_flags(root, issuer="https://other.test"), "--bundle",
                 str(bundle), str(blob)]) == 1
    assert "OIDC issuer" in _err_line(capsys)
    # the default trust is the public-good root, which never issued this certificate
    assert main(["verify-blob", *_verify_flags(None), "--bundle", str(bundle), str(blob)]) == 1
    assert "Rekor SignedEntryTimestamp does not verify" in _err_line(capsys)
    # a key cannot verify a keyless bundle: it says what to do
    key_pub = tmp_path / "k.pub"
    key_pub.write_bytes(pem.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["verify-blob", "--key", str(key_pub), "--bundle", str(bundle), str(blob)]) == 1
    assert "--certificate-identity" in _err_line(capsys)


def test_verify_blob_keyless_reads_cosign2_bundles(
        tmp_path: Path, sigstore: tuple[FakeSigstore, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """cosign 2's ``sign-blob --bundle`` file: base64Signature, cert (base64 PEM), rekorBundle."""
    _fake, config, root = sigstore
    blob = tmp_path / "f.bin"
    blob.write_bytes(b"\x00\x01payload")
    bundle = tmp_path / "v3.json"
    assert main(["sign-blob", "--keyless", "--identity-token", identity_token(EMAIL, ISSUER),
                 "--sigstore-trust-config", str(config), "--bundle", str(bundle),
                 "--output-certificate", str(tmp_path / "cert.pem"), str(blob)]) == 0
    doc = json.loads(bundle.read_text())
    cosign2 = {"base64Signature": doc["messageSignature"]["signature"],
               "cert": base64.b64encode((tmp_path / "cert.pem").read_bytes()).decode(),
               "rekorBundle": json.loads(rekor_annotation_from_bundle(doc))}
    old = tmp_path / "cosign2.bundle"
    old.write_text(json.dumps(cosign2))
    capsys.readouterr()
    assert main(["verify-blob", *_verify_flags(root), "--bundle", str(old), str(blob)]) == 0
    assert "Rekor SET" in capsys.readouterr().err
    # the Rekor entry must log this very signature: a swapped signature is refused
    other = tmp_path / "g.bin"
    other.write_bytes(b"another")
    assert main(["sign-blob", "--keyless", "--identity-token", identity_token(EMAIL, ISSUER),
                 "--sigstore-trust-config", str(config), "--output-signature",
                 str(tmp_path / "sig2"), str(other)]) == 0
    cosign2_other = dict(cosign2, base64Signature=(tmp_path / "sig2").read_text())
    old.write_text(json.dumps(cosign2_other))
    capsys.readouterr()
    assert main(["verify-blob", *_verify_flags(root), "--bundle", str(old), str(blob)]) == 1
    assert "does not verify" in _err_line(capsys)


@pytest.mark.interop
def test_attest_blob_keyless_verifies_with_sigstore_js_and_trustbuild(
        tmp_path: Path, sigstore: tuple[FakeSigstore, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    fake, config, root = sigstore
    blob = tmp_path / "app.bin"
    blob.write_bytes(b"\x7fELF" + bytes(64))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"buildType": "https://example.org/manual", "note": "keyless"}))
    bundle = tmp_path / "att.sigstore.json"
    assert main(["attest-blob", "--keyless", "--identity-token", identity_token(EMAIL, ISSUER),
                 "--sigstore-trust-config", str(config), "--predicate", str(pred), "--type",
                 "slsaprovenance", "--bundle", str(bundle), "--output-attestation",
                 str(tmp_path / "env.json"), str(blob)]) == 0
    doc = json.loads(bundle.read_text())
    assert "certificate" in doc["verificationMaterial"] and "dsseEnvelope" in doc
    assert json.loads(fake.bodies[-1])["kind"] == "dsse"
    js = _sigstore_js(bundle, root, EMAIL, ISSUER)
    assert js["ok"] is True and js["content"] == "dsseEnvelope", js
    capsys.readouterr()
    assert main(["verify-blob-attestation", *_verify_flags(root), "--type", "slsaprovenance",
                 "--bundle", str(bundle), str(blob)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.splitlines()[-1])["predicate"]["note"] == "keyless"
    assert f"Signed by {EMAIL}" in out.err
    assert main(["verify-blob-attestation", *_verify_flags(root), "--type", "spdxjson",
                 "--bundle", str(bundle), str(blob)]) == 1
    assert "predicate type" in _err_line(capsys)
    assert main(["verify-blob-attestation", *_verify_flags(root, "x@fake.test"), "--bundle",
                 str(bundle), str(blob)]) == 1
    assert "does not match" in _err_line(capsys)
    blob.write_bytes(b"changed")
    assert main(["verify-blob-attestation", *_verify_flags(root), "--bundle", str(bundle),
                 str(blob)]) == 1
    assert "not about app.bin" in _err_line(capsys)


def test_verify_blob_attestation_keyless_reads_a_bundle_over_4_mib(
        tmp_path: Path, sigstore: tuple[FakeSigstore, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A keyless blob attestation bundle is read up to the same 64 MiB as a key-based one."""
    _fake, config, root = sigstore
    blob = tmp_path / "app.bin"
    blob.write_bytes(b"app")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"packages": [{"name": f"p{i}", "pad": "x" * 300}
                                             for i in range(15000)]}))
    bundle = tmp_path / "att.sigstore.json"
    assert main(["attest-blob", "--keyless", "--identity-token", identity_token(EMAIL, ISSUER),
                 "--sigstore-trust-config", str(config), "--predicate", str(pred), "--type",
                 "https://example.com/big/v1", "--bundle", str(bundle), str(blob)]) == 0
    assert bundle.stat().st_size > 4 * 1024 * 1024
    capsys.readouterr()
    assert main(["verify-blob-attestation", *_verify_flags(root), "--bundle", str(bundle),
                 str(blob)]) == 0, capsys.readouterr().err
    assert f"Signed by {EMAIL}" in capsys.readouterr().err


def test_fulcio_and_rekor_url_override_the_trust_config(
        tmp_path: Path, sigstore: tuple[FakeSigstore, Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    """cosign's --fulcio-url / --rekor-url: the services named instead of the config's."""
    fake, _config, root = sigstore
    config = fake.trust_config()
    dead = "http://127.0.0.1:9"  # discard port: nothing answers
    for svc in ("caUrls", "rekorTlogUrls"):
        config["signingConfig"][svc][0]["url"] = dead
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(config))
    blob = tmp_path / "f"
    blob.write_text("x")
    base = ["sign-blob", "--keyless", "--identity-token", identity_token(EMAIL, ISSUER),
            "--sigstore-trust-config", str(elsewhere), "--bundle", str(tmp_path / "b.json")]
    capsys.readouterr()
    assert main([*base, str(blob)]) == 1
    assert "keyless signing failed" in _err_line(capsys)
    assert not (tmp_path / "b.json").exists()  # nothing half-written
    assert main([*base, "--fulcio-url", fake.url, "--rekor-url", fake.url + "/", str(blob)]) == 0
    assert main(["verify-blob", *_verify_flags(root), "--bundle", str(tmp_path / "b.json"),
                 str(blob)]) == 0


@pytest.mark.parametrize("args,message", [
    (["sign-blob", "f"], "--key KEY or --keyless"),
    (["sign-blob", "--key", "k", "--keyless", "f"], "mutually exclusive"),
    (["sign-blob", "--key", "k", "--identity-token", "t", "f"], "--identity-token needs --keyless"),
    (["sign-blob", "--key", "k", "--output-certificate", "c", "f"], "needs --keyless"),
    (["attest-blob", "--predicate", "p", "f"], "--key KEY or --keyless"),
    (["verify-blob", "--signature", "s", "f"], "give --key PUB"),
    (["verify-blob", "--certificate-identity", "a@b.c", "--certificate-oidc-issuer", "https://i",
      "--signature", "s", "f"], "needs --bundle"),
    (["verify-blob", "--key", "k", "--certificate-identity", "a@b.c",
      "--certificate-oidc-issuer", "https://i", "--bundle", "b", "f"], "--key excludes"),
    (["verify-blob", "--certificate-identity", "a@b.c", "--bundle", "b", "f"],
     "--certificate-oidc-issuer"),
    (["verify-blob-attestation", "--certificate-oidc-issuer", "https://i", "--bundle", "b", "f"],
     "--certificate-identity"),
])
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert message in _err_line(capsys)


# -- a real public-good bundle, recorded upstream -------------------------------------------

def test_verify_blob_accepts_a_real_public_good_bundle(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    flags = _verify_flags(None, WHEEL_IDENTITY, GITHUB_ISSUER)  # default: public-good root
    capsys.readouterr()
    assert main(["verify-blob", *flags, "--bundle", str(WHEEL_BUNDLE), str(WHEEL)]) == 0
    err = capsys.readouterr().err
    assert f"Signed by {WHEEL_IDENTITY}" in err and "2024-03-19" in err
    assert all(c in err for c in ("Rekor SET", "inclusion proof", "checkpoint", "SCT"))
    assert main(["verify-blob", "--certificate-identity-regexp",
                 r"^https://github\.com/trailofbits/", "--certificate-oidc-issuer",
                 GITHUB_ISSUER, "--bundle", str(WHEEL_BUNDLE), str(WHEEL)]) == 0
    capsys.readouterr()
    # another identity (another workflow of the same repository) is refused
    assert main(["verify-blob", *_verify_flags(None, WHEEL_IDENTITY.replace("v0.1.2", "v0.1.3"),
                                               GITHUB_ISSUER),
                 "--bundle", str(WHEEL_BUNDLE), str(WHEEL)]) == 1
    assert "does not match" in _err_line(capsys)
    # a tampered wheel (one byte) is refused
    tampered = tmp_path / WHEEL.name
    raw = bytearray(WHEEL.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    tampered.write_bytes(bytes(raw))
    assert main(["verify-blob", *flags, "--bundle", str(WHEEL_BUNDLE), str(tampered)]) == 1
    assert "for another file" in _err_line(capsys)
    # a bundle whose Rekor SET was altered is refused (nothing is fetched to repair it)
    doc = json.loads(WHEEL_BUNDLE.read_text())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)
    bad = tmp_path / "bad.sigstore.json"
    bad.write_text(json.dumps(doc))
    assert main(["verify-blob", *flags, "--bundle", str(bad), str(WHEEL)]) == 1
    assert "SignedEntryTimestamp" in _err_line(capsys)


@pytest.mark.interop
def test_sigstore_js_agrees_on_the_public_good_bundle(tmp_path: Path) -> None:
    root = public_good_root_path()
    js = _sigstore_js(WHEEL_BUNDLE, root, WHEEL_IDENTITY, GITHUB_ISSUER, WHEEL)
    assert js == {"ok": True, "content": "messageSignature", "identity": WHEEL_IDENTITY,
                  "issuer": GITHUB_ISSUER}, js
    tampered = tmp_path / WHEEL.name
    tampered.write_bytes(WHEEL.read_bytes() + b"\n")
    assert _sigstore_js(WHEEL_BUNDLE, root, WHEEL_IDENTITY, GITHUB_ISSUER, tampered)["ok"] \
        is False


def test_verify_blob_real_v03_bundle_with_timestamps_and_trusted_root_override(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The sigstage v0.3 bundle with RFC 3161 timestamps (see test_keyless_public_good.py),
    through the CLI with ``--trusted-root``; the public-good default refuses it."""
    staging = ["--certificate-identity", "alexis.challande@trailofbits.com",
               "--certificate-oidc-issuer", "https://accounts.google.com"]
    files = ["--bundle", str(ASSETS / "staging-tsa.txt.sigstore.json"),
             str(ASSETS / "staging-tsa.txt")]
    capsys.readouterr()
    assert main(["verify-blob", *staging, "--trusted-root",
                 str(ASSETS / "staging-tsa.trusted_root.json"), *files]) == 0
    err = capsys.readouterr().err
    assert "RFC 3161 timestamp" in err and "Verified OK" in err
    assert main(["verify-blob", *staging, *files]) == 1
    assert "Error:" in _err_line(capsys)
