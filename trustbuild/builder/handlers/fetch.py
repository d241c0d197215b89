"""ADD helpers: URL downloads (streamed, ``--checksum`` verified) and local archive detection."""

from __future__ import annotations

import posixpath
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

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
    """
    want = Digest.parse(checksum) if checksum else None
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
    dest = dest_dir / f"url-{len(list(dest_dir.iterdir()))}-{name}"
    h = Hasher(want.algorithm if want else "sha256")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            while chunk := resp.read(CHUNK):
                h.update(chunk)
                if h.size > _MAX_DOWNLOAD:
                    raise BuildError(f"ADD {url}: larger than {_MAX_DOWNLOAD} bytes")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise BuildError(f"ADD {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BuildError(f"ADD {url}: cannot download ({reason})") from None
    if want is not None and h.digest() != want:
        dest.unlink()
        raise DigestMismatch(f"ADD {url}: content has digest {h.digest()}, --checksum says {want}")
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
