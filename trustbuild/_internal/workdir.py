"""Build work dirs: each held by a lock while its build lives; the ones a killed build left
behind are removed by the next build in the same place.

A build killed with SIGKILL (an OOM kill, a CI runner's hard timeout) cannot remove its work
dir, which can hold several root filesystems; on a reused runner they pile up in ``$TMPDIR``.
:func:`make_work_dir` therefore creates ``trustbuild-build-*/.trustbuild-owner`` and keeps an
exclusive ``flock`` on it until :func:`release`; the kernel drops the lock when the process
dies, however it dies. A new work dir sweeps its siblings: one of ours (same user, a real
directory, not a symlink) whose owner lock it can take has no live build and goes to a detached
``rm`` (:func:`trustbuild._internal.removal.remove_later`). A dir without the owner file (an
older trustbuild's, or one whose owner has not locked it yet) is left alone: the file appears
only once it is locked (written under another name, locked, then renamed).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from trustbuild._internal.removal import remove_later

__all__ = ["PREFIX", "OWNER", "make_work_dir", "release", "sweep_stale"]

PREFIX = "trustbuild-build-"
OWNER = ".trustbuild-owner"
_held: dict[str, int] = {}  # work dir -> fd of its locked owner file


def make_work_dir(parent: str | Path | None) -> Path:
    """A new ``trustbuild-build-*`` dir in ``parent`` (default: the temp dir), locked as this
    process's; stale siblings are handed to a detached ``rm``. Raises OSError."""
    work = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    pending = work / f"{OWNER}.{os.getpid()}"
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else can have it yet: never waits
        os.rename(pending, work / OWNER)
    except OSError:
        os.close(fd)
        raise
    _held[str(work)] = fd
    sweep_stale(work.parent, keep=work)
    return work


def release(work: Path) -> None:
    """Drop the lock of ``work`` (after it was removed or renamed aside); no-op if not held."""
    fd = _held.pop(str(work), None)
    if fd is not None:
        os.close(fd)


def sweep_stale(parent: Path, *, keep: Path | None = None) -> list[Path]:
    """Hand every work dir in ``parent`` whose owner is gone to a detached ``rm``; returns
    them. Never raises: a dir it cannot judge or rename is left where it is."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.geteuid()
    for entry in entries:
        if not entry.name.startswith(PREFIX) or (keep is not None and entry.name == keep.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or \
                    entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            fd = os.open(os.path.join(entry.path, OWNER),
                         os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # no owner file: not ours to judge
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its build is alive
            path = Path(entry.path)
            remove_later(path)  # renamed aside while we hold the lock
            removed.append(path)
        finally:
            os.close(fd)
    return removed
