"""The overlay, walk and full snapshotters give the same layer for the same change."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
MODES = ["overlay", "walk", "full"]
SETUP = ("mkdir -p /data/sub /data/old /repl /keep && echo a > /data/a && echo b > /data/sub/b"
         " && echo o > /data/old/o && ln -s /data/a /data/link && echo f > /repl/f"
         " && echo k > /keep/k && echo cap > /bin/capped && mkdir -p /again && echo 1 > /again/old")
CHANGE = ("rm /bin/vi && rm -rf /data/old && echo new > /data/sub/c && rm /data/link"
          " && mkdir /data/link && ln /data/a /data/hard && rm -rf /repl && echo x > /repl"
          " && mkdir -p /etc/x && echo 1 > /etc/x/y && chown 1000:1000 /data/a"
          " && touch -d @5 /data/sub/b && ln -sf /nowhere /bin/ls && chmod 4755 /bin/capped"
          " && mkfifo /data/fifo && rm -rf /again && mkdir /again && echo 2 > /again/new")
# security.capability = cap_net_bind_service+ep (VFS_CAP_REVISION_2)
CAP = bytes.fromhex("0100000200040000000000000000000000000000")


def sh(cmd: str) -> RunSpec:
    return RunSpec(["/bin/sh", "-c", cmd], env={})


def tree(root: Path) -> list[tuple[object, ...]]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            st = os.lstat(p)
            link = os.readlink(p) if os.path.islink(p) else ""
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
            try:
                xa = os.getxattr(p, "security.capability", follow_symlinks=False)
            except OSError:
                xa = b""
            out.append((str(p.relative_to(root)), st.st_mode, st.st_uid, st.st_gid, link,
                        data, xa))
    return sorted(out)


def run_in_mode(rootfs: Path, tmp_path: Path, mode: str, steps: list[str], *,
                set_cap: bool = False) -> list[object]:
    infos = []
    with StepRunner(rootfs, tmp_path / f"scratch-{mode}", snapshot_mode=mode, mtime=1000,
                    output=io.StringIO()) as r:
        assert r.snapshot_mode == mode
        for i, cmd in enumerate(steps):
            res = r.run(sh(cmd), tmp_path / f"{mode}-{i}.tar")
            assert res.exit_code == 0, (mode, cmd, res.output_tail)
            infos.append(res.layer)
            if i == 0 and set_cap:
                os.setxattr(rootfs / "bin/capped", "security.capability", CAP)
    return infos


def test_same_change_same_layer_and_same_rootfs_in_every_mode(busybox_rootfs: Path,
                                                              tmp_path: Path) -> None:
    results = {}
    trees = {}
    for mode in MODES:
        root = tmp_path / f"root-{mode}"
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(root)], check=True)
        results[mode] = run_in_mode(root, tmp_path, mode, [SETUP, CHANGE], set_cap=True)
        trees[mode] = tree(root)
    diff_ids = {m: [i.diff_id for i in infos] for m, infos in results.items()}  # type: ignore[attr-defined]
    assert diff_ids["walk"] == diff_ids["overlay"] and diff_ids["full"] == diff_ids["overlay"]
    assert trees["walk"] == trees["overlay"] == trees["full"]
    with tarfile.open(results["overlay"][1].path) as t:  # type: ignore[attr-defined]
        members = {m.name: m for m in t.getmembers()}
    assert "bin/.wh.vi" in members and "data/.wh.old" in members
    assert "data/link/.wh..wh..opq" in members
    # Re-created in the same step (ext4 often reuses the inode number): still opaque.
    assert "again/.wh..wh..opq" in members and "again/.wh.old" not in members
    assert members["data/hard"].islnk() and members["data/hard"].linkname == "data/a"
    assert members["repl"].isfile() and members["bin/ls"].issym()
    assert members["data/fifo"].isfifo()
    capped = members["bin/capped"]
    assert capped.mode == 0o4755
    assert capped.pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAP
    assert "etc/resolv.conf" not in members and "proc" not in members


def test_conformance_run_whiteouts_steps(busybox_rootfs: Path, tmp_path: Path) -> None:
    steps = [
        "mkdir -p /scratch/a/b && echo 1 > /scratch/a/b/f && echo 2 > /scratch/keep",
        "rm -rf /scratch/a && rm /bin/vi",
        "mkdir /scratch/a && echo new > /scratch/a/fresh",
        "rm -rf /usr/share 2>/dev/null; mkdir -p /usr/share/only && echo x > /usr/share/only/x",
    ]
    ids = {}
    for mode in MODES:
        root = tmp_path / f"root-{mode}"
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(root)], check=True)
        ids[mode] = [i.diff_id for i in run_in_mode(root, tmp_path, mode, steps)]  # type: ignore[attr-defined]
        assert sorted(os.listdir(root / "scratch")) == ["a", "keep"]
        assert os.listdir(root / "scratch/a") == ["fresh"]
        assert not (root / "bin/vi").exists()
    assert ids["overlay"] == ids["walk"] == ids["full"]


@pytest.fixture
def tmpfs_scratch(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A scratch directory on its own tmpfs, so the upper is on another device than the rootfs."""
    d = tmp_path / "tmpfs-scratch"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_overlay_upper_on_another_device_is_copied_with_links_and_metadata(
        busybox_rootfs: Path, tmp_path: Path, tmpfs_scratch: Path) -> None:
    with StepRunner(busybox_rootfs, tmpfs_scratch, snapshot_mode="overlay",
                    output=io.StringIO()) as r:
        assert r.snapshot_mode == "overlay"
        res = r.run(sh("mkdir -p /d && echo a > /d/a && ln /d/a /d/b && ln -s a /d/s"
                       " && chown 1000:2000 /d/a && chmod 640 /d/a && rm /bin/vi"),
                    tmp_path / "l.tar")
        assert res.exit_code == 0
    a, b = os.lstat(busybox_rootfs / "d/a"), os.lstat(busybox_rootfs / "d/b")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert (a.st_uid, a.st_gid, a.st_mode & 0o7777) == (1000, 2000, 0o640)
    assert os.readlink(busybox_rootfs / "d/s") == "a"
    assert not os.path.lexists(busybox_rootfs / "bin/vi")
    assert os.listdir(tmpfs_scratch) == []


LINKS = ("mkdir -p /h/sub /h2/deep && echo data > /h/orig && ln /h/orig /h/link"
         " && ln /h/orig /h2/deep/far && echo r > /h/r1 && ln /h/r1 /h/r2"
         " && echo d > /h/d1 && ln /h/d1 /h/sub/d2 && ln /bin/busybox /h/bb")
WRITE_THROUGH = ("chmod 4711 /h/orig && echo more >> /h/link && sed -i s/r/R/ /h/r1"
                 " && echo gone >> /h/d1 && rm /h/d1 && chown 3:4 /bin/busybox")
HIDDEN = "rm -rf /h2 && mkdir -p /h2/deep && echo again >> /h/orig"  # far: gone, not re-linked


def test_writing_through_one_name_of_an_earlier_hardlink_changes_every_name(
        busybox_rootfs: Path, tmp_path: Path) -> None:
    ids, trees = {}, {}
    for mode in MODES:
        root = tmp_path / f"root-{mode}"
        subprocess.run(["cp", "-a", str(busybox_rootfs), str(root)], check=True)
        infos = run_in_mode(root, tmp_path, mode, [LINKS, WRITE_THROUGH, HIDDEN])
        ids[mode] = [i.diff_id for i in infos]  # type: ignore[attr-defined]
        trees[mode] = tree(root)
        ino = {n: os.lstat(root / n).st_ino for n in
               ("h/orig", "h/link", "h/r1", "h/r2", "h/sub/d2", "h/bb",
                "bin/busybox")}
        assert ino["h/orig"] == ino["h/link"], mode
        assert ino["h/bb"] == ino["bin/busybox"], mode
        assert ino["h/r1"] != ino["h/r2"], mode  # sed -i replaced the file: link broken
        assert (root / "h/link").read_text() == "data\nmore\nagain\n"
        assert os.lstat(root / "h/link").st_mode & 0o7777 == 0o4711
        assert os.listdir(root / "h2/deep") == []
        assert (root / "h/sub/d2").read_text() == "d\ngone\n"
        assert not (root / "h/d1").exists()
        assert (root / "h/r2").read_text() == "r\n" and (root / "h/r1").read_text() == "R\n"
        assert os.lstat(root / "h/bb").st_uid == 3
        with tarfile.open(infos[1].path) as t:  # type: ignore[attr-defined]
            members = {m.name: m for m in t.getmembers()}
        assert members["h2/deep/far"].islnk() and members["h2/deep/far"].linkname == "h/link"
        assert members["h/sub/d2"].isfile() and members["h/r1"].isfile()
        assert members["h2/deep"].isdir() and members["h/orig"].islnk()
        assert "h/r2" not in members or members["h/r2"].isfile()  # walk: its nlink changed
        assert members["h/bb"].islnk() and members["h/bb"].linkname == "bin/busybox"
        with tarfile.open(infos[2].path) as t:  # type: ignore[attr-defined]
            members = {m.name: m for m in t.getmembers()}
        assert "h2/.wh..wh..opq" in members and "h2/deep/far" not in members
        assert members["h/orig"].islnk() and members["h/orig"].linkname == "h/link"
    assert ids["walk"] == ids["overlay"] and ids["full"] == ids["overlay"]
    assert trees["walk"] == trees["overlay"] == trees["full"]
