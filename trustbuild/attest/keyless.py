"""Keyless attestations: a Fulcio certificate and a Rekor entry through sigstore-python.

The statement is signed with ``SigningContext.signer().sign_dsse`` (DSSE envelope, logged in
Rekor). The ``.att`` layer carries the envelope plus what cosign stores for a keyless signature:
the certificate (``dev.sigstore.cosign/certificate``), its chain and the Rekor SET
(``dev.sigstore.cosign/bundle``); ``bundle=True`` also attaches sigstore-python's bundle as a
referrer. Needs an OIDC token (``identity_token`` or the CI's ambient one) and the Sigstore
services (public-good, or the instance described by ``trust_config``).
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from trustbuild.attest.dsse import DSSE_MEDIA_TYPE, Envelope
from trustbuild.attest.statement import (
    PREDICATE_TYPE_ANNOTATION,
    Statement,
    same_predicate_type,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.store import Store

__all__ = ["keyless_attest_subject"]


def keyless_attest_subject(store: Store, subject: Descriptor, *, statement: Statement,
                           identity_token: str | None, trust_config: str | Path | None = None,
                           replace: bool = False, bundle: bool = False) -> Descriptor:
    """Sign ``statement`` keylessly and attach it to ``subject``; returns the ``.att`` manifest."""
    from sigstore import dsse

    from trustbuild.sign.attach import append_cosign_layer, attach_bundle_referrer
    from trustbuild.sign.keyless import keyless_signer, rekor_annotation_from_bundle
    from trustbuild.sign.sign import (
        BUNDLE_ANNOTATION,
        CERTIFICATE_ANNOTATION,
        CHAIN_ANNOTATION,
        SIGNATURE_ANNOTATION,
        bundle_manifest_annotations,
    )

    with keyless_signer(identity_token, trust_config, what="attestation") as (signer, chain):
        signed = signer.sign_dsse(dsse.Statement(statement.to_json()))
        raw_bundle = signed.to_json().encode()
        cert = signed.signing_certificate.public_bytes(serialization.Encoding.PEM).decode()
        doc = json.loads(raw_bundle)
        env = Envelope.from_dict(doc["dsseEnvelope"])
        annotations = {SIGNATURE_ANNOTATION: "",
                       PREDICATE_TYPE_ANNOTATION: statement.predicate_type,
                       CERTIFICATE_ANNOTATION: cert,
                       BUNDLE_ANNOTATION: rekor_annotation_from_bundle(doc)}
        if chain:
            annotations[CHAIN_ANNOTATION] = chain
    desc = append_cosign_layer(
        store, subject, suffix="att", layer_bytes=env.to_json(), layer_media_type=DSSE_MEDIA_TYPE,
        annotations=annotations,
        replace=same_predicate_type(statement.predicate_type) if replace else None)
    new = None
    if bundle:
        new = attach_bundle_referrer(store, subject, raw_bundle,
                                     annotations=bundle_manifest_annotations(
                                         statement.predicate_type)).digest
    if replace:
        from trustbuild.sign.attach import detach_bundle_referrers

        detach_bundle_referrers(store, subject.digest, statement.predicate_type, keep=new)
    return desc
