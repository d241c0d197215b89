"""Reading an image's ``/etc/passwd`` and ``/etc/group`` (bounded, tolerant of junk lines)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_rows", "MAX_DB_BYTES"]

MAX_DB_BYTES = 4 * 1024 * 1024


def read_rows(path: Path | str) -> list[list[str]]:
    """The colon-separated rows of a passwd/group file already resolved inside a rootfs.

    A missing or unreadable file has no rows; comments and empty lines are skipped; at most
    ``MAX_DB_BYTES`` are read.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DB_BYTES)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]
