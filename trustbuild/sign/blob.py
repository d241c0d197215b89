"""Signatures of plain files, as ``cosign sign-blob`` makes them (attestations: attest/blob.py).

Two bundle files are read and written:

- the Sigstore bundle v0.3 (``mediaType application/vnd.dev.sigstore.bundle.v0.3+json``), what
  cosign 3 writes with ``--bundle`` (cosign 2 with ``--new-bundle-format``) and what sigstore-js
  and sigstore-python verify: ``messageSignature`` (SHA-256 of the blob and the signature) for
  ``sign-blob``, ``dsseEnvelope`` (an in-toto statement about the blob) for ``attest-blob``;
- cosign 2's own bundle (``{"base64Signature": ..., "cert": ..., "rekorBundle": ...}``), read
  by ``verify-blob`` so that files written by older cosign versions still verify with a key.

With a key, the bundle's verification material is the key's hint only (no certificate, no
transparency-log entry), as with ``cosign sign-blob --key --tlog-upload=false``. Keyless
(``sign-blob --keyless``, :func:`trustbuild.sign.keyless.keyless_sign_blob`), it is the Fulcio
certificate and the Rekor ``hashedrekord`` entry (SET, inclusion proof, checkpoint);
:func:`verify_blob_keyless` checks such a bundle (or cosign 2's ``cert``/``rekorBundle`` one)
offline with the one keyless engine (:mod:`trustbuild.sign.keyless_verify`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.b64 import proto_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild.errors import SigningError, VerificationError
from trustbuild.sign.bundle import BUNDLE_MEDIA_TYPE, BUNDLE_TYPES, key_hint
from trustbuild.sign.keys import SigningKey, VerifyingKey

if TYPE_CHECKING:
    from cryptography import x509

    from trustbuild.sign.keyless_verify import KeylessVerified, TlogEntry
    from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = ["BlobSignature", "sign_blob", "verify_blob", "verify_blob_keyless",
           "load_blob_bundle", "sha256_file", "MAX_BLOB_BUNDLE_BYTES", "MAX_ED25519_BLOB_BYTES"]

MAX_BLOB_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_ED25519_BLOB_BYTES = 256 * 1024 * 1024
"""The largest file an Ed25519 blob signature is made or checked over. Pure Ed25519 (what
cosign's and trustbuild's Ed25519 keys sign with) hashes the message twice inside the
algorithm, so the whole file is held in memory; ECDSA and RSA signatures are made and checked
over the file's SHA-256, streamed, at any size."""


@dataclass(frozen=True)
class BlobSignature:
    """A blob's signature and the Sigstore bundle that carries it."""

    signature: bytes
    bundle: bytes  # Sigstore bundle v0.3 JSON
    certificate_pem: str = ""  # keyless: the Fulcio certificate (PEM)

    @property
    def signature_b64(self) -> str:
        """The signature as cosign prints it (standard base64)."""
        return base64.b64encode(self.signature).decode()


def sha256_file(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks."""
    return _file_digests(path, {"sha256"})["sha256"]


def _file_digests(path: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The ``hashlib`` digests ``names`` of a file, in one pass of 1 MiB chunks."""
    hs = {n: hashlib.new(n) for n in names}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            for h in hs.values():
                h.update(chunk)
    return {n: h.digest() for n, h in hs.items()}


class _TooLarge(VerificationError):
    """A file too large for an Ed25519 signature (above :data:`MAX_ED25519_BLOB_BYTES`)."""


class _SignedFile:
    """A file whose signature is made or checked: hashed once, in chunks (SHA-256 and the hashes the
    keys' prehashed checks need); read into memory only for an Ed25519 key, at most
    :data:`MAX_ED25519_BLOB_BYTES`, and then checked to be the bytes that were hashed."""

    def __init__(self, path: Path, keys: Iterable[VerifyingKey]) -> None:
        self.path = path
        names = {"sha256"}
        for k in keys:
            names.update(k.prehash_algorithms)
        self.digests = _file_digests(path, names)
        self._data: bytes | None = None

    @property
    def sha256(self) -> bytes:
        """The file's SHA-256 (what bundles and Rekor entries name)."""
        return self.digests["sha256"]

    def verify(self, key: VerifyingKey, signature: bytes) -> None:
        """VerificationError unless ``signature`` is ``key``'s over the file (:class:`_TooLarge`
        for an Ed25519 key and a file above the bound)."""
        if key.prehash_algorithms:
            key.verify_prehashed(signature, self.digests)
        else:
            key.verify(signature, self.message())

    def message(self) -> bytes:
        """The file's bytes (for Ed25519), bounded; :class:`_TooLarge` above the bound."""
        if self._data is None:
            limit = MAX_ED25519_BLOB_BYTES
            with open(self.path, "rb") as f:
                data = f.read(limit + 1)
            if len(data) > limit:
                raise _TooLarge(f"{self.path}: larger than {limit} bytes, the most an Ed25519 "
                                "signature is made or checked over (Ed25519 signs the whole "
                                "file, which must be held in memory); sign large files with an "
                                "ECDSA or RSA key")
            if hashlib.sha256(data).digest() != self.sha256:
                raise VerificationError(f"{self.path}: changed while it was being read")
            self._data = data
        return self._data


def sign_blob(key: SigningKey, blob: Path) -> BlobSignature:
    """Sign the bytes of ``blob`` (the signature is over the bytes, hashed with SHA-256).

    ECDSA and RSA sign the SHA-256, streamed; Ed25519 signs the bytes, at most
    :data:`MAX_ED25519_BLOB_BYTES` (SigningError above)."""
    msg = _SignedFile(blob, [key.public_key()])
    if key.public_key().prehash_algorithms:
        signature = key.sign_sha256(msg.sha256)
    else:
        try:
            signature = key.sign(msg.message())
        except VerificationError as exc:
            raise SigningError(str(exc)) from None
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())},
                                 "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256",
                              "digest": base64.b64encode(msg.sha256).decode()},
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
    doc: dict[str, object] = load_object(raw, what=where, error=VerificationError,
                                         max_bytes=MAX_BLOB_BUNDLE_BYTES)
    return doc


def _signature_from_bundle(doc: dict[str, object], blob_digest: bytes, where: str) -> bytes:
    if "base64Signature" in doc:  # cosign 2's bundle format
        if doc.get("cert"):
            raise VerificationError(f"{where}: a keyless bundle (it carries a certificate); "
                                    "verify it with --certificate-identity and "
                                    "--certificate-oidc-issuer instead of --key")
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
    msg = _SignedFile(blob, keys)
    if signature is None:
        assert bundle is not None
        doc = load_blob_bundle(bundle, bundle_name)
        signature = _signature_from_bundle(doc, msg.sha256, bundle_name)
        vm = doc.get("verificationMaterial")
        if isinstance(vm, dict) and ("certificate" in vm or "x509CertificateChain" in vm):
            raise VerificationError(f"{bundle_name}: a keyless bundle (it carries a "
                                    "certificate); verify it with --certificate-identity and "
                                    "--certificate-oidc-issuer instead of --key")
    for key in keys:
        try:
            msg.verify(key, signature)
        except _TooLarge:
            raise
        except VerificationError:
            continue
        return key
    raise VerificationError(f"{blob}: the signature does not verify with the given key(s)")


def _cosign2_keyless(doc: dict[str, object], where: str
                     ) -> tuple[list[x509.Certificate], bytes, list[TlogEntry], list[bytes]]:
    """(certificates, signature, log entries, RFC 3161 responses) of a cosign 2 bundle file
    (``base64Signature``, ``cert`` = base64 of the PEM, ``rekorBundle`` = the Rekor SET)."""
    from trustbuild.sign.keyless_verify import TlogEntry
    from trustbuild.sign.rekor import rfc3161_from_annotation
    from trustbuild.sign.trust import load_certificates

    sig = _b64(doc.get("base64Signature"), f"{where}: base64Signature")
    pem = _b64(doc.get("cert"), f"{where}: cert")
    certs = load_certificates(pem, f"{where}: cert")
    rekor = doc.get("rekorBundle")
    if not isinstance(rekor, dict):
        raise VerificationError(f"{where}: keyless bundle has no rekorBundle (the Rekor entry)")
    entries = [TlogEntry.from_cosign_annotation(json.dumps(rekor))]
    stamps = []
    rfc3161 = doc.get("RFC3161Timestamp")
    if isinstance(rfc3161, dict):
        stamps.append(rfc3161_from_annotation(json.dumps(rfc3161)))
    return certs, sig, entries, stamps


def verify_blob_keyless(blob: Path, bundle: bytes, policy: KeylessPolicy, trust: TrustRoots, *,
                        bundle_name: str = "bundle") -> KeylessVerified:
    """Check a keyless signature of ``blob`` (a Sigstore bundle with a ``messageSignature``, or
    cosign 2's bundle file) offline; VerificationError (one line, naming the bundle) otherwise.

    The signature must verify over the file's bytes with the Fulcio certificate's key, and the
    Rekor ``hashedrekord`` entry must log this file's SHA-256, this signature and this
    certificate; the rest is :func:`trustbuild.sign.keyless_verify.verify_keyless`.
    """
    from cryptography.hazmat.primitives import serialization

    from trustbuild.sign.bundle import material, parse_bundle
    from trustbuild.sign.keyless_verify import (
        KeylessEvidence,
        certificates_from_bundle,
        timestamps_from_bundle,
        tlog_entries_from_bundle,
        verify_keyless,
    )
    from trustbuild.sign.rekor import check_hashedrekord_digest

    doc = load_blob_bundle(bundle, bundle_name)
    try:
        if "base64Signature" in doc:
            chain, signature, entries, stamps = _cosign2_keyless(doc, bundle_name)
            leaf_key = VerifyingKey(chain[0].public_key())  # type: ignore[arg-type]
            msg = _SignedFile(blob, [leaf_key])
        else:
            doc = parse_bundle(bundle)
            vm = material(doc)
            chain = certificates_from_bundle(vm)
            leaf_key = VerifyingKey(chain[0].public_key())  # type: ignore[arg-type]
            msg = _SignedFile(blob, [leaf_key])
            signature = _signature_from_bundle(doc, msg.sha256, bundle_name)
            entries, stamps = tlog_entries_from_bundle(vm), timestamps_from_bundle(vm)
        leaf, digest = chain[0], msg.sha256
        try:
            msg.verify(leaf_key, signature)
        except _TooLarge:
            raise
        except VerificationError:
            raise VerificationError(f"the signature does not verify over {blob} with the "
                                    "bundle's certificate (another file, or a tampered "
                                    "bundle)") from None
        sig_b64 = base64.b64encode(signature).decode()
        leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)

        def body_check(body: bytes) -> None:
            check_hashedrekord_digest(body, digest.hex(), sig_b64, leaf_pem)

        ev = KeylessEvidence(leaf, chain[1:], signature, entries, stamps)
        return verify_keyless(ev, policy, trust, body_check=body_check)
    except VerificationError as err:
        text = str(err)
        if text.startswith(f"{bundle_name}:"):
            raise
        raise VerificationError(f"{bundle_name}: {text}") from None
