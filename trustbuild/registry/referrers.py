"""OCI 1.1 referrers: the ``/v2/<name>/referrers/<digest>`` API and the referrers tag schema.

Registries without the API (Debian's distribution 2.8 among them) answer 404; then referrers
are kept in an image index tagged ``<alg>-<hex>`` of the subject (the "referrers tag schema" of
the OCI distribution spec). :func:`update_referrers_tag` adds one manifest to that index, which
a client must do after pushing a manifest with a ``subject`` when the registry did not answer
the push with an ``OCI-Subject`` header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustbuild.errors import InvalidManifest, NotFound
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, Manifest, dump_json, parse_manifest
from trustbuild.oci.mediatype import MediaType

if TYPE_CHECKING:
    from trustbuild.registry.store import RegistryStore

__all__ = ["referrers_tag", "referrer_descriptor", "filter_referrers", "fallback_referrers",
           "update_referrers_tag", "index_of"]


def referrers_tag(subject: Digest) -> str:
    """The fallback tag of ``subject``: ``sha256-<hex>`` (truncated to 128 characters)."""
    return f"{subject.algorithm}-{subject.hex}"[:128]


def referrer_descriptor(raw: bytes, media_type: str) -> Descriptor:
    """The index entry for a referrer: its descriptor plus ``artifactType`` and annotations."""
    m = parse_manifest(raw, media_type, what="referrer manifest")
    artifact_type: str | None = None
    if isinstance(m, Manifest):
        artifact_type = m.artifact_type or m.config.media_type
    elif isinstance(m, Index):
        at = m.data.get("artifactType")
        artifact_type = at if isinstance(at, str) else None
    return Descriptor(m.media_type, Digest.of(raw), len(raw), annotations=m.annotations or None,
                      artifact_type=artifact_type)


def filter_referrers(descs: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    """Only the entries of ``artifact_type`` (all when None)."""
    if artifact_type is None:
        return descs
    return [d for d in descs if d.artifact_type == artifact_type]


def index_of(descs: list[Descriptor]) -> bytes:
    """A referrers index (OCI image index) listing ``descs``."""
    obj: dict[str, object] = {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX,
                              "manifests": [d.to_json() for d in descs]}
    return dump_json(obj)


def fallback_referrers(store: RegistryStore, subject: Digest) -> list[Descriptor]:
    """Entries of the ``sha256-<hex>`` tag index; [] if there is none."""
    try:
        raw, mt = store.get_manifest(referrers_tag(subject))
    except NotFound:
        return []
    idx = parse_manifest(raw, mt,
                         what=f"referrers index {store.describe()}:{referrers_tag(subject)}")
    if not isinstance(idx, Index):
        raise InvalidManifest(f"{store.describe()}:{referrers_tag(subject)} is not an image index, "
                              "so it cannot be a referrers tag-schema index")
    return list(idx.manifests)


def update_referrers_tag(store: RegistryStore, subject: Digest, referrer: Descriptor) -> bool:
    """Add ``referrer`` to the subject's fallback index tag; False if it was already listed."""
    current = fallback_referrers(store, subject)
    if any(d.digest == referrer.digest for d in current):
        return False
    raw = index_of([*current, referrer])
    store.put_manifest(raw, MediaType.OCI_INDEX, tags=[referrers_tag(subject)],
                       update_referrers=False)
    return True
