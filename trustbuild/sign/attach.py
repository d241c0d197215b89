"""Where signatures live: cosign's ``sha256-<hex>.<suffix>`` manifests and OCI 1.1 bundle referrers.

Writing works on any :class:`~trustbuild.oci.store.Store` (registry repository, OCI layout).

- :func:`append_cosign_layer` keeps cosign's tag-based layout: the tag ``sha256-<hex>.sig``
  (``.att`` for attestations) names an OCI manifest whose config is the small image config
  go-containerregistry writes for an empty image plus its layers, and whose layers are one per
  signature, each annotated (``dev.cosignproject.cosign/signature`` ...). New layers are appended;
  an identical layer (same digest and annotations) is never added twice.
- :func:`attach_bundle_referrer` stores a Sigstore bundle as cosign 3 does (``BUNDLE_SPEC.md``):
  an OCI manifest with ``artifactType`` = the bundle media type, the empty config, one layer
  holding the bundle JSON and a ``subject`` pointing at the image. When the store does not list
  it as a referrer by itself (a registry without the referrers API), the referrers tag-schema
  index ``sha256-<hex>`` is updated too.

Reading (:func:`read_cosign_layers`, :func:`read_bundle_referrers`) is bounded and verifies the
digest of every blob.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.errors import (
    DigestMismatch,
    InvalidManifest,
    NotFound,
    RegistryError,
    SigningError,
    StoreError,
    VerificationError,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, Manifest, dump_json, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.oci.verify import check_bytes

__all__ = [
    "EMPTY_CONFIG",
    "MAX_LAYER_BYTES",
    "MAX_LAYERS",
    "MAX_TOTAL_BYTES",
    "MAX_ANNOTATION_BYTES",
    "CosignLayer",
    "BundleReferrer",
    "cosign_tag",
    "append_cosign_layer",
    "attach_bundle_referrer",
    "read_cosign_layers",
    "read_bundle_referrers",
    "read_blob_bounded",
    "detach_bundle_referrers",
    "bundle_referrer_descriptors",
    "ensure_listed",
]

EMPTY_CONFIG = b"{}"
MAX_LAYER_BYTES = 4 * 1024 * 1024  # a payload, a DSSE envelope or a bundle
MAX_LAYERS = 256
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # everything read for one image's signatures
MAX_ANNOTATION_BYTES = 256 * 1024
_READ_CHUNK = 1024 * 1024
_SIG_MANIFEST_TYPES = (MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST)
_LOOKUP_ERRORS = (NotFound, RegistryError, StoreError)


def cosign_tag(digest: Digest, suffix: str) -> str:
    """``sha256-<hex>.<suffix>``."""
    return f"{digest.tag_form}.{suffix}"


def _ggcr_descriptor(d: Descriptor) -> JSONObject:
    """A descriptor in go-containerregistry's field order (mediaType, size, digest, ...)."""
    out: JSONObject = {"mediaType": d.media_type, "size": d.size, "digest": str(d.digest)}
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.artifact_type:
        out["artifactType"] = d.artifact_type
    return out


def _signature_config(layers: list[Descriptor]) -> bytes:
    """The config go-containerregistry writes for ``empty.Image`` plus uncompressed layers."""
    zero = "0001-01-01T00:00:00Z"
    cfg = {
        "architecture": "", "created": zero,
        "history": [{"created": zero} for _ in layers],
        "os": "", "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in layers]},
        "config": {},
    }
    return dump_json(cfg)


def _bytes_source(data: bytes) -> Callable[[], io.BytesIO]:
    return lambda: io.BytesIO(data)


def _put(store: Store, media_type: str, data: bytes) -> Descriptor:
    desc = Descriptor.for_bytes(media_type, data)
    store.put_blob(desc, _bytes_source(data))
    return desc


def _check_annotations(annotations: dict[str, str] | None, where: str) -> None:
    total = sum(len(k) + len(v) for k, v in (annotations or {}).items())
    if total > MAX_ANNOTATION_BYTES:
        raise VerificationError(f"{where}: annotations are {total} bytes "
                                f"(more than the {MAX_ANNOTATION_BYTES} allowed)")


def _load_signature_manifest(store: Store, tag: str) -> Manifest | None:
    """The manifest at the cosign tag, None if absent; VerificationError if malformed."""
    try:
        raw, mt = store.get_manifest(tag)
    except _LOOKUP_ERRORS:
        return None
    where = f"{store.describe()}:{tag}"
    try:
        m = parse_manifest(raw, mt, what=where)
    except InvalidManifest as exc:
        raise VerificationError(f"signature manifest {where} is invalid: {exc}") from None
    if not isinstance(m, Manifest) or m.media_type not in _SIG_MANIFEST_TYPES:
        raise VerificationError(f"signature manifest {where} has unexpected media type "
                                f"{m.media_type} (expected an image manifest)")
    if len(m.layers) > MAX_LAYERS:
        raise VerificationError(f"signature manifest {where} has {len(m.layers)} layers "
                                f"(more than {MAX_LAYERS})")
    return m


def append_cosign_layer(store: Store, subject: Descriptor, *, suffix: str, layer_bytes: bytes,
                        layer_media_type: str, annotations: dict[str, str],
                        replace: Callable[[Descriptor], bool] | None = None) -> Descriptor:
    """Add one signature/attestation layer to ``sha256-<hex>.<suffix>``; returns the manifest.

    ``replace(layer)`` returning True drops that existing layer first (``cosign attest
    --replace``). A layer equal to an existing one (digest and annotations) is not duplicated.
    """
    tag = cosign_tag(subject.digest, suffix)
    try:
        existing = _load_signature_manifest(store, tag)
    except VerificationError as exc:
        raise SigningError(f"{exc}; delete the tag {tag} to start afresh") from None
    layers = list(existing.layers) if existing else []
    if replace is not None:
        layers = [d for d in layers if not replace(d)]
    new = Descriptor.for_bytes(layer_media_type, layer_bytes,
                               annotations=dict(sorted(annotations.items())))
    if any(d.digest == new.digest and (d.annotations or {}) == new.annotations for d in layers):
        if existing is not None and len(layers) == len(existing.layers):
            return existing.descriptor()
    else:
        store.put_blob(new, _bytes_source(layer_bytes))
        layers.append(new)
    config = _put(store, MediaType.OCI_CONFIG, _signature_config(layers))
    manifest = {
        "schemaVersion": 2,
        "mediaType": str(MediaType.OCI_MANIFEST),
        "config": _ggcr_descriptor(config),
        "layers": [_ggcr_descriptor(d) for d in layers],
    }
    return store.put_manifest(dump_json(manifest), MediaType.OCI_MANIFEST, tags=[tag])


def attach_bundle_referrer(store: Store, subject: Descriptor, bundle_json: bytes, *,
                           artifact_type: str = MediaType.SIGSTORE_BUNDLE,
                           annotations: dict[str, str] | None = None) -> Descriptor:
    """Store a Sigstore bundle as an OCI 1.1 referrer of ``subject``; returns its manifest."""
    config = _put(store, MediaType.OCI_EMPTY, EMPTY_CONFIG)
    layer = Descriptor.for_bytes(artifact_type, bundle_json)
    layer = Descriptor(layer.media_type, layer.digest, layer.size,
                       {"org.opencontainers.image.title": f"{layer.digest.tag_form}.sigstore.json"})
    store.put_blob(layer, _bytes_source(bundle_json))
    manifest: JSONObject = {
        "schemaVersion": 2,
        "mediaType": str(MediaType.OCI_MANIFEST),
        "artifactType": artifact_type,
        "config": _ggcr_descriptor(config),
        "layers": [_ggcr_descriptor(layer)],
        "subject": {"mediaType": subject.media_type, "size": subject.size,
                    "digest": str(subject.digest)},
    }
    sorted_annotations = dict(sorted(annotations.items())) if annotations else None
    if sorted_annotations:
        manifest["annotations"] = sorted_annotations
    raw = dump_json(manifest)
    desc = store.put_manifest(raw, MediaType.OCI_MANIFEST)
    desc = Descriptor(MediaType.OCI_MANIFEST, desc.digest, len(raw), sorted_annotations,
                      artifact_type=artifact_type)
    ensure_listed(store, subject.digest, desc)
    return desc


def ensure_listed(store: Store, subject: Digest, desc: Descriptor) -> None:
    """Add ``desc`` to the referrers tag-schema index when the store does not list it itself."""
    try:
        if any(d.digest == desc.digest for d in store.referrers(subject)):
            return
    except _LOOKUP_ERRORS:
        pass
    tag = subject.tag_form
    entries: list[JSONObject] = []
    try:
        raw, mt = store.get_manifest(tag)
        idx = parse_manifest(raw, mt, what=f"{store.describe()}:{tag}")
        if isinstance(idx, Index):
            entries = idx.raw_entries()
    except (*_LOOKUP_ERRORS, InvalidManifest):
        entries = []
    if any(e.get("digest") == str(desc.digest) for e in entries):
        return
    entries.append(_ggcr_descriptor(desc))
    index = {"schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX), "manifests": entries}
    store.put_manifest(dump_json(index), MediaType.OCI_INDEX, tags=[tag])


def bundle_referrer_descriptors(store: Store, subject: Digest, artifact_type: str
                                 ) -> list[Descriptor]:
    """Referrers of ``subject`` of ``artifact_type``: the store's list + the tag-schema index."""
    try:
        refs = list(store.referrers(subject, artifact_type=artifact_type))
    except (*_LOOKUP_ERRORS, InvalidManifest):  # no referrers API, or a malformed answer
        refs = []
    try:
        raw, mt = store.get_manifest(subject.tag_form)
        idx = parse_manifest(raw, mt, what=subject.tag_form)
        if isinstance(idx, Index):
            refs += [d for d in idx.manifests if d.artifact_type == artifact_type]
    except (*_LOOKUP_ERRORS, InvalidManifest):
        pass
    return list({d.digest: d for d in refs}.values())


def detach_bundle_referrers(store: Store, subject: Digest, predicate_type: str, *,
                            keep: Digest | None = None,
                            artifact_type: str = MediaType.SIGSTORE_BUNDLE) -> list[Digest]:
    """Remove the bundle referrers of ``subject`` whose predicate type is ``predicate_type``
    (``attest --replace``), except ``keep``; returns the removed manifest digests.

    Each is deleted from the store (registry ``DELETE``, layout ``index.json`` entry) and from
    the referrers tag-schema index. A store that cannot delete raises SigningError naming it.
    """
    removed: list[Digest] = []
    for d in bundle_referrer_descriptors(store, subject, artifact_type):
        if d.digest == keep:
            continue
        ann = d.annotations or {}
        if "dev.sigstore.bundle.predicateType" not in ann:
            try:
                raw, mt = store.get_manifest(str(d.digest))
                ann = parse_manifest(raw, mt, what=f"referrer {d.digest}").annotations or {}
            except (*_LOOKUP_ERRORS, InvalidManifest):
                continue
        if ann.get("dev.sigstore.bundle.predicateType") != predicate_type:
            continue
        delete = getattr(store, "delete_manifest", None)
        if not callable(delete):
            raise SigningError(f"{store.describe()}: cannot delete the earlier bundle referrer "
                               f"{d.digest} (this store does not delete manifests)")
        try:
            delete(d.digest)
        except RegistryError as exc:
            raise SigningError(f"{store.describe()}: cannot delete the earlier bundle referrer "
                               f"{d.digest}: {exc} (is deletion enabled on the registry?)"
                               ) from None
        removed.append(d.digest)
    if removed:
        _drop_from_tag_index(store, subject, set(removed))
    return removed


def _drop_from_tag_index(store: Store, subject: Digest, gone: set[Digest]) -> None:
    tag = subject.tag_form
    try:
        raw, mt = store.get_manifest(tag)
        idx = parse_manifest(raw, mt, what=f"{store.describe()}:{tag}")
    except (*_LOOKUP_ERRORS, InvalidManifest):
        return
    if not isinstance(idx, Index):
        return
    entries = idx.raw_entries()
    keep = [e for e in entries if e.get("digest") not in {str(g) for g in gone}]
    if len(keep) != len(entries):
        index = {"schemaVersion": 2, "mediaType": str(MediaType.OCI_INDEX), "manifests": keep}
        store.put_manifest(dump_json(index), MediaType.OCI_INDEX, tags=[tag])


def read_blob_bounded(store: Store, desc: Descriptor, *, limit: int = MAX_LAYER_BYTES,
                      what: str = "blob") -> bytes:
    """The blob's bytes, refusing more than ``limit`` and checking size and digest.

    Every failure is a one-line VerificationError naming ``what`` (e.g. ``layer 0``): a blob
    the manifest lists but the store lacks is "missing", not an error of the command.
    """
    name = f"{what} {desc.digest}" if what != "blob" else f"blob {desc.digest}"
    if desc.size > limit:
        raise VerificationError(f"{name} is {desc.size} bytes (more than the {limit} allowed)")
    buf = bytearray()
    try:
        with store.open_blob(desc) as f:
            while chunk := f.read(_READ_CHUNK):  # streams may return short reads
                buf += chunk
                if len(buf) > limit:
                    raise VerificationError(f"{name} is larger than the {limit} bytes allowed")
    except DigestMismatch as exc:
        raise VerificationError(str(exc)) from None
    except NotFound:
        raise VerificationError(f"{name} is missing from {store.describe()}") from None
    except (RegistryError, StoreError, OSError) as exc:
        raise VerificationError(f"{name} cannot be read: {exc}") from None
    data = bytes(buf)
    try:
        check_bytes(data, desc, what=name)
    except DigestMismatch as exc:
        raise VerificationError(str(exc)) from None
    return data


@dataclass(frozen=True)
class CosignLayer:
    """One layer of a cosign signature manifest: its descriptor and payload (or why unreadable)."""

    index: int
    descriptor: Descriptor
    payload: bytes | None
    error: str | None

    @property
    def annotations(self) -> dict[str, str]:
        """The layer's annotations."""
        return dict(self.descriptor.annotations or {})


def read_cosign_layers(store: Store, subject_digest: Digest, suffix: str, *,
                       media_type: str | None = None, limit: int = MAX_LAYER_BYTES,
                       total_limit: int = MAX_TOTAL_BYTES,
                       ) -> tuple[Descriptor | None, list[CosignLayer]]:
    """The manifest descriptor and layers at ``sha256-<hex>.<suffix>`` (``(None, [])`` if absent).

    Each layer's payload is read bounded and digest-checked; a layer that fails carries ``error``
    instead. A malformed signature manifest raises VerificationError.
    """
    m = _load_signature_manifest(store, cosign_tag(subject_digest, suffix))
    if m is None:
        return None, []
    out: list[CosignLayer] = []
    total = 0
    for i, d in enumerate(m.layers):
        try:
            if media_type is not None and d.media_type != media_type:
                raise VerificationError(f"layer media type {d.media_type} (expected {media_type})")
            _check_annotations(d.annotations, f"layer {i}")
            total += min(d.size, limit + 1)
            if total > total_limit:
                raise VerificationError(f"not read: the layers together exceed {total_limit} bytes")
            out.append(CosignLayer(i, d, read_blob_bounded(store, d, limit=limit,
                                                          what=f"layer {i}"), None))
        except VerificationError as exc:
            out.append(CosignLayer(i, d, None, str(exc)))
    return m.descriptor(), out


@dataclass(frozen=True)
class BundleReferrer:
    """A Sigstore bundle found as a referrer: its manifest, annotations and bundle bytes."""

    manifest_digest: Digest
    annotations: dict[str, str]
    bundle: bytes | None
    error: str | None


def read_bundle_referrers(store: Store, subject_digest: Digest, *,
                          artifact_type: str = MediaType.SIGSTORE_BUNDLE,
                          limit: int = MAX_LAYER_BYTES,
                          total_limit: int = MAX_TOTAL_BYTES) -> list[BundleReferrer]:
    """Every Sigstore bundle referring to ``subject_digest`` (bounded, digest-checked reads:
    ``limit`` per bundle, ``total_limit`` for all)."""
    try:
        refs = store.referrers(subject_digest, artifact_type=artifact_type)
    except _LOOKUP_ERRORS:
        refs = []
    seen: set[Digest] = set()
    try:  # the tag-schema index written by ensure_listed, for stores without referrers support
        raw, mt = store.get_manifest(subject_digest.tag_form)
        idx = parse_manifest(raw, mt, what=subject_digest.tag_form)
        if isinstance(idx, Index):
            refs = refs + [d for d in idx.manifests if d.artifact_type == artifact_type]
    except (*_LOOKUP_ERRORS, InvalidManifest):
        pass
    out: list[BundleReferrer] = []
    total = 0
    for ref in refs[:MAX_LAYERS]:
        if ref.digest in seen:
            continue
        seen.add(ref.digest)
        try:
            if total > total_limit:
                raise VerificationError(f"not read: bundles together exceed {total_limit} "
                                        "bytes")
            raw, mt = store.get_manifest(str(ref.digest))
            m = parse_manifest(raw, mt, what=f"referrer {ref.digest}")
            if not isinstance(m, Manifest) or m.artifact_type != artifact_type:
                raise VerificationError(f"referrer {ref.digest} is not a {artifact_type} manifest")
            if m.subject is None or m.subject.digest != subject_digest:
                raise VerificationError(f"referrer {ref.digest} names another subject")
            if len(m.layers) != 1 or m.layers[0].media_type != artifact_type:
                raise VerificationError(f"referrer {ref.digest} must have exactly one "
                                        f"{artifact_type} layer")
            total += min(m.layers[0].size, limit + 1)
            out.append(BundleReferrer(ref.digest, dict(m.annotations or {}),
                                      read_blob_bounded(store, m.layers[0], limit=limit,
                                                        what="bundle layer"), None))
        except (VerificationError, InvalidManifest, *_LOOKUP_ERRORS) as exc:
            out.append(BundleReferrer(ref.digest, dict(ref.annotations or {}), None, str(exc)))
    return out
