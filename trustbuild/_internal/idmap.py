"""Owners in a user namespace: where the build runs and how an unmapped owner is recorded.

A rootless build (docs/rootless.md) runs in a user namespace. With a subordinate id range,
in-image ids 0..N are real ids on disk and ``chown`` just works; an id outside the map (every
id but 0 when there is no range: the single-id map) cannot be set (``EINVAL``). :func:`chown`
then records the owner in the ``user.trustbuild.owner`` xattr (``b"UID:GID"``) of a regular
file or directory, and the layer writer takes a file's owner from that record
(:func:`recorded_owner`). The record never leaves the machine: layers and snapshots skip it
(``tarutil.keep_xattr``) and extraction never takes it from a layer. Symlinks and special files
cannot carry ``user.*`` xattrs: they stay owned by root there.
"""

from __future__ import annotations

import errno
import functools
import os
import stat

__all__ = ["OWNER_XATTR", "in_user_namespace", "real_root", "chown", "recorded_owner",
           "copy_record"]

OWNER_XATTR = "user.trustbuild.owner"
_INIT_MAP = ("0", "0", "4294967295")
_NO_RECORD = (errno.ENODATA, errno.ENOTSUP, errno.EPERM, errno.ENOENT)


@functools.cache
def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            lines = f.read().split("\n")
    except OSError:
        return False
    rows = [line.split() for line in lines if line.strip()]
    return rows != [list(_INIT_MAP)]


def real_root() -> bool:
    """Root of the machine (not the root of a user namespace)."""
    return os.geteuid() == 0 and not in_user_namespace()


def _target(path: str | int | os.PathLike[str], dir_fd: int | None) -> str | int:
    if isinstance(path, int):
        return path
    if dir_fd is not None and not os.path.isabs(path):
        return f"/proc/self/fd/{dir_fd}/{os.fspath(path)}"
    return os.fspath(path)


def chown(path: str | int | os.PathLike[str], uid: int, gid: int, *,
          dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
    """``os.chown``; in a user namespace an owner it cannot map is recorded (see above)."""
    try:
        if dir_fd is None:
            os.chown(path, uid, gid, follow_symlinks=follow_symlinks)
        else:
            os.chown(path, uid, gid, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    except OSError as exc:
        if exc.errno != errno.EINVAL or not in_user_namespace():
            raise
        target = _target(path, dir_fd)
        st = os.stat(target, follow_symlinks=follow_symlinks)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return  # no user.* xattr on symlinks and devices: left owned by root
        # the file exists under the caller's id (0 here); the record carries the real owner
        os.chown(target, 0, 0, follow_symlinks=follow_symlinks)
        os.setxattr(target, OWNER_XATTR, f"{uid}:{gid}".encode(),
                    follow_symlinks=follow_symlinks)
        return
    if in_user_namespace():
        target = _target(path, dir_fd)
        try:
            os.removexattr(target, OWNER_XATTR, follow_symlinks=follow_symlinks)
        except OSError as exc:
            if exc.errno not in _NO_RECORD:
                raise


def recorded_owner(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The (uid, gid) :func:`chown` recorded for ``path`` (not followed), if any."""
    if not in_user_namespace():
        return None
    try:
        raw = os.getxattr(path, OWNER_XATTR, follow_symlinks=False)
    except OSError:
        return None
    uid, sep, gid = raw.decode("ascii", "replace").partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        return None
    return int(uid), int(gid)


def copy_record(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Carry an owner record from ``src`` to ``dst`` (a copy across filesystems)."""
    owner = recorded_owner(src)
    if owner is not None:
        os.setxattr(dst, OWNER_XATTR, f"{owner[0]}:{owner[1]}".encode(), follow_symlinks=False)
