"""ADD helpers: URL downloads (streamed, ``--checksum`` verified) and local archive detection."""

from __future__ import annotations

import posixpath
import tarfile
import urllib.parse
from pathlib import Path

from trustbuild._internal.redact import redact_url
from trustbuild.errors import BuildError, DigestMismatch
from trustbuild.oci.compression import open_decompressed
from trustbuild.oci.digest import CHUNK, Digest, Hasher

__all__ = ["is_url", "fetch_url", "is_archive"]

_MAX_DOWNLOAD = 8 << 30


def is_url(word: str) -> bool:
    """True for ``http://`` and ``https://`` sources."""
    return word.startswith(("http://", "https://"))


def fetch_url(url: str, dest_dir: Path, *, checksum: str | None = None,
              timeout: float = 60.0) -> tuple[Path, str]:
    """Download ``url`` into ``dest_dir``; returns (path, file name from the URL path).

    With ``checksum`` (``sha256:<hex>``) the content must match or DigestMismatch is raised.
    Proxies come from ``HTTP(S)_PROXY``/``NO_PROXY``; messages show the URL without its query.
    """
    from trustbuild.registry.httpclient import HTTP_ERRORS, download
    from trustbuild.registry.response import root_cause

    want = Digest.parse(checksum) if checksum else None
    split = urllib.parse.urlsplit(url)
    name = posixpath.basename(split.path) or "download"
    dest = dest_dir / f"url-{len(list(dest_dir.iterdir()))}-{name}"
    h = Hasher(want.algorithm if want else "sha256")
    shown = redact_url(url)
    try:
        with download(url, timeout=(timeout, timeout)) as resp:
            if resp.status_code != 200:
                raise BuildError(f"ADD {shown}: HTTP {resp.status_code} {resp.reason}")
            with open(dest, "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    h.update(chunk)
                    if h.size > _MAX_DOWNLOAD:
                        raise BuildError(f"ADD {shown}: larger than {_MAX_DOWNLOAD} bytes")
                    out.write(chunk)
    except HTTP_ERRORS as exc:
        root = root_cause(exc)
        detail = str(root).splitlines()[0] if str(root) else type(root).__name__
        raise BuildError(f"ADD {shown}: cannot download ({redact_url(detail)})") from None
    if want is not None and h.digest() != want:
        dest.unlink()
        raise DigestMismatch(f"ADD {shown}: content has digest {h.digest()}, --checksum says "
                             f"{want}")
    return dest, name


def is_archive(path: Path) -> bool:
    """True if ``path`` is a tar archive, plain or gzip/bzip2/xz/zstd compressed."""
    try:
        with open_decompressed(path) as stream:
            head = stream.read(512)
    except Exception:  # noqa: BLE001 - not decompressible: not an archive
        return False
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True
