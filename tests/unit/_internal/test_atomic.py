"""atomic_file: the destination holds the old content or the new, never a part; no temp left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trustbuild._internal.atomic import atomic_file


def test_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "index.json"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(dest) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
    with atomic_file(dest, prefix=".x-", suffix=".tar") as f:
        f.write(b"new")
    assert dest.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_mode_open_would_give(tmp_path: Path, umask: int, mode: int) -> None:
    """Not mkstemp's 0600: an OCI layout written by root must be readable by the user or tool
    that reads it next (skopeo and umoci write 0644 under umask 022)."""
    old = os.umask(umask)
    try:
        with atomic_file(tmp_path / "blob") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "blob").stat().st_mode) == mode
