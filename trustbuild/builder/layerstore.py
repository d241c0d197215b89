"""The local layer store (``--cache-dir``): layer blobs kept between builds on one machine.

Layout under the store's root::

    blobs/sha256/<hex>        a compressed layer blob, named by its digest
    locks/<hex>.lock          its lock file (fcntl; held while the blob is fetched or checked)
    run-cache/<name>/         RUN --mount=type=cache directories (see builder/mounts.py)
    unpacked/<diff_id hex>/   a layer unpacked as an overlay lower dir (builder/overlayroot.py)

A blob is downloaded once per machine: into a temporary file in the same directory, verified
against its digest and renamed into place, under an exclusive per-entry lock so two builds
never fetch the same blob at once. The first build process to use an entry checks its digest
again (a truncated or altered file is deleted and fetched anew); the entry's mtime records its
last use, which ``prune`` and the TTL read.

Example::

    store = LayerStore(default_cache_dir(), ttl=14 * 86400)
    origin = store.origin(registry_store)           # a LayerRef origin backed by the store
    path = store.ensure(desc, registry_store)       # fetched once per machine, verified
    store.prune(max_size=10 << 30, older_than=7 * 86400)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from trustbuild._internal import idmap
from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.store import Store

__all__ = ["LayerStore", "StoreOrigin", "PruneResult", "default_cache_dir", "parse_size",
           "parse_duration"]

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/trustbuild`` (``~/.cache/trustbuild``), or ``/var/cache/trustbuild``
    for root (not the root of a rootless build's user namespace)."""
    if idmap.real_root():
        return Path("/var/cache/trustbuild")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trustbuild"


def parse_size(text: str) -> int:
    """``500M``, ``10G``, ``1024`` (bytes) -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if m is None:
        raise UsageError(f"invalid size {text!r}: expected a number with an optional K/M/G/T")
    return int(m.group(1)) << (10 * " kmgt".index(m.group(2).lower() or " "))


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``14d`` or plain hours (Kaniko's ``--cache-ttl`` unit) ->
    seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text, re.IGNORECASE)
    if m is None:
        raise UsageError(f"invalid duration {text!r}: expected e.g. 90s, 30m, 12h or 14d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}[m.group(2).lower()]
    return float(m.group(1)) * unit


class BlobFetcher(Protocol):
    """Where a missing blob comes from: a Store, or anything that fetches like one."""

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Write the verified blob of ``desc`` to ``dest`` (temp file + rename)."""
        ...


@dataclass
class PruneResult:
    """What ``prune`` removed and what is left."""

    removed: int
    freed: int
    kept: int
    size: int


class LayerStore:
    """Content-addressed layer blobs shared by the builds of one machine."""

    def __init__(self, root: Path | str, *, ttl: float | None = None) -> None:
        self.root = Path(root)
        self.ttl = ttl
        self.blobs = self.root / "blobs" / "sha256"
        self.locks = self.root / "locks"
        for d in (self.blobs, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        self._checked: set[str] = set()  # entries verified by this process
        self.fetched = 0  # blobs downloaded by this process
        self.reused = 0  # blobs found in the store

    def path(self, digest: Digest) -> Path:
        """Where the blob of ``digest`` lives (whether or not it is there)."""
        if digest.algorithm != "sha256":
            raise UsageError(f"layer store: unsupported digest algorithm {digest.algorithm}")
        return self.blobs / digest.hex

    def holds(self, desc: Descriptor) -> bool:
        """Whether the store has a blob of ``desc``'s size (not expired by the TTL); its digest
        is checked when a build first uses it (:meth:`ensure`)."""
        try:
            st = self.path(desc.digest).stat()
        except (OSError, UsageError):
            return False
        if self.ttl is not None and time.time() - st.st_mtime > self.ttl:
            return False
        return st.st_size == desc.size

    def lock(self, digest: Digest, *, blocking: bool = True
             ) -> contextlib.AbstractContextManager[bool]:
        """Hold the entry's exclusive lock; yields False (not held) when ``blocking`` is False
        and another process holds it."""
        return self._lock_named(digest.hex, blocking=blocking)

    @contextlib.contextmanager
    def _lock_named(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        fd = os.open(self.locks / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    def ensure(self, desc: Descriptor, source: BlobFetcher) -> Path:
        """The verified blob of ``desc``, fetched from ``source`` (a Store) when absent,
        corrupt or older than the TTL."""
        dest = self.path(desc.digest)
        with self.lock(desc.digest):
            if dest.exists() and not self._usable(dest, desc):
                dest.unlink()
            if dest.exists():
                self.reused += 1
            else:
                source.fetch_blob(desc, dest)  # temp file + verify + rename
                self.fetched += 1
            self._checked.add(desc.digest.hex)
            os.utime(dest)  # last use, for prune and the TTL
        return dest

    def adopt(self, desc: Descriptor, src: Path) -> None:
        """Keep a blob this build wrote (e.g. a layer it stored in the cache repository), so a
        later build that needs its bytes does not download it: hardlinked when ``src`` is on
        the same filesystem, else copied (temporary file + rename)."""
        dest = self.path(desc.digest)
        with self.lock(desc.digest):
            if not dest.exists():
                tmp = self.blobs / f".tmp-adopt-{os.getpid()}-{desc.digest.hex[:16]}"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
            self._checked.add(desc.digest.hex)
            os.utime(dest)

    def _usable(self, path: Path, desc: Descriptor) -> bool:
        if self.ttl is not None and time.time() - path.stat().st_mtime > self.ttl:
            return False
        if desc.digest.hex in self._checked:
            return True
        return path.stat().st_size == desc.size and _sha256(path) == desc.digest.hex

    def origin(self, store: Store) -> StoreOrigin:
        """A ``LayerRef.origin`` that fetches ``store``'s blobs through this layer store."""
        return StoreOrigin(store, self)

    def entries(self) -> list[tuple[Path, os.stat_result]]:
        """Every blob with its stat (mtime = last use)."""
        out = []
        for p in self.blobs.iterdir():
            if p.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                out.append((p, p.stat()))
        return out

    def prune(self, *, max_size: int | None = None, older_than: float | None = None,
              now: float | None = None) -> PruneResult:
        """Remove blobs unused for ``older_than`` seconds, then the least recently used ones
        until the store holds at most ``max_size`` bytes. Entries in use are skipped."""
        now = time.time() if now is None else now
        # (last use, size, path, lock name): blobs and unpacked layers (builder/overlayroot.py)
        items = [(st.st_mtime, st.st_size, path, path.name) for path, st in self.entries()]
        items += [(mtime, size, path, f"unpacked-{path.name}")
                  for path, mtime, size in self.unpacked_entries()]
        items.sort(key=lambda e: e[0])
        total = sum(size for _, size, _, _ in items)
        removed = freed = 0
        for mtime, size, path, lock_name in items:
            too_old = older_than is not None and now - mtime > older_than
            too_big = max_size is not None and total > max_size
            if not (too_old or too_big):
                continue
            with self._lock_named(lock_name, blocking=False) as held:
                if not held:  # a build is fetching or using it
                    continue
                try:
                    if path.is_dir():
                        gone = path.with_name(f".tmp-prune-{os.getpid()}-{path.name[:16]}")
                        os.rename(path, gone)  # never half-removed under its own name
                        shutil.rmtree(gone, ignore_errors=True)
                    else:
                        path.unlink()
                except FileNotFoundError:
                    continue
                removed += 1
                freed += size
                total -= size
                with contextlib.suppress(FileNotFoundError):
                    (self.locks / f"{lock_name}.lock").unlink()
        for tmp in self.blobs.glob(".tmp-*"):  # left by a killed download
            if now - tmp.stat().st_mtime > 3600:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        for tmp in (self.root / "unpacked").glob(".tmp-*"):  # a killed unpack or prune
            with contextlib.suppress(FileNotFoundError):
                if now - tmp.stat().st_mtime > 3600 or tmp.name.startswith(".tmp-prune-"):
                    shutil.rmtree(tmp, ignore_errors=True)
        return PruneResult(removed, freed, len(items) - removed, total)

    def unpacked_entries(self) -> list[tuple[Path, float, int]]:
        """Every unpacked layer: (directory, last use, size recorded when it was unpacked)."""
        out: list[tuple[Path, float, int]] = []
        root = self.root / "unpacked"
        if not root.is_dir():
            return out
        for p in root.iterdir():
            if p.name.startswith("."):
                continue
            try:
                lines = (p / ".complete").read_text().splitlines()
                out.append((p, p.stat().st_mtime, int(lines[1]) if len(lines) > 1 else 0))
            except (OSError, ValueError):
                continue
        return out


class StoreOrigin:
    """A blob origin (``LayerRef.origin``): ``upstream``'s blobs, kept in a LayerStore."""

    def __init__(self, upstream: Store, store: LayerStore) -> None:
        self.upstream = upstream
        self.store = store

    def ensure_blob(self, desc: Descriptor) -> Path:
        """The verified local blob (fetched from ``upstream`` into the store if needed)."""
        return self.store.ensure(desc, self.upstream)

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Fetch from upstream (what ``ensure_local`` calls for a path outside the store)."""
        self.upstream.fetch_blob(desc, dest)

    def open_blob(self, desc: Descriptor) -> contextlib.AbstractContextManager[BinaryIO]:
        """A stream of the local copy."""
        return open(self.ensure_blob(desc), "rb")  # noqa: SIM115


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
