"""Verify the attestations attached to an image: DSSE signature, payload type, subject, type.

Every attestation found (``.att`` layers and Sigstore bundle referrers) gets a verdict and a
reason; the result passes when at least one attestation verifies and has the asked predicate
type. Example::

    result = verify_attestations(store, "1.0", keys=[load_verifying_key("cosign.pub")],
                                 predicate_type="slsaprovenance")
    if not result.ok:
        print(result.reason)
    for s in result.statements(): ...
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.attach import ATT_SUFFIX, resolve_subject
from trustbuild.attest.bundle import envelope_from_bundle
from trustbuild.attest.dsse import DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, DSSEVerifier, Envelope
from trustbuild.attest.statement import (
    MAX_PREDICATE_BYTES,
    PREDICATE_TYPE_ANNOTATION,
    Statement,
    predicate_type_uri,
)
from trustbuild.errors import TrustbuildError, VerificationError
from trustbuild.oci.digest import Digest
from trustbuild.oci.store import Store
from trustbuild.sign.attach import BundleReferrer, CosignLayer
from trustbuild.sign.bundle import pae
from trustbuild.sign.keys import VerifyingKey
from trustbuild.sign.sign import CERTIFICATE_ANNOTATION
from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = ["AttestationCheck", "AttestationResult", "verify_attestations",
           "check_envelope", "MAX_ATTESTATION_BYTES"]

# Per attestation (an .att layer or a bundle): a large SPDX SBOM of a full distribution image is
# tens of MiB once wrapped in base64 and DSSE (cosign's COSIGN_MAX_ATTACHMENT_SIZE is 128 MiB).
MAX_ATTESTATION_BYTES = 64 * 1024 * 1024


@dataclass
class AttestationCheck:
    """One attestation and its verdict."""

    source: str  # e.g. "sha256-<hex>.att layer 0" or "bundle referrer sha256:..."
    verified: bool
    reason: str
    predicate_type: str | None = None
    signer: str | None = None
    statement: JSONObject | None = None

    def to_json(self) -> JSONObject:
        """As JSON output."""
        return {"source": self.source, "verified": self.verified, "reason": self.reason,
                "predicateType": self.predicate_type, "signer": self.signer,
                "statement": self.statement}


@dataclass
class AttestationResult:
    """The verdict for one image."""

    image: str
    digest: str
    predicate_type: str | None
    checks: list[AttestationCheck] = field(default_factory=list)
    other_types: list[str] = field(default_factory=list)  # attached, but not of the asked type

    @property
    def ok(self) -> bool:
        """True if some attestation verified (with the asked type)."""
        return any(c.verified for c in self.checks)

    @property
    def reason(self) -> str:
        """One line: why it passed or failed."""
        n = sum(c.verified for c in self.checks)
        kind = f" of type {self.predicate_type}" if self.predicate_type else ""
        if n:
            return f"{n} verified attestation(s){kind} for {self.digest}"
        if not self.checks and self.other_types:
            found = ", ".join(sorted(set(self.other_types)))
            return f"no attestation{kind} for {self.digest} (found only: {found})"
        if not self.checks:
            return f"no attestations found for {self.image}@{self.digest}"
        reasons = "; ".join(f"{c.source}: {c.reason}" for c in self.checks)
        return f"no verified attestation{kind} for {self.digest} ({reasons})"

    def statements(self) -> list[JSONObject]:
        """The verified statements."""
        return [c.statement for c in self.checks if c.verified and c.statement is not None]

    def render_text(self) -> str:
        """Human lines: one per attestation, then the verdict."""
        lines = [f"{'OK  ' if c.verified else 'FAIL'} {c.source}: "
                 f"{c.predicate_type or '?'}: {c.reason}" for c in self.checks]
        lines.append(("verified: " if self.ok else "verification failed: ") + self.reason)
        return "\n".join(lines)

    def to_json(self) -> JSONObject:
        """As JSON output."""
        return {"image": self.image, "digest": self.digest, "predicateType": self.predicate_type,
                "verified": self.ok, "reason": self.reason,
                "otherTypes": sorted(set(self.other_types)),
                "attestations": [c.to_json() for c in self.checks]}


def _statement_check(payload_type: str, payload: bytes, *, subject: Digest,
                     predicate_type: str | None, signer: str, source: str,
                     max_bytes: int = MAX_PREDICATE_BYTES) -> AttestationCheck:
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return AttestationCheck(source, False, f"payloadType {payload_type!r} is not "
                                f"{IN_TOTO_PAYLOAD_TYPE}", signer=signer)
    try:
        stmt = Statement.from_json(payload, max_bytes=max_bytes)
    except TrustbuildError as exc:
        return AttestationCheck(source, False, f"signed, but {exc}", signer=signer)
    check = AttestationCheck(source, False, "", stmt.predicate_type, signer, stmt.to_dict())
    if not isinstance(stmt.predicate, dict):
        check.reason = "signed, but the predicate is not a JSON object"
    elif str(subject) not in stmt.subject_digests():
        names = ", ".join(sorted(stmt.subject_digests()))
        check.reason = f"signed, but for another image ({names}), not {subject}"
    elif predicate_type and stmt.predicate_type != predicate_type:
        check.reason = f"predicate type {stmt.predicate_type} is not {predicate_type}"
    else:
        check.verified, check.reason = True, "verified"
    return check


def check_envelope(env: Envelope, *, subject: Digest, predicate_type: str | None,
                   keys: Sequence[DSSEVerifier], source: str = "",
                   max_bytes: int = MAX_ATTESTATION_BYTES) -> AttestationCheck:
    """Check one envelope: payload type, signature, statement subject and predicate type."""
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return AttestationCheck(source, False, f"payloadType {env.payload_type!r} is not "
                                f"{IN_TOTO_PAYLOAD_TYPE}")
    if not keys:
        return AttestationCheck(source, False, "no public key given (--key); keyless "
                                "attestations are checked in their Sigstore bundle form")
    try:
        signer = env.verify(keys)
    except VerificationError as exc:
        return AttestationCheck(source, False, str(exc))
    return _statement_check(env.payload_type, env.payload, subject=subject,
                            predicate_type=predicate_type, signer=f"key {signer[:16]}",
                            source=source, max_bytes=max_bytes)


@dataclass(frozen=True)
class _Keyless:
    """The keyless side of a verification: who must have signed and the trust material."""

    policy: KeylessPolicy
    trust: TrustRoots


def _keyless_bundle_check(raw: bytes, kl: _Keyless, *, subject: Digest,
                          predicate_type: str | None, source: str, max_bytes: int
                          ) -> AttestationCheck:
    """A keyless attestation bundle through the one keyless engine (:mod:`trustbuild.sign`),
    bounded by the attestation limit like a key-based one."""
    from trustbuild.sign.bundle import verify_keyless_dsse_bundle

    try:
        vb = verify_keyless_dsse_bundle(raw, kl.policy, kl.trust, max_bytes=max_bytes)
    except VerificationError as exc:
        return AttestationCheck(source, False, f"keyless: {exc}")
    return _statement_check(vb.payload_type, vb.payload, subject=subject,
                            predicate_type=predicate_type, signer=vb.signer, source=source,
                            max_bytes=max_bytes)


def _keyless_layer_check(layer: CosignLayer, env: Envelope, kl: _Keyless, *, subject: Digest,
                         predicate_type: str | None, source: str, max_bytes: int
                         ) -> AttestationCheck:
    """cosign's keyless ``.att`` layer: certificate, chain and Rekor SET annotations."""
    from trustbuild.sign.keyless_verify import (
        KeylessEvidence,
        TlogEntry,
        dsse_body_check,
        verify_keyless,
    )
    from trustbuild.sign.rekor import rfc3161_from_annotation
    from trustbuild.sign.sign import (
        BUNDLE_ANNOTATION,
        CERTIFICATE_ANNOTATION,
        CHAIN_ANNOTATION,
        TIMESTAMP_ANNOTATION,
    )
    from trustbuild.sign.trust import load_certificates

    ann = layer.annotations
    try:
        if len(env.signatures) != 1:
            raise VerificationError("a keyless envelope carries exactly one signature")
        cert = load_certificates(ann[CERTIFICATE_ANNOTATION].encode(), CERTIFICATE_ANNOTATION)[0]
        chain_pem = ann.get(CHAIN_ANNOTATION, "")
        chain = load_certificates(chain_pem.encode(), CHAIN_ANNOTATION) if chain_pem else []
        sig = env.signatures[0].sig
        sig_b64 = base64.b64encode(sig).decode()
        key = VerifyingKey(cert.public_key())  # type: ignore[arg-type]
        key.verify(sig, pae(env.payload_type, env.payload))
        if BUNDLE_ANNOTATION not in ann:
            raise VerificationError("no Rekor bundle (transparency log entry) on this "
                                    "attestation")
        stamps = [rfc3161_from_annotation(ann[TIMESTAMP_ANNOTATION])] \
            if TIMESTAMP_ANNOTATION in ann else []
        ev = KeylessEvidence(cert, chain, sig,
                             [TlogEntry.from_cosign_annotation(ann[BUNDLE_ANNOTATION])], stamps)
        done = verify_keyless(ev, kl.policy, kl.trust,
                              body_check=dsse_body_check(env.payload, sig_b64, cert))
    except VerificationError as exc:
        return AttestationCheck(source, False, f"keyless: {exc}")
    return _statement_check(env.payload_type, env.payload, subject=subject,
                            predicate_type=predicate_type, signer=done.signer, source=source,
                            max_bytes=max_bytes)


def _layer_check(layer: CosignLayer, tag: str, kl: _Keyless | None, common: _Common
                 ) -> AttestationCheck:
    source = f"{tag} layer {layer.index}"
    if layer.payload is None:
        return AttestationCheck(source, False, layer.error or "unreadable")
    try:
        env = Envelope.from_json(layer.payload, max_bytes=common.max_bytes)
    except TrustbuildError as exc:
        return AttestationCheck(source, False, str(exc))
    if kl is not None and not common.keys and CERTIFICATE_ANNOTATION in layer.annotations:
        return _keyless_layer_check(layer, env, kl, subject=common.subject,
                                    predicate_type=common.predicate_type, source=source,
                                    max_bytes=common.max_bytes)
    return check_envelope(env, source=source, subject=common.subject,
                          predicate_type=common.predicate_type, keys=common.keys,
                          max_bytes=common.max_bytes)


def _bundle_check(ref: BundleReferrer, kl: _Keyless | None, common: _Common) -> AttestationCheck:
    source = f"bundle referrer {ref.manifest_digest}"
    if ref.bundle is None:
        return AttestationCheck(source, False, ref.error or "unreadable")
    if kl is not None and not common.keys:
        return _keyless_bundle_check(ref.bundle, kl, subject=common.subject,
                                     predicate_type=common.predicate_type, source=source,
                                     max_bytes=common.max_bytes)
    try:
        env, _material = envelope_from_bundle(ref.bundle, max_bytes=common.max_bytes)
    except TrustbuildError as exc:
        return AttestationCheck(source, False, str(exc))
    return check_envelope(env, source=source, subject=common.subject,
                          predicate_type=common.predicate_type, keys=common.keys,
                          max_bytes=common.max_bytes)


@dataclass(frozen=True)
class _Common:
    subject: Digest
    predicate_type: str | None
    keys: Sequence[DSSEVerifier]
    max_bytes: int


def verify_attestations(store: Store, ref: str | None, *, keys: Sequence[DSSEVerifier] = (),
                        keyless: KeylessPolicy | None = None,
                        trusted_root: TrustRoots | None = None,
                        predicate_type: str | None = None,
                        image: str = "", max_bytes: int = MAX_ATTESTATION_BYTES
                        ) -> AttestationResult:
    """Resolve ``ref`` once and check every attestation attached to that digest.

    Each attestation (``.att`` layer or bundle) is streamed and refused above ``max_bytes``.

    With ``keys`` the DSSE signatures are checked against them; with ``keyless`` (and no keys)
    keyless ``.att`` layers and Sigstore bundle referrers go through the one keyless engine
    (:mod:`trustbuild.sign.keyless_verify`) against ``trusted_root`` (default: the Sigstore
    public-good root shipped with sigstore-python, offline).
    """
    if not keys and keyless is None:
        raise VerificationError("verify-attestation: give a public key (--key PUB) or the "
                                "keyless identity flags")
    from trustbuild.sign.attach import MAX_TOTAL_BYTES, read_bundle_referrers, read_cosign_layers
    from trustbuild.sign.bundle import SIGN_PREDICATE_TYPE

    ptype = predicate_type_uri(predicate_type) if predicate_type else None
    subject = resolve_subject(store, ref).digest
    result = AttestationResult(image or store.describe(), str(subject), ptype)
    total = max(MAX_TOTAL_BYTES, 4 * max_bytes)
    _manifest, layers = read_cosign_layers(store, subject, ATT_SUFFIX, limit=max_bytes,
                                           total_limit=total)
    tag = f"{subject.tag_form}.{ATT_SUFFIX}"
    common = _Common(subject, ptype, list(keys), max_bytes)
    kl = None if keyless is None else _Keyless(keyless, trusted_root or TrustRoots.public_good())
    for layer in layers:
        if layer.descriptor.media_type != DSSE_MEDIA_TYPE:
            result.checks.append(AttestationCheck(
                f"{tag} layer {layer.index}", False,
                f"layer media type {layer.descriptor.media_type} is not {DSSE_MEDIA_TYPE}"))
            continue
        ann = (layer.descriptor.annotations or {}).get(PREDICATE_TYPE_ANNOTATION)
        if ptype and ann and ann != ptype:
            result.other_types.append(ann)  # another kind of attestation: not asked for
            continue
        result.checks.append(_layer_check(layer, tag, kl, common))
    for ref_ in read_bundle_referrers(store, subject, limit=max_bytes, total_limit=total):
        ann = ref_.annotations.get("dev.sigstore.bundle.predicateType")
        if ann == SIGN_PREDICATE_TYPE:
            continue  # an image signature (cosign 3 bundle form), not an attestation
        if ptype and ann and ann != ptype:
            result.other_types.append(ann)
            continue
        check = _bundle_check(ref_, kl, common)
        if "message signature, not a DSSE" in check.reason or \
                check.predicate_type == SIGN_PREDICATE_TYPE:
            continue  # an image signature bundle, not an attestation
        result.checks.append(check)
    return result
