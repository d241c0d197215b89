"""This mount namespace's mount table (``/proc/self/mountinfo``), with nothing but ``os``:
the RUN helper reads it in every step and must start fast."""

from __future__ import annotations

__all__ = ["mount_table", "mount_points"]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_table(mountinfo: str = "/proc/self/mountinfo") -> list[tuple[str, list[str]]]:
    """``(mount point, per-mount options)`` of every mount of this namespace, in mount order."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [(_unescape(fields[4]), fields[5].split(","))
            for fields in (line.split() for line in lines) if len(fields) > 5]


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Every mount point of this mount namespace, as absolute paths."""
    return [point for point, _ in mount_table(mountinfo)]
