"""Copy an image (or a whole index) from one Store to another: blobs first, manifest last.

Manifests are copied byte for byte, so their digests are kept (registry -> oci -> registry gives
the same digest), except across docker-archive, which only holds uncompressed layers:

- to a docker-archive, the writer decompresses the layers; config digest and diff_ids are kept;
- from a docker-archive to a registry or layout, each layer tar is gzip-compressed in one
  streaming pass (deterministic: no name, mtime 0) into a temp file and a new manifest is written:
  an OCI image manifest for ``oci:`` layouts (so OCI tools such as umoci unpack it), a Docker
  schema2 manifest for registries (as ``docker save`` images were). The config blob is unchanged.

Example::

    desc = copy_image(src, "latest", dst, ["v1"], jobs=4, progress=print)
"""

from __future__ import annotations

import functools
import gzip
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from trustbuild.errors import DigestMismatch, StoreError
from trustbuild.oci.archive import DOCKER_LAYER_TAR, ArchiveWriter
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import CHUNK, Hasher
from trustbuild.oci.image import get_parsed, resolve_index
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.manifest import Index, Manifest, dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import BlobSource, Store, abort_write

__all__ = ["copy_image", "human_size"]

Progress = Callable[[str], None]
_FOREIGN = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)


def human_size(n: int) -> str:
    """``12.3 MB`` style sizes (powers of 1000, like skopeo)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def copy_image(
    src: Store,
    src_ref: str | None,
    dst: Store,
    dst_tags: Sequence[str],
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    jobs: int = 4,
    progress: Progress | None = None,
) -> Descriptor:
    """Copy the image at ``src_ref`` to ``dst`` tagged ``dst_tags``; the written descriptor.

    ``src_ref`` is resolved once. From an index one platform is copied (``platform``, default
    this machine) unless ``all_platforms``, which copies the index as-is (digest kept). On
    failure a destination that supports ``abort()`` (layout created by this copy, archive) is
    left as it was; registries never get the tag because the manifest is written last.
    """
    say = progress or (lambda _msg: None)
    _mount_hint(src, dst)
    try:
        top = get_parsed(src, src_ref)
        if isinstance(top, Index):
            if all_platforms:
                if isinstance(dst, ArchiveWriter):
                    raise StoreError(
                        f"{dst.describe()}: a docker-archive holds one image; "
                        "copy one platform (drop --all)"
                    )
                return _copy_index(src, top, dst, dst_tags, jobs=jobs, say=say)
            img = resolve_index(src, top, platform=platform)
            say(f"picked {img.platform} image {img.digest} from index {top.digest}")
            top = img.manifest
        needs_compress = any(
            d.media_type == DOCKER_LAYER_TAR for d in top.layers
        ) and not isinstance(dst, ArchiveWriter)
        if needs_compress:
            return _copy_compressing(src, top, dst, dst_tags, jobs=jobs, say=say)
        _copy_blobs(src, [top.config, *top.layers], dst, jobs=jobs, say=say)
        say(f"writing manifest {top.digest}")
        return dst.put_manifest(top.raw, top.media_type, tags=dst_tags)
    except BaseException:
        abort_write(dst)
        raise


def _mount_hint(src: Store, dst: Store) -> None:
    """Between two repositories of one registry, let the destination mount instead of upload."""
    registry = getattr(src, "registry", None)
    set_source = getattr(dst, "set_mount_source", None)
    if (
        registry
        and callable(set_source)
        and getattr(dst, "registry", None) == registry
        and getattr(src, "repository", None) != getattr(dst, "repository", None)
    ):
        set_source(getattr(src, "repository", None))


def _copy_index(
    src: Store, index: Index, dst: Store, tags: Sequence[str], *, jobs: int, say: Progress
) -> Descriptor:
    children: list[Manifest | Index] = [get_parsed(src, str(d.digest)) for d in index.manifests]
    blobs = [b for c in children if isinstance(c, Manifest) for b in (c.config, *c.layers)]
    _copy_blobs(src, blobs, dst, jobs=jobs, say=say)
    for c in children:
        if isinstance(c, Index):
            _copy_index(src, c, dst, (), jobs=jobs, say=say)
        else:
            dst.put_manifest(c.raw, c.media_type)
    say(f"writing index {index.digest}")
    return dst.put_manifest(index.raw, index.media_type, tags=tags)


def _copy_blobs(
    src: Store, blobs: Sequence[Descriptor], dst: Store, *, jobs: int, say: Progress
) -> None:
    seen: set[str] = set()
    todo: list[tuple[Descriptor, BlobSource]] = []
    for d in blobs:
        if str(d.digest) in seen or d.media_type in _FOREIGN or d.urls:
            continue
        seen.add(str(d.digest))
        todo.append((d, _opener(src, d)))
    _run(todo, dst, jobs=jobs, say=say)


def _opener(src: Store, d: Descriptor) -> BlobSource:
    @contextmanager
    def open_() -> Iterator[BinaryIO]:
        with src.open_blob(d) as stream:
            yield cast(BinaryIO, _CheckAtSize(stream, d.size))

    return open_


class _CheckAtSize:
    """Reads one byte past ``size`` as soon as ``size`` bytes were read, so the source's verifying
    reader checks the digest even when the consumer (an HTTP upload with Content-Length) stops
    at exactly ``size`` bytes: a corrupted blob then fails here, naming the blob."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._s = stream
        self._size = size
        self._got = 0
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        """Read like a file."""
        data = self._s.read(n)
        self._got += len(data)
        if not self._checked and (self._got >= self._size or not data):
            self._checked = True
            if data:
                extra = self._s.read(1)  # EOF: the verifying reader checks here
                if extra:
                    raise DigestMismatch(f"blob is longer than the expected {self._size} bytes")
        return data


def _run(
    todo: Sequence[tuple[Descriptor, BlobSource]], dst: Store, *, jobs: int, say: Progress
) -> None:
    """Put blobs in a bounded pool; the first failure cancels the rest and is raised."""

    def one(d: Descriptor, source: BlobSource) -> None:
        if dst.has_blob(d.digest):
            say(f"blob {_short(d)} already present")
            return
        say(f"copying blob {_short(d)} {human_size(d.size)}")
        dst.put_blob(d, source)

    _parallel([functools.partial(one, d, s) for d, s in todo], jobs=jobs)


def _parallel(tasks: Sequence[Callable[[], None]], *, jobs: int) -> None:
    """Run ``tasks`` in a pool of ``jobs`` threads; the first failure cancels what has not started.

    Always waits for running tasks before returning or raising, so a destination's ``abort()``
    never races with a transfer still writing into it (also on Ctrl-C).
    """
    if not tasks:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), thread_name_prefix="copy")
    try:
        futures: list[Future[None]] = [pool.submit(t) for t in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in futures:
            if f in done and f.exception() is not None:
                raise cast(BaseException, f.exception())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _short(d: Descriptor) -> str:
    return f"{d.digest.algorithm}:{d.digest.hex[:12]}"


class _HashingWriter:
    """File writer that hashes what passes through (gzip writes the compressed stream here)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hasher = Hasher()

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def _compress(src: Store, d: Descriptor, dest: Path, media_type: str) -> Descriptor:
    """gzip the (verified) blob ``d`` into ``dest`` in one pass; the compressed descriptor."""
    with src.open_blob(d) as inp, open(dest, "wb") as raw:
        hw = _HashingWriter(cast(BinaryIO, raw))
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=cast(BinaryIO, hw), mtime=0, compresslevel=6
        ) as gz:
            while chunk := inp.read(CHUNK):
                gz.write(chunk)
    return Descriptor(media_type, hw.hasher.digest(), hw.hasher.size)


def _copy_compressing(
    src: Store, m: Manifest, dst: Store, tags: Sequence[str], *, jobs: int, say: Progress
) -> Descriptor:
    oci = isinstance(dst, LayoutStore)
    layer_type = MediaType.OCI_LAYER_GZIP if oci else MediaType.DOCKER_LAYER_GZIP
    with tempfile.TemporaryDirectory(prefix="trustbuild-copy-") as tmp:
        results: dict[str, tuple[Descriptor, Path]] = {}
        lock = threading.Lock()

        def compress(d: Descriptor) -> None:
            if d.media_type != DOCKER_LAYER_TAR:
                raise StoreError(
                    f"{src.describe()}: cannot mix compressed and uncompressed layers "
                    f"({d.digest} is {d.media_type})"
                )
            say(f"compressing layer {_short(d)} {human_size(d.size)}")
            path = Path(tmp) / d.digest.hex
            cd = _compress(src, d, path, layer_type)
            with lock:
                results[str(d.digest)] = (cd, path)

        unique = list({str(d.digest): d for d in m.layers}.values())
        _parallel([functools.partial(compress, d) for d in unique], jobs=jobs)
        layers = [results[str(d.digest)][0] for d in m.layers]
        cfg_type = MediaType.OCI_CONFIG if oci else MediaType.DOCKER_CONFIG
        config = Descriptor(str(cfg_type), m.config.digest, m.config.size)
        raw = dump_json(
            {
                "schemaVersion": 2,
                "mediaType": str(MediaType.OCI_MANIFEST if oci else MediaType.DOCKER_MANIFEST),
                "config": config.to_json(),
                "layers": [d.to_json() for d in layers],
            }
        )
        todo: list[tuple[Descriptor, BlobSource]] = [(config, _opener(src, m.config))]
        for cd, path in {str(d.digest): results[str(d.digest)] for d in m.layers}.values():
            todo.append((cd, _file_opener(path)))
        _run(todo, dst, jobs=jobs, say=say)
    mt = MediaType.OCI_MANIFEST if oci else MediaType.DOCKER_MANIFEST
    say(f"writing manifest {Descriptor.for_bytes(mt, raw).digest}")
    return dst.put_manifest(raw, str(mt), tags=tags)


def _file_opener(path: Path) -> BlobSource:
    def open_() -> AbstractContextManager[BinaryIO]:
        return cast(AbstractContextManager[BinaryIO], open(path, "rb"))  # noqa: SIM115

    return open_
