"""Walk/full snapshot diffs on real directories (no namespaces needed)."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from trustbuild.oci.layer import LayerWriter, write_overlay_upper
from trustbuild.sandbox.snapshot import DirPins, diff_snapshots, take_snapshot, write_changes


def _tree(root: Path) -> Path:
    (root / "d/sub").mkdir(parents=True)
    (root / "d/a").write_text("a")
    (root / "d/sub/b").write_text("b")
    (root / "gone").mkdir()
    (root / "gone/x").write_text("x")
    os.symlink("d/a", root / "link")
    return root


@pytest.mark.parametrize("full", [False, True])
def test_diff_finds_adds_changes_deletions_and_parents(tmp_path: Path, full: bool) -> None:
    root = _tree(tmp_path / "r")
    before = take_snapshot(root, full=full)
    (root / "d/sub/new").write_text("n")
    shutil.rmtree(root / "gone")
    os.unlink(root / "link")
    (root / "link").mkdir()
    ch = diff_snapshots(before, take_snapshot(root, full=full), full=full)
    assert ch.added == {"d", "d/sub", "d/sub/new", "link"}
    assert ch.whiteouts == {"gone"}  # not gone/x: the parent's whiteout hides it
    assert ch.opaque == {"link"}  # a directory where something else was


def test_full_mode_sees_same_size_same_mtime_content_changes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    st = os.stat(root / "d/a")
    before = take_snapshot(root, full=True)
    (root / "d/a").write_text("A")
    os.utime(root / "d/a", ns=(st.st_atime_ns, st.st_mtime_ns))
    ch = diff_snapshots(before, take_snapshot(root, full=True), full=True)
    assert "d/a" in ch.added


def test_no_change_is_an_empty_diff(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    assert diff_snapshots(take_snapshot(root), take_snapshot(root)).empty()


def test_excluded_paths_are_not_walked(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    snap = take_snapshot(root, exclude=lambda rel: rel == "d")
    assert "d" not in snap and "d/a" not in snap and "link" in snap


def test_write_changes_uses_the_overlay_upper_order(tmp_path: Path) -> None:
    """An upper dir and a walk diff of the same change give byte-identical layers."""
    root = _tree(tmp_path / "r")
    before = take_snapshot(root)
    for rel in ("d/z", "d/b", "d/sub/c", "e"):
        (root / rel).write_text(rel)
    os.unlink(root / "d/a")
    ch = diff_snapshots(before, take_snapshot(root))
    with LayerWriter(tmp_path / "walk.tar", compression="none", mtime=0) as w:
        write_changes(root, ch, w)
        walk = w.finish()
    upper = tmp_path / "upper"
    (upper / "d/sub").mkdir(parents=True)
    for rel in ("d/z", "d/b", "d/sub/c", "e"):
        shutil.copy2(root / rel, upper / rel)
    os.mknod(upper / "d/a", 0o600 | 0o020000, os.makedev(0, 0))  # overlay whiteout
    for d in ("d", "d/sub"):
        st = os.stat(root / d)
        os.chmod(upper / d, st.st_mode & 0o7777)
    with LayerWriter(tmp_path / "upper.tar", compression="none", mtime=0) as w:
        write_overlay_upper(upper, w)
        ov = w.finish()
    with tarfile.open(walk.path) as t:
        names = t.getnames()
    assert names == ["d", "d/.wh.a", "d/b", "d/sub", "d/sub/c", "d/z", "e"]
    assert walk.diff_id == ov.diff_id


def test_dir_pins_hold_only_what_fits_and_release_everything(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    fds = len(os.listdir("/proc/self/fd"))
    pins = DirPins()
    pins._room = 2  # as if the descriptors ran out after two directories
    try:
        snap = take_snapshot(root, pins=pins)
        assert len(os.listdir("/proc/self/fd")) == fds + 2
    finally:
        pins.close()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert snap == take_snapshot(root)  # the same records, pinned or not
