"""Layer compression: magic-byte detection, streaming decompression, deterministic compressors.

Usage::

    with open_decompressed(path) as tar_stream:      # gzip, zstd, bzip2, xz or plain
        ...
    media_type_for("zstd")                            # application/vnd.oci.image.layer.v1.tar+zstd
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, get_args

import zstandard

from trustbuild.errors import StoreError, UsageError
from trustbuild.oci.mediatype import MediaType

__all__ = [
    "COMPRESSIONS", "WRITABLE", "Compression", "detect", "open_decompressed", "media_type_for",
    "compression_of_media_type", "Compressor", "new_compressor", "DECOMPRESS_ERRORS",
]

COMPRESSIONS = ("gzip", "zstd", "bzip2", "xz", "none")
#: what LayerWriter writes (the CLI offers gzip and zstd)
Compression = Literal["gzip", "zstd", "none"]
WRITABLE: tuple[Compression, ...] = get_args(Compression)
MAGIC_LEN = 6

_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
_DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"


def detect(first_bytes: bytes) -> str:
    """The compression of a stream from its first bytes (at least 6 for xz)."""
    b = first_bytes
    if b[:2] == b"\x1f\x8b":
        return "gzip"
    if b[:4] == b"\x28\xb5\x2f\xfd" or (len(b) >= 4 and 0x50 <= b[0] <= 0x5F
                                          and b[1:4] == b"\x2a\x4d\x18"):
        return "zstd"
    if b[:3] == b"BZh":
        return "bzip2"
    if b[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "none"


def media_type_for(compression: str, *, docker: bool = False) -> str:
    """The layer media type for a compression written by LayerWriter."""
    if docker:
        table = {"gzip": str(MediaType.DOCKER_LAYER_GZIP), "zstd": _DOCKER_LAYER_ZSTD,
                 "none": _DOCKER_LAYER}
    else:
        table = {"gzip": str(MediaType.OCI_LAYER_GZIP), "zstd": str(MediaType.OCI_LAYER_ZSTD),
                 "none": str(MediaType.OCI_LAYER)}
    try:
        return table[compression]
    except KeyError:
        raise UsageError(f"layer compression {compression!r} cannot be written: "
                         f"use one of {', '.join(WRITABLE)}") from None


def compression_of_media_type(media_type: str) -> str | None:
    """The compression a layer media type announces (None when it says nothing we know)."""
    mt = media_type.lower()
    if mt.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if mt.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    if mt.endswith((".tar", "layer.v1.tar")):
        return "none"
    return None


class _Prefixed(io.RawIOBase):
    """A read-only stream that returns ``head`` and then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        mv = memoryview(buf).cast("B")
        if self._head:
            n = min(len(mv), len(self._head))
            mv[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(mv))
        mv[: len(data)] = data
        return len(data)


_GZIP_MAGIC = b"\x1f\x8b"
_READ_AHEAD_IN = 1 << 20  # compressed bytes read at a time
_READ_AHEAD_OUT = 1 << 20  # largest decompressed piece handed over
_READ_AHEAD_DEPTH = 8  # pieces decompressed ahead of the reader (bounded memory)


class _GzipReadAhead(io.RawIOBase):
    """Gzip decompressed on a thread while the caller consumes the output (zlib releases the
    GIL: on two cores a layer's inflate overlaps with tar parsing and file writes).

    Same stream semantics as :class:`gzip.GzipFile`: concatenated members, zero padding
    between or after members, every member's CRC-32 and length checked (zlib's gzip mode),
    a truncated stream is an EOFError and anything else after a member a BadGzipFile. Memory
    is bounded: at most ``_READ_AHEAD_DEPTH`` pieces of ``_READ_AHEAD_OUT`` bytes wait.
    """

    def __init__(self, src: BinaryIO) -> None:
        import queue
        import threading

        self._src = src
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(_READ_AHEAD_DEPTH)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="gunzip", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _put(self, item: bytes | BaseException | None) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            d = zlib.decompressobj(31)
            started = True  # inside a member (the stream starts with one: magic detected)
            while not self._stop.is_set():
                data = self._src.read(_READ_AHEAD_IN)
                if not data:
                    if started:
                        raise EOFError("Compressed file ended before the end-of-stream "
                                       "marker was reached")
                    break
                more = False  # zlib may hold output back once a piece is full
                while data or more:
                    if not started:  # between members: zero padding, or the next member
                        data = data.lstrip(b"\0")
                        if not data:
                            break
                        if len(data) < 2:
                            data += self._src.read(1)
                        if data[:2] != _GZIP_MAGIC:
                            raise gzip.BadGzipFile("Not a gzipped file "
                                                   f"({data[:2]!r} after a member)")
                        d, started = zlib.decompressobj(31), True
                    out = d.decompress(data, _READ_AHEAD_OUT)
                    data = d.unconsumed_tail
                    more = len(out) == _READ_AHEAD_OUT and not d.eof
                    if out and not self._put(out):
                        return
                    if d.eof:
                        data, started, more = d.unused_data, False, False
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        mv = memoryview(buf).cast("B")
        while not self._buf:
            if self._done:
                return 0
            item = self._q.get()
            if item is None:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._buf = memoryview(item)
        n = min(len(mv), len(self._buf))
        mv[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        import queue

        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting for room
                self._q.get_nowait()
        self._thread.join()
        super().close()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


@contextlib.contextmanager
def open_decompressed(path_or_stream: Path | str | BinaryIO) -> Iterator[BinaryIO]:
    """Open a (possibly compressed) layer and yield its decompressed bytes as a stream.

    The compression is detected from magic bytes. A stream passed in is not closed.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(path_or_stream, (str, Path)):
            try:
                raw: BinaryIO = stack.enter_context(open(path_or_stream, "rb"))
            except OSError as exc:
                raise StoreError(f"cannot open layer {path_or_stream}: {exc.strerror}") from exc
        else:
            raw = path_or_stream
        head = _read_exact(raw, MAGIC_LEN)
        kind = detect(head)
        src = io.BufferedReader(_Prefixed(head, raw), buffer_size=1 << 16)
        out: BinaryIO
        if kind == "gzip":
            out = io.BufferedReader(_GzipReadAhead(src), buffer_size=1 << 16)
        elif kind == "zstd":
            out = zstandard.ZstdDecompressor().stream_reader(
                src, read_across_frames=True, closefd=False)
        elif kind == "bzip2":
            out = bz2.BZ2File(src, "rb")  # type: ignore[assignment]
        elif kind == "xz":
            out = lzma.LZMAFile(src, "rb")  # type: ignore[assignment]
        else:
            out = src
        try:
            yield out
        finally:
            with contextlib.suppress(Exception):
                out.close()


DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error, gzip.BadGzipFile, EOFError, zstandard.ZstdError, OSError, lzma.LZMAError)


class Compressor(Protocol):
    """A one-pass compressor: bytes in, compressed bytes out."""

    def compress(self, data: bytes) -> bytes:
        """Compress more input (may return b"")."""

    def flush(self) -> bytes:
        """Finish the stream and return the remaining output."""

    def close(self) -> None:
        """Release resources without finishing (after an error)."""


GZIP_BLOCK = 1 << 20   # uncompressed bytes per independently deflated block
_DICT = 32 * 1024


def _deflate_block(data: bytes, zdict: bytes, level: int, final: bool) -> bytes:
    if zdict:
        c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY,
                             zdict)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return min(n, 4) if n > 1 else 0


class _Gzip:
    """Deterministic, parallel gzip (pigz's scheme) with Go's fixed header.

    The input is cut into fixed 1 MiB blocks, each deflated on a worker thread with the previous
    32 KiB as dictionary and ended with a sync flush, so the output is one valid deflate stream
    and identical whatever the number of threads. Header: mtime 0, no name, OS 255.
    """

    def __init__(self, level: int, *, workers: int | None = None) -> None:
        self._level = level
        self._crc = 0
        self._size = 0
        self._pending = bytearray()
        self._zdict = b""
        n = _workers() if workers is None else workers
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="gzip") if n else None
        self._inflight: deque[Future[bytes]] = deque()
        self._max_inflight = 2 * n
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        self._out = bytearray(b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + bytes([xfl, 255]))

    def _submit(self, block: bytes, final: bool) -> None:
        zdict, self._zdict = self._zdict, block[-_DICT:]
        if self._pool is None or (final and not self._inflight):
            self._out += _deflate_block(block, zdict, self._level, final)
            return
        self._inflight.append(self._pool.submit(_deflate_block, block, zdict, self._level, final))
        while len(self._inflight) > self._max_inflight:
            self._out += self._inflight.popleft().result()

    def _take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending += data
        while len(self._pending) >= GZIP_BLOCK:
            block = bytes(self._pending[:GZIP_BLOCK])
            del self._pending[:GZIP_BLOCK]
            self._submit(block, False)
        return self._take()

    def flush(self) -> bytes:
        self._submit(bytes(self._pending), True)
        self._pending.clear()
        while self._inflight:
            self._out += self._inflight.popleft().result()
        self.close()
        self._out += struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return self._take()

    def close(self) -> None:
        """Stop the worker threads (pending work is dropped)."""
        if self._pool is not None:
            for f in self._inflight:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None


class _Zstd:
    def __init__(self, level: int) -> None:
        self._c = zstandard.ZstdCompressor(level=level, threads=0).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()

    def close(self) -> None:
        pass


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def close(self) -> None:
        pass


def new_compressor(compression: str, level: int | None = None, *,
                   workers: int | None = None) -> Compressor:
    """A deterministic compressor for ``gzip`` (default level 6), ``zstd`` (3) or ``none``.

    ``workers``: gzip threads (default: up to 4 CPUs); the output does not depend on it.
    """
    if compression == "gzip":
        lv = 6 if level is None else level
        if not 1 <= lv <= 9:
            raise UsageError(f"gzip compression level {lv} is out of range 1..9")
        return _Gzip(lv, workers=workers)
    if compression == "zstd":
        lv = 3 if level is None else level
        if not 1 <= lv <= 22:
            raise UsageError(f"zstd compression level {lv} is out of range 1..22")
        return _Zstd(lv)
    if compression == "none":
        return _Identity()
    raise UsageError(f"layer compression {compression!r} cannot be written: "
                     f"use one of {', '.join(WRITABLE)}")
