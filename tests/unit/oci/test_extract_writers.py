"""extract_layer writes small files on threads: the result is the same as writing them in
order, whatever the layer does to a path it has just written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from unit.oci.test_extract import box, entry, make_tar  # noqa: F401  (box is a fixture)

from trustbuild.errors import BuildError
from trustbuild.oci import extract
from trustbuild.oci.extract import extract_layer


def _tree(root: Path) -> dict[str, tuple[int, int, int, int, bytes | str | None]]:
    out: dict[str, tuple[int, int, int, int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            body: bytes | str | None = (p.read_bytes() if stat.S_ISREG(st.st_mode)
                                        else os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                             int(st.st_mtime), body)
    return out


def test_many_small_files_in_many_dirs_same_as_one_at_a_time(tmp_path, monkeypatch):
    entries = []
    for d in range(20):
        entries.append(entry(f"d{d}", "dir", mode=0o750, mtime=500 + d))
        for f in range(30):
            entries.append(entry(f"d{d}/f{f}", data=os.urandom(f * 100), mode=0o600 + f % 8,
                                 uid=d, gid=f, mtime=1000 + f))
    entries.append(entry("big", data=os.urandom(extract._ASYNC_MAX_FILE + 1), mode=0o640))
    blob = make_tar(tmp_path / "l", *entries)
    threaded = tmp_path / "threaded"
    threaded.mkdir()
    extract_layer(blob, threaded)
    monkeypatch.setattr(extract, "_ASYNC_MAX_FILE", -1)  # every file written by the reader
    serial = tmp_path / "serial"
    serial.mkdir()
    extract_layer(blob, serial)
    assert _tree(threaded) == _tree(serial)
    assert len(_tree(threaded)) == 20 + 600 + 1


def test_a_path_written_again_links_and_replacements(tmp_path, box):  # noqa: F811
    root, _, untouched = box
    blob = make_tar(
        tmp_path / "l",
        entry("a", data=b"first"), entry("a", data=b"second"),          # last one wins
        entry("t", data=b"target"), entry("h", "hard", link="t"),       # link to a fresh file
        entry("d", "dir"), entry("d/in", data=b"x"), entry("d", data=b"now a file"),
        entry("f", data=b"y"), entry("f", "dir"), entry("f/in", data=b"z"),
        entry("s", data=b"y"), entry("s", "sym", link="/etc"))
    extract_layer(blob, root)
    assert (root / "a").read_bytes() == b"second"
    assert os.stat(root / "h").st_ino == os.stat(root / "t").st_ino
    assert (root / "h").read_bytes() == b"target"
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "f" / "in").read_bytes() == b"z"
    assert os.readlink(root / "s") == "/etc"
    assert untouched()


def test_whiteouts_next_to_files_written_just_before(tmp_path, box):  # noqa: F811
    root, _, _ = box
    (root / "lower").write_text("from a lower layer")
    blob = make_tar(tmp_path / "l", entry("same", data=b"s"), entry("keep", data=b"k"),
                    entry(".wh.same"), entry(".wh.lower"))
    extract_layer(blob, root)
    # OCI: a whiteout hides lower layers' content only, never its own layer's
    assert (root / "same").read_bytes() == b"s"
    assert (root / "keep").read_bytes() == b"k"
    assert not (root / "lower").exists()


def test_a_writer_failure_names_the_entry_and_stops(tmp_path, box, monkeypatch):  # noqa: F811
    root, _, _ = box

    def refuse(self, dfd, base, info, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(extract._Extractor, "_write_file", refuse)
    blob = make_tar(tmp_path / "l", entry("dir", "dir"), entry("dir/file", data=b"x"),
                    *[entry(f"more{i}", data=b"y") for i in range(50)])
    # the first file a writer failed on (two threads: 'dir/file' or one of the others)
    with pytest.raises(BuildError, match=r"entry '(dir/file|more\d+)': Permission denied"):
        extract_layer(blob, root)
    assert not [t for t in __import__("threading").enumerate()
                if t.name.startswith("extract-writer")]


def test_entries_through_a_symlink_made_just_before(tmp_path, box):  # noqa: F811
    root, sentinel, untouched = box
    blob = make_tar(
        tmp_path / "l",
        entry("usr", "dir"), entry("usr/lib", "dir"), entry("usr/lib/a", data=b"a"),
        entry("lib", "sym", link="usr/lib"), entry("lib/b", data=b"b"),
        entry("esc", "sym", link=str(sentinel)), entry("esc/c", data=b"c"),
        entry("up", "sym", link="../../../.."), entry("up/d", "dir"), entry("up/d/e", data=b"e"))
    extract_layer(blob, root)
    assert (root / "usr" / "lib" / "b").read_bytes() == b"b"
    assert os.readlink(root / "lib") == "usr/lib"
    # an absolute or climbing target restarts at / stops at the rootfs: nothing lands outside
    assert (root / str(sentinel).lstrip("/") / "c").read_bytes() == b"c"
    assert (root / "d" / "e").read_bytes() == b"e"
    assert untouched()
