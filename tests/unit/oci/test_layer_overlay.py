"""write_overlay_upper: a real overlayfs upper dir becomes an OCI diff that recreates the merge."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from trustbuild.oci.extract import extract_layer, iter_layer_entries
from trustbuild.oci.layer import LayerWriter, write_overlay_upper

pytestmark = pytest.mark.privileged

CAP = bytes.fromhex("0100000200040000000000000000000000000000")


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything a user of the filesystem would notice, keyed by relative path."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                caps = os.getxattr(p, "security.capability") if "security.capability" in \
                    os.listxattr(p) else None
                out[rel] = ("f", stat.S_IMODE(st.st_mode), p.read_bytes(), caps)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            else:
                out[rel] = ("d" if stat.S_ISDIR(st.st_mode) else "o", stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def overlay(tmp_path):
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    (lower / "etc").mkdir()
    (lower / "etc" / "motd").write_text("hello")
    (lower / "etc" / "keep").write_text("keep")
    (lower / "var" / "cache" / "old").mkdir(parents=True)
    (lower / "var" / "cache" / "old" / "x").write_text("x")
    (lower / "dir_becomes_file").mkdir()
    (lower / "file_becomes_dir").write_text("f")
    (lower / "bin").mkdir()
    (lower / "bin" / "ping").write_text("ping")
    opts = (f"lowerdir={lower},upperdir={upper},workdir={work},"
            "redirect_dir=off,metacopy=off,index=off")
    res = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"overlayfs not mountable here: {res.stderr.strip()}")
    try:
        yield lower, upper, merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_upper_dir_diff_recreates_the_merged_view(tmp_path, overlay):
    lower, upper, merged = overlay
    (merged / "etc" / "motd").unlink()
    shutil.rmtree(merged / "var" / "cache")
    (merged / "var" / "cache").mkdir()            # opaque directory
    (merged / "var" / "cache" / "new").write_text("new")
    shutil.rmtree(merged / "dir_becomes_file")
    (merged / "dir_becomes_file").write_text("now a file")
    (merged / "file_becomes_dir").unlink()
    (merged / "file_becomes_dir").mkdir()
    (merged / "app").mkdir()
    (merged / "app" / "a").write_text("a")
    os.link(merged / "app" / "a", merged / "app" / "b")
    os.symlink("a", merged / "app" / "c")
    os.setxattr(merged / "bin" / "ping", "security.capability", CAP)
    os.mknod(merged / "app" / "skipme", stat.S_IFIFO | 0o644)
    want = snapshot(merged)
    del want["app/skipme"]

    with LayerWriter(tmp_path / "diff.tgz", mtime=0) as w:
        write_overlay_upper(upper, w, exclude=lambda arc: arc == "app/skipme")
    names = [e.name for e in iter_layer_entries(w.info.path)]
    assert "etc/.wh.motd" in names
    assert "var/cache/.wh..wh..opq" in names
    assert "app/skipme" not in names
    assert names.index("var/cache") < names.index("var/cache/.wh..wh..opq")
    assert names == sorted(names, key=lambda n: n.split("/"))
    entries = {e.name: e for e in iter_layer_entries(w.info.path)}
    assert entries["app/b"].islnk() and entries["app/b"].linkname == "app/a"
    assert not any(k.startswith("SCHILY.xattr.trusted.") for e in entries.values()
                   for k in e.pax_headers)

    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(lower, rebuilt, symlinks=True)
    extract_layer(w.info.path, rebuilt)
    assert snapshot(rebuilt) == want
    assert os.stat(rebuilt / "app" / "a").st_ino == os.stat(rebuilt / "app" / "b").st_ino


def _fake_upper(tmp_path: Path) -> Path:
    """An upper dir as overlayfs leaves it, made by hand (needs root for mknod/trusted.*)."""
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (upper / "var" / "lib").mkdir(parents=True)
    os.setxattr(upper / "var" / "lib", "trusted.overlay.opaque", b"y")
    (upper / "var" / "lib" / "new").write_text("n")
    (upper / "u").mkdir()
    os.setxattr(upper / "u", "user.overlay.opaque", b"y")
    return upper


def test_fake_upper_whiteouts_and_opaque_markers(tmp_path):
    upper = _fake_upper(tmp_path)
    with LayerWriter(tmp_path / "l.tar", compression="none") as w:
        write_overlay_upper(upper, w)
    names = [e.name for e in iter_layer_entries(w.info.path)]
    assert names == ["etc", "etc/.wh.gone", "u", "u/.wh..wh..opq", "var", "var/lib",
                     "var/lib/.wh..wh..opq", "var/lib/new"]
    entries = list(iter_layer_entries(w.info.path))
    assert not any(k.startswith("SCHILY.xattr.") for e in entries for k in e.pax_headers)


@pytest.mark.parametrize("xattr,target", [("trusted.overlay.redirect", "dir"),
                                          ("trusted.overlay.metacopy", "file")])
def test_redirect_and_metacopy_uppers_are_refused(tmp_path, xattr, target):
    from trustbuild.errors import BuildError
    upper = _fake_upper(tmp_path)
    p = upper / "etc" / "x"
    if target == "dir":
        p.mkdir()
    else:
        p.write_text("")
    os.setxattr(p, xattr, b"/elsewhere" if target == "dir" else b"")
    with pytest.raises(BuildError, match="redirect_dir=off" if target == "dir" else "metacopy"):
        with LayerWriter(tmp_path / "l.tar", compression="none") as w:
            write_overlay_upper(upper, w)
    assert not (tmp_path / "l.tar").exists()
