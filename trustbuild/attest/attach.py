"""Make attestations and attach them the way cosign does.

Each attestation is an in-toto Statement v1 about the image's manifest digest, signed as a DSSE
envelope. It is written as one layer of the ``sha256-<hex>.att`` manifest (media type
``application/vnd.dsse.envelope.v1+json``, annotation ``predicateType``) and, with
``bundle=True``, also as a Sigstore bundle v0.3 OCI 1.1 referrer. Example::

    store, ref = open_store(parse_location("docker://127.0.0.1:5000/app:1"), StoreOptions())
    key = load_signing_key("cosign.key")
    attest_image(store, ref, key=key, predicate=Path("prov.json").read_bytes(),
                 predicate_type="slsaprovenance", subject_name="127.0.0.1:5000/app")

The builder calls :func:`attest_build` after pushing, with the pushed descriptor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.bundle import dsse_bundle
from trustbuild.attest.dsse import DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, DSSESigner, Envelope
from trustbuild.attest.provenance import provenance_predicate
from trustbuild.attest.sbom import sbom_document, sbom_of_image, sbom_predicate_type
from trustbuild.attest.statement import (
    PREDICATE_TYPE_ANNOTATION,
    SLSA_PROVENANCE_V1,
    Statement,
    make_predicate,
    predicate_type_uri,
    same_predicate_type,
)
from trustbuild.builder.record import BuildRecord
from trustbuild.errors import AttestationError, UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.mediatype import INDEX_TYPES, MANIFEST_TYPES, MediaType
from trustbuild.oci.store import Store

__all__ = [
    "ATT_SUFFIX", "PREDICATE_TYPE_ANNOTATION", "resolve_subject",
    "attest_subject", "attest_image", "attest_build", "ATTEST_KINDS",
]

ATT_SUFFIX = "att"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
ATTEST_KINDS = ("provenance", "sbom")


def resolve_subject(store: Store, ref: str | None) -> Descriptor:
    """Resolve ``ref`` (tag or digest) once to the descriptor of the manifest it names."""
    raw, media_type = store.get_manifest(ref or "")
    if media_type not in MANIFEST_TYPES and media_type not in INDEX_TYPES:
        raise AttestationError(f"{store.describe()}: {ref} is a {media_type}, not an image "
                               "manifest or index")
    d = Digest.of(raw)
    if ref and ref.startswith("sha256:") and Digest.parse(ref) != d:
        raise AttestationError(f"{store.describe()}: manifest bytes do not match {ref}")
    return Descriptor(media_type, d, len(raw))


def attest_subject(store: Store, subject: Descriptor, *, key: DSSESigner,
                   predicate: JSONObject, predicate_type: str, subject_name: str,
                   replace: bool = False, bundle: bool = False) -> Descriptor:
    """Sign a statement about ``subject`` and attach it; returns the ``.att`` manifest."""
    signer = key
    if signer is None:
        raise UsageError("attest: give a signing key (--key)")
    stmt = Statement.for_image(subject_name, subject.digest, predicate_type, predicate)
    env = Envelope.sign(stmt.to_json(), IN_TOTO_PAYLOAD_TYPE, signer)
    env_json = env.to_json()
    annotations = {COSIGN_SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type}
    desc = _append(store, subject, env_json, annotations, replace=replace,
                   predicate_type=predicate_type)
    new = None
    if bundle:
        from trustbuild.sign.attach import attach_bundle_referrer
        from trustbuild.sign.sign import bundle_manifest_annotations

        bundle_json = dsse_bundle(env, key_hint=_key_hint(signer))
        new = attach_bundle_referrer(store, subject, bundle_json,
                                     artifact_type=MediaType.SIGSTORE_BUNDLE,
                                     annotations=bundle_manifest_annotations(predicate_type)
                                     ).digest
    if replace:  # cosign attest --replace: the earlier bundles of this type go too
        from trustbuild.sign.attach import detach_bundle_referrers

        detach_bundle_referrers(store, subject.digest, predicate_type, keep=new)
    return desc


def _key_hint(signer: DSSESigner) -> str:
    """cosign's ``publicKey.hint`` (base64 SHA-256 of the DER public key) when the key has one."""
    from trustbuild.sign.bundle import key_hint

    pub = getattr(signer, "public_key", None)
    return key_hint(pub()) if callable(pub) else ""


def _append(store: Store, subject: Descriptor, env_json: bytes, annotations: dict[str, str], *,
            replace: bool, predicate_type: str) -> Descriptor:
    from trustbuild.sign.attach import append_cosign_layer

    return append_cosign_layer(
        store, subject, suffix=ATT_SUFFIX, layer_bytes=env_json, layer_media_type=DSSE_MEDIA_TYPE,
        annotations=annotations, replace=same_predicate_type(predicate_type) if replace else None)


def attest_image(store: Store, ref: str | None, *, key: DSSESigner | None,
                 predicate: bytes | Mapping[str, object], predicate_type: str,
                 subject_name: str = "",
                 replace: bool = False, bundle: bool = False, keyless: bool = False,
                 identity_token: str | None = None,
                 trust_config: str | Path | None = None) -> Descriptor:
    """Resolve ``ref`` once and attach a signed attestation of ``predicate`` to that digest.

    ``predicate_type`` is a cosign short name (``slsaprovenance``, ``spdxjson``, ``cyclonedx``,
    ``custom``, ...) or a URI; ``custom`` predicates are wrapped as cosign does. ``keyless``
    signs with a Fulcio certificate instead of ``key`` (see :mod:`trustbuild.attest.keyless`).
    """
    ptype = predicate_type_uri(predicate_type)
    pred = make_predicate(predicate, ptype)
    subject = resolve_subject(store, ref)
    name = subject_name or store.describe()
    if keyless:
        from trustbuild.attest.keyless import keyless_attest_subject

        stmt = Statement.for_image(name, subject.digest, ptype, pred)
        return keyless_attest_subject(store, subject, statement=stmt, identity_token=identity_token,
                                      trust_config=trust_config, replace=replace, bundle=bundle)
    if key is None:
        raise UsageError("attest: give a signing key (--key) or --keyless")
    return attest_subject(store, subject, key=key, predicate=pred, predicate_type=ptype,
                          subject_name=name, replace=replace,
                          bundle=bundle)


def attest_build(store: Store, subject: Descriptor, record: BuildRecord, *, key: DSSESigner | None,
                 kinds: Sequence[str] = ATTEST_KINDS, sbom_format: str = "spdx",
                 rootfs: Path | None = None, builder_id: str | None = None, bundle: bool = False,
                 subject_name: str = "", replace: bool = True, keyless: bool = False,
                 identity_token: str | None = None,
                 trust_config: str | Path | None = None) -> list[Descriptor]:
    """Attach provenance and/or an SBOM for a pushed build result; returns the ``.att`` descriptors.

    The provenance comes only from ``record``; the SBOM from ``rootfs`` (the flattened final
    filesystem) or, without it, from the image's layers. ``keyless`` signs through Sigstore.
    """
    if key is None and not keyless:
        raise UsageError("attest: give a signing key (--sign-key) or use keyless signing")
    unknown = [k for k in kinds if k not in ATTEST_KINDS]
    if unknown:
        raise UsageError(f"--attest {','.join(unknown)}: use provenance and/or sbom")
    if record.result_digest and Digest.parse(record.result_digest) != subject.digest:
        raise AttestationError(f"build record names {record.result_digest} but the pushed image "
                               f"is {subject.digest}")
    name = subject_name or (record.destinations[0].split("@")[0] if record.destinations
                            else store.describe())
    name = _strip_tag(name)
    out = []
    for kind in dict.fromkeys(kinds):
        if kind == "provenance":
            pred, ptype = provenance_predicate(record, builder_id=builder_id), SLSA_PROVENANCE_V1
        else:
            ptype = sbom_predicate_type(sbom_format)
            created = record.finished_on or None
            if rootfs is not None:
                pred = sbom_document(rootfs, image_name=name, image_digest=str(subject.digest),
                                     sbom_format=sbom_format, created=created)
            else:
                pred = sbom_of_image(store, str(subject.digest), image_name=name,
                                     sbom_format=sbom_format, created=created)
        if keyless:
            from trustbuild.attest.keyless import keyless_attest_subject

            stmt = Statement.for_image(name, subject.digest, ptype, pred)
            out.append(keyless_attest_subject(store, subject, statement=stmt,
                                              identity_token=identity_token,
                                              trust_config=trust_config, replace=replace,
                                              bundle=bundle))
            continue
        assert key is not None
        out.append(attest_subject(store, subject, key=key, predicate=pred, predicate_type=ptype,
                                  subject_name=name, replace=replace, bundle=bundle))
    return out


def _strip_tag(name: str) -> str:
    """``host/repo:tag`` -> ``host/repo`` (the statement subject names the repository)."""
    if name.startswith(("oci:", "docker-archive:")):
        return name
    name = name.removeprefix("docker://")
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name

