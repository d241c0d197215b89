"""Image manifests and indexes (OCI and Docker schema2).

Parsed from, and kept with, their raw bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONObject
from trustbuild.errors import InvalidManifest, NotFound
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import Digest
from trustbuild.oci.mediatype import INDEX_TYPES, MANIFEST_TYPES, MediaType

__all__ = ["Manifest", "Index", "parse_manifest", "load_json", "dump_json", "MAX_MANIFEST_BYTES"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def load_json(raw: bytes, *, what: str) -> dict[str, object]:
    """Parse a JSON object, bounded in size, with a clear error naming ``what``."""
    return load_object(raw, what=what, error=InvalidManifest, max_bytes=MAX_MANIFEST_BYTES)


def dump_json(obj: object) -> bytes:
    """Compact canonical-ish JSON as the registries and ggcr write it.

    No spaces, key order kept.
    """
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class _Parsed:
    """A parsed manifest or index next to its raw bytes (what the digest is over)."""

    raw: bytes
    media_type: str

    @property
    def digest(self) -> Digest:
        """Digest of the raw bytes."""
        return Digest.of(self.raw)

    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this manifest or index."""
        return Descriptor(self.media_type, self.digest, len(self.raw))


@dataclass(frozen=True)
class Manifest(_Parsed):
    """An image manifest: config and layers (optionally a ``subject``)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] | None
    subject: Descriptor | None
    artifact_type: str | None
    data: dict[str, object]


@dataclass(frozen=True)
class Index(_Parsed):
    """An OCI image index or Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] | None
    subject: Descriptor | None
    data: dict[str, object]

    def raw_entries(self) -> list[JSONObject]:
        """The ``manifests`` objects as written (every field kept, for rewriting the index)."""
        ms = self.data.get("manifests")
        # parsed by json.loads: every value in them is JSON
        return [cast(JSONObject, m) for m in ms if isinstance(m, dict)] if isinstance(
            ms, list) else []

    def select(self, platform: Platform) -> Descriptor:
        """The entry for ``platform``; NotFound listing what the index offers otherwise."""
        for d in self.manifests:
            if d.platform and platform.matches(d.platform) and d.media_type not in INDEX_TYPES:
                return d
        offered = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise NotFound(f"no image for platform {platform} in the index (it has: {offered}); "
                       "pick one with --platform")


def parse_manifest(raw: bytes, media_type: str | None = None, *,
                   what: str = "manifest") -> Manifest | Index:
    """Parse manifest or index bytes; ``media_type`` is the transport's Content-Type if known."""
    obj = load_json(raw, what=what)
    declared, artifact_type = (_str_field(obj, key, what) for key in ("mediaType", "artifactType"))
    ann = obj.get("annotations")
    if ann is not None and not (isinstance(ann, dict)
                                and all(isinstance(v, str) for v in ann.values())):
        raise InvalidManifest(f"{what}: 'annotations' must map strings to strings")
    mt = declared or media_type
    if obj.get("schemaVersion") != 2:
        raise InvalidManifest(f"{what}: unsupported schemaVersion {obj.get('schemaVersion')!r} "
                              "(only schema 2 manifests are supported)")
    if mt is None:
        mt = MediaType.OCI_INDEX if "manifests" in obj else MediaType.OCI_MANIFEST
    if media_type and declared and media_type != declared \
            and media_type not in ("application/json", "application/octet-stream"):
        raise InvalidManifest(f"{what}: Content-Type {media_type} "
                              f"does not match mediaType {declared}")
    subj = (Descriptor.from_json(obj["subject"], where=f"{what}: subject")
            if "subject" in obj else None)
    if mt in INDEX_TYPES:
        ms = obj.get("manifests")
        if not isinstance(ms, list):
            raise InvalidManifest(f"{what}: 'manifests' must be a list")
        return Index(raw, mt, tuple(Descriptor.from_json(m, where=f"{what}: manifests[{i}]")
                                    for i, m in enumerate(ms)), ann, subj, obj)
    if mt in MANIFEST_TYPES:
        if "config" not in obj:
            raise InvalidManifest(f"{what}: missing 'config'")
        layers = obj.get("layers", [])
        if not isinstance(layers, list):
            raise InvalidManifest(f"{what}: 'layers' must be a list")
        return Manifest(
            raw, mt, Descriptor.from_json(obj["config"], where=f"{what}: config"),
            tuple(Descriptor.from_json(x, where=f"{what}: layers[{i}]")
                  for i, x in enumerate(layers)),
            ann, subj, artifact_type, obj,
        )
    raise InvalidManifest(f"{what}: unsupported media type {mt!r}")


def _str_field(obj: dict[str, object], key: str, what: str) -> str | None:
    """``obj[key]`` when present (then it must be a string), else None."""
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidManifest(f"{what}: '{key}' must be a string")
    return value
