"""Blob uploads (OCI distribution spec "push"): cross-repository mount, monolithic, chunked.

``upload_blob`` runs ``POST /v2/<name>/blobs/uploads/`` (with ``?mount=<digest>&from=<repo>``
when a source repository is known: 201 means mounted, 202 means the registry started a normal
upload instead), then either one ``PUT <location>?digest=`` carrying the whole blob (size up to
``chunk_size``) or ``PATCH`` requests of ``chunk_size`` bytes with ``Content-Range`` followed by
an empty ``PUT``. Relative and absolute ``Location`` headers are both handled. A failed upload
is restarted from the beginning (the source is re-opened) under the transport's retry policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import urljoin

from trustbuild._internal.retry import retry_call
from trustbuild.errors import DigestMismatch, RegistryError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.store import BlobSource
from trustbuild.registry.challenge import repository_scope
from trustbuild.registry.transport import Transport

__all__ = ["upload_blob", "DEFAULT_CHUNK_SIZE", "UploadResult"]

DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
_OCTET = "application/octet-stream"


class UploadResult(str):
    """How a blob got there: ``"mounted"`` or ``"uploaded"`` (a ``str`` for easy counting)."""


class _Window:
    """At most ``length`` bytes of ``stream`` from its current position, with a known length.

    The upload gives its ``Content-Length``, so it is never sent with chunked transfer encoding.
    """

    def __init__(self, stream: BinaryIO, length: int, *, what: str = "blob", start: int = 0,
                 total: int | None = None) -> None:
        self._s = stream
        self._left = length
        self.len = length
        self._pos = 0
        self._what = what
        self._start = start
        self._total = length if total is None else total

    def tell(self) -> int:
        """Bytes handed out so far."""
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        """Read up to ``n`` bytes of the window."""
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._s.read(want)
        if not data:
            raise DigestMismatch(f"{self._what}: the source ended after "
                                 f"{self._start + self._pos} of {self._total} bytes")
        self._left -= len(data)
        self._pos += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(1 << 20):
            yield chunk


def _with_digest(location: str, desc: Descriptor) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={desc.digest}"


def _location(transport: Transport, resp_location: str | None, current: str) -> str:
    if not resp_location:
        raise RegistryError(f"registry {transport.host} answered an upload request without a "
                            "Location header")
    return urljoin(current, resp_location)


def _start(transport: Transport, repository: str, desc: Descriptor,
           mount_from: str | None) -> tuple[str, str | None]:
    """POST an upload session; returns (kind, location): kind ``mounted`` has no location."""
    path = f"/v2/{repository}/blobs/uploads/"
    scopes = [repository_scope(repository, "pull,push")]
    params: dict[str, str] | None = None
    if mount_from and mount_from != repository:
        params = {"mount": str(desc.digest), "from": mount_from}
        scopes.append(repository_scope(mount_from, "pull"))
    resp = transport.request("POST", path, scopes=scopes, expect=(201, 202), params=params,
                             headers={"Content-Length": "0"}, retry=False)
    try:
        if resp.status_code == 201 and params is not None:
            return "mounted", None
        return "upload", _location(transport, resp.headers.get("Location"), resp.url)
    finally:
        resp.close()


def _monolithic(transport: Transport, repository: str, desc: Descriptor, source: BlobSource,
                location: str) -> None:
    scopes = [repository_scope(repository, "pull,push")]

    @contextmanager
    def body() -> Iterator[_Window]:
        with source() as stream:
            yield _Window(stream, desc.size, what=f"blob {desc.digest}")

    transport.request("PUT", _with_digest(location, desc), scopes=scopes, expect=(201, 204),
                      headers={"Content-Type": _OCTET, "Content-Length": str(desc.size)},
                      body=body, retry=False).close()


def _chunked(transport: Transport, repository: str, desc: Descriptor, source: BlobSource,
             location: str, chunk_size: int) -> None:
    scopes = [repository_scope(repository, "pull,push")]
    with source() as stream:
        offset = 0
        while offset < desc.size:
            length = min(chunk_size, desc.size - offset)
            window = _Window(stream, length, what=f"blob {desc.digest}", start=offset,
                             total=desc.size)

            @contextmanager
            def body(w: _Window = window) -> Iterator[_Window]:
                yield w

            hdrs = {"Content-Type": _OCTET, "Content-Length": str(length),
                    "Content-Range": f"{offset}-{offset + length - 1}"}
            resp = transport.request("PATCH", location, scopes=scopes, expect=(202, 204),
                                     headers=hdrs, body=body, retry=False)
            location = _location(transport, resp.headers.get("Location"), resp.url)
            resp.close()
            offset += length
    transport.request("PUT", _with_digest(location, desc), scopes=scopes, expect=(201, 204),
                      headers={"Content-Length": "0"}, retry=False).close()


def upload_blob(transport: Transport, repository: str, desc: Descriptor, source: BlobSource, *,
                mount_from: str | None = None,
                chunk_size: int = DEFAULT_CHUNK_SIZE) -> UploadResult:
    """Put one blob into ``repository``; returns ``mounted`` or ``uploaded``."""

    def attempt() -> UploadResult:
        kind, location = _start(transport, repository, desc, mount_from)
        if kind == "mounted":
            return UploadResult("mounted")
        assert location is not None
        if desc.size <= chunk_size:
            _monolithic(transport, repository, desc, source, location)
        else:
            _chunked(transport, repository, desc, source, location, chunk_size)
        return UploadResult("uploaded")

    return retry_call(attempt, policy=transport.retry)
