"""A tar build context is extracted by the one layer extractor (oci.extract), with its bounds."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from trustbuild._internal.tarutil import MAX_META
from trustbuild.builder.context import open_context
from trustbuild.errors import ContextError


def _tar(*infos: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in infos:
            tf.addfile(info, io.BytesIO(data) if data else None)
    buf.seek(0)
    return buf


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, len(data), 0o644
    return info


def test_fifos_devices_and_xattrs_never_reach_the_context() -> None:
    f = _entry("f", data=b"x")
    f.pax_headers = {"SCHILY.xattr.user.note": "hi"}
    stdin = _tar((_entry("pipe", tarfile.FIFOTYPE), b""), (_entry("dev", tarfile.CHRTYPE), b""),
                 (f, b"x"))
    with open_context("tar://stdin", stdin=stdin) as ctx:
        assert sorted(p.name for p in ctx.root.iterdir()) == ["f"]
        with pytest.raises(OSError):
            os.getxattr(ctx.root / "f", "user.note")


def test_an_oversized_pax_header_is_refused() -> None:
    f = _entry("f", data=b"x")
    f.pax_headers = {"comment": "x" * (MAX_META + 1)}
    with pytest.raises(ContextError, match="not a valid tar"):
        open_context("tar://stdin", stdin=_tar((f, b"x")))


def test_a_hardlink_to_a_symlink_is_refused() -> None:
    link = _entry("link", tarfile.SYMTYPE)
    link.linkname = "f"
    hard = _entry("h", tarfile.LNKTYPE)
    hard.linkname = "link"
    with pytest.raises(ContextError, match="hardlink target 'link' is a symlink"):
        open_context("tar://stdin", stdin=_tar((_entry("f", data=b"x"), b"x"), (link, b""),
                                                (hard, b"")))
