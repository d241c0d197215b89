"""Files that appear whole or not at all: written to a temp file next to the destination and
renamed over it only when the writer finished; any failure removes the temp file.

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

__all__ = ["atomic_file"]


@contextmanager
def atomic_file(dest: Path, *, prefix: str = ".tmp-", suffix: str = "") -> Iterator[BinaryIO]:
    """A binary file to write ``dest``'s new content to; renamed to ``dest`` when the block
    ends without an exception (the directory must exist)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
