"""Path handling inside a stage's root filesystem: symlinks resolved as if ``rootfs`` were ``/``.

Every write the build does into a rootfs goes through :func:`secure_join`, so a symlink planted by
a base image or a RUN step (``/etc -> /host/etc``, ``../../..``) can never lead a write outside it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from trustbuild._internal import idmap
from trustbuild._internal.inroot import resolve_in_root
from trustbuild.errors import BuildError

__all__ = ["secure_join", "mkdir_all", "clean_abs", "container_path"]


def clean_abs(path: str, *, workdir: str = "/") -> str:
    """``path`` made absolute against ``workdir``, normalised (``..`` stops at ``/``)."""
    joined = posixpath.join(workdir or "/", path)
    norm = posixpath.normpath("/" + joined.lstrip("/"))
    return "/" if norm in ("//", "/.") else norm


def container_path(rootfs: Path, host: Path) -> str:
    """The container path (``/a/b``) of ``host``, a path inside ``rootfs`` ("/" for the root).

    Names are kept exactly: a top-level ``.npmrc`` is ``/.npmrc``.
    """
    rel = os.path.relpath(host, rootfs)
    if rel == ".":
        return "/"
    if rel == ".." or rel.startswith("../"):
        raise BuildError(f"{host} is not inside the image root {rootfs}")
    return "/" + rel.replace(os.sep, "/")


def secure_join(rootfs: Path, path: str, *, follow_last: bool = True) -> Path:
    """The host path of container ``path`` with every symlink resolved inside ``rootfs``.

    Components that do not exist yet are kept as written. With ``follow_last=False`` a final
    symlink is not followed (for lstat/replace of the link itself). The one in-root resolver
    (``trustbuild._internal.inroot``); a symlink loop is an UnsafePath (a BuildError).
    """
    return resolve_in_root(rootfs, clean_abs(path), follow_last=follow_last, what="the image")


def mkdir_all(rootfs: Path, path: str, *, uid: int = 0, gid: int = 0,
              mode: int = 0o755) -> list[str]:
    """``mkdir -p`` of container ``path`` inside ``rootfs``; new dirs get uid/gid/mode.

    A symlink on the way is followed inside ``rootfs``, and the missing parents of its target
    are created too (``/link -> /a/b/c`` with no ``/a``: ``/a``, ``/a/b``, ``/a/b/c``).
    Returns the container paths created, symlinks resolved (outermost first). A non-directory
    in the way is an error.
    """
    created: list[str] = []
    cur = "/"
    for part in [p for p in clean_abs(path).split("/") if p]:
        cur = posixpath.join(cur, part)
        host = secure_join(rootfs, cur)
        try:
            st = os.stat(host)
        except FileNotFoundError:
            created.extend(_mkdir_resolved(rootfs, host, uid=uid, gid=gid, mode=mode))
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"cannot create directory {cur}: a file is in the way")
    return created


def _mkdir_resolved(rootfs: Path, host: Path, *, uid: int, gid: int, mode: int) -> list[str]:
    """Create the missing directories of ``host``, a path secure_join resolved (no symlinks)."""
    created: list[str] = []
    prefix = "/"
    for part in [p for p in container_path(rootfs, host).split("/") if p]:
        prefix = posixpath.join(prefix, part)
        target = os.path.join(rootfs, prefix.lstrip("/"))
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            os.mkdir(target)
            idmap.chown(target, uid, gid, follow_symlinks=False)
            os.chmod(target, mode)
            created.append(prefix)
            continue
        if not stat.S_ISDIR(st.st_mode):  # a symlink here would have been resolved: refuse
            raise BuildError(f"cannot create directory {prefix}: a file is in the way")
    return created
