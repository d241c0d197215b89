"""Deleting a finished build's work dir without making the build wait for it.

A cold build's work dir holds two or three root filesystems (tens of thousands of files); its
removal took 0.8-1.5 s after the image was pushed and tagged, time a CI job spent waiting for
nothing. :func:`remove_later` renames the directory aside (one rename, so the name is free and
no later build sees a half-deleted tree under it) and hands it to a detached
``rm -rf --one-file-system`` (it never crosses into a file system still mounted below it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["remove_later", "TRASH_PREFIX"]

TRASH_PREFIX = ".trustbuild-removing-"


def remove_later(path: Path) -> None:
    """Delete ``path`` in a detached process that outlives this one; synchronously when it
    cannot be renamed aside or ``rm`` is not there."""
    rm = shutil.which("rm")
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}")
    try:
        if rm is None:
            raise OSError("no rm")
        os.rename(path, trash)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        subprocess.Popen([rm, "-rf", "--one-file-system", "--", str(trash)],  # noqa: S603
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:
        shutil.rmtree(trash, ignore_errors=True)
