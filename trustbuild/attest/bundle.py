"""Sigstore bundle v0.3 in the ``dsseEnvelope`` form, for key-based attestations.

The bundle carries the DSSE envelope and, for a key, only a public-key hint (no certificate, no
transparency-log entry): a verifier supplies the key as trust material, as ``@sigstore/verify``
does with ``publicKeys`` and zero log thresholds. Keyless bundles come from ``trustbuild.sign``.
"""

from __future__ import annotations

import base64
import json

from trustbuild._internal.jsonload import load_object
from trustbuild.attest.dsse import Envelope, InvalidEnvelope
from trustbuild.errors import AttestationError
from trustbuild.sign.bundle import BUNDLE_MEDIA_TYPE, BUNDLE_TYPES

__all__ = ["BUNDLE_V03", "BUNDLE_MEDIA_TYPES", "dsse_bundle", "envelope_from_bundle",
           "MAX_BUNDLE_BYTES"]

BUNDLE_V03 = BUNDLE_MEDIA_TYPE
BUNDLE_MEDIA_TYPES = BUNDLE_TYPES
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


def dsse_bundle(envelope: Envelope, *, key_hint: str) -> bytes:
    """A v0.3 bundle JSON holding ``envelope``, verified by the public key named ``key_hint``.

    Same shape as cosign 3 and ``trustbuild.sign.bundle``: one signature with an empty keyid.
    """
    sigs = [{"sig": base64.b64encode(s.sig).decode(), "keyid": ""}
            for s in envelope.signatures[:1]]
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": key_hint}, "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(envelope.payload).decode(),
                         "payloadType": envelope.payload_type, "signatures": sigs},
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def envelope_from_bundle(raw: bytes, *, max_bytes: int = MAX_BUNDLE_BYTES
                         ) -> tuple[Envelope, dict[str, object]]:
    """The DSSE envelope and verification material of a bundle (InvalidEnvelope if malformed)."""
    obj = load_object(raw, what="Sigstore bundle", error=InvalidEnvelope, max_bytes=max_bytes)
    if obj.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise InvalidEnvelope(f"Sigstore bundle: unsupported mediaType {obj.get('mediaType')!r}")
    env = obj.get("dsseEnvelope")
    if env is None:
        raise AttestationError("Sigstore bundle holds a message signature, not a DSSE attestation")
    material = obj.get("verificationMaterial")
    return Envelope.from_dict(env), material if isinstance(material, dict) else {}
