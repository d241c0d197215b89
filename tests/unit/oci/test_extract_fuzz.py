"""Random hostile layers: extraction either succeeds or fails with a one-line trustbuild error,
and never writes outside the rootfs."""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from trustbuild.errors import BuildError, StoreError
from trustbuild.oci.extract import extract_layer

COMPS = ["a", "b", "..", ".", "", "/", ".wh.a", ".wh..wh..opq", "c", ".wh.b", "sentinel"]


def _name(r: random.Random) -> str:
    return "/".join(r.choice(COMPS) for _ in range(r.randint(1, 4)))


def _layer(r: random.Random, sentinel: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for _ in range(r.randint(1, 12)):
            ti = tarfile.TarInfo(_name(r))
            kind = r.choice("fdslh")
            data = b""
            if kind == "f":
                data = b"x" * r.randint(0, 3)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "s":
                ti.type = tarfile.SYMTYPE
                ti.linkname = r.choice(["/", "..", "../..", str(sentinel), "a", "../../sentinel",
                                        "b/..", "l", "a/../b"])
            elif kind == "l":
                ti.type = tarfile.LNKTYPE
                ti.linkname = _name(r)
            else:
                ti.type = tarfile.FIFOTYPE
            ti.size = len(data)
            ti.mode = r.choice([0o755, 0o644, 0o000, 0o4755, 0o1777])
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("chunk", range(4))
def test_random_hostile_layers_never_escape(tmp_path, chunk):
    outcomes = {"ok": 0, "refused": 0}
    for seed in range(chunk * 100, chunk * 100 + 100):
        r = random.Random(seed)
        box = tmp_path / str(seed)
        root, sentinel = box / "rootfs", box / "sentinel"
        (root / "a").mkdir(parents=True)
        (root / "a" / "f").write_text("f")
        os.symlink("/", root / "b")
        sentinel.mkdir()
        (sentinel / "s").write_text("s")
        try:
            extract_layer(io.BytesIO(_layer(r, sentinel)), root)
            outcomes["ok"] += 1
        except (BuildError, StoreError) as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        assert sorted(p.name for p in box.iterdir()) == ["rootfs", "sentinel"], seed
        assert [p.name for p in sentinel.iterdir()] == ["s"], seed
        assert (sentinel / "s").read_text() == "s", seed
    assert outcomes["ok"] > 10 and outcomes["refused"] > 10
