"""Layers the build writes itself (COPY, ADD, WORKDIR): exactly the given paths and parents."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from pathlib import Path

from trustbuild.builder.config import LayerRef
from trustbuild.builder.rootfs import clean_abs, container_path, secure_join
from trustbuild.oci.layer import LayerWriter, fill_file

__all__ = ["write_paths_layer", "LayerSettings", "PendingFills"]


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


class PendingFills:
    """Regular files created in a rootfs with their final owner, mode and times but no content
    yet, by inode, with the file their content comes from: the layer writer reads that file once
    and writes each chunk into the rootfs file and into the layer (COPY/ADD), so a copied byte is
    read once instead of being copied into the rootfs and read back for the layer."""

    def __init__(self) -> None:
        self._files: dict[tuple[int, int], tuple[Path, Path]] = {}  # inode -> (source, dest)

    def __bool__(self) -> bool:
        return bool(self._files)

    def add(self, dest: Path, source: Path) -> None:
        """Record that the empty file ``dest`` (just created) gets the content of ``source``."""
        st = os.lstat(dest)
        self._files[(st.st_dev, st.st_ino)] = (source, dest)

    def holds(self, st: os.stat_result) -> bool:
        """Whether the inode of ``st`` still waits for its content."""
        return (st.st_dev, st.st_ino) in self._files

    def take(self, st: os.stat_result) -> Path | None:
        """The source of the inode of ``st`` (no longer pending), or None."""
        entry = self._files.pop((st.st_dev, st.st_ino), None)
        return entry[0] if entry is not None else None

    def flush(self) -> None:
        """Fill every pending file now (no layer): before one is removed or replaced, and for
        any the layer did not take."""
        files, self._files = self._files, {}
        for source, dest in files.values():
            fill_file(source, dest, os.lstat(dest))


def write_paths_layer(settings: LayerSettings, rootfs: Path, paths: Iterable[str], *,
                      pending: PendingFills | None = None) -> LayerRef:
    """A layer holding exactly the container paths in ``paths`` (not recursive) and their parent
    directories, read from ``rootfs`` (owners, modes, symlinks, hardlinks as they are there).

    ``pending``: files still to be filled; each is filled while its layer entry is written
    (the layer is the same as if they had been filled first), the rest after the layer.
    """
    canonical = set()
    parents: dict[str, str] = {}  # container dir -> its canonical path (one resolve per dir)
    for p in paths:
        path = clean_abs(p)
        if path == "/":
            continue
        parent, name = posixpath.split(path)
        real = parents.get(parent)
        if real is None:
            real = parents[parent] = container_path(rootfs, secure_join(rootfs, parent))
        canonical.add(posixpath.join(real, name))
    wanted = sorted({clean_abs(p) for p in canonical} - {"/"})
    written: set[str] = set()
    with settings.writer() as w:
        for path in wanted:
            for parent in [*_parents(path), path]:
                if parent in written:
                    continue
                host = Path(str(rootfs) + parent)
                try:
                    st = os.lstat(host)
                except FileNotFoundError:
                    st = None
                if st is not None:
                    fill = (pending.take(st) if pending and stat.S_ISREG(st.st_mode)
                            else None)
                    w.add_path(host, parent.lstrip("/"), fill=fill)
                written.add(parent)
        if pending:
            pending.flush()
        info = w.finish()
    return LayerRef(info.descriptor(), str(info.diff_id), info.path)
