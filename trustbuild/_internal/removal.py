"""Deleting a finished build's work dir without making the build wait for it.

A cold build's work dir holds two or three root filesystems (tens of thousands of files); its
removal took 0.8-1.5 s after the image was pushed and tagged, time a CI job spent waiting for
nothing. :func:`remove_later` renames the directory aside (one rename, so the name is free and
no later build sees a half-deleted tree under it) and hands it to a detached
``rm -rf --one-file-system`` (it never crosses into a file system still mounted below it).

Not when pid 1 is this process, its parent or its grandparent (a container's entrypoint, or
the outer process of a rootless build under bwrap or tini): the PID namespace, and the ``rm``
with it, ends when pid 1 exits, which would leave the renamed tree behind. Then the directory
is deleted before :func:`remove_later` returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["remove_later", "restart_removal", "init_is_near", "TRASH_PREFIX"]

TRASH_PREFIX = ".trustbuild-removing-"


def remove_later(path: Path) -> None:
    """Delete ``path`` in a detached process that outlives this one; synchronously when pid 1
    is near (see the module), it cannot be renamed aside or ``rm`` is not there."""
    if init_is_near():
        shutil.rmtree(path, ignore_errors=True)
        return
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}")
    try:
        os.rename(path, trash)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return
    _spawn_rm(trash)


def restart_removal(trash: Path) -> None:
    """Delete ``trash``, a dir already renamed aside whose ``rm`` died: as :func:`remove_later`
    does, without the rename."""
    if init_is_near():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        _spawn_rm(trash)


def _spawn_rm(trash: Path) -> None:
    """A detached ``rm -rf --one-file-system`` of ``trash``; synchronous if it cannot start."""
    rm = shutil.which("rm")
    try:
        if rm is None:
            raise OSError("no rm")
        subprocess.Popen([rm, "-rf", "--one-file-system", "--", str(trash)],  # noqa: S603
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:
        shutil.rmtree(trash, ignore_errors=True)


def init_is_near() -> bool:
    """Whether pid 1 is this process, its parent or its grandparent."""
    pid = os.getpid()
    for _ in range(3):
        if pid == 1:
            return True
        ppid = parent_pid(pid)
        if ppid is None:
            return False
        pid = ppid
    return False


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/PID/stat``; None when it is gone or has none (0)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return ppid or None
