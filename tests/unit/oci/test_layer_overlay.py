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
