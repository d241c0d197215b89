"""Sign an image with a key: cosign simple-signing (``.sig``) and/or a Sigstore bundle referrer.

The reference is resolved to a digest exactly once; everything written names that digest, so a
tag moved during signing cannot redirect the signature.

Example::

    store, ref = open_store("docker://127.0.0.1:5000/app:1.0", options)
    key = load_signing_key("cosign.key")
    result = sign_image(store, ref, key, docker_reference="127.0.0.1:5000/app")
    print(result.digest)
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass

from trustbuild.errors import SigningError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.sign.attach import append_cosign_layer, attach_bundle_referrer
from trustbuild.sign.bundle import (
    IN_TOTO_PAYLOAD_TYPE,
    SIGN_PREDICATE_TYPE,
    build_dsse_bundle,
    image_statement,
)
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.simplesigning import build_payload

__all__ = [
    "SIGNATURE_ANNOTATION",
    "CERTIFICATE_ANNOTATION",
    "CHAIN_ANNOTATION",
    "BUNDLE_ANNOTATION",
    "SignResult",
    "resolve_subject",
    "sign_image",
    "bundle_manifest_annotations",
]

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"


@dataclass(frozen=True)
class SignResult:
    """What was written: the signed digest and the signature / bundle manifests."""

    digest: Digest
    docker_reference: str
    signature_manifest: Descriptor | None
    bundle_manifest: Descriptor | None
    payload: bytes | None


def resolve_subject(store: Store, ref: str | None) -> Descriptor:
    """The descriptor of the manifest or index at ``ref`` (fetched once, digest of its bytes)."""
    raw, media_type = store.get_manifest(ref)  # type: ignore[arg-type]  # None: the only image
    return Descriptor(media_type, Digest.of(raw), len(raw))


def bundle_manifest_annotations(predicate_type: str, *,
                                content: str = "dsse-envelope") -> dict[str, str]:
    """The referrer manifest annotations cosign 3 sets on a bundle."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "dev.sigstore.bundle.content": content,
        "dev.sigstore.bundle.predicateType": predicate_type,
        "org.opencontainers.image.created": now,
    }


def _check_certificate(certificate_pem: str, key: SigningKey) -> None:
    """cosign's check: the certificate must be for the signing key."""
    from trustbuild.errors import VerificationError
    from trustbuild.sign.keys import VerifyingKey
    from trustbuild.sign.trust import load_certificates

    try:
        cert = load_certificates(certificate_pem.encode(), "--certificate")[0]
        cert_key = VerifyingKey(cert.public_key())  # type: ignore[arg-type]
    except (VerificationError, SigningError) as exc:
        raise SigningError(str(exc)) from None
    if cert_key != key.public_key():
        raise SigningError("--certificate: the certificate's public key is not the signing key's")


def sign_image(store: Store, ref: str | None, key: SigningKey, *, docker_reference: str,
               annotations: dict[str, str] | None = None, bundle: bool = False,
               simple: bool = True, subject: Descriptor | None = None,
               certificate_pem: str | None = None, chain_pem: str | None = None) -> SignResult:
    """Sign the image at ``ref`` in ``store``.

    ``docker_reference`` is the repository written into the payload (cosign signs
    ``registry/repository`` without tag). ``simple`` writes the ``sha256-<hex>.sig`` layer,
    ``bundle`` the Sigstore bundle referrer; both may be on. ``subject`` skips the resolution
    when the caller already resolved the reference (e.g. right after a push).
    ``certificate_pem`` / ``chain_pem`` (``cosign sign --certificate --certificate-chain``) are
    stored with the simple-signing signature, for containers/image's PKI mode; the
    certificate must hold ``key``'s public key.
    """
    if not simple and not bundle:
        raise SigningError("nothing to write: enable the simple-signing form, --bundle, or both")
    subj = subject or resolve_subject(store, ref)
    sig_desc: Descriptor | None = None
    bundle_desc: Descriptor | None = None
    payload: bytes | None = None
    if simple:
        payload = build_payload(docker_reference, subj.digest, annotations)
        signature = base64.b64encode(key.sign(payload)).decode()
        layer_annotations = {SIGNATURE_ANNOTATION: signature}
        if certificate_pem:
            _check_certificate(certificate_pem, key)
            layer_annotations[CERTIFICATE_ANNOTATION] = certificate_pem
            if chain_pem:
                layer_annotations[CHAIN_ANNOTATION] = chain_pem
        sig_desc = append_cosign_layer(
            store, subj, suffix="sig", layer_bytes=payload,
            layer_media_type=MediaType.COSIGN_SIMPLESIGNING,
            annotations=layer_annotations,
        )
    if bundle:
        raw = build_dsse_bundle(key, image_statement(docker_reference, subj.digest, annotations),
                                IN_TOTO_PAYLOAD_TYPE)
        bundle_desc = attach_bundle_referrer(
            store, subj, raw, annotations=bundle_manifest_annotations(SIGN_PREDICATE_TYPE))
    return SignResult(subj.digest, docker_reference, sig_desc, bundle_desc, payload)
