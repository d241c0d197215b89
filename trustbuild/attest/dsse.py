"""DSSE envelopes (``application/vnd.dsse.envelope.v1+json``): PAE, signing, strict parsing.

PAE is exactly the DSSE v1 pre-authentication encoding::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length. Example::

    env = Envelope.sign(payload, IN_TOTO_PAYLOAD_TYPE, key)   # key.sign(bytes) -> bytes
    raw = env.to_json()
    again = Envelope.from_json(raw)
    keyid = again.verify([public_key])                          # raises VerificationError
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from trustbuild._internal.b64 import proto_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONObject
from trustbuild.errors import AttestationError, VerificationError
from trustbuild.oci.mediatype import MediaType
from trustbuild.sign.bundle import IN_TOTO_PAYLOAD_TYPE, pae

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE", "DSSE_MEDIA_TYPE", "MAX_ENVELOPE_BYTES", "MAX_SIGNATURES",
    "DSSESigner", "DSSEVerifier", "Signature", "Envelope", "pae", "InvalidEnvelope",
]

DSSE_MEDIA_TYPE = str(MediaType.DSSE_ENVELOPE)
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
MAX_SIGNATURES = 16
_MAX_SIG_B64 = 16 * 1024


class InvalidEnvelope(AttestationError):
    """A DSSE envelope that is not well formed (bad JSON, fields, base64 or sizes)."""


class DSSESigner(Protocol):
    """What signs: ``trustbuild.sign.keys.SigningKey`` (or any object with ``sign``)."""

    def sign(self, data: bytes) -> bytes:
        """Signature over ``data``."""
        ...


class DSSEVerifier(Protocol):
    """What verifies: ``trustbuild.sign.keys.VerifyingKey``."""

    def verify(self, sig: bytes, data: bytes) -> None:
        """Raise VerificationError unless ``sig`` is a valid signature over ``data``."""
        ...


def _b64decode(text: object, *, field: str) -> bytes:
    """Standard or URL-safe base64, padded or not (protobuf JSON, a superset of
    go-securesystemslib's DSSE decoding); a clear error otherwise."""
    if not isinstance(text, str):
        raise InvalidEnvelope(f"DSSE envelope: {field} must be a base64 string")
    try:
        return proto_b64decode(text.strip())
    except ValueError as exc:
        raise InvalidEnvelope(f"DSSE envelope: {field} is not valid base64: {exc}") from None


def _keyid_of(key: object) -> str:
    """The key's id when it has one (``keyid()`` on the key or its public key), else ''."""
    for obj in (key, getattr(key, "public_key", lambda: None)()):
        fn = getattr(obj, "keyid", None)
        if callable(fn):
            try:
                return str(fn() or "")
            except Exception:  # a key without an id is fine: keyid is only a hint
                return ""
    return ""


@dataclass(frozen=True)
class Signature:
    """One DSSE signature: an optional key hint and the raw signature bytes."""

    keyid: str
    sig: bytes

    def to_json(self) -> dict[str, str]:
        """As ``{"keyid": ..., "sig": base64}``."""
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode()}


@dataclass(frozen=True)
class Envelope:
    """A parsed, well-formed DSSE envelope (signatures not yet verified)."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @classmethod
    def sign(cls, payload: bytes, payload_type: str, signer: DSSESigner, *,
             keyid: str | None = None) -> Envelope:
        """Sign ``payload`` (over its PAE) with one key."""
        sig = signer.sign(pae(payload_type, payload))
        kid = _keyid_of(signer) if keyid is None else keyid
        return cls(payload_type, payload, (Signature(kid, sig),))

    def pae(self) -> bytes:
        """The bytes the signatures are over."""
        return pae(self.payload_type, self.payload)

    def verify(self, keys: Sequence[DSSEVerifier]) -> str:
        """Return the keyid of the first signature some key verifies; VerificationError if none.

        The keyid is only a hint (DSSE spec): every signature is tried against every key.
        """
        if not self.signatures:
            raise VerificationError("DSSE envelope has no signatures")
        data = self.pae()
        for s in self.signatures:
            for key in keys:
                try:
                    key.verify(s.sig, data)
                except VerificationError:
                    continue
                except Exception:  # a key of another type, a malformed signature
                    continue
                return s.keyid or _keyid_of(key)
        raise VerificationError(
            f"DSSE signature does not verify with the given key(s) ({len(self.signatures)} "
            f"signature(s), {len(keys)} key(s))")

    def to_dict(self) -> JSONObject:
        """As the envelope JSON object."""
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [s.to_json() for s in self.signatures],
        }

    def to_json(self) -> bytes:
        """Compact JSON bytes (what is stored as the ``.att`` layer)."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, d: object) -> Envelope:
        """Parse and check an envelope object (types, base64, bounded counts)."""
        if not isinstance(d, dict):
            raise InvalidEnvelope("DSSE envelope: expected a JSON object")
        ptype = d.get("payloadType")
        if not isinstance(ptype, str) or not ptype:
            raise InvalidEnvelope("DSSE envelope: missing or non-string payloadType")
        if "payload" not in d:
            raise InvalidEnvelope("DSSE envelope: missing payload")
        payload = _b64decode(d["payload"], field="payload")
        sigs = d.get("signatures")
        if not isinstance(sigs, list):
            raise InvalidEnvelope("DSSE envelope: signatures must be a list")
        if len(sigs) > MAX_SIGNATURES:
            raise InvalidEnvelope(f"DSSE envelope: more than {MAX_SIGNATURES} signatures")
        out = []
        for i, s in enumerate(sigs):
            if not isinstance(s, dict):
                raise InvalidEnvelope(f"DSSE envelope: signatures[{i}] must be an object")
            keyid = s.get("keyid", "")
            if keyid is None:
                keyid = ""
            if not isinstance(keyid, str):
                raise InvalidEnvelope(f"DSSE envelope: signatures[{i}].keyid must be a string")
            raw_sig = s.get("sig")
            if isinstance(raw_sig, str) and len(raw_sig) > _MAX_SIG_B64:
                raise InvalidEnvelope(f"DSSE envelope: signatures[{i}].sig is too large")
            out.append(Signature(keyid, _b64decode(raw_sig, field=f"signatures[{i}].sig")))
        return cls(ptype, payload, tuple(out))

    @classmethod
    def from_json(cls, raw: bytes | str, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
        """Parse envelope JSON bytes, bounded in size, with a clear error."""
        return cls.from_dict(load_object(raw, what="DSSE envelope", error=InvalidEnvelope,
                                         max_bytes=max_bytes))
