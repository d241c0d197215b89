"""extract_layer on hostile and ordinary layer tars: nothing escapes the rootfs."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from trustbuild.errors import BuildError, DigestMismatch, StoreError
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer, flatten_layers, iter_layer_entries

CAP = bytes.fromhex("0100000200040000000000000000000000000000")


def entry(name: str, kind: str = "file", data: bytes = b"", *, link: str = "", mode: int = 0o644,
          uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000, pax: dict | None = None,
          dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
               "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[kind]
    ti.size = len(data) if kind == "file" else 0
    ti.linkname, ti.mode, ti.uid, ti.gid, ti.mtime = link, mode, uid, gid, mtime
    ti.devmajor, ti.devminor = dev
    ti.pax_headers = dict(pax or {})
    return ti, data


def make_tar(path: Path, *entries: tuple[tarfile.TarInfo, bytes], gz: bool = True) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    path.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    return path


@pytest.fixture
def box(tmp_path):
    """A rootfs plus a sibling sentinel dir that must never change."""
    root = tmp_path / "rootfs"
    sentinel = tmp_path / "sentinel"
    root.mkdir()
    sentinel.mkdir()
    (sentinel / "secret").write_text("secret\n")

    def untouched() -> bool:
        return sorted(p.name for p in sentinel.iterdir()) == ["secret"] and \
            (sentinel / "secret").read_text() == "secret\n"
    return root, sentinel, untouched


def test_dotdot_names_are_rejected(tmp_path, box):
    root, _, untouched = box
    blob = make_tar(tmp_path / "l", entry("../sentinel/evil", data=b"x"))
    with pytest.raises(BuildError, match=r"entry '../sentinel/evil'.*escapes"):
        extract_layer(blob, root)
    assert untouched()


def test_absolute_names_land_inside(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry(f"{sentinel}/evil", data=b"x"),
                    entry("/./a/../b", data=b"y"))
    extract_layer(blob, root)
    assert (root / str(sentinel).lstrip("/") / "evil").read_bytes() == b"x"
    assert (root / "b").read_bytes() == b"y"
    assert untouched()


def test_write_through_absolute_symlink_stays_in_rootfs(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("a", "sym", link=str(sentinel)),
                    entry("a/evil", data=b"x"), entry("a/secret", data=b"overwritten"))
    extract_layer(blob, root)
    inside = root / str(sentinel).lstrip("/")
    assert (inside / "evil").read_bytes() == b"x"
    assert os.readlink(root / "a") == str(sentinel)
    assert untouched()


def test_write_through_relative_escaping_symlink_is_clamped(tmp_path, box):
    root, _, untouched = box
    blob = make_tar(tmp_path / "l", entry("d", "dir"),
                    entry("d/up", "sym", link="../../../sentinel"),
                    entry("d/up/evil", data=b"x"))
    extract_layer(blob, root)
    assert (root / "sentinel" / "evil").read_bytes() == b"x"
    assert untouched()


def test_symlink_as_final_component_is_replaced_not_followed(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("f", "sym", link=str(sentinel / "secret")),
                    entry("f", data=b"new"))
    extract_layer(blob, root)
    assert (root / "f").read_bytes() == b"new" and not (root / "f").is_symlink()
    assert untouched()


@pytest.mark.parametrize("link", ["../sentinel/secret", "../../sentinel/secret",
                                  "d/../../sentinel/secret"])
def test_hardlink_escaping_the_rootfs_is_an_error(tmp_path, box, link):
    root, _, untouched = box
    blob = make_tar(tmp_path / "l", entry("d", "dir"), entry("h", "hard", link=link))
    with pytest.raises(BuildError, match="entry 'h'.*hardlink target"):
        extract_layer(blob, root)
    assert untouched()


def test_hardlink_to_host_path_missing_in_rootfs_is_an_error(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("h", "hard", link=str(sentinel / "secret")))
    with pytest.raises(BuildError, match="does not exist"):
        extract_layer(blob, root)
    assert untouched()
    assert os.stat(sentinel / "secret").st_nlink == 1


def test_hardlink_through_symlink_parent_stays_inside(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("s", "sym", link="/"),
                    entry("h", "hard", link=f"s{sentinel}/secret"))
    with pytest.raises(BuildError, match="does not exist"):
        extract_layer(blob, root)
    assert os.stat(sentinel / "secret").st_nlink == 1 and untouched()


def test_symlink_loop_is_an_error(tmp_path, box):
    root, _, untouched = box
    blob = make_tar(tmp_path / "l", entry("l1", "sym", link="l2"), entry("l2", "sym", link="l1"),
                    entry("l1/x", data=b"x"))
    with pytest.raises(BuildError, match="entry 'l1/x'.*symbolic links"):
        extract_layer(blob, root)
    assert untouched()


def test_device_nodes_only_when_allowed(tmp_path, box):
    root, _, _ = box
    blob = make_tar(tmp_path / "l", entry("dev/null", "chr", dev=(1, 3), mode=0o666),
                    entry("dev/loop9", "blk", dev=(7, 9)), entry("p", "fifo"))
    stats = extract_layer(blob, root, allow_devices=False)
    assert stats.devices_skipped == 2 and not (root / "dev/null").exists()
    assert stat.S_ISFIFO(os.lstat(root / "p").st_mode)
    stats = extract_layer(blob, root, allow_devices=True)
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666 and stats.devices == 2


def lower(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("m")
    (root / "etc" / "keep").write_text("k")
    (root / "var" / "b").mkdir(parents=True)
    (root / "var" / "a").write_text("a")
    (root / "var" / "b" / "c").write_text("c")
    (root / "gone" / "deep").mkdir(parents=True)


@pytest.mark.parametrize("marker_first", [True, False])
def test_whiteouts_and_opaque_dirs(tmp_path, box, marker_first):
    root, _, _ = box
    lower(root)
    body = [entry("var/new", data=b"n"), entry("var/b", "dir"), entry("var/b/mine", data=b"m")]
    marks = [entry("etc/.wh.motd"), entry("var/.wh..wh..opq"), entry(".wh.gone"),
             entry("nothere/.wh.x")]
    blob = make_tar(tmp_path / "l", *(marks + body if marker_first else body + marks))
    stats = extract_layer(blob, root)
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["keep"]
    assert sorted(str(p.relative_to(root)) for p in (root / "var").rglob("*")) == \
        ["var/b", "var/b/mine", "var/new"]
    assert not (root / "gone").exists() and not (root / "nothere").exists()
    assert stats.whiteouts == 4
    assert not list(root.rglob(".wh.*"))


def test_type_replacement(tmp_path, box):
    root, sentinel, untouched = box
    (root / "file_to_dir").write_text("x")
    (root / "dir_to_file" / "sub").mkdir(parents=True)
    (root / "dir_to_link").mkdir()
    (root / "dir_to_link" / "x").write_text("x")
    os.symlink(str(sentinel), root / "link_to_dir")
    blob = make_tar(tmp_path / "l", entry("file_to_dir", "dir"), entry("file_to_dir/in", data=b"1"),
                    entry("dir_to_file", data=b"2"), entry("dir_to_link", "sym", link="/etc"),
                    entry("link_to_dir", "dir", mode=0o700), entry("link_to_dir/in", data=b"3"))
    extract_layer(blob, root)
    assert (root / "file_to_dir" / "in").read_bytes() == b"1"
    assert (root / "dir_to_file").read_bytes() == b"2"
    assert os.readlink(root / "dir_to_link") == "/etc"
    assert not (root / "link_to_dir").is_symlink()
    assert (root / "link_to_dir" / "in").read_bytes() == b"3"
    assert stat.S_IMODE(os.stat(root / "link_to_dir").st_mode) == 0o700
    assert untouched()


def test_owner_modes_mtimes_and_xattrs_restored(tmp_path, box):
    root, _, _ = box
    blob = make_tar(
        tmp_path / "l",
        entry("tmp", "dir", mode=0o1777, mtime=1000),
        entry("tmp/suid", data=b"#!", mode=0o4755, uid=1000, gid=1001, mtime=2000,
              pax={"SCHILY.xattr.security.capability": CAP.decode("utf-8", "surrogateescape"),
                   "SCHILY.xattr.user.k": "v"}),
        entry("tmp/ln", "sym", link="suid", uid=7, gid=8),
        entry("ro", "dir", mode=0o555), entry("ro/f", data=b"x", mode=0o400))
    extract_layer(blob, root)
    st = os.stat(root / "tmp" / "suid")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert st.st_mtime == 2000
    assert os.getxattr(root / "tmp" / "suid", "security.capability") == CAP
    assert os.getxattr(root / "tmp" / "suid", "user.k") == b"v"
    dst = os.stat(root / "tmp")
    assert stat.S_IMODE(dst.st_mode) == 0o1777 and dst.st_mtime == 1000
    lst = os.lstat(root / "tmp" / "ln")
    assert (lst.st_uid, lst.st_gid) == (7, 8)
    assert stat.S_IMODE(os.stat(root / "ro").st_mode) == 0o555
    assert (root / "ro" / "f").read_bytes() == b"x"


def test_overlay_xattrs_in_a_layer_are_not_applied(tmp_path, box):
    root, _, _ = box
    blob = make_tar(tmp_path / "l", entry("d", "dir", pax={
        "SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.overlay.opaque": "y"}))
    extract_layer(blob, root)
    assert os.listxattr(root / "d") == []


def test_diff_id_checked_and_reported(tmp_path, box):
    root, _, _ = box
    blob = make_tar(tmp_path / "l", entry("f", data=b"abc"))
    stats = extract_layer(blob, root)
    assert stats.diff_id == Digest.of(gzip.decompress(blob.read_bytes()))
    extract_layer(blob, root, diff_id=stats.diff_id)
    with pytest.raises(DigestMismatch, match="diff_id"):
        extract_layer(blob, root, diff_id=Digest.of(b"other"))


def test_corrupt_and_oversized_metadata_are_store_errors(tmp_path, box):
    root, _, _ = box
    blob = make_tar(tmp_path / "l", entry("f", data=b"abc" * 1000))
    (tmp_path / "trunc").write_bytes(blob.read_bytes()[:40])
    with pytest.raises(StoreError, match="trunc"):
        extract_layer(tmp_path / "trunc", root)
    huge = make_tar(tmp_path / "huge", entry("f", pax={"comment": "x" * (2 << 20)}), gz=False)
    with pytest.raises(StoreError, match="metadata header"):
        extract_layer(huge, root)


def test_flatten_and_iterate(tmp_path):
    l1 = make_tar(tmp_path / "l1", entry("a", data=b"1"), entry("b", data=b"1"))
    l2 = make_tar(tmp_path / "l2", entry(".wh.a"), entry("b", data=b"2"), gz=False)
    dest = tmp_path / "out"
    flatten_layers([l1, l2], dest)
    assert sorted(p.name for p in dest.iterdir()) == ["b"]
    assert (dest / "b").read_bytes() == b"2"
    assert [e.name for e in iter_layer_entries(l2)] == [".wh.a", "b"]
    with open(l1, "rb") as f:
        assert [e.name for e in iter_layer_entries(f)] == ["a", "b"]


def test_archive_mode_keeps_wh_names_and_caller_ownership(tmp_path, box):
    root, _, _ = box
    (root / "x").write_text("lower")
    blob = make_tar(tmp_path / "l", entry(".wh.x"), entry("f", data=b"1", uid=4242, gid=4243))
    stats = extract_layer(blob, root, whiteouts=False, same_owner=False, what="archive a.tar")
    assert (root / "x").read_text() == "lower" and (root / ".wh.x").is_file()
    assert os.stat(root / "f").st_uid == os.getuid() and stats.whiteouts == 0
    bad = make_tar(tmp_path / "bad", entry("../x", data=b""))
    with pytest.raises(BuildError, match=r"^archive a.tar: entry '../x'"):
        extract_layer(bad, root, what="archive a.tar")


def test_hardlink_to_a_symlink_links_the_symlink_itself(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("s", "sym", link=str(sentinel / "secret")),
                    entry("h", "hard", link="s"), entry("h2", "hard", link="/./s"))
    stats = extract_layer(blob, root)
    assert os.readlink(root / "h") == str(sentinel / "secret")
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino
    assert os.lstat(root / "h2").st_ino == os.lstat(root / "s").st_ino
    assert os.stat(sentinel / "secret").st_nlink == 1 and stats.hardlinks == 2
    assert stats.links == [("h", "s"), ("h2", "s")]
    assert untouched()


def test_whiteout_through_symlinked_parent_stays_inside(tmp_path, box):
    root, sentinel, untouched = box
    blob = make_tar(tmp_path / "l", entry("up", "sym", link="../../sentinel"),
                    entry("up/.wh.secret"), entry("abs", "sym", link=str(sentinel)),
                    entry("abs/.wh..wh..opq"))
    extract_layer(blob, root)
    assert untouched()


def test_aufs_bookkeeping_entries_are_skipped(tmp_path, box):
    root, _, _ = box
    blob = make_tar(tmp_path / "l", entry(".wh..wh.plnk", "dir"),
                    entry(".wh..wh.plnk/123.456", data=b"x"), entry(".wh..wh.aufs"),
                    entry("kept", data=b"k"))
    stats = extract_layer(blob, root)
    assert sorted(p.name for p in root.iterdir()) == ["kept"]
    assert len(stats.skipped) == 3
