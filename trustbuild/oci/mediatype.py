"""Media types of the OCI image spec and Docker's schema2, plus cosign/sigstore ones."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MediaType", "MANIFEST_TYPES", "INDEX_TYPES", "LAYER_TYPES", "ACCEPT_MANIFESTS"]


class MediaType(StrEnum):
    """Known media types."""

    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
    OCI_EMPTY = "application/vnd.oci.empty.v1+json"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
    DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"  # attestation layers (cosign)
    SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
    IN_TOTO = "application/vnd.in-toto+json"  # the DSSE payloadType of in-toto statements


MANIFEST_TYPES = frozenset({MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST})
LAYER_TYPES = frozenset({
    MediaType.OCI_LAYER, MediaType.OCI_LAYER_GZIP, MediaType.OCI_LAYER_ZSTD,
    MediaType.DOCKER_LAYER_GZIP, MediaType.DOCKER_FOREIGN_LAYER,
})
ACCEPT_MANIFESTS = ", ".join([
    MediaType.OCI_MANIFEST, MediaType.OCI_INDEX,
    MediaType.DOCKER_MANIFEST, MediaType.DOCKER_MANIFEST_LIST,
])
