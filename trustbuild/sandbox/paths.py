"""Path resolution inside a rootfs that never leaves it: symlinks resolve as the step sees them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["resolve_in_root", "find_executable", "DEFAULT_PATH"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_LINKS = 40


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """Host path of ``path`` as seen from inside ``root``; symlinks cannot point outside it.

    Absolute symlink targets are taken relative to ``root`` and ``..`` stops at ``root``,
    exactly as after a chroot. The result may not exist.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        cand = root.joinpath(*done, name)
        if not parts and not follow_last:
            done.append(name)
            break
        try:
            st = os.lstat(cand)
        except (FileNotFoundError, NotADirectoryError):
            done.append(name)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(cand)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(name)
    return root.joinpath(*done)


def _is_executable_file(p: Path) -> bool:
    try:
        st = os.stat(p)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def find_executable(root: Path, name: str, *, path_var: str, workdir: str = "/") -> str | None:
    """The in-root path ``execvp`` would run for ``name``, or None when there is none."""
    if "/" in name:
        full = name if name.startswith("/") else os.path.join(workdir, name)
        host = resolve_in_root(root, full)
        return full if _is_executable_file(host) else None
    for d in (path_var or DEFAULT_PATH).split(":"):
        d = d or "."
        full = os.path.join(d if d.startswith("/") else os.path.join(workdir, d), name)
        if _is_executable_file(resolve_in_root(root, full)):
            return full
    return None
