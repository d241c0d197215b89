"""Content digests (``sha256:<hex>``) and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import BinaryIO

from trustbuild.errors import InvalidDigest

__all__ = ["Digest", "Hasher", "sha256_of", "sha256_file"]

_HEX = {"sha256": 64, "sha512": 128}
_FORM = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A validated content digest. Only sha256 (and sha512 for reading) are accepted."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX.get(self.algorithm)
        if want is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {self.algorithm!r} (only sha256 and sha512)"
            )
        if len(self.hex) != want or not re.fullmatch(r"[0-9a-f]+", self.hex):
            raise InvalidDigest(
                f"invalid {self.algorithm} digest {self.algorithm}:{self.hex!r}: "
                f"expected {want} lowercase hex characters"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algo:hex``; a clear InvalidDigest otherwise."""
        m = _FORM.match(text or "")
        if not m:
            raise InvalidDigest(f"invalid digest {text!r}: expected sha256:<64 hex characters>")
        return cls(m.group(1), m.group(2))

    @classmethod
    def of(cls, data: bytes) -> Digest:
        """The sha256 digest of ``data``."""
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> Hasher:
        """A streaming hasher of this digest's algorithm."""
        return Hasher(self.algorithm)

    @property
    def tag_form(self) -> str:
        """``sha256-<hex>``: the form used by cosign tags and the referrers tag schema."""
        return f"{self.algorithm}-{self.hex}"


class Hasher:
    """Streaming digest and byte counter."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        """Feed bytes."""
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        """The digest of everything fed so far."""
        return Digest(self.algorithm, self._h.hexdigest())


def sha256_of(stream: BinaryIO) -> tuple[Digest, int]:
    """Digest and size of a stream read to its end in chunks."""
    h = Hasher()
    while chunk := stream.read(CHUNK):
        h.update(chunk)
    return h.digest(), h.size


def sha256_file(path: str) -> tuple[Digest, int]:
    """Digest and size of a file."""
    with open(path, "rb") as f:
        return sha256_of(f)
