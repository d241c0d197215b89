"""COPY reads each copied byte once: the rootfs file is filled while its layer entry is written,
and the layer and the rootfs are the same as when the files are copied first and read back."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from trustbuild._internal.dirworkers import DirWorkers
from trustbuild.builder.handlers.copy import Copier
from trustbuild.builder.layers import LayerSettings, PendingFills, write_paths_layer

OLD = 1_600_000_000  # source mtimes, before the layer's clamp
EPOCH = 1_700_000_000


def _tree(src: Path) -> None:
    (src / "src" / "a").mkdir(parents=True)
    (src / "src-gen").mkdir()
    (src / "src.d").mkdir()
    (src / "src" / "a" / "z").write_bytes(os.urandom(200_000))
    os.link(src / "src" / "a" / "z", src / "src" / "a-link")  # sorts before a/z in the layer
    os.link(src / "src" / "a" / "z", src / "src-gen" / "hl")
    (src / "src" / "ln").symlink_to("a/z")
    (src / "src" / "empty").write_bytes(b"")
    (src / "src" / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "src" / "tool", 0o4755)
    (src / "src.d" / "f").write_text("dot\n")
    (src / "over").mkdir()
    (src / "over" / "empty").write_text("replaced in the same step\n")
    for p in sorted(src.rglob("*"), reverse=True):
        os.utime(p, (OLD, OLD), follow_symlinks=False)


def _copy(src: Path, rootfs: Path, layers: Path, pending: PendingFills | None,
          creates: DirWorkers | None = None, names: tuple[str, ...] = ()) -> str:
    (rootfs / "app").mkdir(parents=True)
    os.utime(rootfs / "app", (OLD, OLD))
    copier = Copier(rootfs, uid=None, gid=None, chmod=None, pending=pending, creates=creates)
    for name in names or ("src", "src-gen", "src.d", "over"):
        copier.copy_dir_contents(src / name, f"/app/{name}", keep_owner=False, rel=None)
    copier.copy_dir_contents(src / "over", "/app/src", keep_owner=False, rel=None)
    copier.finish()
    settings = LayerSettings(directory=layers, mtime=EPOCH)
    layer = write_paths_layer(settings, rootfs, copier.touched, pending=pending)
    return str(layer.diff_id) + " " + str(layer.descriptor.digest)


def _state(root: Path) -> list[tuple[str, int, int, int, str]]:
    out = []
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        body = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        mtime = st.st_mtime_ns if st.st_mtime < EPOCH else -1  # -1: "now", when it was written
        out.append((str(p.relative_to(root)), st.st_mode, mtime, st.st_nlink, body))
    return out


def test_filled_while_writing_gives_the_same_layer_and_rootfs(tmp_path: Path) -> None:
    src = tmp_path / "ctx"
    _tree(src)
    copied = _copy(src, tmp_path / "a", tmp_path / "la", None)
    pending = PendingFills()
    once = _copy(src, tmp_path / "b", tmp_path / "lb", pending)
    assert once == copied
    assert not pending
    assert _state(tmp_path / "b") == _state(tmp_path / "a")
    tool = tmp_path / "b" / "app" / "src" / "tool"
    assert stat.S_IMODE(os.lstat(tool).st_mode) == 0o4755
    assert (tmp_path / "b" / "app" / "src" / "empty").read_text() == "replaced in the same step\n"


def test_files_created_on_threads_give_the_same_layer_and_rootfs(tmp_path: Path) -> None:
    src = tmp_path / "ctx"
    _tree(src)
    for d in range(12):  # many directories, as a source tree has
        pkg = src / "pkgs" / f"p{d}"
        pkg.mkdir(parents=True)
        for f in range(25):
            (pkg / f"m{f}.py").write_bytes(os.urandom(f * 37))
            os.chmod(pkg / f"m{f}.py", 0o640 + f % 8)
        os.chmod(pkg, 0o750)
    for p in sorted(src.rglob("*"), reverse=True):
        os.utime(p, (OLD, OLD), follow_symlinks=False)
    names = ("src", "src-gen", "src.d", "over", "pkgs")
    serial = _copy(src, tmp_path / "a", tmp_path / "la", None, names=names)
    pending = PendingFills()
    creates = DirWorkers()
    try:
        threaded = _copy(src, tmp_path / "b", tmp_path / "lb", pending, creates, names=names)
    finally:
        creates.close()
    assert threaded == serial
    assert not pending
    assert _state(tmp_path / "b") == _state(tmp_path / "a")
    assert (tmp_path / "b" / "app" / "src" / "empty").read_text() == "replaced in the same step\n"


def _rchar() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_a_copied_file_is_read_once(tmp_path: Path) -> None:
    size = 16 << 20
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    pending = PendingFills()
    before = _rchar()
    copier = Copier(rootfs, uid=None, gid=None, chmod=None, pending=pending)
    copier.copy_entry(src, "/big.bin", keep_owner=False, rel=None)
    write_paths_layer(LayerSettings(directory=tmp_path / "layers"), rootfs, copier.touched,
                      pending=pending)
    read = _rchar() - before
    assert size <= read < size + size // 4  # copying, then reading back, reads it twice
    assert (rootfs / "big.bin").read_bytes() == src.read_bytes()
