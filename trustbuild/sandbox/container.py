"""Kaniko mode support: are we in a container, and which paths a build in "/" must ignore."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["detect_container", "container_hints", "kaniko_ignore_list", "mount_points",
           "mount_table"]

_CGROUP_HINTS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio", "podman")


def container_hints(*, root: str = "/", environ: Mapping[str, str] | None = None) -> list[str]:
    """Why this looks like a container (empty: it does not)."""
    env = os.environ if environ is None else environ
    hints = []
    for marker in (".dockerenv", "run/.containerenv"):
        if os.path.exists(os.path.join(root, marker)):
            hints.append(f"/{marker} exists")
    if env.get("container"):
        hints.append(f"container={env['container']}")
    if env.get("KUBERNETES_SERVICE_HOST"):
        hints.append("KUBERNETES_SERVICE_HOST is set")
    try:
        with open(os.path.join(root, "proc/1/cgroup"), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    hints.extend(f"cgroup mentions {h}" for h in _CGROUP_HINTS if h in text)
    return hints


def detect_container() -> bool:
    """True inside a container: /.dockerenv, /run/.containerenv, $container, or cgroup hints."""
    return bool(container_hints())


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


def kaniko_ignore_list(*, extra: tuple[str, ...] | list[str] = (),
                       scratch: Path | None = None) -> list[str]:
    """Kaniko's ignore list: mount points (but "/"), /var/run, the executor's own files, extras."""
    paths = {p for p in mount_points() if p != "/"}
    paths.update({"/var/run", "/proc", "/sys", "/dev"})
    pkg = Path(__file__).resolve().parents[2]
    paths.add(str(pkg))
    paths.add(os.path.realpath(sys.prefix))
    if scratch is not None:
        paths.add(str(Path(scratch).resolve()))
    for p in extra:
        paths.add("/" + p.strip("/"))
    return sorted(p.rstrip("/") or "/" for p in paths)
