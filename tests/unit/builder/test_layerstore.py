"""The local layer store (--cache-dir): fetched once, verified, TTL, prune, concurrent builds."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from trustbuild.builder.layerstore import LayerStore, parse_duration, parse_size
from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.verify import copy_verified_to_file

BLOB = b"layer bytes " * 1000


def _desc(data: bytes = BLOB) -> Descriptor:
    return Descriptor.for_bytes("application/vnd.oci.image.layer.v1.tar+gzip", data)


class CountingSource:
    """A Store stand-in: serves one blob and appends a line to ``log`` per download."""

    def __init__(self, log: Path, data: bytes = BLOB, pause: float = 0.0) -> None:
        self.log, self.data, self.pause = log, data, pause

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        import io

        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(self.pause)  # widens the window for a second process, asserts nothing
        copy_verified_to_file(io.BytesIO(self.data), desc, dest)


def test_fetched_once_then_reused(tmp_path: Path) -> None:
    log = tmp_path / "log"
    desc = _desc()
    path = LayerStore(tmp_path / "s").ensure(desc, CountingSource(log))
    assert path.read_bytes() == BLOB
    again = LayerStore(tmp_path / "s")  # another build on the same machine
    assert again.ensure(desc, CountingSource(log)) == path
    assert log.read_text().count("\n") == 1 and again.reused == 1


def test_corrupt_entry_is_fetched_again(tmp_path: Path) -> None:
    log = tmp_path / "log"
    desc = _desc()
    store = LayerStore(tmp_path / "s")
    path = store.ensure(desc, CountingSource(log))
    path.write_bytes(b"X" + BLOB[1:])  # same size, other content
    fresh = LayerStore(tmp_path / "s")
    assert fresh.ensure(desc, CountingSource(log)).read_bytes() == BLOB
    assert log.read_text().count("\n") == 2
    path.write_bytes(BLOB[:10])  # truncated
    assert LayerStore(tmp_path / "s").ensure(desc, CountingSource(log)).read_bytes() == BLOB


def test_ttl_expires_unused_entries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    desc = _desc()
    path = LayerStore(tmp_path / "s").ensure(desc, CountingSource(log))
    old = time.time() - 3 * 86400
    os.utime(path, (old, old))
    LayerStore(tmp_path / "s", ttl=7 * 86400).ensure(desc, CountingSource(log))
    assert log.read_text().count("\n") == 1  # used 3 days ago: still valid for a week
    os.utime(path, (old, old))
    LayerStore(tmp_path / "s", ttl=86400).ensure(desc, CountingSource(log))
    assert log.read_text().count("\n") == 2  # older than one day: fetched again


def _ensure_in_child(root: str, log: str) -> None:
    LayerStore(root).ensure(_desc(), CountingSource(Path(log), pause=0.3))


def test_two_builds_at_once_download_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_ensure_in_child, args=(str(tmp_path / "s"), str(tmp_path / "log")))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert (tmp_path / "log").read_text().count("\n") == 1
    blobs = [p.name for p in (tmp_path / "s" / "blobs" / "sha256").iterdir()]
    assert blobs == [_desc().digest.hex]  # no temporary file left behind


def test_prune_by_age_and_size_skips_entries_in_use(tmp_path: Path) -> None:
    store = LayerStore(tmp_path / "s")
    log = tmp_path / "log"
    now = time.time()
    paths = []
    for i in range(4):
        data = bytes([i]) * 1000
        p = store.ensure(_desc(data), CountingSource(log, data))
        os.utime(p, (now - (4 - i) * 86400, now - (4 - i) * 86400))  # 4, 3, 2, 1 days ago
        paths.append(p)
    res = store.prune(older_than=3.5 * 86400, now=now)
    assert res.removed == 1 and not paths[0].exists()
    with store.lock(_desc(bytes([1]) * 1000).digest):  # a build is using the oldest left
        res = store.prune(max_size=2000, now=now)
    assert paths[1].exists() and not paths[2].exists() and paths[3].exists()
    assert res.removed == 1 and res.size == 2000


def test_sizes_and_durations() -> None:
    assert parse_size("10G") == 10 << 30 and parse_size("500m") == 500 << 20
    assert parse_size("1024") == 1024
    assert parse_duration("14d") == 14 * 86400 and parse_duration("336") == 336 * 3600
    assert parse_duration("90s") == 90
    with pytest.raises(UsageError):
        parse_size("ten")
    with pytest.raises(UsageError):
        parse_duration("2w")


def test_prune_removes_unpacked_layers_but_not_those_a_build_has_mounted(tmp_path: Path) -> None:
    import fcntl

    store = LayerStore(tmp_path / "s")
    now = time.time()
    dirs = []
    for i in range(2):
        d = store.root / "unpacked" / (f"{i}" * 64)
        (d / "fs" / "etc").mkdir(parents=True)
        (d / "fs" / "etc" / "f").write_bytes(b"x" * 500)
        (d / ".complete").write_text(f"sha256:{i * 64}\n500\n")
        os.utime(d, (now - 10 * 86400, now - 10 * 86400))
        dirs.append(d)
    fd = os.open(store.locks / f"unpacked-{'1' * 64}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # what a build holds while the layer is a lower dir
        res = store.prune(older_than=86400, now=now)
    finally:
        os.close(fd)
    assert not dirs[0].exists() and dirs[1].exists()
    assert res.removed == 1 and res.freed == 500 and res.size == 500
    assert [p.name for p in (store.root / "unpacked").iterdir()] == ["1" * 64]
