"""Attestations of plain files, as ``cosign attest-blob`` makes them.

An in-toto statement whose subject is the file (its name and sha256), signed as a DSSE envelope;
written as the envelope JSON (``--output-attestation``) and/or as a Sigstore bundle v0.3 with a
``dsseEnvelope`` (``--bundle``, what cosign 3 writes and sigstore-js verifies).
"""

from __future__ import annotations

from pathlib import Path

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.bundle import BUNDLE_MEDIA_TYPES, dsse_bundle
from trustbuild.attest.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope
from trustbuild.attest.statement import Statement, Subject
from trustbuild.errors import VerificationError
from trustbuild.sign.blob import load_blob_bundle, sha256_file
from trustbuild.sign.bundle import key_hint
from trustbuild.sign.keys import SigningKey, VerifyingKey

__all__ = ["attest_blob", "verify_blob_attestation"]


def attest_blob(key: SigningKey, blob: Path, *, predicate: JSONObject,
                predicate_type: str) -> tuple[Envelope, bytes]:
    """An in-toto statement about ``blob`` (name and sha256), signed as DSSE; and its bundle."""
    subject = Subject(blob.name, {"sha256": sha256_file(blob).hex()})
    statement = Statement((subject,), predicate_type, predicate)
    envelope = Envelope.sign(statement.to_json(), IN_TOTO_PAYLOAD_TYPE, key)
    return envelope, dsse_bundle(envelope, key_hint=key_hint(key.public_key()))


def verify_blob_attestation(blob: Path, keys: list[VerifyingKey], raw: bytes, *,
                            predicate_type: str | None = None,
                            name: str = "attestation") -> Statement:
    """Check a DSSE envelope or a Sigstore bundle of one about ``blob``; returns the statement."""
    doc = load_blob_bundle(raw, name)
    env_doc = doc.get("dsseEnvelope") if "mediaType" in doc else doc
    if "mediaType" in doc and doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise VerificationError(f"{name}: unsupported bundle mediaType {doc.get('mediaType')!r}")
    if not isinstance(env_doc, dict):
        raise VerificationError(f"{name}: no DSSE envelope in the bundle")
    envelope = Envelope.from_dict(env_doc)
    envelope.verify(keys)
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"{name}: payloadType {envelope.payload_type!r} is not in-toto")
    statement = Statement.from_json(envelope.payload)
    if f"sha256:{sha256_file(blob).hex()}" not in statement.subject_digests():
        raise VerificationError(f"{name}: the statement is not about {blob.name} (no subject "
                                "with its sha256)")
    if predicate_type and statement.predicate_type != predicate_type:
        raise VerificationError(f"{name}: predicate type {statement.predicate_type!r}, expected "
                                f"{predicate_type!r}")
    return statement
