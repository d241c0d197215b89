"""Attestations of plain files, as ``cosign attest-blob`` makes them.

An in-toto statement whose subject is the file (its name and sha256), signed as a DSSE envelope;
written as the envelope JSON (``--output-attestation``) and/or as a Sigstore bundle v0.3 with a
``dsseEnvelope`` (``--bundle``, what cosign 3 writes and sigstore-js verifies). Keyless
(:func:`keyless_attest_blob`), the bundle carries the Fulcio certificate and the Rekor ``dsse``
entry; :func:`verify_blob_attestation_keyless` checks it with the one keyless engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.bundle import BUNDLE_MEDIA_TYPES, dsse_bundle
from trustbuild.attest.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope
from trustbuild.attest.statement import Statement, Subject
from trustbuild.errors import SigningError, VerificationError
from trustbuild.sign.blob import MAX_BLOB_BUNDLE_BYTES, load_blob_bundle, sha256_file
from trustbuild.sign.bundle import key_hint
from trustbuild.sign.keys import SigningKey, VerifyingKey

if TYPE_CHECKING:
    from trustbuild.sign.bundle import VerifiedBundle
    from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = ["attest_blob", "keyless_attest_blob", "verify_blob_attestation",
           "verify_blob_attestation_keyless"]


def _blob_statement(blob: Path, predicate: JSONObject, predicate_type: str) -> Statement:
    subject = Subject(blob.name, {"sha256": sha256_file(blob).hex()})
    return Statement((subject,), predicate_type, predicate)


def attest_blob(key: SigningKey, blob: Path, *, predicate: JSONObject,
                predicate_type: str) -> tuple[Envelope, bytes]:
    """An in-toto statement about ``blob`` (name and sha256), signed as DSSE; and its bundle."""
    statement = _blob_statement(blob, predicate, predicate_type)
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
    return _blob_statement_of(blob, envelope.payload_type, envelope.payload, predicate_type,
                              name)


def _blob_statement_of(blob: Path, payload_type: str, payload: bytes,
                       predicate_type: str | None, name: str) -> Statement:
    """The verified payload as an in-toto statement about ``blob`` (of ``predicate_type``)."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise VerificationError(f"{name}: payloadType {payload_type!r} is not in-toto")
    statement = Statement.from_json(payload)
    if f"sha256:{sha256_file(blob).hex()}" not in statement.subject_digests():
        raise VerificationError(f"{name}: the statement is not about {blob.name} (no subject "
                                "with its sha256)")
    if predicate_type and statement.predicate_type != predicate_type:
        raise VerificationError(f"{name}: predicate type {statement.predicate_type!r}, expected "
                                f"{predicate_type!r}")
    return statement


def keyless_attest_blob(blob: Path, *, predicate: JSONObject, predicate_type: str,
                        identity_token: str | None, trust_config: str | Path | None = None,
                        fulcio_url: str | None = None, rekor_url: str | None = None
                        ) -> tuple[Envelope, bytes]:
    """:func:`attest_blob` with a Fulcio certificate, logged in Rekor (``dsse`` entry)."""
    from sigstore import dsse

    from trustbuild.sign.keyless import keyless_signer

    statement = _blob_statement(blob, predicate, predicate_type)
    with keyless_signer(identity_token, trust_config, what="attestation",
                        fulcio_url=fulcio_url, rekor_url=rekor_url) as (signer, _chain):
        raw = signer.sign_dsse(dsse.Statement(statement.to_json())).to_json().encode()
    env_doc = load_blob_bundle(raw, "Sigstore bundle").get("dsseEnvelope")
    if not isinstance(env_doc, dict):
        raise SigningError("Sigstore returned a bundle without a DSSE envelope")
    return Envelope.from_dict(env_doc), raw


def verify_blob_attestation_keyless(blob: Path, raw: bytes, policy: KeylessPolicy,
                                    trust: TrustRoots, *, predicate_type: str | None = None,
                                    name: str = "attestation"
                                    ) -> tuple[Statement, VerifiedBundle]:
    """Check a keyless Sigstore bundle (DSSE) about ``blob`` offline with the one keyless engine
    (certificate chain, SCT, Rekor SET / inclusion proof, identity); returns the statement."""
    from trustbuild.sign.bundle import verify_keyless_dsse_bundle

    try:
        vb = verify_keyless_dsse_bundle(raw, policy, trust,
                                        max_bytes=MAX_BLOB_BUNDLE_BYTES)
    except VerificationError as err:
        raise VerificationError(f"{name}: {err}") from None
    return _blob_statement_of(blob, vb.payload_type, vb.payload, predicate_type, name), vb
