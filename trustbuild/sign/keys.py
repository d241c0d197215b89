"""cosign-compatible signing keys: encrypted PEM (scrypt + nacl/secretbox), PKCS#8 and PKIX.

A cosign private key file is one PEM block labelled ``ENCRYPTED COSIGN PRIVATE KEY`` (what every
cosign and containers/image version reads) or ``ENCRYPTED SIGSTORE PRIVATE KEY`` (cosign >= 2.0.2,
containers/image >= 5.25). Its body is the JSON that go-securesystemslib's ``encrypted.Encrypt``
writes::

    {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<b64>"},
     "cipher":{"name":"nacl/secretbox","nonce":"<b64>"},"ciphertext":"<b64>"}

where the plaintext is the PKCS#8 DER private key and the secretbox key is
``scrypt(password, salt, N, r, p, 32)``.

Example::

    from trustbuild.sign.keys import generate_key_pair, load_signing_key, load_verifying_key
    key_path, pub_path = generate_key_pair("cosign", password=b"hunter2")
    key = load_signing_key(key_path, password=b"hunter2")
    sig = key.sign(b"payload")
    load_verifying_key(pub_path).verify(sig, b"payload")
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import nacl.exceptions
import nacl.secret
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from trustbuild._internal.b64 import std_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild.errors import SigningError, VerificationError

__all__ = [
    "SigningKey",
    "VerifyingKey",
    "load_signing_key",
    "load_verifying_key",
    "write_key_pair",
    "generate_key_pair",
    "encrypt_private_key",
    "decrypt_private_key",
    "COSIGN_PEM_LABEL",
    "SIGSTORE_PEM_LABEL",
    "PASSWORD_ENV_VARS",
]

COSIGN_PEM_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
SIGSTORE_PEM_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
PASSWORD_ENV_VARS = ("TRUSTBUILD_PASSWORD", "COSIGN_PASSWORD")

_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_N_LEGACY = 32768  # go-securesystemslib "Legacy": all cosign/containers/image versions
_SCRYPT_N_STANDARD = 65536  # "Standard": cosign >= 2.0.2 writes this
_ACCEPTED_N = (32768, 65536, 131072)
_SALT_SIZE = 32
_MAX_KEY_FILE = 1 << 20
_PEM_RE = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL
)

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def _ec_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    if isinstance(curve, ec.SECP256R1):
        return hashes.SHA256()
    if isinstance(curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(curve, ec.SECP521R1):
        return hashes.SHA512()
    raise SigningError(f"unsupported ECDSA curve {curve.name}: use P-256, P-384 or P-521")


def _check_public(pub: object, where: str) -> PublicKey:
    """Reject key types and sizes cosign's goodkey rejects."""
    if isinstance(pub, ec.EllipticCurvePublicKey):
        _ec_hash(pub.curve)
        return pub
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size < 2048:
            raise SigningError(f"{where}: RSA key of {pub.key_size} bits is too small "
                               "(need >= 2048)")
        return pub
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return pub
    raise SigningError(f"{where}: unsupported key type {type(pub).__name__}: "
                       "use ECDSA P-256/P-384/P-521, Ed25519 or RSA >= 2048")


class VerifyingKey:
    """A public key that checks cosign signatures (ECDSA, Ed25519, RSA PKCS#1 v1.5)."""

    def __init__(self, key: PublicKey) -> None:
        self._key = _check_public(key, "public key")

    @property
    def key(self) -> PublicKey:
        """The underlying ``cryptography`` public key."""
        return self._key

    @property
    def algorithm(self) -> str:
        """Short algorithm name: ``ecdsa-p256``, ``ecdsa-p384``, ``ed25519``, ``rsa-2048``..."""
        k = self._key
        if isinstance(k, ec.EllipticCurvePublicKey):
            return "ecdsa-p" + str(k.curve.key_size)
        if isinstance(k, rsa.RSAPublicKey):
            return f"rsa-{k.key_size}"
        return "ed25519"

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise VerificationError unless ``signature`` is this key's signature over ``data``."""
        k = self._key
        try:
            if isinstance(k, ec.EllipticCurvePublicKey):
                self._verify_ecdsa(k, signature, data)
            elif isinstance(k, rsa.RSAPublicKey):
                k.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                k.verify(signature, data)
        except (InvalidSignature, ValueError) as exc:
            raise VerificationError(
                f"signature does not verify with the {self.algorithm} key {self.keyid()[:16]}"
            ) from exc

    @staticmethod
    def _verify_ecdsa(k: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
        """SHA-256 (containers/image, sigstore-js, trustbuild) or the curve's own hash (cosign
        with ``LoadDefaultSignerVerifier``, older trustbuild): accept both."""
        try:
            k.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            algo = _ec_hash(k.curve)
            if isinstance(algo, hashes.SHA256):
                raise
            k.verify(signature, data, ec.ECDSA(algo))

    @property
    def prehash_algorithms(self) -> tuple[str, ...]:
        """The hashes (``hashlib`` names) :meth:`verify_prehashed` needs of a message; empty
        for Ed25519, which signs the message itself (pure EdDSA) and cannot be prehashed."""
        k = self._key
        if isinstance(k, ec.EllipticCurvePublicKey):
            own = _ec_hash(k.curve).name
            return ("sha256",) if own == "sha256" else ("sha256", own)
        if isinstance(k, rsa.RSAPublicKey):
            return ("sha256",)
        return ()

    def verify_prehashed(self, signature: bytes, digests: Mapping[str, bytes]) -> None:
        """:meth:`verify` of a message known by its digests (``hashlib`` name -> digest, at
        least :attr:`prehash_algorithms`), so a large file is hashed in chunks, not held in
        memory. VerificationError if it does not verify, and for an Ed25519 key (which needs
        the message)."""
        k = self._key
        try:
            if isinstance(k, ec.EllipticCurvePublicKey):
                try:
                    k.verify(signature, digests["sha256"],
                             ec.ECDSA(utils.Prehashed(hashes.SHA256())))
                except InvalidSignature:
                    algo = _ec_hash(k.curve)
                    if isinstance(algo, hashes.SHA256):
                        raise
                    k.verify(signature, digests[algo.name], ec.ECDSA(utils.Prehashed(algo)))
            elif isinstance(k, rsa.RSAPublicKey):
                k.verify(signature, digests["sha256"], padding.PKCS1v15(),
                         utils.Prehashed(hashes.SHA256()))
            else:
                raise VerificationError("an Ed25519 signature is checked over the message, "
                                        "not its digest")
        except (InvalidSignature, ValueError) as exc:
            raise VerificationError(
                f"signature does not verify with the {self.algorithm} key {self.keyid()[:16]}"
            ) from exc

    def public_der(self) -> bytes:
        """DER SubjectPublicKeyInfo."""
        return self._key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_pem(self) -> bytes:
        """PKIX ``PUBLIC KEY`` PEM, as cosign writes ``cosign.pub``."""
        return self._key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def keyid(self) -> str:
        """sha256 hex of the DER SubjectPublicKeyInfo."""
        return hashlib.sha256(self.public_der()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyingKey) and other.public_der() == self.public_der()

    def __hash__(self) -> int:
        return hash(self.public_der())

    def __repr__(self) -> str:
        return f"VerifyingKey({self.algorithm}, {self.keyid()[:16]})"


class SigningKey:
    """A private key that makes cosign-compatible signatures."""

    def __init__(self, key: PrivateKey) -> None:
        _check_public(key.public_key(), "private key")
        self._key = key

    @property
    def key(self) -> PrivateKey:
        """The underlying ``cryptography`` private key."""
        return self._key

    def sign(self, data: bytes) -> bytes:
        """Signature over ``data``: ECDSA (DER) and RSA PKCS#1 v1.5 over SHA-256, Ed25519 raw.

        ECDSA hashes with SHA-256 on every curve: containers/image verifies sigstore signatures
        with a hard-coded SHA-256 and sigstore-js verifies DSSE with SHA-256, so a P-384 or
        P-521 signature over SHA-384/512 would be refused by both (cosign verifies with SHA-256
        by default too).
        """
        k = self._key
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return k.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(k, rsa.RSAPrivateKey):
            return k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return k.sign(data)

    def sign_sha256(self, digest: bytes) -> bytes:
        """:meth:`sign` of a message known by its SHA-256 (ECDSA and RSA; the same signature
        bytes verify). SigningError for Ed25519, which signs the message itself."""
        k = self._key
        if isinstance(k, ec.EllipticCurvePrivateKey):
            return k.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        if isinstance(k, rsa.RSAPrivateKey):
            return k.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        raise SigningError("an Ed25519 key signs the message, not its digest")

    def public_key(self) -> VerifyingKey:
        """The matching public key."""
        return VerifyingKey(self._key.public_key())

    def private_pkcs8_der(self) -> bytes:
        """Unencrypted PKCS#8 DER (what the encrypted PEM wraps)."""
        return self._key.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())

    def __repr__(self) -> str:
        return f"SigningKey({self.public_key()!r})"


# --- encrypted PEM body (go-securesystemslib "encrypted") -------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, field: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise SigningError(f"{where}: field {field} is not a base64 string")
    try:
        return std_b64decode(value)
    except ValueError as exc:
        raise SigningError(f"{where}: field {field} is not valid base64") from exc


def _scrypt(password: bytes, salt: bytes, n: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P,
                          maxmem=256 * 1024 * 1024, dklen=nacl.secret.SecretBox.KEY_SIZE)


def encrypt_private_key(plaintext: bytes, password: bytes, *, n: int = _SCRYPT_N_LEGACY) -> bytes:
    """The JSON body cosign writes inside its encrypted PEM (compact, Go field order)."""
    if n not in _ACCEPTED_N:
        raise SigningError(f"scrypt N={n} is not one cosign reads (use one of {_ACCEPTED_N})")
    salt = secrets.token_bytes(_SALT_SIZE)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(password, salt, n))
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": _SCRYPT_R, "p": _SCRYPT_P},
                "salt": _b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(ciphertext),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decrypt_private_key(body: bytes, password: bytes, *, where: str = "private key") -> bytes:
    """Decrypt cosign's encrypted JSON body; SigningError on any defect or a wrong password."""
    doc: dict[str, object] = load_object(body, what=f"{where}: encrypted key body",
                                         error=SigningError, max_bytes=_MAX_KEY_FILE)
    kdf, cipher = doc.get("kdf"), doc.get("cipher")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise SigningError(f"{where}: unsupported kdf (expected scrypt)")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise SigningError(f"{where}: unsupported cipher (expected nacl/secretbox)")
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise SigningError(f"{where}: kdf.params missing")
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if n not in _ACCEPTED_N or r != _SCRYPT_R or p != _SCRYPT_P or isinstance(n, bool):
        raise SigningError(f"{where}: unsupported scrypt parameters N={n} r={r} p={p}")
    salt = _unb64(kdf.get("salt"), "kdf.salt", where)
    nonce = _unb64(cipher.get("nonce"), "cipher.nonce", where)
    ciphertext = _unb64(doc.get("ciphertext"), "ciphertext", where)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise SigningError(f"{where}: cipher.nonce has {len(nonce)} bytes, expected 24")
    assert isinstance(n, int)
    box = nacl.secret.SecretBox(_scrypt(password, salt, n))
    try:
        return bytes(box.decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError as exc:
        raise SigningError(f"{where}: wrong password (decryption failed)") from exc


# --- PEM ------------------------------------------------------------------------------------


def _pem_blocks(data: bytes, where: str) -> list[tuple[str, bytes]]:
    blocks: list[tuple[str, bytes]] = []
    for m in _PEM_RE.finditer(data):
        body = b"".join(m.group(2).split(b" ")).replace(b"\t", b"")  # Go's pem.Decode
        try:
            der = std_b64decode(body)
        except ValueError as exc:
            label = m.group(1).decode()
            raise SigningError(f"{where}: PEM block {label} has invalid base64") from exc
        blocks.append((m.group(1).decode("ascii"), der))
    if not blocks:
        raise SigningError(f"{where}: no PEM block found (is this a key file?)")
    return blocks


def _pem_encode(label: str, body: bytes) -> bytes:
    b = base64.b64encode(body).decode("ascii")
    lines = [b[i:i + 64] for i in range(0, len(b), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def _password_from_env_or_prompt(where: str) -> bytes:
    for var in PASSWORD_ENV_VARS:
        value = os.environ.get(var)
        if value is not None:
            return value.encode()
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            return getpass.getpass(f"Enter password for private key {where}: ").encode()
        except (EOFError, OSError) as exc:
            raise SigningError(f"{where}: could not read the password from the terminal") from exc
    raise SigningError(f"{where}: the key is encrypted and no password was given: "
                       "set TRUSTBUILD_PASSWORD (or COSIGN_PASSWORD)")


def _private_from_der(der: bytes, where: str, *, label: str) -> SigningKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{where}: not a valid {label or 'PKCS#8'} private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      | rsa.RSAPrivateKey):
        raise SigningError(f"{where}: unsupported private key type {type(key).__name__}")
    _check_public(key.public_key(), where)
    return SigningKey(key)


def load_signing_key(path: str | Path, *, password: bytes | None = None) -> SigningKey:
    """Load a cosign encrypted key (either label) or an unencrypted PKCS#8/EC/RSA PEM.

    ``password`` None: ``TRUSTBUILD_PASSWORD``, else ``COSIGN_PASSWORD``, else a prompt when
    stdin is a terminal, else SigningError naming the variable to set.
    """
    where = str(path)
    data = _read_key_file(path, "key file")
    for label, der in _pem_blocks(data, where):
        if label in (COSIGN_PEM_LABEL, SIGSTORE_PEM_LABEL):
            pw = password if password is not None else _password_from_env_or_prompt(where)
            return _private_from_der(decrypt_private_key(der, pw, where=where), where,
                                     label="PKCS#8")
        if label in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
            return _private_from_der(der, where, label=label)
        if label == "ENCRYPTED PRIVATE KEY":
            raise SigningError(f"{where}: PKCS#8 password-encrypted keys are not supported; "
                               "use `trustbuild generate-key-pair` or an unencrypted PKCS#8 key")
    raise SigningError(f"{where}: no private key PEM block (expected {COSIGN_PEM_LABEL}, "
                       f"{SIGSTORE_PEM_LABEL} or PRIVATE KEY)")


def load_verifying_key(source: str | Path | bytes) -> VerifyingKey:
    """A public key from PEM bytes, PEM text, or a path to a ``PUBLIC KEY`` / certificate PEM."""
    if isinstance(source, bytes):
        data, where = source, "public key"
    elif isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        data, where = source.encode(), "public key"
    else:
        where = str(source)
        data = _read_key_file(source, "public key file")
    for label, der in _pem_blocks(data, where):
        try:
            if label == "PUBLIC KEY":
                return VerifyingKey(serialization.load_der_public_key(der))  # type: ignore[arg-type]
            if label == "CERTIFICATE":
                cert = x509.load_der_x509_certificate(der)
                return VerifyingKey(cert.public_key())  # type: ignore[arg-type]
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningError(f"{where}: invalid {label} PEM") from exc
    raise SigningError(f"{where}: no PUBLIC KEY or CERTIFICATE PEM block found")


def _read_key_file(path: str | Path, what: str) -> bytes:
    """The bytes of a key file, at most 1 MiB; SigningError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise SigningError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_KEY_FILE:
        raise SigningError(f"{path}: {what} is larger than 1 MiB")
    return data


def _write_new(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise SigningError(f"{path}: already exists; remove it or choose another "
                           "--output-key-prefix") from exc
    except OSError as exc:
        raise SigningError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate_key_pair(prefix: str, *, password: bytes, newer_format: bool = False,
                      overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (encrypted ECDSA P-256) and ``PREFIX.pub``; returns both paths.

    Default: label ``ENCRYPTED COSIGN PRIVATE KEY`` with scrypt N=32768 (read by every cosign and
    containers/image version). ``newer_format``: ``ENCRYPTED SIGSTORE PRIVATE KEY`` with N=65536
    (what cosign >= 2.0.2 writes; containers/image < 5.25 cannot read it).
    """
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    return write_key_pair(key, prefix, password=password, newer_format=newer_format,
                          overwrite=overwrite)


def write_key_pair(key: SigningKey, prefix: str, *, password: bytes, newer_format: bool = False,
                   overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``key`` as ``PREFIX.key`` (cosign's encrypted format) and ``PREFIX.pub``.

    What ``generate-key-pair`` and ``import-key-pair`` write; nothing is written when either
    file exists and ``overwrite`` is false.
    """
    label = SIGSTORE_PEM_LABEL if newer_format else COSIGN_PEM_LABEL
    n = _SCRYPT_N_STANDARD if newer_format else _SCRYPT_N_LEGACY
    body = encrypt_private_key(key.private_pkcs8_der(), password, n=n)
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not overwrite:
        for p in (key_path, pub_path):
            if p.exists():
                raise SigningError(f"{p}: already exists; remove it or choose another "
                                   "--output-key-prefix")
    _write_new(key_path, _pem_encode(label, body), 0o600, overwrite=overwrite)
    _write_new(pub_path, key.public_key().public_pem(), 0o644, overwrite=overwrite)
    return key_path, pub_path
