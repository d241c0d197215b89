"""LayerWriter: deterministic PAX layer tars, one streaming pass, readable by real tools."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trustbuild.errors import BuildError
from trustbuild.oci.extract import extract_layer, iter_layer_entries
from trustbuild.oci.layer import LayerInfo, LayerWriter

CAP = bytes.fromhex("0100000200040000000000000000000000000000")  # cap_net_bind_service+ep


def make_tree(root: Path, *, mtime: int) -> Path:
    """A small tree with every kind of entry a COPY can meet."""
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("hello\n")
    (root / "d" / "bin").write_bytes(os.urandom(0) + b"\x7fELF" + b"\0" * 70000)
    os.link(root / "d" / "a.txt", root / "d" / "hard")
    os.symlink("../a.txt", root / "d" / "sub" / "link")
    os.symlink("/nonexistent/abs", root / "d" / "abs")
    long_name = "n" * 150
    (root / "d" / "sub" / long_name).write_text("long\n")
    os.mkfifo(root / "d" / "fifo")
    os.setxattr(root / "d" / "bin", "security.capability", CAP)
    os.setxattr(root / "d" / "a.txt", "user.note", b"kept")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(Path(dirpath) / n, (mtime, mtime), follow_symlinks=False)
    return root / "d"


def write_layer(dest: Path, src: Path, **kw) -> LayerInfo:
    with LayerWriter(dest, **kw) as w:
        w.add_dir("app")
        w.add_path(src, "app/d", recursive=True)
        w.add_bytes("app/hello.txt", b"hi\n", mode=0o600)
        w.add_symlink("app/latest", "d/a.txt")
        w.add_whiteout("etc/motd")
        w.add_opaque("var/cache")
        return w.finish()


def tool(*args: str) -> bytes:
    return subprocess.run(list(args), check=True, capture_output=True).stdout


def test_same_tree_twice_gives_the_same_digest(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    a = write_layer(tmp_path / "a.tgz", src)
    os.utime(src / "a.txt", (1, 1_600_000_000))  # atime never matters
    b = write_layer(tmp_path / "b.tgz", src)
    assert a.digest == b.digest and a.diff_id == b.diff_id
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_mtime_clamp_makes_different_mtimes_reproducible(tmp_path):
    s1 = make_tree(tmp_path / "t1", mtime=1_700_000_000)
    s2 = make_tree(tmp_path / "t2", mtime=1_710_000_000)
    a = write_layer(tmp_path / "a.tgz", s1, mtime=1_000_000)
    b = write_layer(tmp_path / "b.tgz", s2, mtime=1_000_000)
    assert a.digest == b.digest
    assert {e.mtime for e in iter_layer_entries(a.path)} <= {0, 1_000_000}
    unclamped = write_layer(tmp_path / "c.tgz", s2)
    assert unclamped.digest != b.digest


def test_older_mtimes_are_kept_under_the_clamp(tmp_path):
    src = make_tree(tmp_path / "t", mtime=500)
    info = write_layer(tmp_path / "a.tgz", src, mtime=1_000_000)
    byname = {e.name: e for e in iter_layer_entries(info.path)}
    assert byname["app/d/a.txt"].mtime == 500


@pytest.mark.parametrize("compression,cmd", [("gzip", "gzip"), ("zstd", "zstd")])
def test_diff_id_is_the_sha256_of_the_uncompressed_stream(tmp_path, compression, cmd):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    info = write_layer(tmp_path / "l", src, compression=compression)
    raw = tool(cmd, "-dc", str(info.path))
    assert f"sha256:{hashlib.sha256(raw).hexdigest()}" == str(info.diff_id)
    blob = info.path.read_bytes()
    assert f"sha256:{hashlib.sha256(blob).hexdigest()}" == str(info.digest)
    assert info.size == len(blob)
    assert info.media_type == f"application/vnd.oci.image.layer.v1.tar+{compression}"
    d = info.descriptor()
    assert (d.media_type, d.digest, d.size) == (info.media_type, info.digest, info.size)


def test_uncompressed_layer_digest_equals_diff_id(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    info = write_layer(tmp_path / "l.tar", src, compression="none", docker_media_types=True)
    assert info.digest == info.diff_id
    assert info.media_type == "application/vnd.docker.image.rootfs.diff.tar"


def test_gnu_tar_reads_names_types_and_order(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    info = write_layer(tmp_path / "l.tgz", src)
    names = tool("tar", "-tzf", str(info.path)).decode().splitlines()
    long_name = "app/d/sub/" + "n" * 150
    assert names == [
        "app/", "app/d/", "app/d/a.txt", "app/d/abs", "app/d/bin", "app/d/fifo", "app/d/hard",
        "app/d/sub/", "app/d/sub/link", long_name, "app/hello.txt", "app/latest",
        "etc/.wh.motd", "var/cache/.wh..wh..opq",
    ]
    listing = tool("tar", "--numeric-owner", "-tvzf", str(info.path)).decode()
    assert "app/d/hard link to app/d/a.txt" in listing
    assert "app/d/abs -> /nonexistent/abs" in listing
    assert "app/d/sub/link -> ../a.txt" in listing
    entries = {e.name: e for e in iter_layer_entries(info.path)}
    assert all(e.uname == "" and e.gname == "" for e in entries.values())
    assert entries["app/d/fifo"].isfifo()
    assert entries["app/hello.txt"].mode == 0o600
    # GNU tar extracts it, keeping the capability.
    out = tmp_path / "gnu"
    out.mkdir()
    tool("tar", "--xattrs", "--xattrs-include=*", "-xzf", str(info.path), "-C", str(out))
    assert os.getxattr(out / "app/d/bin", "security.capability") == CAP
    assert (out / long_name).read_text() == "long\n"


def test_overrides_and_big_ids_use_pax(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    with LayerWriter(tmp_path / "l.tgz") as w:
        w.add_path(src, "d", uid=3_000_000, gid=3_000_001, mode=0o4750, recursive=True)
    listing = tool("tar", "--numeric-owner", "-tvzf", str(w.info.path)).decode()
    assert "rwsr-x--- 3000000/3000001" in listing
    assert all(e.uid == 3_000_000 and e.mode == 0o4750 for e in iter_layer_entries(w.info.path))


def test_xattrs_and_hardlinks_round_trip_through_extract(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    info = write_layer(tmp_path / "l.tgz", src, compression="zstd")
    root = tmp_path / "root"
    root.mkdir()
    extract_layer(info.path, root)
    assert os.getxattr(root / "app/d/bin", "security.capability") == CAP
    assert os.getxattr(root / "app/d/a.txt", "user.note") == b"kept"
    assert os.stat(root / "app/d/a.txt").st_ino == os.stat(root / "app/d/hard").st_ino
    assert os.readlink(root / "app/d/sub/link") == "../a.txt"
    assert (root / "app/d/bin").stat().st_size == 70004
    assert os.stat(root / "app/d/a.txt").st_mtime == 1_600_000_000


def test_failure_inside_the_writer_leaves_nothing(tmp_path):
    with pytest.raises(BuildError):
        with LayerWriter(tmp_path / "l.tgz") as w:
            w.add_bytes("ok", b"1")
            w.add_path(tmp_path / "missing", "missing")
    assert list(tmp_path.iterdir()) == []


def test_names_are_relative_and_escapes_refused(tmp_path):
    with LayerWriter(tmp_path / "l.tar", compression="none") as w:
        w.add_bytes("/abs/file", b"")
        w.add_dir("./rel/dir/")
        with pytest.raises(BuildError, match="escapes"):
            w.add_bytes("../up", b"")
    assert [e.name for e in iter_layer_entries(w.info.path)] == ["abs/file", "rel/dir"]
    assert b"./rel" not in (tmp_path / "l.tar").read_bytes()


def test_add_stream_streams_exact_size(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(3 * 1024 * 1024 + 7)
    with LayerWriter(tmp_path / "l.tgz") as w, open(big, "rb") as f:
        w.add_stream("big", f, 3 * 1024 * 1024 + 7)
    (e,) = list(iter_layer_entries(w.info.path))
    assert e.size == 3 * 1024 * 1024 + 7


@pytest.mark.interop
def test_umoci_unpacks_an_image_made_of_our_layer(tmp_path):
    src = make_tree(tmp_path / "t", mtime=1_600_000_000)
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    big = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32) + b"x" * 2_000_000
    with LayerWriter(tmp_path / "l.tgz") as w:   # several 1 MiB gzip blocks
        w.add_path(src, "app/d", recursive=True)
        w.add_bytes("app/hello.txt", b"hi\n", mode=0o600)
        w.add_bytes("app/big", big)
    info = w.info
    shutil.move(info.path, layout / "blobs" / "sha256" / info.digest.hex)

    def put(obj: dict) -> tuple[str, int]:
        data = json.dumps(obj).encode()
        h = hashlib.sha256(data).hexdigest()
        (layout / "blobs" / "sha256" / h).write_bytes(data)
        return f"sha256:{h}", len(data)

    cfg, cfg_size = put({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [str(info.diff_id)]}})
    man, man_size = put({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg,
                   "size": cfg_size},
        "layers": [info.descriptor().to_json()]})
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man,
         "size": man_size, "annotations": {"org.opencontainers.image.ref.name": "t"}}]}))
    bundle = tmp_path / "bundle"
    tool("umoci", "unpack", "--image", f"{layout}:t", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "app/d/a.txt").read_text() == "hello\n"
    assert (rootfs / "app/hello.txt").read_bytes() == b"hi\n"
    assert os.readlink(rootfs / "app/d/sub/link") == "../a.txt"
    assert os.stat(rootfs / "app/d/a.txt").st_ino == os.stat(rootfs / "app/d/hard").st_ino
    assert (rootfs / "app/d/sub" / ("n" * 150)).exists()
    assert (rootfs / "app/big").read_bytes() == big


MEMORY_SCRIPT = """
import os, sys
from pathlib import Path
from trustbuild.oci.extract import extract_layer
from trustbuild.oci.layer import LayerWriter
tmp = Path(sys.argv[1])
with open(tmp / "big", "wb") as f:
    f.truncate(128 * 1024 * 1024)          # sparse: costs no disk, reads as zeros
with LayerWriter(tmp / "layer.tgz", compression="gzip") as w:
    w.add_path(tmp / "big", "big")
(tmp / "big").unlink()
(tmp / "root").mkdir()
extract_layer(tmp / "layer.tgz", tmp / "root")
assert (tmp / "root" / "big").stat().st_size == 128 * 1024 * 1024
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest).
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) // 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_file_size(tmp_path):
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT,
                          str(tmp_path)], check=True, capture_output=True, text=True).stdout
    assert int(out.strip()) < 100, f"peak RSS {out.strip()} MB for a 128 MB file"


def test_empty_layer_is_dockers_well_known_empty_tar(tmp_path):
    with LayerWriter(tmp_path / "empty.tgz") as w:
        assert w.entries == 0
    assert str(w.info.diff_id) == \
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def test_device_nodes_and_sockets(tmp_path):
    import socket
    sock_path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        with LayerWriter(tmp_path / "l.tar", compression="none") as w:
            w.add_path(Path("/dev/null"), "dev/null")
            w.add_path(sock_path, "run/sock")        # tar cannot hold a socket: skipped
    finally:
        s.close()
    (e,) = list(iter_layer_entries(w.info.path))
    assert e.name == "dev/null" and e.ischr() and (e.devmajor, e.devminor) == (1, 3)


def test_unicode_and_non_utf8_names_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ünïcödé.txt").write_text("u")
    (src / "with space").write_text("s")
    raw = os.fsencode(src) + b"/latin1-\xe9"
    with open(raw, "wb") as f:
        f.write(b"l")
    with LayerWriter(tmp_path / "l.tgz") as w:
        w.add_path(src, "s", recursive=True)
    listing = tool("tar", "--quoting-style=literal", "-tzf", str(w.info.path))
    assert "s/ünïcödé.txt".encode() in listing and b"s/latin1-\xe9" in listing
    root = tmp_path / "root"
    root.mkdir()
    extract_layer(w.info.path, root)
    assert sorted(os.listdir(os.fsencode(root / "s"))) == \
        sorted([b"latin1-\xe9", "ünïcödé.txt".encode(), b"with space"])
    assert open(os.fsencode(root / "s") + b"/latin1-\xe9", "rb").read() == b"l"


def test_bad_settings_leave_no_file(tmp_path):
    from trustbuild.errors import StoreError, UsageError
    with pytest.raises(UsageError, match="level"):
        LayerWriter(tmp_path / "l.tgz", level=42)
    with pytest.raises(UsageError, match="bzip2"):
        LayerWriter(tmp_path / "l.tbz", compression="bzip2")
    with pytest.raises(StoreError, match="cannot create"):
        LayerWriter(tmp_path / "missing" / "l.tgz")
    assert list(tmp_path.iterdir()) == []


class _Dribble:
    """A stream that returns short reads of varying sizes."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos, self._n = data, 0, 0

    def read(self, n: int = -1) -> bytes:
        self._n += 1
        step = min(n, 1 + (self._n * 7919) % 300_000)
        out = self._data[self._pos:self._pos + step]
        self._pos += len(out)
        return out


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_digest_does_not_depend_on_read_sizes(tmp_path, compression):
    import io
    data = hashlib.sha256(b"x").digest() * 150_000  # 4.8 MB
    digests = set()
    for i, stream in enumerate((io.BytesIO(data), _Dribble(data))):
        with LayerWriter(tmp_path / f"l{i}", compression=compression, mtime=0) as w:
            w.add_bytes("a", b"small")
            w.add_stream("big", stream, len(data))  # type: ignore[arg-type]
        digests.add(w.info.digest)
    assert len(digests) == 1
