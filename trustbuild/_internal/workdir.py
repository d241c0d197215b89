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
only once it is locked (written under another name, locked, then renamed). A
``.trustbuild-removing-trustbuild-build-*`` dir more than an hour old is a detached ``rm`` that
was killed (a container or a CI job's cgroup ending); the sweep starts a new one on it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from trustbuild._internal.removal import TRASH_PREFIX, remove_later, restart_removal

__all__ = ["PREFIX", "OWNER", "make_work_dir", "release", "remove_work_dir", "sweep_stale"]

PREFIX = "trustbuild-build-"
OWNER = ".trustbuild-owner"
TRASH_MAX_AGE = 3600.0  # seconds: a removal that has not touched its top dir for this long died
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


def remove_work_dir(work: Path, *, later: bool = False) -> None:
    """Delete ``work`` (now, or by a detached ``rm`` when ``later``), then drop its lock."""
    if later:
        remove_later(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    release(work)


def release(work: Path) -> None:
    """Drop the lock of ``work`` (after it was removed or renamed aside); no-op if not held."""
    fd = _held.pop(str(work), None)
    if fd is not None:
        os.close(fd)


def sweep_stale(parent: Path, *, keep: Path | None = None) -> list[Path]:
    """Hand every work dir in ``parent`` whose owner is gone, and every removal that died, to
    a detached ``rm``; returns them. Never raises: a dir it cannot judge or rename is left
    where it is."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.geteuid()
    for entry in entries:
        trash = entry.name.startswith(TRASH_PREFIX + PREFIX)
        if not (trash or entry.name.startswith(PREFIX)) or \
                (keep is not None and entry.name == keep.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
                continue
            if trash:
                if time.time() - st.st_mtime > TRASH_MAX_AGE:
                    restart_removal(Path(entry.path))
                    removed.append(Path(entry.path))
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
