"""Keys: cosign's encrypted PEM format, password sources and clear errors on bad input."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustbuild.errors import SigningError, VerificationError
from trustbuild.sign import keys as K

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "sign"


def test_decrypts_securesystemslib_vectors_for_every_n() -> None:
    v = json.loads((ASSETS / "securesystemslib_encrypted_vectors.json").read_text())
    for n, body in v["bodies"].items():
        out = K.decrypt_private_key(json.dumps(body).encode(), v["passphrase"].encode())
        assert out == v["plaintext"].encode(), n


def test_reads_key_written_by_cosign_sigstore_label() -> None:
    key = K.load_signing_key(ASSETS / "cosign_generated_sigstore_empty_password.key",
                             password=b"")
    sig = key.sign(b"hello")
    key.public_key().verify(sig, b"hello")


@pytest.mark.parametrize("newer", [False, True])
def test_generate_writes_cosign_format_and_roundtrips(tmp_path: Path, newer: bool) -> None:
    kp, pp = K.generate_key_pair(str(tmp_path / "cosign"), password=b"pw", newer_format=newer)
    assert kp.name == "cosign.key" and pp.name == "cosign.pub"
    assert (kp.stat().st_mode & 0o777) == 0o600
    text = kp.read_text()
    label = "ENCRYPTED SIGSTORE PRIVATE KEY" if newer else "ENCRYPTED COSIGN PRIVATE KEY"
    assert text.startswith(f"-----BEGIN {label}-----\n")
    assert all(len(line) <= 64 for line in text.splitlines())
    body = json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))
    assert list(body) == ["kdf", "cipher", "ciphertext"]
    assert body["kdf"]["params"] == {"N": 65536 if newer else 32768, "r": 8, "p": 1}
    assert body["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32
    assert len(base64.b64decode(body["cipher"]["nonce"])) == 24
    key = K.load_signing_key(kp, password=b"pw")
    pub = K.load_verifying_key(pp)
    assert pub == key.public_key()
    assert isinstance(pub.key, ec.EllipticCurvePublicKey) and pub.key.curve.name == "secp256r1"
    pub.verify(key.sign(b"data"), b"data")
    with pytest.raises(VerificationError):
        pub.verify(key.sign(b"data"), b"other")


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    K.generate_key_pair(str(tmp_path / "k"), password=b"")
    with pytest.raises(SigningError, match="already exists"):
        K.generate_key_pair(str(tmp_path / "k"), password=b"")


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    kp, _ = K.generate_key_pair(str(tmp_path / "c"), password=b"right")
    with pytest.raises(SigningError, match="wrong password"):
        K.load_signing_key(kp, password=b"wrong")


def test_password_from_env_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kp, _ = K.generate_key_pair(str(tmp_path / "c"), password=b"tb")
    monkeypatch.setenv("COSIGN_PASSWORD", "nope")
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", "tb")
    K.load_signing_key(kp)
    monkeypatch.delenv("TRUSTBUILD_PASSWORD")
    with pytest.raises(SigningError, match="wrong password"):
        K.load_signing_key(kp)


def test_no_password_and_no_terminal_names_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kp, _ = K.generate_key_pair(str(tmp_path / "c"), password=b"x")
    for var in ("TRUSTBUILD_PASSWORD", "COSIGN_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    r, w = os.pipe()
    os.close(w)
    with os.fdopen(r) as not_a_tty:
        monkeypatch.setattr("sys.stdin", not_a_tty)
        with pytest.raises(SigningError, match="TRUSTBUILD_PASSWORD"):
            K.load_signing_key(kp)


@pytest.mark.parametrize("content,match", [
    (b"not a pem at all", "no PEM block"),
    (b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n!!!notb64\n"
     b"-----END ENCRYPTED COSIGN PRIVATE KEY-----\n", "invalid base64"),
    (b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nbm90IGEga2V5\n"
     b"-----END ENCRYPTED COSIGN PRIVATE KEY-----\n", "encrypted key body: not valid JSON"),
    (b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
     "not a valid"),
])
def test_corrupt_key_files(tmp_path: Path, content: bytes, match: str) -> None:
    p = tmp_path / "bad.key"
    p.write_bytes(content)
    with pytest.raises(SigningError, match=match):
        K.load_signing_key(p, password=b"")


def test_tampered_kdf_params_and_bad_salt(tmp_path: Path) -> None:
    body = json.loads(K.encrypt_private_key(b"x", b"pw"))
    body["kdf"]["params"]["N"] = 1 << 30
    with pytest.raises(SigningError, match="unsupported scrypt parameters"):
        K.decrypt_private_key(json.dumps(body).encode(), b"pw")
    body = json.loads(K.encrypt_private_key(b"x", b"pw"))
    body["kdf"]["salt"] = "***"
    with pytest.raises(SigningError, match="kdf.salt is not valid base64"):
        K.decrypt_private_key(json.dumps(body).encode(), b"pw")


def _pkcs8(key: object) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()),
    lambda: ed25519.Ed25519PrivateKey.generate(),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
])
def test_unencrypted_pkcs8_keys(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "k.pem"
    p.write_bytes(_pkcs8(make()))
    key = K.load_signing_key(p)
    pub = K.load_verifying_key(key.public_key().public_pem())
    pub.verify(key.sign(b"m"), b"m")
    assert len(pub.keyid()) == 64


def test_small_rsa_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "k.pem"
    p.write_bytes(_pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(SigningError, match="too small"):
        K.load_signing_key(p)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()],
                         ids=["p256", "p384", "p521"])
def test_ecdsa_signs_over_sha256_on_every_curve(curve: ec.EllipticCurve) -> None:
    """containers/image and sigstore-js verify ECDSA with SHA-256 whatever the curve."""
    from cryptography.hazmat.primitives import hashes
    priv = ec.generate_private_key(curve)
    sig = K.SigningKey(priv).sign(b"m")
    priv.public_key().verify(sig, b"m", ec.ECDSA(hashes.SHA256()))
    # cosign's LoadDefaultSignerVerifier hashes with the curve's size: accepted too.
    pub = K.SigningKey(priv).public_key()
    own = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[curve.key_size]
    pub.verify(priv.sign(b"m", ec.ECDSA(own)), b"m")
    other = hashes.SHA512() if curve.key_size != 521 else hashes.SHA384()
    with pytest.raises(VerificationError):
        pub.verify(priv.sign(b"m", ec.ECDSA(other)), b"m")


def test_verifying_key_errors() -> None:
    with pytest.raises(SigningError, match="no PUBLIC KEY"):
        K.load_verifying_key(b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")
    with pytest.raises(SigningError, match="cannot read"):
        K.load_verifying_key("/nonexistent/cosign.pub")
    with pytest.raises(SigningError, match="invalid PUBLIC KEY"):
        K.load_verifying_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize("make,label", [
    (lambda: ec.generate_private_key(ec.SECP256R1()), "EC PRIVATE KEY"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA PRIVATE KEY"),
])
def test_traditional_pem_keys(tmp_path: Path, make, label: str) -> None:  # type: ignore[no-untyped-def]
    priv = make()
    pem = priv.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    assert pem.startswith(f"-----BEGIN {label}-----".encode())
    p = tmp_path / "k.pem"
    p.write_bytes(pem)
    key = K.load_signing_key(p)
    key.public_key().verify(key.sign(b"m"), b"m")


def test_password_encrypted_pkcs8_is_refused_with_advice(tmp_path: Path) -> None:
    priv = ec.generate_private_key(ec.SECP256R1())
    p = tmp_path / "k.pem"
    p.write_bytes(priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"pw")))
    with pytest.raises(SigningError, match="not supported"):
        K.load_signing_key(p)
