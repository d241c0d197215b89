"""Offline checks of cosign's ``dev.sigstore.cosign/bundle`` annotation (the Rekor SET).

The SignedEntryTimestamp is Rekor's signature over the canonical JSON of
``{body, integratedTime, logID, logIndex}``; the body is the hashedrekord entry, which must name
the same payload hash, signature and key/certificate as the signature being checked.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass

from trustbuild._internal.b64 import std_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey

__all__ = ["RekorEntry", "CosignBundle", "verify_rekor_bundle", "same_signer", "verify_set",
           "check_dsse_body", "check_hashedrekord_body", "check_hashedrekord_digest",
           "rfc3161_from_annotation", "canonical_json"]

_MAX_BUNDLE_ANNOTATION = 64 * 1024
_MAX_ENTRY_BODY = 1 << 20


def canonical_json(obj: object) -> bytes:
    """RFC 8785-style canonical JSON for the objects Rekor signs (strings and integers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RekorEntry:
    """A verified Rekor entry: when it was integrated and where."""

    integrated_time: _dt.datetime
    log_index: int
    log_id: str


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"Rekor bundle: {field} is not a base64 string")
    try:
        return std_b64decode(value)
    except ValueError as exc:
        raise VerificationError(f"Rekor bundle: {field} is not valid base64: {exc}") from None


def verify_set(rekor_keys: dict[str, VerifyingKey], *, body: str, integrated_time: int,
               log_index: int, log_id: str, set_b64: str) -> RekorEntry:
    """Check Rekor's SignedEntryTimestamp over ``{body, integratedTime, logID, logIndex}``."""
    if not rekor_keys:
        raise VerificationError("Rekor entry present but no Rekor key to check it "
                                "(pass --rekor-key or --trusted-root)")
    signed = canonical_json({"body": body, "integratedTime": integrated_time, "logID": log_id,
                             "logIndex": log_index})
    set_sig = _b64(set_b64, "SignedEntryTimestamp")
    candidates = [rekor_keys[log_id]] if log_id in rekor_keys else list(rekor_keys.values())
    for k in candidates:
        try:
            k.verify(set_sig, signed)
            break
        except VerificationError:
            continue
    else:
        raise VerificationError("Rekor SignedEntryTimestamp does not verify with the Rekor key")
    return RekorEntry(_dt.datetime.fromtimestamp(integrated_time, _dt.UTC), log_index, log_id)


@dataclass(frozen=True)
class CosignBundle:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation: a Rekor entry and its SET (no
    inclusion proof). ``body`` is the base64 entry body, as Rekor signed it."""

    set_b64: str
    body: str
    integrated_time: int
    log_index: int
    log_id: str

    @classmethod
    def parse(cls, annotation: str) -> CosignBundle:
        """``{"SignedEntryTimestamp", "Payload": {"body", "integratedTime", "logIndex",
        "logID"}}``; VerificationError naming the defect."""
        doc = load_object(annotation, what="Rekor bundle annotation", error=VerificationError,
                          max_bytes=_MAX_BUNDLE_ANNOTATION)
        set_b64, p = doc.get("SignedEntryTimestamp"), doc.get("Payload")
        if not isinstance(p, dict):
            raise VerificationError("Rekor bundle annotation is not cosign's bundle JSON "
                                    "(no Payload object)")
        body, itime = p.get("body"), p.get("integratedTime")
        index, log_id = p.get("logIndex"), p.get("logID")
        if not (isinstance(body, str) and isinstance(log_id, str) and isinstance(set_b64, str)
                and _is_int(itime) and _is_int(index)):
            raise VerificationError("Rekor bundle: SignedEntryTimestamp or Payload fields "
                                    "missing or of unexpected types")
        assert isinstance(itime, int) and isinstance(index, int)  # _is_int
        return cls(set_b64, body, itime, index, log_id)

    def verify_set(self, rekor_keys: dict[str, VerifyingKey]) -> RekorEntry:
        """:func:`verify_set` of this entry."""
        return verify_set(rekor_keys, body=self.body, integrated_time=self.integrated_time,
                          log_index=self.log_index, log_id=self.log_id, set_b64=self.set_b64)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def verify_rekor_bundle(annotation: str, rekor_keys: dict[str, VerifyingKey], *, payload: bytes,
                        signature_b64: str, signer_pem: bytes | None) -> RekorEntry:
    """Verify the SET and that the logged entry is this signature; VerificationError if not."""
    bundle = CosignBundle.parse(annotation)
    entry = bundle.verify_set(rekor_keys)
    check_hashedrekord_body(_b64(bundle.body, "Payload.body"), payload, signature_b64,
                            signer_pem)
    return entry


def check_hashedrekord_body(raw: bytes, payload: bytes, signature_b64: str,
                            signer_pem: bytes | None) -> None:
    """Check that a ``hashedrekord`` Rekor entry logs this payload, signature and signer."""
    check_hashedrekord_digest(raw, hashlib.sha256(payload).hexdigest(), signature_b64,
                              signer_pem)


def check_hashedrekord_digest(raw: bytes, sha256_hex: str, signature_b64: str,
                              signer_pem: bytes | None) -> None:
    """:func:`check_hashedrekord_body` for a payload known by its SHA-256 (a file's)."""
    entry = _entry_body(raw)
    kind, spec = entry.get("kind"), entry.get("spec")
    if kind != "hashedrekord":
        raise VerificationError(f"Rekor entry kind {kind!r} is not hashedrekord")
    h, sig = _field(spec, "data", "hash"), _field(spec, "signature")
    if not isinstance(h, dict) or not isinstance(sig, dict):
        raise VerificationError("Rekor entry is missing data.hash or signature")
    if h.get("algorithm") != "sha256" or h.get("value") != sha256_hex:
        raise VerificationError("Rekor entry is for another payload (hash differs)")
    # compared decoded: the annotation may be broken over lines (Go's decoder ignores them)
    if _b64(sig.get("content"), "signature.content") != _b64(signature_b64, "signature"):
        raise VerificationError("Rekor entry holds another signature")
    if signer_pem is not None:
        logged = _b64(_field(sig, "publicKey", "content"), "publicKey.content")
        if not same_signer(logged, signer_pem):
            raise VerificationError("Rekor entry names another certificate or key")


def _field(obj: object, *path: str) -> object:
    """``obj[path[0]][path[1]]...``; None where an object or key is missing."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _list(obj: object, what: str) -> list[object]:
    if not isinstance(obj, list):
        raise VerificationError(f"Rekor entry: {what} is not a list")
    return obj


def _entry_body(raw: bytes) -> dict[str, object]:
    doc: dict[str, object] = load_object(raw, what="Rekor entry body", error=VerificationError,
                                         max_bytes=_MAX_ENTRY_BODY)
    return doc


def _pem_der(pem: bytes, what: str) -> tuple[str, bytes]:
    """The kind (certificate / public key) and DER of the first PEM block of ``pem``."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            return "certificate", x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        except ValueError:
            raise VerificationError(f"{what}: not a PEM certificate") from None
    try:
        key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise VerificationError(f"{what}: not a PEM certificate or public key") from None
    return "public key", key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def same_signer(logged_pem: bytes, signer_pem: bytes) -> bool:
    """Whether a Rekor entry's PEM names the signer's certificate (or public key): compared as
    DER, so the PEM's line wrapping and surrounding text do not matter."""
    return _pem_der(logged_pem, "Rekor entry publicKey") == _pem_der(signer_pem, "signer")


def rfc3161_from_annotation(annotation: str) -> bytes:
    """The DER TimeStampResponse of cosign's ``dev.sigstore.cosign/rfc3161timestamp``."""
    if len(annotation) > _MAX_BUNDLE_ANNOTATION:
        raise VerificationError("RFC 3161 timestamp annotation is too large")
    doc = load_object(annotation, what="RFC 3161 timestamp annotation", error=VerificationError,
                      max_bytes=_MAX_BUNDLE_ANNOTATION)
    if "SignedRFC3161Timestamp" not in doc:
        raise VerificationError("RFC 3161 timestamp annotation is not cosign's JSON "
                                "({\"SignedRFC3161Timestamp\": ...})")
    return _b64(doc["SignedRFC3161Timestamp"], "SignedRFC3161Timestamp")


def check_dsse_body(raw: bytes, *, payload: bytes, signature_b64: str, signer_pem: bytes) -> None:
    """Check that a ``dsse`` (0.0.1) or ``intoto`` (0.0.2) Rekor entry logs this DSSE signature."""
    entry = _entry_body(raw)
    kind, spec = entry.get("kind"), entry.get("spec")
    want = hashlib.sha256(payload).hexdigest()
    if kind == "dsse":
        got = _field(spec, "payloadHash", "value")
        sigs = [(_field(s, "signature"), _b64(_field(s, "verifier"), "verifier"))
                for s in _list(_field(spec, "signatures"), "spec.signatures")]
    elif kind == "intoto":
        got = _field(spec, "content", "payloadHash", "value")
        sigs = [(_b64(_field(s, "sig"), "sig").decode("ascii", "replace"),
                 _b64(_field(s, "publicKey"), "publicKey"))
                for s in _list(_field(spec, "content", "envelope", "signatures"),
                               "spec.content.envelope.signatures")]
    else:
        raise VerificationError(f"Rekor entry kind {kind!r} is not dsse or intoto")
    if not isinstance(got, str):
        raise VerificationError(f"Rekor {kind} entry is missing payloadHash.value")
    if got != want:
        raise VerificationError("Rekor entry is for another payload (hash differs)")
    if not any(sig == signature_b64 and same_signer(pem, signer_pem) for sig, pem in sigs):
        raise VerificationError("Rekor entry holds another signature or certificate")
