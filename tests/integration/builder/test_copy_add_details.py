"""COPY heredoc bodies keep their quotes; ADD archives are not layers (their .wh.* files stay)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions
from trustbuild.errors import DockerfileError


def _build(ctx: Path, tmp: Path):  # type: ignore[no-untyped-def]
    return build(BuildOptions(context=str(ctx), no_push=True,
                              oci_layout_path=str(tmp / "layout")))


def test_copy_heredoc_expands_variables_and_keeps_quotes(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        'FROM scratch\nARG WHO=bar\nCOPY <<EOF /greet.sh\necho "hi $WHO" \'x\'\nEOF\n'
        'COPY <<"EOF" /raw.sh\necho "$WHO"\nEOF\n')
    with _build(ctx, tmp_path) as r:
        assert (r.rootfs / "greet.sh").read_text() == "echo \"hi bar\" 'x'\n"
        assert (r.rootfs / "raw.sh").read_text() == 'echo "$WHO"\n'


def test_add_archive_keeps_whiteout_named_files(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("d/keep.txt", "d/.wh.keep.txt", "d/.wh..wh..opq"):
            ti = tarfile.TarInfo(name)
            ti.size = 2
            tf.addfile(ti, io.BytesIO(b"x\n"))
    (ctx / "a.tar").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text("FROM scratch\nADD a.tar /out/\n")
    with _build(ctx, tmp_path) as r:
        names = sorted(p.name for p in (r.rootfs / "out/d").iterdir())
    assert names == [".wh..wh..opq", ".wh.keep.txt", "keep.txt"]


def test_add_missing_source_names_add(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nADD nothere.txt /x\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2 ADD") as err:
        _build(ctx, tmp_path)
    assert "COPY" not in str(err.value)
