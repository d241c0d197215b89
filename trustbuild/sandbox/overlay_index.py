"""Overlay snapshots with the inodes index (``index=on``): keep lower hardlinks linked.

When a step writes through one name of a file that has several names in the rootfs (chmod,
chown, ``>>``), overlayfs copies that one name up. With the inodes index (``index=on``) the copy
is also linked into ``$workdir/index`` under the hex of the lower inode's file handle, and the
other lower names show the copied inode in the merged view, but they are not in the upper
directory. :func:`link_lower_aliases` puts them there, as hardlinks of the index entry, so that
the layer holds every name (tar hardlinks to the first one, as walk mode writes) and
``apply_upper`` leaves all the names linked in the rootfs.

A name replaced by the step (``sed -i``, ``mv new old``) is a new inode without an index entry,
so it stays unlinked from its old siblings, as on any filesystem.

``index=on`` has one side effect on the upper: a directory created in a directory that exists
in both layers is marked opaque (a lookup shortcut, since offline changes to the lower are not
allowed then). :func:`clear_new_dir_opaque` removes that marker where the rootfs has nothing at
the path, so the layer matches walk mode's (and the index=off upper) byte for byte.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Callable
from pathlib import Path

from trustbuild.sandbox.snapshot import _copy_meta

__all__ = ["link_lower_aliases", "clear_new_dir_opaque"]

_OVL_FB_HEADER = 21  # version, magic, len, flags, type, uuid[16]
_FILEID_INO32_GEN = 1


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


def _lower_inode(name: str, mount_fd: int) -> tuple[int, int] | None:
    """(inode, link count or 0 if unknown) of the lower file an index entry is named after."""
    try:
        fb = bytes.fromhex(name)
    except ValueError:
        return None
    if len(fb) <= _OVL_FB_HEADER or fb[1] != 0xFB or fb[2] != len(fb):
        return None
    ftype, fid = fb[4], fb[_OVL_FB_HEADER:]
    if len(fid) <= 128:
        fh = _FileHandle(len(fid), ftype, (ctypes.c_ubyte * 128)(*fid))
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.open_by_handle_at(mount_fd, ctypes.byref(fh), os.O_PATH | os.O_CLOEXEC)
        if fd >= 0:
            try:
                st = os.fstat(fd)
                return st.st_ino, st.st_nlink
            finally:
                os.close(fd)
    if ftype == _FILEID_INO32_GEN and len(fid) >= 8:  # ext4, xfs: (ino, generation)
        return int.from_bytes(fid[:4], "little"), 0
    return None


def _find_names(rootfs: Path, wanted: dict[int, int],
                exclude: Callable[[str], bool] | None) -> dict[int, list[str]]:
    """Every non-directory name under ``rootfs`` whose inode is in ``wanted`` (inode -> link
    count, 0 = unknown). Reads directories only (d_ino); stops once every link is found."""
    found: dict[int, list[str]] = {ino: [] for ino in wanted}
    left = sum(wanted.values()) if all(wanted.values()) else -1
    root_dev = os.lstat(rootfs).st_dev
    stack = [(str(rootfs), "")]
    while stack and left != 0:
        dpath, drel = stack.pop()
        try:
            it = os.scandir(dpath)
        except OSError:
            continue
        with it:
            for e in it:
                rel = drel + e.name
                if exclude is not None and exclude(rel):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, rel + "/"))
                elif e.inode() in found:
                    st = os.lstat(e.path)
                    if st.st_dev == root_dev and st.st_ino in found:
                        found[st.st_ino].append(rel)
                        left -= 1
    return found


def _opaque(path: str) -> bool:
    for prefix in ("trusted.overlay.", "user.overlay."):
        try:
            if os.getxattr(path, prefix + "opaque", follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _link_alias(entry: str, upper: Path, rootfs: Path, rel: str) -> bool:
    """Link ``entry`` at ``upper/rel`` unless the step hid or replaced that name."""
    parts = rel.split("/")
    udir, missing = str(upper), []
    for i, part in enumerate(parts[:-1]):
        udir = f"{udir}/{part}"
        try:
            st = os.lstat(udir)
        except FileNotFoundError:
            missing = parts[i:-1]
            break
        if not stat.S_ISDIR(st.st_mode) or _opaque(udir):
            return False  # deleted, replaced or opaque: the lower name is not visible
    target = f"{upper}/{rel}"
    if os.path.lexists(target):
        return False  # the step linked, replaced or deleted this name itself
    parent = target.rpartition("/")[0]
    if missing:
        keep = len(parts) - 1 - len(missing)  # components that exist in the upper
        top = "/".join([str(upper), *parts[:keep]])
        tst = os.lstat(top)
        d = top
        for part in missing:
            d = f"{d}/{part}"
            os.mkdir(d, 0o700)
        os.link(entry, target, follow_symlinks=False)
        for depth in range(len(parts) - 1, keep, -1):  # deepest first: mkdir changes mtimes
            r = rootfs / "/".join(parts[:depth])
            _copy_meta(str(r), "/".join([str(upper), *parts[:depth]]), os.lstat(r))
        os.utime(top, ns=(tst.st_atime_ns, tst.st_mtime_ns), follow_symlinks=False)
        return True
    pst = os.lstat(parent)
    os.link(entry, target, follow_symlinks=False)
    os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns), follow_symlinks=False)
    return True


def link_lower_aliases(upper: Path, work: Path, rootfs: Path, *,
                       exclude: Callable[[str], bool] | None = None) -> int:
    """Add the other rootfs names of every copied-up lower hardlink to ``upper``.

    ``work`` is the overlay's workdir (its ``index`` directory lists the copied-up lower
    hardlinks). New upper directories get the rootfs directory's metadata and existing ones keep
    their mtime, so the layer matches walk mode's. Returns the number of names added.
    """
    index = Path(work) / "index"
    try:
        names = os.listdir(index)
    except OSError:
        return 0  # index=off (the kernel fell back) or nothing indexed
    entries: dict[int, str] = {}
    wanted: dict[int, int] = {}
    mount_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            path = f"{index}/{name}"
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) or (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
                continue  # directory index (nfs_export) or whiteout: no visible aliases
            lower = _lower_inode(name, mount_fd)
            if lower is not None:
                entries[lower[0]] = path
                wanted[lower[0]] = lower[1]
    finally:
        os.close(mount_fd)
    if not entries:
        return 0
    added = 0
    for ino, rels in _find_names(Path(rootfs), wanted, exclude).items():
        for rel in sorted(rels):
            added += _link_alias(entries[ino], Path(upper), Path(rootfs), rel)
    return added


def clear_new_dir_opaque(upper: Path, rootfs: Path) -> int:
    """Drop the opaque marker of upper directories with nothing at their path in ``rootfs``
    (there is nothing to hide, so it only changes the layer). Returns how many were cleared."""
    cleared = 0
    stack = [(str(upper), str(rootfs))]
    while stack:
        udir, rdir = stack.pop()
        with os.scandir(udir) as it:
            for e in it:
                if not e.is_dir(follow_symlinks=False):
                    continue
                rpath = f"{rdir}/{e.name}"
                try:
                    rdir_here = stat.S_ISDIR(os.lstat(rpath).st_mode)
                except (FileNotFoundError, NotADirectoryError):
                    for prefix in ("trusted.overlay.", "user.overlay."):
                        try:
                            os.removexattr(e.path, prefix + "opaque", follow_symlinks=False)
                            cleared += 1
                        except OSError:
                            pass
                    continue  # its subdirectories were made in a new directory: never marked
                if rdir_here and not _opaque(e.path):
                    stack.append((e.path, rpath))
    return cleared
