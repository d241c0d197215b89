"""Kaniko mode support: are we in a container, and which paths a build in "/" must ignore."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from trustbuild.sandbox.mountinfo import mount_points, mount_table

__all__ = ["detect_container", "container_hints", "kaniko_ignore_list", "mount_points",
           "mount_table", "IgnoreList", "unprotected_executor_files"]

_SHARED_OBJECT = re.compile(r"\.so(\.[0-9.]+)?$")
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


def kaniko_ignore_list(*, extra: tuple[str, ...] | list[str] = (),
                       scratch: Path | None = None, kaniko_dir: str | None = None,
                       ignore_var_run: bool = True) -> list[str]:
    """Kaniko's ignore list: mount points (but "/"), /proc, /sys, /dev, /etc/mtab, /var/run
    (with ``ignore_var_run``), the kaniko dir, the executor's own files (the trustbuild package,
    ``sys.prefix`` and ``sys.base_prefix``), ``scratch`` and ``extra``."""
    paths = {p for p in mount_points() if p != "/"}
    paths.update({"/proc", "/sys", "/dev", "/etc/mtab"})
    if ignore_var_run:
        paths.add("/var/run")
    pkg = Path(__file__).resolve().parents[2]
    paths.add(str(pkg))
    paths.add(os.path.realpath(sys.prefix))
    paths.add(os.path.realpath(sys.base_prefix))
    if kaniko_dir:
        paths.add(os.path.realpath(kaniko_dir))
    if scratch is not None:
        paths.add(str(Path(scratch).resolve()))
    for p in extra:
        paths.add("/" + p.strip("/"))
    return sorted(p.rstrip("/") or "/" for p in paths)


class IgnoreList:
    """Absolute paths a build in "/" never writes, deletes or snapshots (nor anything below)."""

    def __init__(self, paths: list[str] | tuple[str, ...] | set[str]) -> None:
        self.paths = frozenset("/" + p.strip("/") for p in paths if p.strip("/"))
        self._ancestors = frozenset(
            a for p in self.paths for a in _ancestors(p))

    def __call__(self, path: str) -> bool:
        """True when ``path`` (absolute) is on the list or below an entry."""
        p = "/" + path.strip("/")
        while p != "/":
            if p in self.paths:
                return True
            p = os.path.dirname(p)
        return False

    def holds_ignored(self, path: str) -> bool:
        """True when something on the list lies below ``path`` (so it must be kept)."""
        return "/" + path.strip("/") in self._ancestors

    def relative(self) -> set[str]:
        """The entries without the leading "/" (the form snapshot excluders use)."""
        return {p.lstrip("/") for p in self.paths}


def _ancestors(path: str) -> list[str]:
    out = []
    p = os.path.dirname(path)
    while p != "/":
        out.append(p)
        p = os.path.dirname(p)
    return out


def unprotected_executor_files(ignore: IgnoreList, maps: str = "/proc/self/maps") -> list[str]:
    """Files this process runs from (its executable and every mapped library) that are not on
    ``ignore``: a build in "/" would delete or replace them under the running executor."""
    files = {os.path.realpath(sys.executable)}
    try:
        with open(maps, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    name = fields[5].rstrip("\n")
                    if _SHARED_OBJECT.search(name) and not name.endswith(" (deleted)"):
                        files.add(name)
    except OSError:
        pass
    return sorted(f for f in files if not ignore(f))
