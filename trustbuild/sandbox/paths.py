"""``execvp``'s PATH search inside a rootfs, every path resolved as the step sees it
(``trustbuild._internal.inroot``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trustbuild._internal.inroot import resolve_in_root

__all__ = ["find_executable", "DEFAULT_PATH"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
