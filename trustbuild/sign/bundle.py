"""Sigstore bundles (v0.3) for image signatures, as ``cosign sign --new-bundle-format`` writes them.

cosign 3 signs an image in the bundle format with a DSSE envelope around an in-toto Statement v1
whose subject is the image manifest digest and whose ``predicateType`` is
``https://sigstore.dev/cosign/sign/v1``; the envelope's signature is over the DSSE PAE. With a key
the bundle's verification material is ``publicKey.hint`` (base64 of the SHA-256 of the public
key's DER), no certificate. The bundle is attached as an OCI 1.1 referrer (see
:mod:`trustbuild.sign.attach`).

Example::

    raw = build_dsse_bundle(key, image_statement("registry/app", digest), IN_TOTO_PAYLOAD_TYPE)
    parsed = verify_dsse_bundle(raw, [key.public_key()])   # -> VerifiedBundle
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from trustbuild._internal.b64 import proto_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONObject
from trustbuild.errors import VerificationError
from trustbuild.oci.digest import Digest
from trustbuild.oci.mediatype import MediaType
from trustbuild.sign.keys import SigningKey, VerifyingKey
from trustbuild.sign.simplesigning import go_json
from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "BUNDLE_TYPES",
    "IN_TOTO_PAYLOAD_TYPE",
    "STATEMENT_V1",
    "SIGN_PREDICATE_TYPE",
    "MAX_BUNDLE_BYTES",
    "pae",
    "key_hint",
    "image_statement",
    "build_dsse_bundle",
    "parse_bundle",
    "material",
    "verify_dsse_bundle",
    "verify_keyless_dsse_bundle",
    "VerifiedBundle",
]

BUNDLE_MEDIA_TYPE = str(MediaType.SIGSTORE_BUNDLE)
IN_TOTO_PAYLOAD_TYPE = str(MediaType.IN_TOTO)
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
BUNDLE_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_hint(key: VerifyingKey) -> str:
    """The ``publicKey.hint`` cosign writes: base64 of SHA-256 over the DER public key."""
    return base64.b64encode(hashlib.sha256(key.public_der()).digest()).decode()


def image_statement(docker_reference: str, digest: Digest | str,
                    annotations: dict[str, str] | None = None) -> bytes:
    """The in-toto Statement cosign 3 signs for an image (predicate = the ``-a`` annotations)."""
    dg = Digest.parse(str(digest))
    doc = {
        "_type": STATEMENT_V1,
        "subject": [{"name": docker_reference, "digest": {dg.algorithm: dg.hex}}],
        "predicateType": SIGN_PREDICATE_TYPE,
        "predicate": dict(annotations or {}),
    }
    return go_json(doc)


def build_dsse_bundle(key: SigningKey, payload: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE,
                      *, tlog_entries: list[JSONObject] | None = None) -> bytes:
    """A v0.3 bundle: DSSE envelope over ``payload`` signed by ``key``, key-hint material."""
    sig = key.sign(pae(payload_type, payload))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_hint(key.public_key())},
            "tlogEntries": list(tlog_entries or []),
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"bundle: {field} is not a base64 string")
    try:
        return proto_b64decode(value)
    except ValueError as exc:
        raise VerificationError(f"bundle: {field} is not valid base64: {exc}") from None


def parse_bundle(raw: bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, object]:
    """Parse and shape-check a bundle JSON of at most ``max_bytes``; VerificationError naming
    the defect. Image signature bundles are small (the default); an attestation bundle carries
    its whole predicate, so its reader passes the attestation limit (``--max-attestation-size``).
    """
    if len(raw) > max_bytes:
        raise VerificationError(f"bundle is {len(raw)} bytes (more than the {max_bytes} "
                                "allowed)")
    doc: dict[str, object] = load_object(raw, what="bundle", error=VerificationError,
                                         max_bytes=max_bytes)
    if doc.get("mediaType") not in BUNDLE_TYPES:
        raise VerificationError(f"bundle mediaType {doc.get('mediaType')!r} is not a v0.2/v0.3 "
                                "bundle")
    if not isinstance(doc.get("verificationMaterial"), dict):
        raise VerificationError("bundle has no verificationMaterial")
    if ("dsseEnvelope" in doc) == ("messageSignature" in doc):
        raise VerificationError("bundle must hold exactly one of dsseEnvelope, messageSignature")
    return doc


def material(doc: dict[str, object]) -> dict[str, object]:
    """The ``verificationMaterial`` object of a bundle :func:`parse_bundle` accepted."""
    vm = doc["verificationMaterial"]
    assert isinstance(vm, dict)  # parse_bundle checked it
    return vm


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose DSSE signature verified: the key that did it and the signed payload."""

    key: VerifyingKey
    payload_type: str
    payload: bytes
    signer: str = ""
    checks: tuple[str, ...] = ()  # keyless: what was verified (SCT, inclusion proof, ...)

    def statement(self) -> dict[str, object]:
        """The payload as an in-toto Statement (VerificationError if it is not one)."""
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise VerificationError(f"bundle payloadType is {self.payload_type}, not in-toto")
        st: dict[str, object] = load_object(self.payload, what="bundle payload",
                                            error=VerificationError,
                                            max_bytes=MAX_BUNDLE_BYTES)
        if st.get("_type") not in (STATEMENT_V1,
                                                               "https://in-toto.io/Statement/v0.1"):
            raise VerificationError("bundle payload is not an in-toto Statement")
        if not isinstance(st.get("subject"), list):
            raise VerificationError("in-toto Statement has no subject list")
        return st

    def subject_digests(self) -> list[Digest]:
        """Every sha256 subject digest of the Statement."""
        out: list[Digest] = []
        subjects = self.statement()["subject"]
        assert isinstance(subjects, list)  # statement() checked it
        for s in subjects:
            d = s.get("digest") if isinstance(s, dict) else None
            if isinstance(d, dict) and isinstance(d.get("sha256"), str):
                try:
                    out.append(Digest("sha256", d["sha256"]))
                except Exception:
                    continue
        return out


def _envelope(doc: dict[str, object]) -> tuple[bytes, str, str, bytes]:
    """(payload, payloadType, signature base64, signature) of the bundle's DSSE envelope."""
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        raise VerificationError("bundle holds a messageSignature; image bundles carry a DSSE "
                                "envelope")
    payload = _b64(env.get("payload"), "dsseEnvelope.payload")
    ptype = env.get("payloadType")
    if not isinstance(ptype, str):
        raise VerificationError("bundle: dsseEnvelope.payloadType is missing")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise VerificationError("bundle: dsseEnvelope must carry exactly one signature")
    sig_b64 = sigs[0].get("sig")
    sig = _b64(sig_b64, "dsseEnvelope.signatures[0].sig")
    assert isinstance(sig_b64, str)
    return payload, ptype, sig_b64, sig


def verify_dsse_bundle(raw: bytes, keys: list[VerifyingKey]) -> VerifiedBundle:
    """Check a key-based DSSE bundle against any of ``keys``; VerificationError otherwise."""
    payload, ptype, _sig_b64, sig = _envelope(parse_bundle(raw))
    message = pae(ptype, payload)
    if not keys:
        raise VerificationError("bundle: no public key to verify with (pass --key)")
    for k in keys:
        try:
            k.verify(sig, message)
        except VerificationError:
            continue
        return VerifiedBundle(k, ptype, payload)
    raise VerificationError("bundle: DSSE signature does not verify with any given key")


def verify_keyless_dsse_bundle(raw: bytes, policy: KeylessPolicy, trust: TrustRoots, *,
                               max_bytes: int = MAX_BUNDLE_BYTES) -> VerifiedBundle:
    """Check a certificate-based DSSE bundle offline (image signatures and attestations alike).

    ``max_bytes`` bounds the bundle (:func:`parse_bundle`): attestations pass their own limit.

    The DSSE signature must verify with the Fulcio certificate; the rest (signing time from the
    Rekor SET or RFC 3161 timestamps, chain, SCT, inclusion proof, checkpoint, the entry logging
    this signature, identity) is :func:`trustbuild.sign.keyless_verify.verify_keyless`.
    """
    from trustbuild.sign.keyless_verify import (
        KeylessEvidence,
        certificates_from_bundle,
        dsse_body_check,
        timestamps_from_bundle,
        tlog_entries_from_bundle,
        verify_keyless,
    )

    doc = parse_bundle(raw, max_bytes=max_bytes)
    payload, ptype, sig_b64, sig = _envelope(doc)
    vm = material(doc)
    chain = certificates_from_bundle(vm)
    leaf = chain[0]
    cert_key = VerifyingKey(leaf.public_key())  # type: ignore[arg-type]
    cert_key.verify(sig, pae(ptype, payload))
    ev = KeylessEvidence(leaf, chain[1:], sig, tlog_entries_from_bundle(vm),
                         timestamps_from_bundle(vm))
    done = verify_keyless(ev, policy, trust, body_check=dsse_body_check(payload, sig_b64, leaf))
    return VerifiedBundle(cert_key, ptype, payload, done.signer, done.checks)
