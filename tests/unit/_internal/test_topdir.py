"""chattr +T on a build's work dir and the layer store's unpacked layers (_internal.topdir)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from trustbuild._internal.topdir import fresh_name, mark_top_dir


def _fs_type(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                          text=True, check=True).stdout.strip()


def _attrs(path: Path) -> str:
    out = subprocess.run(["lsattr", "-d", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[0]


def test_marks_a_directory_on_ext4(tmp_path: Path) -> None:
    if not _fs_type(tmp_path).startswith("ext"):
        pytest.skip(f"{tmp_path} is on {_fs_type(tmp_path)}, not ext2/3/4")
    d = tmp_path / "work"
    d.mkdir()
    assert "T" not in _attrs(d)
    assert mark_top_dir(d) is True
    assert "T" in _attrs(d)
    assert mark_top_dir(d) is True  # already marked: unchanged
    (d / "child").mkdir()
    assert "T" not in _attrs(d / "child")  # not inherited


def test_refuses_symlinks_files_and_missing_paths(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("x")
    assert mark_top_dir(tmp_path / "link") is False
    assert mark_top_dir(tmp_path / "file") is False
    assert mark_top_dir(tmp_path / "missing") is False
    if _fs_type(tmp_path).startswith("ext"):
        assert "T" not in _attrs(target)  # the symlink was not followed


def test_unsupported_filesystem_is_not_an_error() -> None:
    assert mark_top_dir("/proc") is False


def test_fresh_names_differ_and_keep_the_readable_part() -> None:
    names = {fresh_name("rootfs-01-base") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("rootfs-01-base.") for n in names)
