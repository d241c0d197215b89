"""Tar helpers shared by the layer writer and extractor (unstable, internal).

- ``PaxInfo``: a TarInfo whose PAX records are written as raw bytes, sorted, without
  ``hdrcharset`` (as Go's archive/tar writes them, so binary xattrs round-trip everywhere).
- ``BoundedInfo``: a TarInfo for reading untrusted tars that bounds metadata headers.
- Whiteout names and tar name normalisation.
"""

from __future__ import annotations

import posixpath
import tarfile

from trustbuild._internal.idmap import OWNER_XATTR

__all__ = [
    "WHITEOUT_PREFIX", "OPAQUE_MARKER", "XATTR_PREFIX", "MAX_META", "MAX_META_CHAIN",
    "MAX_PATH", "PaxInfo", "BoundedInfo", "MetadataTooLarge", "clean_name", "header_bytes",
    "keep_xattr", "split", "join",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
XATTR_PREFIX = "SCHILY.xattr."
MAX_META = 1 << 20          # one PAX / GNU long-name header
MAX_META_CHAIN = 16         # metadata headers in front of one entry
MAX_GLOBAL_RECORDS = 256
MAX_PATH = 4096
BLOCK = tarfile.BLOCKSIZE
ENCODING = "utf-8"


def keep_xattr(name: str) -> bool:
    """Xattrs a layer carries: file capabilities and user.* (never overlay or SELinux state)."""
    if name.startswith("user.overlay.") or name == OWNER_XATTR:  # a rootless owner record
        return False
    return name == "security.capability" or name.startswith("user.")


class PaxInfo(tarfile.TarInfo):
    """TarInfo writing PAX records verbatim (raw bytes, sorted keys, no hdrcharset)."""

    @classmethod
    def _create_pax_generic_header(cls, pax_headers: dict[str, str], type: bytes,
                                   encoding: str) -> bytes:
        records = b""
        for keyword in sorted(pax_headers):
            kb = keyword.encode("utf-8", "surrogateescape")
            vb = pax_headers[keyword].encode("utf-8", "surrogateescape")
            n = len(kb) + len(vb) + 3
            p = 0
            while True:
                total = n + len(str(p))
                if total == p:
                    break
                p = total
            records += str(p).encode("ascii") + b" " + kb + b"=" + vb + b"\n"
        info: dict[str, object] = {
            "name": "././@PaxHeader", "type": type, "size": len(records),
            "magic": tarfile.POSIX_MAGIC,
        }
        head: bytes = cls._create_header(  # type: ignore[attr-defined]
            info, tarfile.USTAR_FORMAT, "ascii", "replace")
        payload: bytes = cls._create_payload(records)  # type: ignore[attr-defined]
        return head + payload


def header_bytes(info: tarfile.TarInfo) -> bytes:
    """The PAX-format header block(s) for ``info``."""
    return info.tobuf(tarfile.PAX_FORMAT, ENCODING, "surrogateescape")


_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
               tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class MetadataTooLarge(tarfile.HeaderError):
    """A PAX or GNU long-name header beyond the bounds an honest layer needs."""


class BoundedInfo(tarfile.TarInfo):
    """TarInfo for untrusted input: bounded metadata header sizes and chain length."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META_TYPES:
            if self.size > MAX_META:
                raise MetadataTooLarge(f"metadata header of {self.size} bytes (limit {MAX_META})")
            chain = getattr(tarfile_, "_tb_chain", 0) + 1
            if chain > MAX_META_CHAIN:
                raise MetadataTooLarge(f"more than {MAX_META_CHAIN} metadata headers in a row")
            tarfile_._tb_chain = chain  # type: ignore[attr-defined]
            try:
                res: tarfile.TarInfo = super()._proc_member(tarfile_)  # type: ignore[misc]
            finally:
                tarfile_._tb_chain = 0  # type: ignore[attr-defined]
            if len(tarfile_.pax_headers) > MAX_GLOBAL_RECORDS:
                raise MetadataTooLarge("too many global PAX records")
            return res
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]


def clean_name(name: str) -> str | None:
    """Normalise a tar member name to a relative path ("" for the root).

    Leading "/" and "./" are dropped and "a/../b" folded; None when ".." climbs above the root.
    """
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(comp)
    return "/".join(parts)


def split(rel: str) -> tuple[str, str]:
    """(parent, basename) of a cleaned relative name."""
    parent, _, base = rel.rpartition("/")
    return parent, base


def join(parent: str, name: str) -> str:
    """Join a relative parent ("" = root) and a name."""
    return posixpath.join(parent, name) if parent else name
