"""Open the Store behind a parsed location (``docker://``, ``oci:``, ``docker-archive:``).

Example::

    store, ref = open_store(parse_location("oci:/tmp/layout:app"), StoreOptions())
    raw, media_type = store.get_manifest(ref or "")
    store.close()
"""

from __future__ import annotations

from trustbuild.errors import UsageError
from trustbuild.oci.store import Store
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import Location

__all__ = ["open_store"]


def open_store(
    location: Location, options: StoreOptions, *, for_write: bool = False
) -> tuple[Store, str | None]:
    """The store for ``location`` and the ref (tag or digest) inside it, or None for "the only one".

    For reading a registry the ref is the digest if the reference has one, else the tag; for
    writing it is the tag (None when only a digest was given: push untagged). An OCI layout is
    created on first write; a docker-archive opened for writing is produced on ``close()``.
    """
    if location.transport == "docker":
        ref = location.reference
        assert ref is not None
        from trustbuild.registry.store import RegistryStore

        store: Store = RegistryStore(ref.registry, ref.repository, options)
        if for_write:
            return store, ref.tag
        return store, str(ref.digest) if ref.digest else ref.tag
    if location.transport == "oci":
        from trustbuild.oci.layout import LayoutStore

        assert location.path is not None
        return LayoutStore(location.path), location.tag
    if location.transport == "docker-archive":
        from trustbuild.oci.archive import ArchiveReader, ArchiveWriter

        assert location.path is not None
        name = str(location.reference) if location.reference else None
        if for_write:
            return ArchiveWriter(location.path, tags=[name] if name else []), name
        return ArchiveReader(location.path), name
    raise UsageError(
        f"unsupported transport {location.transport!r}: use docker://, oci: or docker-archive:"
    )
