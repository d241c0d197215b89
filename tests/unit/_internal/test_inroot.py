"""The one in-root resolver: symlinks are walked inside the root and never lead out of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustbuild._internal.inroot import MAX_SYMLINKS, RootDir, resolve_in_root
from trustbuild.errors import BuildError, UnsafePath


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("host\n")
    return r


def test_absolute_symlinks_restart_at_the_root(root: Path) -> None:
    os.symlink("/etc", root / "abs")
    os.symlink("/", root / "usr" / "slash")
    assert resolve_in_root(root, "/abs/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "usr/slash/etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "/abs", follow_last=False) == root / "abs"


def test_dotdot_stops_at_the_root(root: Path) -> None:
    os.symlink("../../../../etc", root / "usr" / "climb")
    assert resolve_in_root(root, "/../../etc/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "usr/climb/passwd") == root / "etc" / "passwd"
    assert resolve_in_root(root, "usr/lib/../../../x") == root / "x"


def test_missing_components_are_kept_and_fold_lexically(root: Path) -> None:
    assert resolve_in_root(root, "/new/dir/../file") == root / "new" / "file"
    assert resolve_in_root(root, "/etc/passwd/x") == root / "etc" / "passwd" / "x"


def test_a_confined_root_refuses_instead_of_clamping(root: Path) -> None:
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("../../etc/passwd", root / "usr" / "out")
    with pytest.raises(UnsafePath, match="is absolute and points outside") as info:
        resolve_in_root(root, "abs", confined=True)
    assert (info.value.kind, info.value.link, info.value.target) == (
        "absolute", "abs", "/etc/passwd")
    with pytest.raises(UnsafePath, match="leads above") as info:
        resolve_in_root(root, "usr/out", confined=True)
    assert info.value.kind == "above"
    with pytest.raises(UnsafePath):
        resolve_in_root(root, "../etc", confined=True)


def test_link_loops_fail_with_one_error(root: Path) -> None:
    os.symlink("loop", root / "loop")
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    for path in ("/loop/x", "/a", "/a/x"):
        with pytest.raises(UnsafePath, match="too many levels of symbolic links") as info:
            resolve_in_root(root, path)
        assert info.value.kind == "loop"
        assert isinstance(info.value, BuildError)


def _chain(root: Path, n: int) -> str:
    """l0 -> l1 -> ... -> l{n-1} -> etc: n links to reach /etc."""
    for i in range(n):
        os.symlink(f"l{i + 1}" if i + 1 < n else "etc", root / f"l{i}")
    return "l0"


def test_exactly_max_symlinks_resolve(root: Path) -> None:
    start = _chain(root, MAX_SYMLINKS)
    assert resolve_in_root(root, f"{start}/passwd") == root / "etc" / "passwd"


def test_one_link_over_the_limit_fails(root: Path) -> None:
    start = _chain(root, MAX_SYMLINKS + 1)
    with pytest.raises(UnsafePath, match=f"more than {MAX_SYMLINKS}"):
        resolve_in_root(root, f"{start}/passwd")


def test_open_dir_walks_inside_and_creates(root: Path) -> None:
    os.symlink("/usr", root / "u")
    with RootDir(root) as rd:
        fd = rd.open_dir("u/lib/new/deeper", create=True)
        try:
            assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "usr/lib/new/deeper")
        finally:
            os.close(fd)
        assert oct(os.stat(root / "usr/lib/new").st_mode & 0o777) == "0o755"
        with pytest.raises(FileNotFoundError):
            rd.open_dir("missing")
        with pytest.raises(NotADirectoryError):
            rd.open_dir("etc/passwd/x")
    assert rd.fd == -1


def test_follow_false_refuses_any_symlink_on_the_way(root: Path) -> None:
    os.symlink("usr", root / "rel")
    with RootDir(root, follow=False) as rd:
        assert rd.resolve("usr/lib") == root / "usr" / "lib"
        with pytest.raises(UnsafePath, match="goes through symlink rel") as info:
            rd.resolve("rel/lib")
        assert info.value.kind == "symlink"
        assert rd.resolve("rel", follow_last=False) == root / "rel"
