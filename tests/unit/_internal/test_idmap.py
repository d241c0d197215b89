"""Owner records of rootless builds (trustbuild/_internal/idmap.py).

The user-namespace cases run a snippet under ``unshare --user --map-root-user`` (only uid 0
mapped: the single-id map of a rootless build without a subordinate range).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from trustbuild._internal import idmap
from trustbuild._internal.tarutil import keep_xattr
from trustbuild.oci.extract import extract_layer

_REPO = str(Path(__file__).resolve().parents[3])


def _in_userns(code: str, tmp_path: Path) -> dict[str, object]:
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is needed")
    res = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", textwrap.dedent(code),
         str(tmp_path)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": _REPO})
    if res.returncode != 0 and "unshare failed" in res.stderr:
        pytest.skip(f"no user namespaces here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_keep_xattr_never_carries_the_owner_record() -> None:
    assert not keep_xattr(idmap.OWNER_XATTR)
    assert keep_xattr("user.other")


def test_unmapped_owner_is_recorded_and_written_to_the_layer(tmp_path: Path) -> None:
    out = _in_userns("""
        import json, os, sys, tarfile
        from pathlib import Path
        from trustbuild._internal import idmap
        from trustbuild.oci.layer import LayerWriter
        d = Path(sys.argv[1])
        (d / "f").write_text("x")
        (d / "dir").mkdir()
        os.symlink("f", d / "link")
        idmap.chown(d / "f", 1000, 2000)
        idmap.chown("dir", 3000, 3000, dir_fd=os.open(d, os.O_RDONLY))
        idmap.chown(d / "link", 1000, 1000, follow_symlinks=False)  # no xattr: stays root
        rec = [idmap.recorded_owner(d / n) for n in ("f", "dir", "link")]
        with LayerWriter(d / "l.tar", compression="none") as w:
            for n in ("dir", "f", "link"):
                w.add_path(d / n, n)
            w.finish()
        with tarfile.open(d / "l.tar") as tf:
            layer = {i.name: [i.uid, i.gid, sorted(i.pax_headers)] for i in tf}
        idmap.chown(d / "f", 0, 0)  # a mapped owner again: the record goes
        print(json.dumps({"in_userns": idmap.in_user_namespace(), "rec": rec,
                          "after": idmap.recorded_owner(d / "f"), "layer": layer,
                          "real": os.stat(d / "f").st_uid}))
    """, tmp_path)
    assert out["in_userns"] is True
    assert out["rec"] == [[1000, 2000], [3000, 3000], None]
    assert out["layer"] == {"dir": [3000, 3000, []], "f": [1000, 2000, []],
                            "link": [0, 0, []]}
    assert out["after"] is None and out["real"] == 0


def test_outside_a_user_namespace_a_record_is_ignored(tmp_path: Path) -> None:
    if idmap.in_user_namespace():
        pytest.skip("the tests already run in a user namespace")
    f = tmp_path / "f"
    f.write_text("x")
    os.setxattr(f, idmap.OWNER_XATTR, b"1000:1000")
    assert idmap.recorded_owner(f) is None


def test_a_layer_cannot_plant_an_owner_record(tmp_path: Path) -> None:
    """The record is the builder's own: extraction never takes it from a layer."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.size = 1
        info.pax_headers = {"SCHILY.xattr." + idmap.OWNER_XATTR: "0:0",
                            "SCHILY.xattr.user.kept": "yes"}
        tf.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "l.tar").write_bytes(raw.getvalue())
    root = tmp_path / "root"
    root.mkdir()
    extract_layer(tmp_path / "l.tar", root)
    assert os.listxattr(root / "f") == ["user.kept"]
