"""Signatures of plain files, as ``cosign sign-blob`` makes them (attestations: attest/blob.py).

Two bundle files are read and written:

- the Sigstore bundle v0.3 (``mediaType application/vnd.dev.sigstore.bundle.v0.3+json``), what
  cosign 3 writes with ``--bundle`` (cosign 2 with ``--new-bundle-format``) and what sigstore-js
  and sigstore-python verify: ``messageSignature`` (SHA-256 of the blob and the signature) for
  ``sign-blob``, ``dsseEnvelope`` (an in-toto statement about the blob) for ``attest-blob``;
- cosign 2's own bundle (``{"base64Signature": ..., "cert": ..., "rekorBundle": ...}``), read
  by ``verify-blob`` so that files written by older cosign versions still verify with a key.

With a key, the bundle's verification material is the key's hint only (no certificate, no
transparency-log entry), as with ``cosign sign-blob --key --tlog-upload=false``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from trustbuild._internal.b64 import proto_b64decode
from trustbuild.errors import VerificationError
from trustbuild.sign.bundle import BUNDLE_MEDIA_TYPE, BUNDLE_TYPES, key_hint
from trustbuild.sign.keys import SigningKey, VerifyingKey

__all__ = ["BlobSignature", "sign_blob", "verify_blob", "load_blob_bundle", "sha256_file",
           "MAX_BLOB_BUNDLE_BYTES"]

MAX_BLOB_BUNDLE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class BlobSignature:
    """A blob's signature and the Sigstore bundle that carries it."""

    signature: bytes
    bundle: bytes  # Sigstore bundle v0.3 JSON

    @property
    def signature_b64(self) -> str:
        """The signature as cosign prints it (standard base64)."""
        return base64.b64encode(self.signature).decode()


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def sign_blob(key: SigningKey, blob: Path) -> BlobSignature:
    """Sign the bytes of ``blob`` (the signature is over the bytes, hashed with SHA-256)."""
    data = blob.read_bytes()
    signature = key.sign(data)
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())},
                                 "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256",
                              "digest": base64.b64encode(hashlib.sha256(data).digest()).decode()},
            "signature": base64.b64encode(signature).decode(),
        },
    }
    return BlobSignature(signature, json.dumps(bundle, separators=(",", ":")).encode())


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{where}: expected a base64 string")
    try:
        return proto_b64decode(value)  # protobuf JSON, as sigstore-go reads a bundle
    except ValueError as exc:
        raise VerificationError(f"{where}: not valid base64: {exc}") from None


def load_blob_bundle(raw: bytes, where: str) -> dict[str, object]:
    """A bundle file's JSON object, bounded in size (VerificationError otherwise)."""
    if len(raw) > MAX_BLOB_BUNDLE_BYTES:
        raise VerificationError(f"{where}: larger than {MAX_BLOB_BUNDLE_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError(f"{where}: not a JSON bundle") from None
    if not isinstance(doc, dict):
        raise VerificationError(f"{where}: expected a JSON object")
    return doc


def _signature_from_bundle(doc: dict[str, object], blob_digest: bytes, where: str) -> bytes:
    if "base64Signature" in doc:  # cosign 2's bundle format
        if doc.get("cert"):
            raise VerificationError(f"{where}: a keyless cosign bundle (certificate); verify it "
                                    "with the Sigstore bundle format (--bundle from cosign 3 or "
                                    "--new-bundle-format)")
        return _b64(doc["base64Signature"], f"{where}: base64Signature")
    if doc.get("mediaType") not in BUNDLE_TYPES:
        raise VerificationError(f"{where}: unsupported bundle mediaType {doc.get('mediaType')!r}")
    msg = doc.get("messageSignature")
    if not isinstance(msg, dict):
        raise VerificationError(f"{where}: no messageSignature (an attestation bundle? use "
                                "verify-blob-attestation)")
    md = msg.get("messageDigest")
    if isinstance(md, dict):
        if md.get("algorithm") != "SHA2_256":
            raise VerificationError(f"{where}: unsupported messageDigest algorithm "
                                    f"{md.get('algorithm')!r}")
        if _b64(md.get("digest"), f"{where}: messageDigest.digest") != blob_digest:
            raise VerificationError(f"{where}: the bundle is for another file (digest differs)")
    return _b64(msg.get("signature"), f"{where}: messageSignature.signature")


def verify_blob(blob: Path, keys: list[VerifyingKey], *, signature: bytes | None = None,
                bundle: bytes | None = None, bundle_name: str = "bundle") -> VerifyingKey:
    """Return the key whose signature over ``blob`` is valid; VerificationError otherwise.

    ``signature`` is the raw (decoded) signature; ``bundle`` either bundle format above.
    """
    if signature is None and bundle is None:
        raise VerificationError("verify-blob: give --signature or --bundle")
    data = blob.read_bytes()
    if signature is None:
        assert bundle is not None
        signature = _signature_from_bundle(load_blob_bundle(bundle, bundle_name),
                                           hashlib.sha256(data).digest(), bundle_name)
    for key in keys:
        try:
            key.verify(signature, data)
        except VerificationError:
            continue
        return key
    raise VerificationError(f"{blob}: the signature does not verify with the given key(s)")
