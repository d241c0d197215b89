"""The one interface over every place images live: registry repository, OCI layout, docker-archive.

``copy``, build outputs, ``sign``, ``attest`` and ``verify`` only talk to a :class:`Store`, so they
work the same on every transport. A store is bound to one repository (registry), one layout
directory, or one archive file. Manifests are addressed by tag or by digest string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest

__all__ = ["Store", "BlobSource", "abort_write"]

BlobSource = Callable[[], AbstractContextManager[BinaryIO]]
"""A re-openable opener of a blob's bytes (e.g. ``lambda: open(path, "rb")``)."""


@runtime_checkable
class Store(Protocol):
    """Read and write manifests and blobs of one repository-like location."""

    def describe(self) -> str:
        """Human name for messages, e.g. ``docker://127.0.0.1:5000/app`` or ``oci:/tmp/l``."""
        ...

    def get_manifest(self, ref: str) -> tuple[bytes, str]:
        """Raw bytes and media type of the manifest or index at tag or digest ``ref``.

        When ``ref`` is a digest the bytes are verified against it. NotFound if absent.
        """
        ...

    def has_blob(self, digest: Digest) -> bool:
        """True if the blob is present."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A stream of the blob; reading to the end raises DigestMismatch if it is not ``desc``."""
        ...

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Stream the blob to ``dest``, verified; on any failure ``dest`` is not created."""
        ...

    def put_blob(self, desc: Descriptor, source: BlobSource) -> None:
        """Store a blob (skipped if already present); ``source`` may be opened more than once."""
        ...

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = ()) -> Descriptor:
        """Store a manifest/index (blobs must already be there) and point ``tags`` at it."""
        ...

    def list_tags(self) -> list[str]:
        """Every tag in this repository/layout."""
        ...

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``.

        OCI 1.1 referrers, with the tag-schema fallback.
        """
        ...

    def delete_tag(self, tag: str) -> None:
        """Remove a tag (used to replace cosign attestation/signature tags); no-op if absent."""
        ...

    def close(self) -> None:
        """Finish writing (docker-archive writes its manifest.json here) and release resources."""
        ...


def abort_write(store: Store) -> None:
    """After a failed write: discard what it left where the store can (``abort()`` of an OCI
    layout removes what this write created, of a docker-archive the unfinished file); other
    stores (a registry) have nothing to undo."""
    abort = getattr(store, "abort", None)
    if callable(abort):
        abort()
