"""Build outputs: registry destinations, OCI layout, docker-archive tarball, digest files.

Blobs go to every destination first, then each manifest **by digest**; tags come last
(:func:`apply_tags`, through builder.api.put_tags), after signing and attestations
(trustbuild.pipeline) have succeeded. So a
failure at any point, signing included, leaves no tag on anything unsigned; all tags name the
same manifest digest.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from trustbuild.builder.assemble import AssembledImage
from trustbuild.builder.config import LayerRef, ensure_local
from trustbuild.errors import TrustbuildError, UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.reference import Reference
from trustbuild.oci.store import Store
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import Location, parse_location

if TYPE_CHECKING:
    from trustbuild.builder.events import BuildLog

__all__ = ["WrittenOutput", "push_destinations", "write_oci_layout", "write_docker_archive",
           "write_digest_files", "validate_destinations", "apply_tags"]


@dataclass
class WrittenOutput:
    """One place the image was written: the store, its tags, its manifest descriptor.

    ``tagged`` is False while the manifest is there by digest only (until :func:`apply_tags`).
    """

    location: str
    store: Store
    tags: list[str]
    descriptor: Descriptor
    tagged: bool = True
    raw: bytes = b""  # the manifest, to PUT again under the tags
    media_type: str = ""


def validate_destinations(destinations: list[str]) -> list[Reference]:
    """Parse every --destination up front (usage error on a bad one)."""
    out = []
    for d in destinations:
        loc = parse_location(d)
        if loc.transport != "docker" or loc.reference is None:
            raise UsageError(f"--destination {d!r}: expected a registry reference "
                             "(use --oci-layout-path / --tar-path for files)")
        out.append(loc.reference)
    return out


def _bytes_source(data: bytes) -> Callable[[], AbstractContextManager[BinaryIO]]:
    return lambda: io.BytesIO(data)


class _Counting:
    """A read-only stream that reports how many bytes were read."""

    def __init__(self, stream: BinaryIO, count: Callable[[int], None]) -> None:
        self._stream = stream
        self._count = count

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._count(len(data))
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _counted(source: Callable[[], AbstractContextManager[BinaryIO]],
             count: Callable[[int], None]) -> Callable[[], AbstractContextManager[BinaryIO]]:
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        with source() as stream:
            yield _Counting(stream, count)  # type: ignore[misc]

    return opener


def _layer_source(ref: LayerRef) -> Callable[[], AbstractContextManager[BinaryIO]]:
    """Opens the layer's blob, downloading it from its origin on first use."""
    return lambda: open(ensure_local(ref), "rb")  # noqa: SIM115 - the store closes it


def _mount_source(store: Store, ref: LayerRef) -> str | None:
    """The repository a registry push can mount ``ref`` from (same registry), if any."""
    from trustbuild.registry.store import RegistryStore

    origin = getattr(ref.origin, "upstream", ref.origin)  # through the local layer store
    if (isinstance(store, RegistryStore) and isinstance(origin, RegistryStore)
            and origin.registry == store.registry and origin.repository != store.repository):
        return origin.repository
    return None


def _push_layer(store: Store, ref: LayerRef, log: BuildLog | None) -> None:
    """One layer (present: skipped; on the same registry: mounted; else uploaded)."""
    from trustbuild.registry.store import RegistryStore

    if store.has_blob(ref.descriptor.digest):
        return
    mount = _mount_source(store, ref)

    def put(source: Callable[[], AbstractContextManager[BinaryIO]]) -> str:
        if isinstance(store, RegistryStore):  # has_blob has just seen it missing: no 2nd HEAD
            return store.push_blob(ref.descriptor, source, mount_from=mount, absent=True)
        store.put_blob(ref.descriptor, source)
        return "uploaded"

    if log is None:
        put(_layer_source(ref))
        return
    if mount is not None:
        if put(_layer_source(ref)) == "mounted":
            log.mounted(str(ref.descriptor.digest), ref.descriptor.size, source=mount,
                        where=store.describe())
            return
        # the registry would not mount it: it was uploaded (reported without a bar)
        with log.blob("push", str(ref.descriptor.digest), ref.descriptor.size,
                      where=store.describe()) as count:
            count(ref.descriptor.size)
        return
    with log.blob("push", str(ref.descriptor.digest), ref.descriptor.size,
                  where=store.describe()) as count:
        put(_counted(_layer_source(ref), count))


def _put_blobs(store: Store, image: AssembledImage, log: BuildLog | None = None, *,
               jobs: int = 1) -> None:
    """Every layer (see :func:`_push_layer`) and the config; to a registry ``jobs`` at a time.

    A layer still in its origin (a base image or the cache repository) is downloaded only when
    it has to be uploaded: a build whose every step was cached uploads just the config.
    """
    from trustbuild.registry.store import RegistryStore

    tasks: list[Callable[[], None]] = [
        *(lambda ref=ref: _push_layer(store, ref, log) for ref in image.layers),
        lambda: store.put_blob(image.config, _bytes_source(image.config_raw))]
    if jobs <= 1 or not isinstance(store, RegistryStore):  # files and tarballs: in order
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=min(jobs, len(tasks)),
                            thread_name_prefix="push") as pool:
        futures = [pool.submit(task) for task in tasks]
    for future in futures:  # every push has ended; the first failure, in layer order
        future.result()


def push_destinations(image: AssembledImage, refs: list[Reference], options: StoreOptions, *,
                      output: TextIO, log: BuildLog | None = None,
                      tag: bool = True) -> list[WrittenOutput]:
    """Push to every destination: all blobs everywhere first, then each repository's manifest.

    With ``tag=False`` manifests are pushed by digest only; :func:`apply_tags` adds the tags.
    """
    from trustbuild.store.open import open_store

    groups: dict[str, list[Reference]] = {}
    for ref in refs:
        groups.setdefault(ref.name, []).append(ref)
    opened: list[tuple[Store, list[Reference]]] = []
    try:
        for group in groups.values():
            store, _ = open_store(Location("docker", group[0]), options, for_write=True)
            opened.append((store, group))
            print(f"pushing blobs to {store.describe()}", file=output)
            _put_blobs(store, image, log, jobs=options.jobs)
        written = []
        for store, group in opened:
            tags = sorted({r.tag for r in group if r.tag})
            for r in group:
                if r.digest is not None and r.digest != image.descriptor.digest:
                    raise TrustbuildError(f"--destination {r}: the built image has digest "
                                          f"{image.descriptor.digest}, not {r.digest}")
            desc = store.put_manifest(image.manifest_raw, image.media_type,
                                      tags=tags if tag else ())
            shown = f" (tags: {', '.join(tags)})" if tags and tag else ""
            print(f"pushed {group[0].name}@{desc.digest}{shown}", file=output)
            written.append(WrittenOutput(f"docker://{group[0].name}", store, tags, desc,
                                         tagged=tag or not tags, raw=image.manifest_raw,
                                         media_type=image.media_type))
        return written
    except BaseException:
        for store, _ in opened:
            store.close()
        raise


def write_oci_layout(image: AssembledImage, path: str, *, tag: str = "latest",
                     tag_now: bool = True) -> WrittenOutput:
    """Write (or add to) an OCI image layout at ``path``, tagged ``tag`` (or later, by
    :func:`apply_tags`, with ``tag_now=False``: an untagged ``index.json`` entry until then)."""
    from trustbuild.oci.layout import LayoutStore

    store = LayoutStore(path)
    _put_blobs(store, image)
    desc = store.put_manifest(image.manifest_raw, image.media_type,
                              tags=[tag] if tag_now else ())
    store.close()
    return WrittenOutput(f"oci:{path}:{tag}", store, [tag], desc, tagged=tag_now,
                         raw=image.manifest_raw, media_type=image.media_type)


def apply_tags(outputs: list[WrittenOutput], *, output: TextIO) -> None:
    """Point the tags of every output written by digest at its manifest (the last step)."""
    for o in outputs:
        if o.tagged:
            continue
        o.store.put_manifest(o.raw, o.media_type, tags=o.tags)
        o.tagged = True
        print(f"tagged {o.location.removeprefix('docker://')}@{o.descriptor.digest} as "
              f"{', '.join(o.tags)}", file=output)


def write_docker_archive(image: AssembledImage, path: str, *, tags: list[str]) -> WrittenOutput:
    """Write a docker-archive tarball (``docker load`` / ``podman load``) with RepoTags ``tags``."""
    from trustbuild.oci.archive import ArchiveWriter

    store = ArchiveWriter(path, tags=tags)
    try:
        _put_blobs(store, image)
        store.put_manifest(image.manifest_raw, image.media_type)
        desc = store.descriptor()
        store.close()
    except BaseException:
        store.abort()
        raise
    return WrittenOutput(f"docker-archive:{path}", store, list(tags), desc)


def _atomic_text(path: str, text: str) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def write_digest_files(digest: str, refs: list[Reference], *, digest_file: str | None,
                       name_file: str | None, name_tag_file: str | None = None) -> None:
    """--digest-file gets ``sha256:...``; --image-name-with-digest-file ``NAME@sha256:...``;
    --image-name-tag-with-digest-file ``NAME:TAG@sha256:...`` (one line per destination)."""
    if digest_file:
        _atomic_text(digest_file, digest)
    for path, with_tag in ((name_file, False), (name_tag_file, True)):
        if not path:
            continue
        lines = []
        for r in refs:
            tag = f":{r.tag}" if with_tag and r.tag else ""
            line = f"{r.name}{tag}@{digest}"
            if line not in lines:
                lines.append(line)
        _atomic_text(path, "\n".join(lines) + ("\n" if lines else ""))
