"""Cache keys from a step's inputs (docs/cache.md is the precise description).

A stage's chain starts at :func:`root_key` (base image digest or ``scratch``, platform and the
build settings that change what a step produces). Every instruction moves the chain on:
a metadata instruction by its expanded text (:func:`chain_step`), a RUN/COPY/ADD/WORKDIR by
its key (:func:`step_key`: the parent chain plus a JSON spec of what the step can see). No
mtime, host path or produced layer goes into a key, so a context checked out again (new mtimes)
or copied to another machine gets the same keys.

Example::

    chain = root_key(base="sha256:ab...", platform=plat, settings={"compression": "gzip"})
    key = step_key(chain, "COPY", {"dest": "/app/", "sources": [hasher.digest(path)]})
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, TypeAlias

from trustbuild.oci.descriptor import Platform

__all__ = ["CacheKeySpec", "KEY_VERSION", "chain_step", "root_key", "step_key", "SourceHasher"]

KEY_VERSION = "trustbuild-cache-v2"

#: A step's inputs for its key: anything ``json.dumps`` takes (keys sorted when hashed).
CacheKeySpec: TypeAlias = Mapping[str, object]


def chain_step(chain: str, *parts: str) -> str:
    """The next chain value after an instruction described by ``parts`` (sha256 hex)."""
    h = hashlib.sha256(chain.encode())
    for p in parts:
        h.update(b"\0" + p.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def root_key(*, base: str, platform: Platform, settings: CacheKeySpec) -> str:
    """The chain of a stage before its first instruction.

    ``base`` is the base image's manifest digest or ``scratch``; ``settings`` the build options
    that change layers (compression, fixed timestamps, ignore paths) or what RUN can do
    (security profile, seccomp profile digest, sandbox mode).
    """
    return chain_step(KEY_VERSION, "FROM", base, str(platform),
                      json.dumps(settings, sort_keys=True, separators=(",", ":")))


def step_key(parent: str, cmd: str, spec: CacheKeySpec) -> str:
    """The key (64 hex characters, the cache tag) of a step with inputs ``spec``."""
    return chain_step(parent, cmd, json.dumps(spec, sort_keys=True, separators=(",", ":")))


class _Context(Protocol):
    def iter_included(self, start: Path | None = None) -> Iterable[Path]: ...

    def file_digest(self, path: Path) -> str: ...


class SourceHasher:
    """Content digests of COPY/ADD sources in the build context (each file hashed once).

    One line per entry below the source, sorted by path relative to it: ``path NUL type NUL
    mode NUL size NUL detail`` (type d/f/l, mode the permission bits with setuid/setgid/sticky,
    detail the content sha256 of a file or a symlink's target). ``.dockerignore`` applies as
    COPY applies it. Owners and mtimes are left out: COPY from the context does not keep them.
    """

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    def digest(self, path: Path) -> str:
        """``sha256:`` digest of one resolved source (the source itself followed, as COPY does)."""
        st = os.stat(path)
        h = hashlib.sha256()
        if stat.S_ISDIR(st.st_mode):
            lines = []
            for entry in self.ctx.iter_included(path):
                line = self._line(entry, os.path.relpath(entry, path), follow=False)
                if line:
                    lines.append(line)
            h.update(b"dir\n")
            for line in sorted(lines):
                h.update(line.encode("utf-8", "surrogateescape"))
        else:
            h.update(self._line(path, path.name, follow=True).encode("utf-8", "surrogateescape"))
        return "sha256:" + h.hexdigest()

    def _line(self, path: Path, rel: str, *, follow: bool) -> str:
        st = os.stat(path) if follow else os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            kind, size, detail = "d", 0, ""
        elif stat.S_ISLNK(st.st_mode):
            kind, size, detail = "l", 0, os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            kind, size, detail = "f", st.st_size, self.ctx.file_digest(path)
        elif stat.S_ISFIFO(st.st_mode):
            kind, size, detail = "p", 0, ""
        else:
            return ""  # sockets and devices from a context are never copied
        return f"{rel}\0{kind}\0{mode:o}\0{size}\0{detail}\n"
