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
from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey

__all__ = ["RekorEntry", "verify_rekor_bundle", "verify_set", "check_dsse_body",
           "check_hashedrekord_body", "check_hashedrekord_digest", "rfc3161_from_annotation",
           "canonical_json"]

_MAX_BUNDLE_ANNOTATION = 64 * 1024


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


def verify_rekor_bundle(annotation: str, rekor_keys: dict[str, VerifyingKey], *, payload: bytes,
                        signature_b64: str, signer_pem: bytes | None) -> RekorEntry:
    """Verify the SET and that the logged entry is this signature; VerificationError if not."""
    if len(annotation) > _MAX_BUNDLE_ANNOTATION:
        raise VerificationError("Rekor bundle annotation is too large")
    try:
        doc = json.loads(annotation)
        set_b64 = doc["SignedEntryTimestamp"]
        p = doc["Payload"]
        body, itime, index, log_id = p["body"], p["integratedTime"], p["logIndex"], p["logID"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise VerificationError("Rekor bundle annotation is not cosign's bundle JSON") from None
    if not (isinstance(body, str) and isinstance(itime, int) and isinstance(index, int)
            and isinstance(log_id, str)):
        raise VerificationError("Rekor bundle: Payload fields have unexpected types")
    entry = verify_set(rekor_keys, body=body, integrated_time=itime, log_index=index,
                       log_id=log_id, set_b64=set_b64)
    check_hashedrekord_body(_b64(body, "Payload.body"), payload, signature_b64, signer_pem)
    return entry


def check_hashedrekord_body(raw: bytes, payload: bytes, signature_b64: str,
                            signer_pem: bytes | None) -> None:
    """Check that a ``hashedrekord`` Rekor entry logs this payload, signature and signer."""
    check_hashedrekord_digest(raw, hashlib.sha256(payload).hexdigest(), signature_b64,
                              signer_pem)


def check_hashedrekord_digest(raw: bytes, sha256_hex: str, signature_b64: str,
                              signer_pem: bytes | None) -> None:
    """:func:`check_hashedrekord_body` for a payload known by its SHA-256 (a file's)."""
    try:
        entry = json.loads(raw)
        kind = entry["kind"]
        spec = entry["spec"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise VerificationError("Rekor entry body is not valid JSON") from None
    if kind != "hashedrekord":
        raise VerificationError(f"Rekor entry kind {kind!r} is not hashedrekord")
    try:
        h = spec["data"]["hash"]
        sig = spec["signature"]
    except (KeyError, TypeError):
        raise VerificationError("Rekor entry is missing data.hash or signature") from None
    if h.get("algorithm") != "sha256" or h.get("value") != sha256_hex:
        raise VerificationError("Rekor entry is for another payload (hash differs)")
    # compared decoded: the annotation may be broken over lines (Go's decoder ignores them)
    if _b64(sig.get("content"), "signature.content") != _b64(signature_b64, "signature"):
        raise VerificationError("Rekor entry holds another signature")
    if signer_pem is not None:
        logged = _b64((sig.get("publicKey") or {}).get("content"), "publicKey.content")
        if logged.strip() != signer_pem.strip():
            raise VerificationError("Rekor entry names another certificate or key")


def rfc3161_from_annotation(annotation: str) -> bytes:
    """The DER TimeStampResponse of cosign's ``dev.sigstore.cosign/rfc3161timestamp``."""
    if len(annotation) > _MAX_BUNDLE_ANNOTATION:
        raise VerificationError("RFC 3161 timestamp annotation is too large")
    try:
        value = json.loads(annotation)["SignedRFC3161Timestamp"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise VerificationError("RFC 3161 timestamp annotation is not cosign's JSON "
                                "({\"SignedRFC3161Timestamp\": ...})") from None
    return _b64(value, "SignedRFC3161Timestamp")


def check_dsse_body(raw: bytes, *, payload: bytes, signature_b64: str, signer_pem: bytes) -> None:
    """Check that a ``dsse`` (0.0.1) or ``intoto`` (0.0.2) Rekor entry logs this DSSE signature."""
    try:
        entry = json.loads(raw)
        kind, spec = entry["kind"], entry["spec"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise VerificationError("Rekor entry body is not valid JSON") from None
    want = hashlib.sha256(payload).hexdigest()
    try:
        if kind == "dsse":
            got = spec["payloadHash"]["value"]
            sigs = [(s["signature"], _b64(s["verifier"], "verifier")) for s in spec["signatures"]]
        elif kind == "intoto":
            env = spec["content"]["envelope"]
            got = spec["content"]["payloadHash"]["value"]
            sigs = [(_b64(s["sig"], "sig").decode(), _b64(s["publicKey"], "publicKey"))
                    for s in env["signatures"]]
        else:
            raise VerificationError(f"Rekor entry kind {kind!r} is not dsse or intoto")
    except (KeyError, TypeError, UnicodeDecodeError):
        raise VerificationError(f"Rekor {kind} entry is missing fields") from None
    if got != want:
        raise VerificationError("Rekor entry is for another payload (hash differs)")
    if not any(sig == signature_b64 and pem.strip() == signer_pem.strip() for sig, pem in sigs):
        raise VerificationError("Rekor entry holds another signature or certificate")
