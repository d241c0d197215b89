"""Deterministic layer tars, written in one streaming pass.

The tar stream goes through a diff_id hasher, a compressor, a digest hasher and into a temp file
next to ``dest`` (renamed into place by ``finish``): a layer is never held in memory.

Usage::

    with LayerWriter(tmp / "layer.tar.gz", mtime=source_date_epoch) as w:
        w.add_dir("app")
        w.add_path(ctx / "src", "app/src", uid=0, gid=0, recursive=True)
        w.add_whiteout("etc/motd")
        info = w.finish()
    manifest_layers.append(info.descriptor())

Format (see docs/layers.md): PAX (USTAR headers plus PAX records only when needed), entries in
the order added (recursive adds sorted by name), names relative without "./", directories with
a trailing "/", empty uname/gname, no atime/ctime, xattrs as ``SCHILY.xattr.*``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trustbuild._internal import idmap, tarutil
from trustbuild._internal.tarutil import OPAQUE_MARKER, WHITEOUT_PREFIX, XATTR_PREFIX
from trustbuild.errors import BuildError, StoreError
from trustbuild.oci.compression import media_type_for, new_compressor
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import CHUNK, Digest, Hasher

__all__ = ["LayerInfo", "LayerWriter", "fill_file", "write_overlay_upper"]

_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class LayerInfo:
    """A finished layer blob: where it is, its digest and size, and its diff_id."""

    path: Path
    digest: Digest
    size: int
    diff_id: Digest
    media_type: str

    def descriptor(self) -> Descriptor:
        """The manifest descriptor of this layer."""
        return Descriptor(self.media_type, self.digest, self.size)


def _arc(arcname: str) -> str:
    """A tar member name: relative, no "./", no trailing "/" (added for dirs by tarfile)."""
    cleaned = tarutil.clean_name(arcname)
    if not cleaned:
        raise BuildError(f"layer entry name {arcname!r} is empty or escapes the layer root")
    return cleaned


class LayerWriter:
    """Writes a deterministic layer tar; a context manager (``finish`` on clean exit).

    ``mtime`` set: every entry's mtime is clamped to at most it (SOURCE_DATE_EPOCH /
    --reproducible); entries added without an mtime then get exactly ``mtime``.
    """

    def __init__(self, dest: Path, *, compression: str = "gzip", level: int | None = None,
                 docker_media_types: bool = False, mtime: int | None = None) -> None:
        self.dest = Path(dest)
        self.compression = compression
        self.media_type = media_type_for(compression, docker=docker_media_types)
        self.mtime = mtime
        self._compressor = new_compressor(compression, level)
        self._tmp = self.dest.with_name(f".{self.dest.name}.{os.getpid()}.partial")
        try:
            self._file: BinaryIO | None = open(self._tmp, "wb")  # noqa: SIM115
        except OSError as exc:
            self._compressor.close()
            raise StoreError(f"layer {self.dest}: cannot create: {exc.strerror}") from exc
        self._diff = Hasher()
        self._blob = Hasher()
        self._buf = bytearray()
        self._inodes: dict[tuple[int, int], str] = {}
        self._info: LayerInfo | None = None
        self._entries = 0

    # -- the streaming pipeline -------------------------------------------------------------

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._drain(final=False)

    def _drain(self, *, final: bool) -> None:
        """Feed the compressor whole CHUNK-sized pieces (the rest too when ``final``), so its
        input, and thus its output, never depends on how the data was read."""
        n = len(self._buf) if final else len(self._buf) - len(self._buf) % CHUNK
        if not n:
            return
        with memoryview(self._buf) as mv:
            for i in range(0, n, CHUNK):
                piece = bytes(mv[i:min(i + CHUNK, n)])
                self._diff.update(piece)
                out = self._compressor.compress(piece)
                if out:
                    self._emit(out)
        del self._buf[:n]

    def _emit(self, out: bytes) -> None:
        assert self._file is not None
        self._blob.update(out)
        self._file.write(out)

    def _check_open(self) -> None:
        if self._file is None:
            raise BuildError(f"layer {self.dest}: writer is already finished or aborted")

    def _entry_mtime(self, actual: float | None) -> int:
        if actual is None:
            return self.mtime if self.mtime is not None else int(time.time())
        m = int(actual)
        return min(m, self.mtime) if self.mtime is not None else m

    def _header(self, info: tarfile.TarInfo) -> None:
        self._check_open()
        self._entries += 1
        self._write(tarutil.header_bytes(info))

    def _new(self, arcname: str, typ: bytes, *, mode: int, uid: int, gid: int,
             mtime: float | None) -> tarfile.TarInfo:
        info = tarutil.PaxInfo(_arc(arcname))
        info.type = typ
        info.mode = mode & 0o7777
        info.uid = uid
        info.gid = gid
        info.mtime = self._entry_mtime(mtime)
        info.uname = info.gname = ""
        return info

    def _copy_stream(self, src: BinaryIO, size: int, what: str) -> None:
        for chunk in _exact_chunks(src, size, f"layer {self.dest}: {what}"):
            self._write(chunk)
        pad = (-size) % _BLOCK
        if pad:
            self._write(b"\0" * pad)

    # -- public adders --------------------------------------------------------------------

    def add_path(self, src: Path, arcname: str, *, uid: int | None = None,
                 gid: int | None = None, mode: int | None = None, recursive: bool = False,
                 fill: Path | None = None) -> None:
        """Add a filesystem object (lstat: symlinks are not followed); dirs in sorted order.

        ``fill``: ``src`` is a regular file whose content is still to be copied from ``fill``;
        the bytes are read once and written both into ``src`` and into the layer (see
        :func:`fill_file`; the entry is what adding the filled file would give).
        """
        src = Path(src)
        try:
            st = os.lstat(src)
        except OSError as exc:
            raise BuildError(f"layer {self.dest}: cannot add {src}: {exc.strerror}") from exc
        self._add_stat(src, st, arcname, uid=uid, gid=gid, mode=mode, fill=fill)
        if recursive and stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(src))
            except OSError as exc:
                raise BuildError(f"layer {self.dest}: cannot list {src}: {exc.strerror}") from exc
            base = _arc(arcname)
            for name in names:
                self.add_path(src / name, f"{base}/{name}", uid=uid, gid=gid, mode=mode,
                              recursive=True)

    def _add_stat(self, src: Path, st: os.stat_result, arcname: str, *, uid: int | None,
                  gid: int | None, mode: int | None, fill: Path | None = None) -> None:
        fmt = stat.S_IFMT(st.st_mode)
        if uid is None or gid is None:
            owner = idmap.recorded_owner(src)  # a rootless build's unmapped owner
            if owner is not None:
                uid = owner[0] if uid is None else uid
                gid = owner[1] if gid is None else gid

        def new(typ: bytes) -> tarfile.TarInfo:
            return self._new(arcname, typ, mode=stat.S_IMODE(st.st_mode) if mode is None else mode,
                             uid=st.st_uid if uid is None else uid,
                             gid=st.st_gid if gid is None else gid, mtime=st.st_mtime)
        if fmt == stat.S_IFSOCK:
            return  # tar cannot represent sockets; Docker skips them too
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            first = self._inodes.get((st.st_dev, st.st_ino))
            if first is not None:
                info = new(tarfile.LNKTYPE)
                info.linkname = first
                self._add_xattrs(info, src)
                self._header(info)
                return
            self._inodes[(st.st_dev, st.st_ino)] = _arc(arcname)
        if fmt == stat.S_IFREG and fill is not None:
            info = new(tarfile.REGTYPE)
            self._add_xattrs(info, src)

            def header(size: int) -> None:
                info.size = size
                self._header(info)
            fill_file(fill, src, st, header=header, sink=self._write, what=str(fill))
            return
        if fmt == stat.S_IFREG:
            info = new(tarfile.REGTYPE)
            info.size = st.st_size
            self._add_xattrs(info, src)
            try:
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise BuildError(f"layer {self.dest}: cannot read {src}: {exc.strerror}") from exc
            with os.fdopen(fd, "rb", buffering=0) as f:
                self._header(info)
                self._copy_stream(f, st.st_size, str(src))
            return
        if fmt == stat.S_IFDIR:
            info = new(tarfile.DIRTYPE)
        elif fmt == stat.S_IFLNK:
            info = new(tarfile.SYMTYPE)
            info.linkname = os.readlink(src)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            typ = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
            info = new(typ)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif fmt == stat.S_IFIFO:
            info = new(tarfile.FIFOTYPE)
        else:
            raise BuildError(f"layer {self.dest}: {src} has an unsupported file type")
        self._add_xattrs(info, src)
        self._header(info)

    @staticmethod
    def _add_xattrs(info: tarfile.TarInfo, src: Path) -> None:
        try:
            names = os.listxattr(src, follow_symlinks=False)
        except OSError:
            return
        pax = dict(info.pax_headers)
        for name in sorted(names):
            if not tarutil.keep_xattr(name):
                continue
            try:
                value = os.getxattr(src, name, follow_symlinks=False)
            except OSError:
                continue
            pax[XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
        info.pax_headers = pax

    def add_dir(self, arcname: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0,
                mtime: int | None = None) -> None:
        """Add a directory entry (e.g. the parent directories a COPY needs)."""
        self._header(self._new(arcname, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid,
                               mtime=mtime))

    def add_bytes(self, arcname: str, data: bytes, *, mode: int = 0o644, uid: int = 0,
                  gid: int = 0, mtime: int | None = None) -> None:
        """Add a regular file with the given content."""
        info = self._new(arcname, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime)
        info.size = len(data)
        self._header(info)
        self._write(data)
        pad = (-len(data)) % _BLOCK
        if pad:
            self._write(b"\0" * pad)

    def add_stream(self, arcname: str, stream: BinaryIO, size: int, *, mode: int = 0o644,
                   uid: int = 0, gid: int = 0, mtime: int | None = None) -> None:
        """Add a regular file of exactly ``size`` bytes read from ``stream`` (streamed)."""
        info = self._new(arcname, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime)
        info.size = size
        self._header(info)
        self._copy_stream(stream, size, arcname)

    def add_symlink(self, arcname: str, target: str, *, uid: int = 0, gid: int = 0,
                    mtime: int | None = None) -> None:
        """Add a symlink; ``target`` is stored verbatim."""
        info = self._new(arcname, tarfile.SYMTYPE, mode=0o777, uid=uid, gid=gid, mtime=mtime)
        info.linkname = target
        self._header(info)

    def add_hardlink(self, arcname: str, target_arcname: str, *, uid: int = 0, gid: int = 0,
                     mode: int = 0o644, mtime: int | None = None) -> None:
        """Add a hardlink to an entry added earlier to this layer."""
        info = self._new(arcname, tarfile.LNKTYPE, mode=mode, uid=uid, gid=gid, mtime=mtime)
        info.linkname = _arc(target_arcname)
        self._header(info)

    def add_whiteout(self, arcname: str) -> None:
        """Mark ``arcname`` deleted: writes ``<dir>/.wh.<name>`` (mode 0600, mtime 0)."""
        parent, name = tarutil.split(_arc(arcname))
        self._marker(tarutil.join(parent, WHITEOUT_PREFIX + name))

    def add_opaque(self, dir_arcname: str) -> None:
        """Hide the lower layers' content of a directory: writes ``<dir>/.wh..wh..opq``."""
        self._marker(tarutil.join(_arc(dir_arcname), OPAQUE_MARKER))

    def _marker(self, name: str) -> None:
        info = tarutil.PaxInfo(name)
        info.type = tarfile.REGTYPE
        info.mode = 0o600
        info.mtime = 0
        self._header(info)

    # -- finishing ------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        """How many entries were added so far (0: an empty layer)."""
        return self._entries

    @property
    def info(self) -> LayerInfo | None:
        """The LayerInfo once finished."""
        return self._info

    def finish(self) -> LayerInfo:
        """Write the end-of-archive marker, flush, rename into ``dest``; idempotent."""
        if self._info is not None:
            return self._info
        self._check_open()
        assert self._file is not None
        try:
            self._write(b"\0" * (2 * _BLOCK))
            self._drain(final=True)
            tail = self._compressor.flush()
            if tail:
                self._emit(tail)
            self._file.close()  # no fsync: build blobs are temporary, published by rename
            self._file = None
            os.replace(self._tmp, self.dest)
        except OSError as exc:
            self.abort()
            raise StoreError(f"layer {self.dest}: cannot write: {exc.strerror}") from exc
        self._info = LayerInfo(self.dest, self._blob.digest(), self._blob.size,
                               self._diff.digest(), self.media_type)
        return self._info

    def abort(self) -> None:
        """Discard the partial blob."""
        self._compressor.close()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._info is None and self._file is not None:
            self.finish()

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None and not sys.is_finalizing():
            self.abort()


def _exact_chunks(src: BinaryIO, size: int, what: str) -> Iterator[bytes]:
    """``size`` bytes of ``src`` in chunks; a BuildError naming ``what`` if it ends sooner (a
    file that shrank while it was read)."""
    left = size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise BuildError(f"{what} shrank while it was being read "
                             f"({left} of {size} bytes missing)")
        left -= len(chunk)
        yield chunk


def fill_file(source: Path, dest: Path, before: os.stat_result, *,
              header: Callable[[int], None] | None = None,
              sink: Callable[[bytes], None] | None = None, what: str = "") -> None:
    """Copy ``source`` into the existing regular file ``dest`` (lstat ``before``), passing every
    chunk to ``sink`` too; ``header(size)`` is called first with the size being copied.

    ``dest`` keeps the mode and times it had (``before``): a file created with its final
    owner, mode and mtime and filled later ends up as if it had been written first. ``sink``
    gets exactly ``size`` bytes then the padding to a tar block, as a layer entry needs.
    """
    try:
        fin = open(source, "rb", buffering=0)  # noqa: SIM115
    except OSError as exc:
        raise BuildError(f"cannot read {source}: {exc.strerror}") from exc
    with fin:
        size = os.fstat(fin.fileno()).st_size
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise BuildError(f"cannot write {dest}: {exc.strerror}") from exc
        with os.fdopen(fd, "wb", buffering=0) as fout:
            if header is not None:
                header(size)
            for chunk in _exact_chunks(fin, size, what or str(source)):
                with memoryview(chunk) as mv:
                    done = 0
                    while done < len(chunk):
                        done += fout.write(mv[done:])
                if sink is not None:
                    sink(chunk)
            if sink is not None and size % _BLOCK:
                sink(b"\0" * ((-size) % _BLOCK))
            if stat.S_IMODE(os.fstat(fd).st_mode) != stat.S_IMODE(before.st_mode):
                os.fchmod(fd, stat.S_IMODE(before.st_mode))  # a write may drop setuid/setgid
            os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))


def _overlay_xattr(path: Path, name: str) -> bytes | None:
    for prefix in ("trusted.overlay.", "user.overlay."):
        try:
            return os.getxattr(path, prefix + name, follow_symlinks=False)
        except OSError:
            continue
    return None


def write_overlay_upper(upper: Path, writer: LayerWriter, *,
                        exclude: Callable[[str], bool] | None = None) -> None:
    """Add an overlayfs upper directory to ``writer`` as an OCI diff, in sorted order.

    A 0/0 character device is a whiteout (``.wh.<name>``); a directory marked opaque
    (``trusted.overlay.opaque`` or ``user.overlay.opaque`` = ``y``) is added followed by
    ``.wh..wh..opq``. ``exclude(arcname)`` skips an entry and everything below it. Uppers made
    with ``redirect_dir`` or ``metacopy`` are refused: mount with ``redirect_dir=off,metacopy=off``.
    """
    upper = Path(upper)

    def walk(d: Path, prefix: str) -> None:
        for name in sorted(os.listdir(d)):
            p = d / name
            arc = f"{prefix}{name}"
            if exclude is not None and exclude(arc):
                continue
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                writer.add_whiteout(arc)
                continue
            if stat.S_ISDIR(st.st_mode):
                if _overlay_xattr(p, "redirect") is not None:
                    raise BuildError(f"overlay upper {upper}: {arc} is a redirected directory; "
                                     "mount the overlay with redirect_dir=off")
                writer.add_path(p, arc)
                if _overlay_xattr(p, "opaque") == b"y":
                    writer.add_opaque(arc)
                walk(p, arc + "/")
                continue
            if stat.S_ISREG(st.st_mode) and _overlay_xattr(p, "metacopy") is not None:
                raise BuildError(f"overlay upper {upper}: {arc} is a metacopy-only file; "
                                 "mount the overlay with metacopy=off")
            writer.add_path(p, arc)

    walk(upper, "")
