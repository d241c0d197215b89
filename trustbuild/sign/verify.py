"""One verification engine for image signatures (``trustbuild verify`` and the policy gate).

Every simple-signing layer under ``sha256-<hex>.sig`` and every Sigstore bundle referrer of the
image gets a verdict with a reason. A signature is valid when:

- its signature verifies with one of the given keys, or (keyless) with a Fulcio certificate that
  chains to the trusted CA roots at the Rekor integration time and matches the identity policy;
- the payload's ``docker-manifest-digest`` (the Statement subject for bundles) is the image's
  digest and its ``docker-reference`` is the image's repository;
- its Rekor SET verifies when present, and is present when required (always for keyless).

``VerifyResult.ok`` is true when at least one signature is valid.

Example::

    result = verify_image(store, "latest", keys=[load_verifying_key("cosign.pub")],
                          docker_reference="127.0.0.1:5000/app")
    for v in result.signatures:
        print(v.ok, v.reason)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from trustbuild._internal.b64 import std_b64decode
from trustbuild._internal.jsontypes import JSONObject, JSONValue
from trustbuild.errors import InvalidReference, VerificationError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.reference import Reference
from trustbuild.oci.store import Store
from trustbuild.sign.attach import CosignLayer, read_bundle_referrers, read_cosign_layers
from trustbuild.sign.bundle import (
    SIGN_PREDICATE_TYPE,
    material,
    parse_bundle,
    verify_dsse_bundle,
    verify_keyless_dsse_bundle,
)
from trustbuild.sign.identity import SignedIdentity
from trustbuild.sign.keyless_verify import (
    KeylessEvidence,
    KeylessVerified,
    TlogEntry,
    verify_keyless,
)
from trustbuild.sign.keys import VerifyingKey
from trustbuild.sign.pki import PKIPolicy
from trustbuild.sign.rekor import (
    check_hashedrekord_body,
    rfc3161_from_annotation,
    verify_rekor_bundle,
)
from trustbuild.sign.sign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    TIMESTAMP_ANNOTATION,
    resolve_subject,
)
from trustbuild.sign.simplesigning import MAX_PAYLOAD_BYTES, parse_payload
from trustbuild.sign.trust import KeylessPolicy, TrustRoots, load_certificates

__all__ = ["SignatureVerdict", "VerifyResult", "verify_image", "verify_simple_signature",
           "KeylessPolicy", "TrustRoots"]

_MAX_SIG_B64 = 16 * 1024
_MAX_CERT_PEM = 64 * 1024


@dataclass
class SignatureVerdict:
    """The verdict on one signature."""

    kind: str  # "simple-signing" | "bundle"
    where: str
    ok: bool
    reason: str
    signer: str | None = None
    docker_reference: str | None = None
    tlog: bool = False
    annotations: dict[str, JSONValue] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)  # keyless: SCT, inclusion proof, ...

    def to_json(self) -> JSONObject:
        """As a JSON object for ``--output json``."""
        return {"kind": self.kind, "where": self.where,
                "verdict": "valid" if self.ok else "invalid",
                "reason": self.reason, "signer": self.signer,
                "docker_reference": self.docker_reference, "tlog": self.tlog,
                "checks": self.checks, "annotations": self.annotations}


@dataclass
class VerifyResult:
    """All verdicts for one image digest."""

    image: str
    digest: Digest
    signatures: list[SignatureVerdict]

    @property
    def ok(self) -> bool:
        """True when at least one signature meets the requirements."""
        return any(v.ok for v in self.signatures)

    @property
    def valid(self) -> list[SignatureVerdict]:
        """The signatures that meet the requirements."""
        return [v for v in self.signatures if v.ok]

    def to_json(self) -> JSONObject:
        """As a JSON object for ``--output json``."""
        return {"image": self.image, "digest": str(self.digest),
                "verdict": "valid" if self.ok else "invalid",
                "signatures": [v.to_json() for v in self.signatures]}


def _same_repository(signed: str, expected: str) -> bool:
    try:
        return Reference.parse(signed).name == Reference.parse(expected).name
    except InvalidReference:
        return False


def _check_reference(signed: str, expected: str | None, identity: SignedIdentity | None = None,
                     intended: str | None = None) -> str:
    """'' if fine (or not checkable), else raise.

    Without ``identity``: matchRepository against ``expected`` (the image's repository). With
    it: containers/image's ``signedIdentity`` against ``intended`` (the image reference as given,
    tag or digest; ``expected`` when not given).
    """
    if identity is not None:
        target = intended or expected
        if target is None and identity.needs_image_reference:
            return (" (docker-reference not checked: no image reference known; pass "
                    "--docker-reference)")
        identity.check(signed, intended=target)
        return ""
    if expected is None:
        return " (docker-reference not checked: no repository known; pass --docker-reference)"
    if not _same_repository(signed, expected):
        raise VerificationError(f"docker-reference {signed!r} is not the image's repository "
                                f"{Reference.parse(expected).name!r}")
    return ""


def _decode_sig(value: str | None) -> bytes:
    if value is None:
        raise VerificationError(f"layer has no {SIGNATURE_ANNOTATION} annotation")
    if len(value) > _MAX_SIG_B64:
        raise VerificationError("signature annotation is too large")
    try:
        return std_b64decode(value)
    except ValueError as exc:
        raise VerificationError(f"signature annotation is not valid base64: {exc}") from None


def verify_simple_signature(payload: bytes, annotations: dict[str, str], *, digest: Digest,
                            docker_reference: str | None, keys: list[VerifyingKey] | None,
                            keyless: KeylessPolicy | None, trust: TrustRoots | None,
                            require_tlog: bool = False,
                            media_type: str = MediaType.COSIGN_SIMPLESIGNING,
                            where: str = "signature", identity: SignedIdentity | None = None,
                            image_reference: str | None = None,
                            pki: PKIPolicy | None = None) -> SignatureVerdict:
    """The verdict on one simple-signing payload and its layer annotations (never raises).

    Signers, tried in order: ``keys``; ``pki`` (containers/image's PKI mode: the certificate
    chains to configured CA roots now and names the required subject; no Rekor entry needed);
    ``keyless`` (a Fulcio certificate, the Rekor SET required).
    """
    v = SignatureVerdict("simple-signing", where, False, "", annotations={})
    try:
        if media_type != MediaType.COSIGN_SIMPLESIGNING:
            raise VerificationError(f"unexpected layer media type {media_type}")
        sig_b64 = annotations.get(SIGNATURE_ANNOTATION)
        sig = _decode_sig(sig_b64)
        assert sig_b64 is not None
        cert_pem = annotations.get(CERTIFICATE_ANNOTATION)
        signer_key: VerifyingKey | None = None
        cert: x509.Certificate | None = None
        pki_error: VerificationError | None = None
        pki_signed = False
        if keys:
            for k in keys:
                try:
                    k.verify(sig, payload)
                except VerificationError:
                    continue
                signer_key, v.signer = k, f"key {k.keyid()[:16]}"
                break
        if signer_key is None and pki is not None and cert_pem:
            if len(cert_pem) > _MAX_CERT_PEM:
                raise VerificationError("certificate annotation is too large")
            try:
                ck, who = pki.verify(cert_pem, annotations.get(CHAIN_ANNOTATION))
                ck.verify(sig, payload)
                signer_key, v.signer, pki_signed = ck, who, True
            except VerificationError as exc:
                pki_error = exc
        if signer_key is None and keyless is not None and cert_pem:
            if len(cert_pem) > _MAX_CERT_PEM:
                raise VerificationError("certificate annotation is too large")
            certs = load_certificates(cert_pem.encode(), CERTIFICATE_ANNOTATION)
            cert = certs[0]
            ck = VerifyingKey(cert.public_key())  # type: ignore[arg-type]
            ck.verify(sig, payload)
            signer_key = ck
        if signer_key is None:
            if pki_error is not None and keyless is None:
                raise pki_error
            if keys and pki is None:
                raise VerificationError("signature does not verify with any given key")
            if cert_pem is None:
                raise VerificationError("signature has no certificate (keyless and PKI "
                                        "verification need one; pass --key for key-based "
                                        "signatures)")
            raise VerificationError("signature does not verify")
        parsed = parse_payload(payload)
        v.docker_reference = parsed.docker_reference
        v.annotations = parsed.annotations
        if parsed.manifest_digest != digest:
            raise VerificationError(f"payload is for {parsed.manifest_digest}, not the image "
                                    f"digest {digest}")
        note = _check_reference(parsed.docker_reference, docker_reference, identity,
                                image_reference)
        rekor = annotations.get(BUNDLE_ANNOTATION)
        if cert is not None:
            assert keyless is not None
            done = _verify_keyless_layer(cert, cert_pem or "", annotations, sig, sig_b64,
                                         payload, keyless, trust or TrustRoots.public_good())
            v.signer, v.tlog, v.checks = done.signer, True, list(done.checks)
        elif rekor is not None and not require_tlog and not (trust and trust.rekor_keys):
            note += " (Rekor bundle not checked: no --rekor-key or --trusted-root)"
        elif rekor is not None:
            signer_pem = cert_pem.encode() if pki_signed and cert_pem else signer_key.public_pem()
            verify_rekor_bundle(rekor, trust.rekor_keys if trust else {}, payload=payload,
                                signature_b64=sig_b64, signer_pem=signer_pem)
            v.tlog = True
        elif require_tlog:
            raise VerificationError("no Rekor bundle (transparency log entry) on this signature")
        v.ok, v.reason = True, "valid" + note
    except VerificationError as exc:
        v.reason = str(exc)
    return v


def _verify_keyless_layer(cert: x509.Certificate, cert_pem: str, annotations: dict[str, str],
                          sig: bytes, sig_b64: str, payload: bytes, keyless: KeylessPolicy,
                          trust: TrustRoots) -> KeylessVerified:
    """cosign's keyless simple-signing layer: certificate, chain, Rekor SET (and RFC 3161
    timestamp) annotations through the one keyless engine."""
    rekor = annotations.get(BUNDLE_ANNOTATION)
    if rekor is None:
        raise VerificationError("no Rekor bundle (transparency log entry) on this signature")
    chain_pem = annotations.get(CHAIN_ANNOTATION, "")
    chain = load_certificates(chain_pem.encode(), CHAIN_ANNOTATION) if chain_pem else []
    stamps = []
    if TIMESTAMP_ANNOTATION in annotations:
        stamps.append(rfc3161_from_annotation(annotations[TIMESTAMP_ANNOTATION]))

    def body_check(body: bytes) -> None:
        check_hashedrekord_body(body, payload, sig_b64, cert_pem.encode())

    ev = KeylessEvidence(cert, chain, sig, [TlogEntry.from_cosign_annotation(rekor)], stamps)
    return verify_keyless(ev, keyless, trust, body_check=body_check)


@dataclass(frozen=True)
class _Requirements:
    """What every signature of one image is checked against."""

    digest: Digest
    docker_reference: str | None
    keys: list[VerifyingKey] | None
    keyless: KeylessPolicy | None
    trust: TrustRoots | None
    require_tlog: bool
    identity: SignedIdentity | None
    image_reference: str | None
    pki: PKIPolicy | None


def _verify_layer(layer: CosignLayer, req: _Requirements) -> SignatureVerdict:
    where = f"sig layer {layer.index}"
    if layer.error is not None or layer.payload is None:
        return SignatureVerdict("simple-signing", where, False, layer.error or "unreadable")
    return verify_simple_signature(
        layer.payload, layer.annotations, media_type=layer.descriptor.media_type, where=where,
        digest=req.digest, docker_reference=req.docker_reference, keys=req.keys,
        keyless=req.keyless, trust=req.trust, require_tlog=req.require_tlog,
        identity=req.identity, image_reference=req.image_reference, pki=req.pki)


def _verify_bundle(raw: bytes, *, digest: Digest, docker_reference: str | None,
                   keys: list[VerifyingKey] | None, keyless: KeylessPolicy | None,
                   trust: TrustRoots | None, where: str, identity: SignedIdentity | None = None,
                   image_reference: str | None = None) -> SignatureVerdict:
    v = SignatureVerdict("bundle", where, False, "")
    try:
        if "publicKey" in material(parse_bundle(raw)):
            if not keys:
                raise VerificationError("bundle is signed with a key: pass --key")
            vb = verify_dsse_bundle(raw, keys)
            v.signer = f"key {vb.key.keyid()[:16]}"
        else:
            if keyless is None:
                raise VerificationError("bundle is keyless: pass --certificate-identity and "
                                        "--certificate-oidc-issuer")
            vb = verify_keyless_dsse_bundle(raw, keyless, trust or TrustRoots.public_good())
            v.signer, v.tlog, v.checks = vb.signer, True, list(vb.checks)
        st = vb.statement()
        if st.get("predicateType") != SIGN_PREDICATE_TYPE:
            raise VerificationError(f"bundle predicateType {st.get('predicateType')!r} is not an "
                                    "image signature")
        if digest not in vb.subject_digests():
            raise VerificationError(f"bundle subject is not the image digest {digest}")
        subjects = st["subject"]
        names = [s.get("name") for s in subjects if isinstance(s, dict)] \
            if isinstance(subjects, list) else []
        ref = next((n for n in names if isinstance(n, str) and n), None)
        note = ""
        if ref is not None:
            v.docker_reference = ref
            note = _check_reference(ref, docker_reference, identity, image_reference)
        pred = st.get("predicate")
        v.annotations = dict(pred) if isinstance(pred, dict) else {}
        v.ok, v.reason = True, "valid" + note
    except VerificationError as exc:
        v.reason = str(exc)
    return v


def verify_image(store: Store, ref: str | None, *, keys: list[VerifyingKey] | None = None,
                 keyless: KeylessPolicy | None = None, trusted_root: TrustRoots | None = None,
                 require_tlog: bool = False, docker_reference: str | None = None,
                 subject: Descriptor | None = None, identity: SignedIdentity | None = None,
                 image_reference: str | None = None,
                 pki: PKIPolicy | None = None) -> VerifyResult:
    """Verify every signature of the image at ``ref`` (resolved once to its digest).

    ``docker_reference`` is the image's repository (matchRepository, cosign's check);
    ``identity`` replaces that check with a containers/image ``signedIdentity`` evaluated
    against ``image_reference`` (the image as named by the user: ``repo:tag`` or
    ``repo@digest``). ``pki`` accepts simple-signing signatures whose certificate chains to
    its CA roots (containers/image's PKI mode); Sigstore bundles are not checked that way.
    """
    if not keys and keyless is None and pki is None:
        raise VerificationError("nothing to verify against: pass --key, "
                                "--certificate-identity and --certificate-oidc-issuer, or "
                                "--ca-roots with --certificate-email/--certificate-hostname")
    subj = subject or resolve_subject(store, ref)
    verdicts: list[SignatureVerdict] = []
    req = _Requirements(subj.digest, docker_reference, keys, keyless, trusted_root, require_tlog,
                        identity, image_reference, pki)
    try:
        _, layers = read_cosign_layers(store, subj.digest, "sig", limit=MAX_PAYLOAD_BYTES)
        verdicts += [_verify_layer(layer, req) for layer in layers]
    except VerificationError as exc:
        verdicts.append(SignatureVerdict("simple-signing", f"{subj.digest.tag_form}.sig", False,
                                         str(exc)))
    for br in read_bundle_referrers(store, subj.digest):
        where = f"referrer {br.manifest_digest}"
        pt = br.annotations.get("dev.sigstore.bundle.predicateType")
        if pt is not None and pt != SIGN_PREDICATE_TYPE:
            continue  # an attestation bundle, not a signature
        if br.bundle is None:
            verdicts.append(SignatureVerdict("bundle", where, False, br.error or "unreadable"))
            continue
        bv = _verify_bundle(br.bundle, digest=subj.digest, docker_reference=docker_reference,
                            keys=keys, keyless=keyless, trust=trusted_root, where=where,
                            identity=identity, image_reference=image_reference)
        if require_tlog and bv.ok and not bv.tlog:
            bv.ok, bv.reason = False, "bundle has no transparency log entry (required)"
        verdicts.append(bv)
    if not verdicts:
        verdicts.append(SignatureVerdict("none", store.describe(), False,
                                         f"no signatures found for {subj.digest}"))
    return VerifyResult(f"{store.describe()}@{subj.digest}", subj.digest, verdicts)
