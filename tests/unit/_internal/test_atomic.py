"""atomic_file: the destination holds the old content or the new, never a part; no temp left."""

from __future__ import annotations

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
