"""Image assembly: config and manifest bytes (OCI by default, Docker schema2 with ``docker``).

Layer blobs are reused as they are; only their media type string is translated between the two
formats (same bytes, so same digest). zstd layers cannot be written in the Docker format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trustbuild._internal.jsontypes import LoadedObject
from trustbuild.builder.config import ImageState, LayerRef
from trustbuild.errors import BuildError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType

__all__ = ["AssembledImage", "assemble"]

_TO_DOCKER = {
    MediaType.OCI_LAYER_GZIP: MediaType.DOCKER_LAYER_GZIP,
    MediaType.OCI_LAYER: "application/vnd.docker.image.rootfs.diff.tar",
    MediaType.DOCKER_LAYER_GZIP: MediaType.DOCKER_LAYER_GZIP,
    MediaType.DOCKER_FOREIGN_LAYER: MediaType.DOCKER_FOREIGN_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.docker.image.rootfs.diff.tar",
}
_TO_OCI = {
    MediaType.DOCKER_LAYER_GZIP: MediaType.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": MediaType.OCI_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar.zstd": MediaType.OCI_LAYER_ZSTD,
    MediaType.DOCKER_FOREIGN_LAYER: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


@dataclass(frozen=True)
class AssembledImage:
    """The finished image: manifest + config bytes and the layers they point at."""

    manifest_raw: bytes
    media_type: str
    config_raw: bytes
    config: Descriptor
    layers: tuple[LayerRef, ...]

    @property
    def descriptor(self) -> Descriptor:
        """Descriptor of the manifest."""
        return Descriptor.for_bytes(self.media_type, self.manifest_raw)

    def blobs(self) -> list[Descriptor]:
        """Every blob the manifest references (layers, then config)."""
        return [ref.descriptor for ref in self.layers] + [self.config]


def _layer_media_type(mt: str, image_format: str) -> str:
    if image_format == "docker":
        out = _TO_DOCKER.get(mt)
        if out is None:
            raise BuildError(f"layer media type {mt} cannot be written in the Docker image "
                             "format: use --image-format oci (or --compression gzip)")
        return str(out)
    return str(_TO_OCI.get(mt, mt))


def assemble(state: ImageState, *, created: str, platform: Platform,
             image_format: str = "oci", labels: dict[str, str] | None = None) -> AssembledImage:
    """Serialise config and manifest for ``state``."""
    if labels:
        merged = dict(state.runtime.labels or {})
        merged.update(labels)
        state.runtime.labels = merged
    cfg: LoadedObject = state.finalize(created=created, platform=platform)
    config_raw = dump_json(cfg)
    docker = image_format == "docker"
    config_desc = Descriptor.for_bytes(
        MediaType.DOCKER_CONFIG if docker else MediaType.OCI_CONFIG, config_raw)
    layers = []
    for ref in state.layers:
        d = ref.descriptor
        mt = _layer_media_type(d.media_type, image_format)
        layers.append(replace(ref, descriptor=Descriptor(mt, d.digest, d.size)))
    media_type = str(MediaType.DOCKER_MANIFEST if docker else MediaType.OCI_MANIFEST)
    manifest: LoadedObject = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_desc.to_json(),
        "layers": [ref.descriptor.to_json() for ref in layers],
    }
    raw = dump_json(manifest)
    return AssembledImage(raw, media_type, config_raw, config_desc, tuple(layers))
