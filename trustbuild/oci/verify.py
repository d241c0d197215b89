"""Digest and size checking of untrusted bytes: every fetched blob passes through here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from trustbuild._internal.atomic import atomic_file
from trustbuild.errors import DigestMismatch
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import CHUNK, Digest

__all__ = ["VerifyingReader", "copy_verified_to_file", "check_bytes"]


class VerifyingReader:
    """Wraps a stream and checks it against ``desc``.

    Raises DigestMismatch at EOF (or on overrun) unless the content matches.
    """

    def __init__(self, stream: BinaryIO, desc: Descriptor, *, what: str = "") -> None:
        self._s = stream
        self._desc = desc
        self._h = desc.digest.hasher()
        self._what = what or str(desc.digest)
        self._done = False

    def read(self, n: int = -1) -> bytes:
        """Read like a file; verification happens when the end is reached."""
        data = self._s.read(n if n is not None and n >= 0 else CHUNK)
        if data:
            self._h.update(data)
            if self._h.size > self._desc.size:
                raise DigestMismatch(f"{self._what}: "
                                     f"more than the expected {self._desc.size} bytes")
        elif not self._done:
            self._done = True
            self._check()
        return data

    def _check(self) -> None:
        if self._h.size != self._desc.size:
            raise DigestMismatch(
                f"{self._what}: got {self._h.size} bytes, expected {self._desc.size} (truncated?)")
        got = self._h.digest()
        if got != self._desc.digest:
            raise DigestMismatch(f"{self._what}: content has digest {got}, "
                                 f"expected {self._desc.digest}")

    def close(self) -> None:
        """Close the underlying stream."""
        self._s.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def copy_verified_to_file(stream: BinaryIO, desc: Descriptor, dest: Path, *,
                          what: str = "") -> None:
    """Stream into ``dest`` atomically (temp file + rename); on mismatch nothing is left behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dest) as out:
        r = VerifyingReader(stream, desc, what=what)
        while chunk := r.read(CHUNK):
            out.write(chunk)


def check_bytes(data: bytes, desc: Descriptor | Digest, *, what: str = "") -> None:
    """Check in-memory content against a descriptor or digest."""
    dg = desc.digest if isinstance(desc, Descriptor) else desc
    label = what or str(dg)
    if isinstance(desc, Descriptor) and len(data) != desc.size:
        raise DigestMismatch(f"{label}: got {len(data)} bytes, expected {desc.size}")
    got = Digest(dg.algorithm, hashlib.new(dg.algorithm, data).hexdigest())
    if got != dg:
        raise DigestMismatch(f"{label}: content has digest {got}, expected {dg}")

