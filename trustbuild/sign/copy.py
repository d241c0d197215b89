"""Carry an image's signatures, attestations, SBOMs and Sigstore bundle referrers along with a
copy, as ``cosign copy`` does (``--sig-only``, ``--only=sig,att,sbom``).

For the copied digest, the cosign tags ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` and every
Sigstore bundle referrer (a signature bundle counts as ``sig``, any other as ``att``) are copied
from the source store to the destination. A tag the destination does not have yet is copied
byte for byte (same manifest digest); one it has already gets the source's layers appended
(no layer twice), so the destination's own signatures stay. For an index, the attachments of
each listed image come too. Signatures keep naming the source
repository: verify a copy in another repository with ``--signed-identity
exactRepository:SRC`` or ``remapIdentity`` (cosign itself does not check the name).

Example::

    copied = copy_attachments(src, dst, desc.digest, kinds=("sig",))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from trustbuild.errors import InvalidManifest, NotFound, RegistryError, StoreError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.sign.attach import (
    append_cosign_layer,
    bundle_referrer_descriptors,
    cosign_tag,
    ensure_listed,
    read_cosign_layers,
)
from trustbuild.sign.bundle import SIGN_PREDICATE_TYPE
from trustbuild.store.copy import copy_image

__all__ = ["ATTACHMENT_KINDS", "CopiedAttachments", "copy_attachments"]

ATTACHMENT_KINDS = ("sig", "att", "sbom")
_MAX_ATTACHMENT = 64 * 1024 * 1024  # as verify-attestation reads them
_LOOKUP = (NotFound, RegistryError, StoreError)


@dataclass
class CopiedAttachments:
    """What was carried: cosign tags and bundle referrer manifests."""

    tags: list[str] = field(default_factory=list)
    referrers: list[Digest] = field(default_factory=list)


def _has(store: Store, ref: str) -> bool:
    try:
        store.get_manifest(ref)
    except _LOOKUP:
        return False
    return True


def _bundle_kind(store: Store, d: Descriptor) -> str | None:
    ann = d.annotations or {}
    if "dev.sigstore.bundle.predicateType" not in ann:
        try:
            raw, mt = store.get_manifest(str(d.digest))
            ann = parse_manifest(raw, mt, what=f"referrer {d.digest}").annotations or {}
        except (*_LOOKUP, InvalidManifest):
            return None
    return "sig" if ann.get("dev.sigstore.bundle.predicateType") == SIGN_PREDICATE_TYPE \
        else "att"


def _merge(src: Store, dst: Store, digest: Digest, kind: str) -> None:
    """Append the source's layers of ``sha256-<hex>.<kind>`` to the destination's manifest."""
    subject = Descriptor(MediaType.OCI_MANIFEST, digest, 0)
    _, layers = read_cosign_layers(src, digest, kind, limit=_MAX_ATTACHMENT,
                                   total_limit=4 * _MAX_ATTACHMENT)
    for layer in layers:
        if layer.payload is None:
            raise StoreError(f"{src.describe()}: {cosign_tag(digest, kind)} {layer.error}")
        append_cosign_layer(dst, subject, suffix=kind, layer_bytes=layer.payload,
                            layer_media_type=layer.descriptor.media_type,
                            annotations=layer.annotations)


def copy_attachments(src: Store, dst: Store, digest: Digest, *,
                     kinds: Sequence[str] = ATTACHMENT_KINDS, jobs: int = 4,
                     progress: Callable[[str], None] | None = None) -> CopiedAttachments:
    """Copy what is attached to ``digest`` in ``src`` to ``dst`` (see the module docstring).

    For an index, the attachments of every manifest it lists come too (cosign copy walks the
    index the same way).
    """
    say = progress or (lambda _m: None)
    out = CopiedAttachments()
    try:
        raw, mt = src.get_manifest(str(digest))
        top = parse_manifest(raw, mt, what=f"{src.describe()}@{digest}")
    except (*_LOOKUP, InvalidManifest):
        top = None
    if isinstance(top, Index):
        for child in top.manifests:
            sub = copy_attachments(src, dst, child.digest, kinds=kinds, jobs=jobs,
                                   progress=progress)
            out.tags += sub.tags
            out.referrers += sub.referrers
    for kind in kinds:
        tag = cosign_tag(digest, kind)
        if not _has(src, tag):
            continue
        if _has(dst, tag):
            say(f"merging {tag} into the destination's")
            _merge(src, dst, digest, kind)
        else:
            say(f"copying {tag}")
            copy_image(src, tag, dst, [tag], jobs=jobs)
        out.tags.append(tag)
    for d in bundle_referrer_descriptors(src, digest, MediaType.SIGSTORE_BUNDLE):
        if _bundle_kind(src, d) not in kinds:
            continue
        say(f"copying bundle referrer {d.digest}")
        written = copy_image(src, str(d.digest), dst, [], jobs=jobs)
        raw, mt = dst.get_manifest(str(written.digest))
        m = parse_manifest(raw, mt, what=f"referrer {written.digest}")
        ensure_listed(dst, digest, Descriptor(mt, written.digest, len(raw), m.annotations,
                                               artifact_type=MediaType.SIGSTORE_BUNDLE))
        out.referrers.append(written.digest)
    return out
