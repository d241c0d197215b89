"""Offline checks of cosign's ``dev.sigstore.cosign/bundle`` annotation (the Rekor SET).

The SignedEntryTimestamp is Rekor's signature over the canonical JSON of
``{body, integratedTime, logID, logIndex}``; the body is the hashedrekord entry, which must name
the same payload hash, signature and key/certificate as the signature being checked.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey

__all__ = ["RekorEntry", "verify_rekor_bundle", "canonical_json"]

_MAX_BUNDLE_ANNOTATION = 64 * 1024


def canonical_json(obj: Any) -> bytes:
    """RFC 8785-style canonical JSON for the objects Rekor signs (strings and integers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RekorEntry:
    """A verified Rekor entry: when it was integrated and where."""

    integrated_time: _dt.datetime
    log_index: int
    log_id: str


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"Rekor bundle: {field} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"Rekor bundle: {field} is not valid base64") from None


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
    except (ValueError, KeyError, TypeError):
        raise VerificationError("Rekor bundle annotation is not cosign's bundle JSON") from None
    if not (isinstance(body, str) and isinstance(itime, int) and isinstance(index, int)
            and isinstance(log_id, str)):
        raise VerificationError("Rekor bundle: Payload fields have unexpected types")
    if not rekor_keys:
        raise VerificationError("Rekor bundle present but no Rekor key to check it "
                                "(pass --rekor-key or --trusted-root)")
    signed = canonical_json({"body": body, "integratedTime": itime, "logID": log_id,
                             "logIndex": index})
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
    _check_body(_b64(body, "Payload.body"), payload, signature_b64, signer_pem)
    return RekorEntry(_dt.datetime.fromtimestamp(itime, _dt.UTC), index, log_id)


def _check_body(raw: bytes, payload: bytes, signature_b64: str, signer_pem: bytes | None) -> None:
    try:
        entry = json.loads(raw)
        kind = entry["kind"]
        spec = entry["spec"]
    except (ValueError, KeyError, TypeError):
        raise VerificationError("Rekor entry body is not valid JSON") from None
    if kind != "hashedrekord":
        raise VerificationError(f"Rekor entry kind {kind!r} is not hashedrekord")
    try:
        h = spec["data"]["hash"]
        sig = spec["signature"]
    except (KeyError, TypeError):
        raise VerificationError("Rekor entry is missing data.hash or signature") from None
    if h.get("algorithm") != "sha256" or h.get("value") != hashlib.sha256(payload).hexdigest():
        raise VerificationError("Rekor entry is for another payload (hash differs)")
    if sig.get("content") != signature_b64:
        raise VerificationError("Rekor entry holds another signature")
    if signer_pem is not None:
        logged = _b64((sig.get("publicKey") or {}).get("content"), "publicKey.content")
        if logged.strip() != signer_pem.strip():
            raise VerificationError("Rekor entry names another certificate or key")
