"""sign-blob / verify-blob / attest-blob / verify-blob-attestation, public-key, import-key-pair.

sigstore-js (@sigstore/verify) is the independent verifier of the bundles trustbuild writes:
message-signature bundles (sign-blob) and DSSE bundles (attest-blob), for every key type
trustbuild loads. Bundles in cosign 2's own format are read by verify-blob.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustbuild.cli.main import main

JS_DIR = Path(__file__).resolve().parents[2] / "js"
PASSWORD = "blob password"

KEY_TYPES = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa-3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)


def _import(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A key of ``kind`` imported into cosign's format with import-key-pair."""
    pem = tmp_path / f"{kind}.pem"
    pem.write_bytes(KEY_TYPES[kind]().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    prefix = tmp_path / f"imported-{kind}"
    assert main(["import-key-pair", "--key", str(pem), "--output-key-prefix", str(prefix)]) == 0
    assert b"ENCRYPTED COSIGN PRIVATE KEY" in prefix.with_suffix(".key").read_bytes()
    return prefix.with_suffix(".key"), prefix.with_suffix(".pub")


def _sigstore_js(bundle: Path, pub: Path, artifact: Path | None = None) -> dict[str, object]:
    if shutil.which("node") is None or not (JS_DIR / "node_modules").is_dir():
        pytest.skip("sigstore-js is not installed (make setup installs it)")
    cmd = ["node", str(JS_DIR / "verify_bundle.js"), str(bundle), str(pub)]
    if artifact is not None:
        cmd.append(str(artifact))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


KINDS = sorted(KEY_TYPES)


def test_verify_blob_takes_signature_text_longer_than_a_file_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An RSA-4096 signature is 684 base64 characters: past NAME_MAX when no ``/`` splits it.

    ``--signature`` takes a file or the text itself (cosign's rule); text that cannot be a file
    name is the signature, not an OSError. Whether the real signature holds a ``/`` is chance
    (CI failed on one that did not), so a wrong signature of the same length without one makes
    the case deterministic: it must be a verdict (exit 1), not a crash.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    prefix = tmp_path / "k"
    assert main(["import-key-pair", "--key", str(pem), "--output-key-prefix", str(prefix)]) == 0
    blob = tmp_path / "blob"
    blob.write_bytes(b"bits\n")
    capsys.readouterr()
    assert main(["sign-blob", "--key", str(prefix.with_suffix(".key")), str(blob)]) == 0
    sig = capsys.readouterr().out.strip()
    pub = str(prefix.with_suffix(".pub"))
    assert main(["verify-blob", "--key", pub, "--signature", sig, str(blob)]) == 0
    capsys.readouterr()
    wrong = "A" * len(sig)
    assert main(["verify-blob", "--key", pub, "--signature", wrong, str(blob)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Errno" not in err


@pytest.mark.interop
@pytest.mark.parametrize("kind", KINDS)
def test_sign_blob_bundle_verifies_with_sigstore_js_and_trustbuild(
        tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _import(tmp_path, kind)
    blob = tmp_path / "release.tar"
    blob.write_bytes(b"release bits\n" * 1000)
    capsys.readouterr()
    assert main(["sign-blob", "--key", str(key), "--bundle", str(tmp_path / "b.json"),
                 "--output-signature", str(tmp_path / "sig"), str(blob)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (tmp_path / "sig").read_text()
    # @sigstore/verify checks message signatures with node's crypto.verify(hash, ...), which
    # Node refuses for Ed25519 keys ("invalid digest"): it verifies no Ed25519 messageSignature,
    # whoever made it. Ed25519 is checked by sigstore-js in the DSSE (attest-blob) test.
    if kind != "ed25519":
        assert _sigstore_js(tmp_path / "b.json", pub, blob) == {"ok": True,
                                                                "messageSignature": True}
    assert main(["verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "b.json"),
                 str(blob)]) == 0
    assert main(["verify-blob", "--key", str(pub), "--signature", printed, str(blob)]) == 0
    # another file: sigstore-js and trustbuild both refuse
    other = tmp_path / "other.tar"
    other.write_bytes(b"release bits\n" * 999)
    assert _sigstore_js(tmp_path / "b.json", pub, other)["ok"] is False
    assert main(["verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "b.json"),
                 str(other)]) == 1
    assert main(["verify-blob", "--key", str(pub), "--signature", str(tmp_path / "sig"),
                 str(other)]) == 1


def test_verify_blob_reads_cosign2_bundles_and_refuses_another_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _import(tmp_path, "ecdsa-p256")
    _k2, pub2 = _import(tmp_path, "ed25519")
    blob = tmp_path / "f"
    blob.write_bytes(b"data")
    capsys.readouterr()
    assert main(["sign-blob", "--key", str(key), str(blob)]) == 0
    sig = capsys.readouterr().out.strip()
    # cosign 2 writes {"base64Signature": ..., "rekorBundle": ...}; the signature may wrap lines
    wrapped = "\n".join(sig[i:i + 40] for i in range(0, len(sig), 40))
    (tmp_path / "cosign2.bundle").write_text(json.dumps({"base64Signature": wrapped}))
    assert main(["verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "cosign2.bundle"),
                 str(blob)]) == 0
    assert main(["verify-blob", "--key", str(pub2), "--bundle",
                 str(tmp_path / "cosign2.bundle"), str(blob)]) == 1
    assert "does not verify" in capsys.readouterr().err


@pytest.mark.interop
@pytest.mark.parametrize("kind", KINDS)
def test_attest_blob_bundle_verifies_with_sigstore_js(tmp_path: Path, kind: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _import(tmp_path, kind)
    blob = tmp_path / "app.bin"
    blob.write_bytes(b"\x7fELF" + bytes(100))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"buildType": "https://example.org/manual", "note": "hi"}))
    assert main(["attest-blob", "--key", str(key), "--predicate", str(pred), "--type",
                 "slsaprovenance", "--bundle", str(tmp_path / "att.json"),
                 "--output-attestation", str(tmp_path / "env.json"), str(blob)]) == 0
    js = _sigstore_js(tmp_path / "att.json", pub)
    assert js["ok"] is True
    statement = json.loads(base64.b64decode(str(js["payload"])))
    assert statement["subject"][0]["name"] == "app.bin"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    capsys.readouterr()
    for flag, path in (("--bundle", "att.json"), ("--signature", "env.json")):
        assert main(["verify-blob-attestation", "--key", str(pub), flag, str(tmp_path / path),
                     "--type", "slsaprovenance", str(blob)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["predicate"]["note"] == "hi"
    blob.write_bytes(b"changed")
    assert main(["verify-blob-attestation", "--key", str(pub), "--bundle",
                 str(tmp_path / "att.json"), str(blob)]) == 1
    assert "not about app.bin" in capsys.readouterr().err


def test_public_key_matches_the_generated_pub_and_import_refuses_cosign_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign")]) == 0
    capsys.readouterr()
    assert main(["public-key", "--key", str(tmp_path / "cosign.key")]) == 0
    assert capsys.readouterr().out == (tmp_path / "cosign.pub").read_text()
    assert main(["import-key-pair", "--key", str(tmp_path / "cosign.key"),
                 "--output-key-prefix", str(tmp_path / "again")]) == 1
    assert "already in cosign's format" in capsys.readouterr().err
    assert not (tmp_path / "again.key").exists()
