"""Layers the build writes itself (COPY, ADD, WORKDIR): exactly the given paths and parents."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path

from trustbuild.builder.config import LayerRef
from trustbuild.builder.rootfs import clean_abs, container_path, secure_join
from trustbuild.oci.layer import LayerWriter

__all__ = ["write_paths_layer", "LayerSettings"]


class LayerSettings:
    """Compression and timestamp settings shared by every layer of one build."""

    def __init__(self, *, directory: Path, compression: str = "gzip", level: int | None = None,
                 docker_media_types: bool = False, mtime: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self.level = level
        self.docker_media_types = docker_media_types
        self.mtime = mtime
        self._n = 0

    def next_path(self) -> Path:
        """A fresh file name for the next layer blob."""
        self._n += 1
        return self.directory / f"layer-{self._n:04d}.tar"

    def writer(self, dest: Path | None = None) -> LayerWriter:
        """A LayerWriter with these settings."""
        return LayerWriter(dest or self.next_path(), compression=self.compression, level=self.level,
                           docker_media_types=self.docker_media_types, mtime=self.mtime)


def _parents(path: str) -> list[str]:
    out = []
    cur = posixpath.dirname(path)
    while cur not in ("/", ""):
        out.append(cur)
        cur = posixpath.dirname(cur)
    return list(reversed(out))


def write_paths_layer(settings: LayerSettings, rootfs: Path, paths: Iterable[str]) -> LayerRef:
    """A layer holding exactly the container paths in ``paths`` (not recursive) and their parent
    directories, read from ``rootfs`` (owners, modes, symlinks, hardlinks as they are there)."""
    canonical = set()
    for p in paths:
        host = secure_join(rootfs, clean_abs(p), follow_last=False)
        canonical.add(container_path(rootfs, host))
    wanted = sorted({clean_abs(p) for p in canonical} - {"/"})
    written: set[str] = set()
    with settings.writer() as w:
        for path in wanted:
            for parent in [*_parents(path), path]:
                if parent in written:
                    continue
                host = Path(str(rootfs) + parent)
                if host.is_symlink() or host.exists():
                    w.add_path(host, parent.lstrip("/"))
                written.add(parent)
        info = w.finish()
    return LayerRef(info.descriptor(), str(info.diff_id), info.path)
