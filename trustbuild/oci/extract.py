"""Safe extraction of untrusted layer tars into a rootfs, with OCI whiteouts.

Every path is resolved as a chroot would by the one in-root resolver
(``trustbuild._internal.inroot``, ``openat``-style: ``dir_fd`` + ``O_NOFOLLOW``): symlinks met on
the way are followed *inside* the rootfs (an absolute target restarts at the rootfs, ".." stops
at it), the last component is never followed. Nothing is written or resolved outside the rootfs.

Usage::

    stats = extract_layer(blob_path, rootfs, diff_id=expected_diff_id)
    for info in iter_layer_entries(blob_path): ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from trustbuild._internal import idmap, tarutil
from trustbuild._internal.dirworkers import DirWorkers, TaskFailed
from trustbuild._internal.inroot import DIR_FLAGS, RootDir
from trustbuild._internal.tarutil import OPAQUE_MARKER, WHITEOUT_PREFIX, XATTR_PREFIX
from trustbuild.errors import BuildError, DigestMismatch, StoreError, UnsafePath
from trustbuild.oci.compression import DECOMPRESS_ERRORS, open_decompressed
from trustbuild.oci.digest import CHUNK, Digest, Hasher

__all__ = ["ExtractStats", "extract_layer", "iter_layer_entries", "iter_layer_files",
           "flatten_layers"]

_AUFS_META = ".wh..wh."
_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, *DECOMPRESS_ERRORS)


@dataclass
class ExtractStats:
    """What an extraction did."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    devices: int = 0
    devices_skipped: int = 0
    whiteouts: int = 0
    bytes: int = 0
    xattrs_skipped: int = 0
    diff_id: Digest | None = None
    skipped: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (hardlink, target), relative


class _HashingReader:
    """Hashes everything read through it (the uncompressed stream = the diff_id)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._s = stream
        self.hasher = Hasher()

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        self.hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _describe(blob: Path | BinaryIO) -> str:
    src = str(blob) if isinstance(blob, (str, Path)) else getattr(blob, "name", "<stream>")
    return f"layer {src}"


@contextlib.contextmanager
def _open_tar(blob: Path | BinaryIO, what: str) -> Iterator[tuple[tarfile.TarFile, _HashingReader]]:
    with open_decompressed(blob) as raw:
        reader = _HashingReader(raw)
        try:
            tf = tarfile.open(fileobj=reader, mode="r|", tarinfo=tarutil.BoundedInfo,  # type: ignore[call-overload]
                              errors="surrogateescape")
        except _READ_ERRORS as exc:
            raise StoreError(f"{what}: not a readable tar: {exc}") from exc
        with tf:
            yield tf, reader


def iter_layer_files(blob: Path | BinaryIO) -> Iterator[tuple[tarfile.TarInfo, BinaryIO | None]]:
    """Stream (entry, content reader or None) pairs; a reader is valid until the next pair."""
    what = _describe(blob)
    with _open_tar(blob, what) as (tf, _):
        try:
            for info in tf:
                yield info, (tf.extractfile(info) if info.isreg() else None)  # type: ignore[misc]
        except _READ_ERRORS as exc:
            raise StoreError(f"{what}: corrupt tar: {exc}") from exc


def iter_layer_entries(blob: Path | BinaryIO) -> Iterator[tarfile.TarInfo]:
    """Stream the entries of a (possibly compressed) layer tar."""
    for info, _ in iter_layer_files(blob):
        yield info


def flatten_layers(blobs: list[Path], dest: Path, **kw: object) -> None:
    """Extract layers in order into ``dest`` (created if missing)."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    for blob in blobs:
        extract_layer(blob, dest, **kw)  # type: ignore[arg-type]


class _Unsafe(Exception):
    """An entry that would leave the rootfs or is otherwise hostile."""


class _Root(RootDir):
    """The rootfs as a RootDir, with a cache of parent directory fds."""

    def __init__(self, rootfs: Path, *, follow: bool = True) -> None:
        super().__init__(rootfs, follow=follow, what="the rootfs")
        self._cache: dict[str, int] = {}

    def close(self) -> None:
        self.invalidate()
        super().close()

    def invalidate(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def _dir(self, rel: str, create: bool) -> int:
        """A cache-owned fd of directory ``rel``: valid until the next call or invalidate()."""
        if not rel:
            return self.fd
        fd = self._cache.get(rel)
        if fd is not None:
            return fd
        gp, base = tarutil.split(rel)
        fd = self.open_dir(base, start=self._dir(gp, create), create=create)
        if len(self._cache) >= 512:
            self.invalidate()
        self._cache[rel] = fd
        return fd

    def parent(self, rel: str, *, create: bool = True) -> int:
        """A new fd (the caller closes it) of the directory holding ``rel``."""
        return os.dup(self._dir(tarutil.split(rel)[0], create))


def _lstat(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


_ASYNC_MAX_FILE = 1 << 20  # files up to this size are written on DirWorkers threads


class _Extractor:
    def __init__(self, rootfs: Path, what: str, *, allow_devices: bool, same_owner: bool,
                 whiteouts: bool, exclude: Callable[[str], bool] | None = None,
                 follow_symlinks: bool = True, fifos: bool = True, xattrs: bool = True) -> None:
        self.root = _Root(rootfs, follow=follow_symlinks)
        self.fifos = fifos
        self.xattrs = xattrs
        self.rootfs = Path(rootfs)
        self.exclude = exclude
        self.whiteouts = whiteouts
        self.what = what
        # no device nodes in a user namespace (mknod needs CAP_MKNOD of the initial one)
        self.allow_devices = allow_devices and not idmap.in_user_namespace()
        self.same_owner = same_owner
        self.stats = ExtractStats()
        self.layer_paths: set[str] = set()      # entries of this layer (not whiteouts)
        self.layer_ancestors: set[str] = set()  # their ancestors
        self.dir_meta: dict[str, tuple[int, int]] = {}
        self.writers: DirWorkers | None = None  # small files, symlinks; started at the first
        self.pending_links: set[str] = set()  # symlinks submitted since the last wait
        self._stats_lock = threading.Lock()

    def _settle(self) -> None:
        """Wait for the writer threads (before an operation that could meet a pending file)."""
        if self.writers is not None:
            self.writers.wait()
            self.pending_links.clear()

    def _through_pending_link(self, rel: str) -> bool:
        """Whether a parent of ``rel`` (or a hardlink's target) may be a symlink not made yet."""
        if not self.pending_links:
            return False
        parent = tarutil.split(rel)[0]
        while parent:
            if parent in self.pending_links:
                return True
            parent = tarutil.split(parent)[0]
        return False

    def close(self) -> None:
        """Stop the writer threads and release the rootfs."""
        try:
            if self.writers is not None:
                self.writers.close()
        finally:
            self.root.close()

    # -- removal --------------------------------------------------------------------------

    def _remove(self, dfd: int, name: str, st: os.stat_result) -> None:
        self._settle()
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.root.invalidate()
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)

    def _prune(self, dfd: int, name: str, rel: str) -> None:
        """Remove lower content at ``rel`` except what this layer wrote."""
        st = _lstat(dfd, name)
        if st is None or self._excluded_at(dfd, name):
            return
        keep = rel in self.layer_paths or rel in self.layer_ancestors
        if not keep:
            self._remove(dfd, name, st)
            return
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
            try:
                for child in sorted(os.listdir(sub)):
                    self._prune(sub, child, tarutil.join(rel, child))
            finally:
                os.close(sub)

    def _excluded(self, rel: str) -> bool:
        """Whether ``rel`` (as written, or with its parents' symlinks resolved) is left alone."""
        if self.exclude is None:
            return False
        clean = tarutil.clean_name(rel)
        if clean is None or self.exclude(os.path.join(str(self.rootfs), clean)):
            return clean is not None
        parent, tail = tarutil.split(clean)[0], [tarutil.split(clean)[1]]
        while True:
            try:
                fd = self.root._dir(parent, False)
                break
            except (FileNotFoundError, NotADirectoryError):
                parent, base = tarutil.split(parent)
                tail.insert(0, base)
        return self.exclude(os.path.join(os.readlink(f"/proc/self/fd/{fd}"), *tail))

    def _excluded_at(self, dfd: int, name: str) -> bool:
        if self.exclude is None:
            return False
        return self.exclude(os.path.join(os.readlink(f"/proc/self/fd/{dfd}"), name))

    # -- entries --------------------------------------------------------------------------

    def entry(self, info: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        rel = tarutil.clean_name(info.name)
        if rel is None:
            raise _Unsafe("name escapes the rootfs with '..'")
        if len(rel.encode("utf-8", "surrogateescape")) > tarutil.MAX_PATH:
            raise _Unsafe("name longer than PATH_MAX")
        self.stats.entries += 1
        parent, base = tarutil.split(rel)
        if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
            if rel.startswith(_AUFS_META) or (base.startswith(_AUFS_META)
                                              and base != OPAQUE_MARKER):
                self.stats.skipped.append(rel)  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
                return
            self._whiteout(rel, parent, base)
            return
        if self.whiteouts and rel.startswith(_AUFS_META):
            self.stats.skipped.append(rel)
            return
        if not rel:
            self._meta_root(info)
            return
        if self.writers is not None:
            self.writers.check()
            if self.writers.busy(rel) or info.islnk() or self._through_pending_link(rel):
                self._settle()  # the same path again, or a link to a file maybe pending
        if self._excluded(rel) or (info.islnk() and self._excluded(info.linkname)):
            self.stats.skipped.append(rel)
            return
        if (info.ischr() or info.isblk()) and not self.allow_devices:
            self.stats.devices_skipped += 1
            self.stats.skipped.append(rel)
            return
        if info.isfifo() and not self.fifos:
            self.stats.skipped.append(rel)
            return
        self.layer_paths.add(rel)
        p = parent
        while p and p not in self.layer_ancestors:
            self.layer_ancestors.add(p)
            p = tarutil.split(p)[0]
        dfd = self.root.parent(rel)
        try:
            self._place(dfd, rel, base, info, tf)
        finally:
            os.close(dfd)

    def _whiteout(self, rel: str, parent: str, base: str) -> None:
        self._settle()
        self.stats.whiteouts += 1
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise _Unsafe("invalid whiteout name")
        if self._excluded(tarutil.join(parent, victim)):
            self.stats.skipped.append(rel)
            return
        try:
            dfd = self.root.parent(rel, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide
        try:
            if base == OPAQUE_MARKER:
                for child in sorted(os.listdir(dfd)):
                    self._prune(dfd, child, tarutil.join(parent, child))
            else:
                self._prune(dfd, victim, tarutil.join(parent, victim))
        finally:
            os.close(dfd)

    def _place(self, dfd: int, rel: str, base: str, info: tarfile.TarInfo,
               tf: tarfile.TarFile) -> None:
        old = _lstat(dfd, base)
        if info.isdir():
            if old is not None and not stat.S_ISDIR(old.st_mode):
                self._remove(dfd, base, old)
                old = None
            if old is None:
                os.mkdir(base, 0o700, dir_fd=dfd)
            fd = os.open(base, DIR_FLAGS, dir_fd=dfd)
            try:
                self._owner_xattrs(fd, info)
            finally:
                os.close(fd)
            self.dir_meta[rel] = (info.mode & 0o7777, int(info.mtime))
            self.stats.dirs += 1
            return
        if old is not None:
            self._remove(dfd, base, old)
        if info.isreg():
            self._file(dfd, rel, base, info, tf)
        elif info.issym():
            self._submit(dfd, rel, lambda fd: self._write_symlink(fd, base, info))
            self.pending_links.add(rel)  # later entries must not resolve through it before
            self.stats.symlinks += 1
        elif info.islnk():
            self._hardlink(dfd, rel, base, info)
        elif info.ischr() or info.isblk() or info.isfifo():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(info.devmajor, info.devminor), dir_fd=dfd)
            fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            try:
                self._owner_xattrs(fd, info, path_fd=True)
                os.chmod(f"/proc/self/fd/{fd}", info.mode & 0o7777)
                os.utime(f"/proc/self/fd/{fd}", (info.mtime, info.mtime))
            finally:
                os.close(fd)
            if not info.isfifo():
                self.stats.devices += 1
        else:
            raise _Unsafe(f"unsupported tar entry type {info.type!r}")

    def _file(self, dfd: int, rel: str, base: str, info: tarfile.TarInfo,
              tf: tarfile.TarFile) -> None:
        src = tf.extractfile(info)
        assert src is not None
        self.stats.files += 1
        if info.size <= _ASYNC_MAX_FILE:
            data = src.read(info.size)
            if len(data) != info.size:
                raise tarfile.ReadError(f"unexpected end of data in {rel!r}")
            self.stats.bytes += len(data)
            self._submit(dfd, rel, lambda fd: self._write_file(fd, base, info, data),
                         size=len(data))
            return
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            while chunk := src.read(CHUNK):
                _write_all(fd, chunk)
                self.stats.bytes += len(chunk)
            self._file_meta(fd, info)
        finally:
            os.close(fd)

    def _submit(self, dfd: int, rel: str, task: Callable[[int], None], *, size: int = 0) -> None:
        """Run ``task(fd)`` on a writer thread with its own dup of the directory fd ``dfd``
        (``size``: bytes the task holds, for the read-ahead bound)."""
        if self.writers is None:
            self.writers = DirWorkers(name="extract-writer")
        task_fd = os.dup(dfd)
        self.writers.submit(rel, tarutil.split(rel)[0], lambda: task(task_fd), size=size,
                            cleanup=lambda: os.close(task_fd))

    def _write_symlink(self, dfd: int, base: str, info: tarfile.TarInfo) -> None:
        os.symlink(info.linkname, base, dir_fd=dfd)
        self._link_meta(dfd, base, info)

    def _write_file(self, dfd: int, base: str, info: tarfile.TarInfo, data: bytes) -> None:
        """One small file (on a writer thread): created in ``dfd``, written, owner and mode."""
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            if data:
                _write_all(fd, data)
            self._file_meta(fd, info)
        finally:
            os.close(fd)

    def _file_meta(self, fd: int, info: tarfile.TarInfo) -> None:
        self._owner_xattrs(fd, info)
        os.fchmod(fd, info.mode & 0o7777)
        os.utime(fd, (info.mtime, info.mtime))

    def _hardlink(self, dfd: int, rel: str, base: str, info: tarfile.TarInfo) -> None:
        target = tarutil.clean_name(info.linkname)
        if target is None:
            raise _Unsafe(f"hardlink target {info.linkname!r} escapes the rootfs")
        if not target:
            raise _Unsafe(f"hardlink target {info.linkname!r} is the root directory")
        try:
            tdfd = self.root.parent(target, create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise _Unsafe(f"hardlink target {info.linkname!r} does not exist") from None
        try:
            _, tbase = tarutil.split(target)
            tst = _lstat(tdfd, tbase)
            if tst is None:
                raise _Unsafe(f"hardlink target {info.linkname!r} does not exist")
            if stat.S_ISDIR(tst.st_mode):
                raise _Unsafe(f"hardlink target {info.linkname!r} is a directory")
            if stat.S_ISLNK(tst.st_mode) and not self.root.follow:
                raise _Unsafe(f"hardlink target {info.linkname!r} is a symlink")
            os.link(tbase, base, src_dir_fd=tdfd, dst_dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(tdfd)
        self.stats.links.append((rel, target))
        self.stats.hardlinks += 1

    def _link_meta(self, dfd: int, base: str, info: tarfile.TarInfo) -> None:
        if self.same_owner:
            idmap.chown(base, info.uid, info.gid, dir_fd=dfd, follow_symlinks=False)
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        try:
            self._xattrs(f"/proc/self/fd/{fd}", info, follow=True)  # the magic link -> the symlink
        finally:
            os.close(fd)
        os.utime(base, (info.mtime, info.mtime), dir_fd=dfd, follow_symlinks=False)

    def _owner_xattrs(self, fd: int, info: tarfile.TarInfo, *, path_fd: bool = False) -> None:
        target: int | str = f"/proc/self/fd/{fd}" if path_fd else fd
        if self.same_owner:
            idmap.chown(target, info.uid, info.gid)
        self._xattrs(target, info, follow=True)

    def _xattrs(self, target: int | str, info: tarfile.TarInfo, *, follow: bool) -> None:
        if not self.xattrs:
            return
        for key, value in info.pax_headers.items():
            if not key.startswith(XATTR_PREFIX):
                continue
            name = key[len(XATTR_PREFIX):]
            if name.startswith(("trusted.overlay.", "user.overlay.", "security.selinux",
                                idmap.OWNER_XATTR)):
                continue
            try:
                os.setxattr(target, name, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=follow)
            except OSError:
                with self._stats_lock:  # writer threads count here too
                    self.stats.xattrs_skipped += 1

    def _meta_root(self, info: tarfile.TarInfo) -> None:
        if info.isdir():
            if self.same_owner:
                idmap.chown(self.root.fd, info.uid, info.gid)
            self.dir_meta[""] = (info.mode & 0o7777, int(info.mtime))

    def finish(self) -> None:
        """Apply directory modes and mtimes last (writing into a dir changes its mtime)."""
        self._settle()
        if self.writers is not None:
            self.writers.check()
        self.root.invalidate()
        for rel in sorted(self.dir_meta, key=lambda r: -r.count("/")):
            mode, mtime = self.dir_meta[rel]
            try:
                if rel:
                    dfd = self.root.parent(rel, create=False)
                    try:
                        fd = os.open(tarutil.split(rel)[1], DIR_FLAGS, dir_fd=dfd)
                    finally:
                        os.close(dfd)
                else:
                    fd = os.dup(self.root.fd)
            except OSError:
                continue  # removed or replaced later in the layer
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def _where(info: tarfile.TarInfo | None) -> str:
    return f"entry {info.name!r}: " if info is not None else ""


def _write_all(fd: int, data: bytes) -> None:
    mv = memoryview(data)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def extract_layer(blob: Path | BinaryIO, rootfs: Path, *, media_type: str | None = None,
                  allow_devices: bool = True, same_owner: bool = True,
                  diff_id: Digest | None = None, what: str | None = None,
                  whiteouts: bool = True,
                  exclude: Callable[[str], bool] | None = None,
                  follow_symlinks: bool = True, fifos: bool = True,
                  xattrs: bool = True) -> ExtractStats:
    """Extract a layer (compression detected by magic) into ``rootfs``, applying whiteouts.

    ``diff_id`` given: the uncompressed stream must hash to it (DigestMismatch otherwise; the
    rootfs is then partly written and must be discarded). ``media_type`` is informational: the
    magic bytes decide. ``same_owner=False`` leaves files owned by the caller;
    ``whiteouts=False`` extracts ``.wh.*`` names as plain files (an ADD archive, not a layer).
    ``what`` names the blob in errors (default ``layer <path>``). ``exclude(path)`` (an absolute
    host path, checked as written and with symlinks resolved) names paths never written nor
    removed (container mode's ignore list). ``follow_symlinks=False`` refuses an entry (or a
    hardlink target) whose parents go through a symlink, ``fifos=False`` skips FIFOs and
    ``xattrs=False`` ignores PAX xattrs (a build context). Unsafe entries raise BuildError,
    unreadable tars StoreError.
    """
    del media_type
    name = what or _describe(blob)
    try:
        ex = _Extractor(Path(rootfs), name, allow_devices=allow_devices, same_owner=same_owner,
                        whiteouts=whiteouts, exclude=exclude, follow_symlinks=follow_symlinks,
                        fifos=fifos, xattrs=xattrs)
    except OSError as exc:
        raise BuildError(f"{name}: cannot open rootfs {rootfs}: {exc.strerror}") from exc
    info: tarfile.TarInfo | None = None
    try:
        with _open_tar(blob, name) as (tf, reader):
            try:
                for info in tf:
                    ex.entry(info, tf)
                info = None
                ex.finish()
                reader.drain()
            except (_Unsafe, UnsafePath) as exc:
                raise BuildError(f"{name}: {_where(info)}{exc}") from None
            except TaskFailed as exc:
                err = exc.error
                if not isinstance(err, OSError):
                    raise err from None
                raise BuildError(f"{name}: entry {exc.key!r}: {err.strerror or err}") from err
            except OSError as exc:
                if exc.errno is None:  # raised by a decompressor
                    raise StoreError(f"{name}: corrupt layer: {exc}") from exc
                raise BuildError(f"{name}: {_where(info)}{exc.strerror}") from exc
            except _READ_ERRORS as exc:
                raise StoreError(f"{name}: corrupt tar: {exc}") from exc
            except (ValueError, OverflowError, UnicodeError) as exc:
                raise BuildError(f"{name}: {_where(info)}invalid entry: {exc}") from exc
            ex.stats.diff_id = reader.hasher.digest()
    finally:
        ex.close()
    if diff_id is not None and ex.stats.diff_id != diff_id:
        raise DigestMismatch(f"{name}: uncompressed content has digest {ex.stats.diff_id}, "
                             f"expected diff_id {diff_id}")
    return ex.stats
