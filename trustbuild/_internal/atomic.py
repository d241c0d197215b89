"""Files that appear whole or not at all: written to a temp file next to the destination and
renamed over it only when the writer finished; any failure removes the temp file. The file
gets the mode ``open()`` would give it (0666 less the umask), not mkstemp's 0600, so an OCI layout
or archive is readable by the tools and users that read what ``cp`` or skopeo would write.

Example::

    with atomic_file(path) as f:
        f.write(data)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "creation_mode"]


def creation_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: 0666 without the process umask (read
    from /proc/self/status, so no thread ever sees a changed umask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextmanager
def atomic_file(dest: Path, *, prefix: str = ".tmp-", suffix: str = "") -> Iterator[BinaryIO]:
    """A binary file to write ``dest``'s new content to; renamed to ``dest`` when the block
    ends without an exception (the directory must exist)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, creation_mode())
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
