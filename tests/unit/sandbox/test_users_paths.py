"""The one USER resolver against the image's /etc files, in-root resolution, PATH search."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trustbuild._internal.inroot import resolve_in_root
from trustbuild._internal.users import resolve_user
from trustbuild.errors import BuildError
from trustbuild.sandbox.paths import find_executable


@pytest.mark.parametrize(("spec", "uid", "gid", "groups"), [
    ("", 0, 0, [0]),
    ("root", 0, 0, [0]),
    ("app", 1000, 1000, [1000, 2000]),
    ("1000", 1000, 1000, [1000, 2000]),
    ("app:extra", 1000, 2000, [2000]),
    ("1000:2000", 1000, 2000, [2000]),
    ("4242", 4242, 0, [0]),
    ("nobody", 65534, 65534, [65534]),
])
def test_resolve_user(busybox_rootfs: Path, spec: str, uid: int, gid: int,
                      groups: list[int]) -> None:
    u = resolve_user(busybox_rootfs, spec)
    assert (u.uid, u.gid, u.groups) == (uid, gid, groups)


def test_home_comes_from_passwd(busybox_rootfs: Path) -> None:
    assert resolve_user(busybox_rootfs, "app").home == "/home/app"


@pytest.mark.parametrize(("spec", "msg"), [
    ("ghost", "no user 'ghost'"), ("app:ghosts", "no group 'ghosts'"), (":1", "empty user"),
])
def test_unknown_users_and_groups(busybox_rootfs: Path, spec: str, msg: str) -> None:
    with pytest.raises(BuildError, match=msg):
        resolve_user(busybox_rootfs, spec)


def test_passwd_symlink_out_of_the_rootfs_is_resolved_inside(busybox_rootfs: Path,
                                                             tmp_path: Path) -> None:
    host = tmp_path / "host-passwd"
    host.write_text("evil:x:0:0::/:/bin/sh\n")
    os.unlink(busybox_rootfs / "etc/passwd")
    os.symlink(str(host), busybox_rootfs / "etc/passwd")
    with pytest.raises(BuildError, match="no user 'evil'"):
        resolve_user(busybox_rootfs, "evil")


def test_resolve_in_root_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    os.symlink("/", root / "a" / "up")
    os.symlink("../../../../etc", root / "a" / "dots")
    assert resolve_in_root(root, "/a/up/etc/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "/a/dots/passwd") == root / "etc/passwd"
    assert resolve_in_root(root, "/../../x") == root / "x"
    assert resolve_in_root(root, "/a/up", follow_last=False) == root / "a/up"


def test_find_executable(busybox_rootfs: Path) -> None:
    assert find_executable(busybox_rootfs, "sh", path_var="/usr/bin:/bin") == "/bin/sh"
    assert find_executable(busybox_rootfs, "/bin/sh", path_var="") == "/bin/sh"
    assert find_executable(busybox_rootfs, "bash", path_var="/usr/bin:/bin") is None
    assert find_executable(busybox_rootfs, "/etc/passwd", path_var="") is None
