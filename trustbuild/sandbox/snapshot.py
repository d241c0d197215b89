"""Snapshotters: what a RUN step changed, as an OCI layer diff.

- ``walk``: an lstat snapshot before and after (type, mode, owner, size, mtime, ctime for
  non-directories, inode, link count, link target, kept xattrs); a directory whose inode changed
  was replaced (opaque in the layer). ``DirPins`` keeps the before-snapshot's directories open
  until the after-snapshot, so the kernel cannot give a deleted directory's inode number to the
  one created in its place.
- ``full``: the same walk plus a sha256 of every regular file (Kaniko's safe default), without
  inode/ctime, so only real content or metadata changes count.
- ``overlay``: the step wrote to an overlayfs upper directory; ``apply_upper`` moves that
  upper onto the rootfs afterwards (whiteouts delete, opaque directories are emptied first).

``write_changes`` emits walk/full diffs in exactly the order ``write_overlay_upper`` emits an
upper (sorted names per directory, a directory before its opaque marker and its children), so
the three modes give the same layer for the same change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import resource
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trustbuild._internal import idmap
from trustbuild._internal.tarutil import keep_xattr
from trustbuild.oci.layer import LayerWriter

__all__ = ["Snapshot", "DirPins", "take_snapshot", "diff_snapshots", "Changes", "write_changes",
           "apply_upper", "step_nofile"]

Snapshot = dict[str, tuple[object, ...]]
_CHUNK = 1 << 20
_FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long): the inode generation


_nofile_soft: int | None = None  # the soft RLIMIT_NOFILE before DirPins raised it


def step_nofile() -> int | None:
    """The soft RLIMIT_NOFILE a RUN step must get back (None: never raised here)."""
    return _nofile_soft


def _raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one once (as Go programs do); the new soft."""
    global _nofile_soft
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _nofile_soft is None and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft
        _nofile_soft = soft
        return hard
    return soft


class DirPins:
    """Open descriptors on the directories of a before-snapshot, held until the after-snapshot.

    While a directory is open the kernel cannot free its inode, so a directory the step deletes
    and creates again at the same path always gets another inode number and is marked opaque,
    as in overlay mode. Without the pin the new directory often gets the old number at once
    (always on an overlay stage rootfs, which has no inode generations), and the layer would
    get whiteouts for the old children instead, differing from run to run. At most the free
    descriptors (less a reserve) are held: the soft RLIMIT_NOFILE is raised to the hard limit
    and the step gets its original limit back (``step_nofile``).
    """

    def __init__(self) -> None:
        soft = _raise_nofile()
        try:
            in_use = len(os.listdir("/proc/self/fd"))
        except OSError:
            in_use = 64
        self._room = max(0, soft - in_use - max(256, soft // 8))
        self._fds: list[int] = []

    def hold(self, fd: int) -> bool:
        """Keep ``fd`` open until ``close``; False (the caller closes it) when out of room."""
        if len(self._fds) >= self._room:
            return False
        self._fds.append(fd)
        return True

    def close(self) -> None:
        """Release every pin."""
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> DirPins:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _generation(path: str, pins: DirPins | None = None) -> int:
    """The inode generation (ext4, xfs...): tells a re-created directory from the old one when
    the filesystem reuses the inode number. 0 when unsupported (overlayfs). With ``pins`` the
    directory stays open (see ``DirPins``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        gen = int.from_bytes(fcntl.ioctl(fd, _FS_IOC_GETVERSION, b"\0" * 8)[:4], "little")
    except OSError:
        gen = 0
    if pins is None or not pins.hold(fd):
        os.close(fd)
    return gen


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        if keep_xattr(name):
            try:
                out.append((name, os.getxattr(path, name, follow_symlinks=False)))
            except OSError:
                continue
    return tuple(out)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def take_snapshot(root: Path, *, full: bool = False,
                  exclude: Callable[[str], bool] | None = None,
                  pins: DirPins | None = None) -> Snapshot:
    """Map every path under ``root`` (relative, no leading "/") to a comparable state tuple.

    Tuple layout: (file type, inode, rest...); for directories the first item is
    (S_IFDIR, inode generation). ``exclude(rel)`` skips a path and its subtree.
    Other mounted filesystems below ``root`` are not entered. ``pins`` (before a step) keeps
    every directory of ``root``'s filesystem open until it is closed after the step.
    """
    snap: Snapshot = {}
    root_dev = os.lstat(root).st_dev
    stack = [(str(root), "")]
    while stack:
        dpath, drel = stack.pop()
        try:
            it = os.scandir(dpath)
        except OSError:
            continue
        with it:
            for e in it:
                rel = f"{drel}{e.name}"
                if exclude is not None and exclude(rel):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                fmt = stat.S_IFMT(st.st_mode)
                xa = _xattrs(e.path)
                if fmt == stat.S_IFDIR:
                    same_fs = st.st_dev == root_dev
                    gen = _generation(e.path, pins if same_fs else None)
                    snap[rel] = ((fmt, gen), st.st_ino, st.st_mode,
                                 st.st_uid, st.st_gid, st.st_mtime_ns, xa)
                    if same_fs:
                        stack.append((e.path, rel + "/"))
                    continue
                link = os.readlink(e.path) if fmt == stat.S_IFLNK else ""
                if full:
                    digest = _sha256(e.path) if fmt == stat.S_IFREG else ""
                    snap[rel] = (fmt, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                 st.st_mtime_ns, st.st_nlink, link, xa, st.st_rdev, digest)
                else:
                    snap[rel] = (fmt, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                 st.st_mtime_ns, st.st_ctime_ns, st.st_nlink, link, xa,
                                 st.st_rdev)
    return snap


def _is_dir(entry: tuple[object, ...]) -> bool:
    return isinstance(entry[0], tuple)


def _same(a: tuple[object, ...], b: tuple[object, ...], *, full: bool) -> bool:
    if _is_dir(a) or _is_dir(b):
        return a == b  # same inode, generation and metadata: otherwise changed or replaced
    if full:
        return a[2:] == b[2:]
    return a == b


@dataclass
class Changes:
    """A diff: paths to add from the rootfs, deletions, directories to mark opaque."""

    added: set[str] = field(default_factory=set)
    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        """Nothing changed."""
        return not (self.added or self.whiteouts or self.opaque)


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _under(rel: str, dirs: set[str]) -> bool:
    """Whether a proper ancestor of ``rel`` is in ``dirs``."""
    p = _parent(rel)
    while p:
        if p in dirs:
            return True
        p = _parent(p)
    return False


def diff_snapshots(before: Snapshot, after: Snapshot, *, full: bool = False) -> Changes:
    """What changed from ``before`` to ``after``, with parent directories included."""
    ch = Changes()
    for rel, new in after.items():
        old = before.get(rel)
        if old is None:
            ch.added.add(rel)
        elif not _same(old, new, full=full):
            ch.added.add(rel)
            if _is_dir(new) and (not _is_dir(old) or old[:2] != new[:2]):
                ch.opaque.add(rel)
    # Everything below a replaced directory is new content, and a directory re-created below
    # it needs no marker of its own (overlayfs does not set one there either).
    if ch.opaque:
        ch.opaque = {rel for rel in ch.opaque if not _under(rel, ch.opaque)}
        for rel in after:
            p = _parent(rel)
            while p:
                if p in ch.opaque:
                    ch.added.add(rel)
                    break
                p = _parent(p)
    for rel in before:
        if rel in after:
            continue
        p = _parent(rel)
        if p and (p not in after or not _is_dir(after[p])):
            continue  # a deleted or replaced ancestor already hides it
        hidden = False
        q = p
        while q:
            if q in ch.opaque:
                hidden = True
                break
            q = _parent(q)
        if not hidden:
            ch.whiteouts.add(rel)
    for rel in list(ch.added) + list(ch.whiteouts):
        p = _parent(rel)
        while p and p not in ch.added:
            ch.added.add(p)
            p = _parent(p)
    return ch


def write_changes(root: Path, changes: Changes, writer: LayerWriter) -> None:
    """Add a diff to ``writer`` in the same order ``write_overlay_upper`` uses."""
    children: dict[str, list[str]] = {}
    for rel in changes.added | changes.whiteouts:
        parent, _, name = rel.rpartition("/")
        children.setdefault(parent, []).append(name)

    def walk(drel: str) -> None:
        for name in sorted(children.get(drel, ())):
            rel = f"{drel}/{name}" if drel else name
            if rel in changes.whiteouts:
                writer.add_whiteout(rel)
                continue
            writer.add_path(root / rel, rel)
            if rel in changes.opaque:
                writer.add_opaque(rel)
            if rel in children:
                walk(rel)

    walk("")


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _strip_overlay_xattrs(path: str) -> None:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            try:
                os.removexattr(path, name, follow_symlinks=False)
            except OSError:
                pass


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    idmap.copy_record(src, dst)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name, value in _xattrs(src):
        try:
            os.setxattr(dst, name, value, follow_symlinks=False)
        except OSError:
            pass
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _move(src: str, dst: str, st: os.stat_result, links: dict[int, str]) -> None:
    """Move one non-directory from the upper to the rootfs (rename, or copy across devices)."""
    try:
        os.rename(src, dst)
        _strip_overlay_xattrs(dst)
        return
    except OSError as exc:
        if exc.errno != 18:  # EXDEV
            raise
    if st.st_nlink > 1 and st.st_ino in links:
        os.link(links[st.st_ino], dst)
        return
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        with open(src, "rb") as fi, open(dst, "xb") as fo:
            shutil.copyfileobj(fi, fo, _CHUNK)
    elif fmt == stat.S_IFLNK:
        os.symlink(os.readlink(src), dst)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:
        return  # sockets are not carried over (tar cannot hold them either)
    _copy_meta(src, dst, st)
    if st.st_nlink > 1:
        links[st.st_ino] = dst


_OPAQUE_XATTR = "trusted.overlay.opaque"


def _strip_overlay_xattrs_tree(path: str, *, keep_opaque: bool) -> None:
    """Remove the step overlay's bookkeeping (origin, impure, ...) from ``path`` and below;
    with ``keep_opaque`` a directory keeps its opaque mark (it still hides lower content)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        _strip_overlay_xattrs(path)
        return
    opaque = keep_opaque and _is_opaque(path)
    _strip_overlay_xattrs(path)
    if opaque:
        os.setxattr(path, _OPAQUE_XATTR, b"y", follow_symlinks=False)
    for name in os.listdir(path):
        _strip_overlay_xattrs_tree(f"{path}/{name}", keep_opaque=True)


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def merge_upper(upper: Path, stage_upper: Path) -> None:
    """Fold a RUN step's overlay upper into the upper directory of the stage's overlay (not
    mounted meanwhile), by renames on one filesystem: the stage overlay then shows what
    :func:`apply_upper` would have written through it, without copying any file.

    Overlay rules, top down: a whiteout replaces whatever the stage upper had there and stays a
    whiteout (it still hides the stage's lower layers); an opaque directory replaces the stage
    upper's entry whole, keeping its opaque mark; another directory is merged into the stage
    upper's directory (made when missing; made opaque when a non-directory was there, which
    the step's overlay would have hidden); any other entry replaces the stage upper's. Only
    root-mode (``trusted.overlay.*``) overlays are merged this way.
    """

    def walk(sdir: str, udir: str) -> None:
        for name in sorted(os.listdir(sdir)):
            sp, up = f"{sdir}/{name}", f"{udir}/{name}"
            st = os.lstat(sp)
            try:
                ust: os.stat_result | None = os.lstat(up)
            except FileNotFoundError:
                ust = None
            if stat.S_ISDIR(st.st_mode) and not _is_opaque(sp):
                if ust is not None and stat.S_ISDIR(ust.st_mode):
                    walk(sp, up)
                else:
                    if ust is not None:
                        os.unlink(up)
                    os.mkdir(up, 0o700)
                    walk(sp, up)
                    if ust is not None:
                        os.setxattr(up, _OPAQUE_XATTR, b"y", follow_symlinks=False)
                _copy_meta(sp, up, st)
                continue
            if ust is not None:
                _remove(up)
            os.rename(sp, up)
            _strip_overlay_xattrs_tree(up, keep_opaque=True)

    walk(str(upper), str(stage_upper))


def apply_upper(upper: Path, rootfs: Path) -> None:
    """Make ``rootfs`` equal to the merged view: apply whiteouts, opaque dirs and new content."""
    links: dict[int, str] = {}

    def walk(udir: str, rdir: str) -> None:
        for name in sorted(os.listdir(udir)):
            up, rp = f"{udir}/{name}", f"{rdir}/{name}"
            st = os.lstat(up)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                _remove(rp)
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    rst = os.lstat(rp)
                    is_dir = stat.S_ISDIR(rst.st_mode)
                except FileNotFoundError:
                    rst, is_dir = None, False
                opaque = False
                for prefix in ("trusted.overlay.", "user.overlay."):
                    try:
                        opaque = opaque or os.getxattr(
                            up, prefix + "opaque", follow_symlinks=False) == b"y"
                    except OSError:
                        pass
                if rst is not None and (not is_dir or opaque):
                    _remove(rp)
                    is_dir = False
                if not is_dir:
                    os.mkdir(rp, 0o700)
                walk(up, rp)
                _copy_meta(up, rp, st)
                continue
            _remove(rp)
            _move(up, rp, st, links)

    walk(str(upper), str(rootfs))
