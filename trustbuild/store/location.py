"""skopeo-style image locations.

``docker://REF`` (or bare REF), ``oci:DIR[:TAG]``, ``docker-archive:FILE[:REF]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustbuild.errors import InvalidReference
from trustbuild.oci.reference import Reference

__all__ = ["Location", "parse_location"]


@dataclass(frozen=True)
class Location:
    """Where an image is: the transport, its path or reference, and a tag/digest inside it."""

    transport: str  # "docker" | "oci" | "docker-archive"
    reference: Reference | None = None  # for docker (and the optional REF of docker-archive)
    path: str | None = None  # for oci and docker-archive
    tag: str | None = None  # for oci: the ref.name in index.json (tag or digest)

    def __str__(self) -> str:
        if self.transport == "docker":
            return f"docker://{self.reference}"
        suffix = ""
        if self.transport == "oci" and self.tag:
            suffix = f":{self.tag}"
        elif self.transport == "docker-archive" and self.reference:
            suffix = f":{self.reference.familiar()}"
        return f"{self.transport}:{self.path}{suffix}"


def parse_location(text: str) -> Location:
    """Parse a transport string; bare strings are registry references."""
    if text.startswith("docker://"):
        return Location("docker", Reference.parse(text[len("docker://"):]))
    if text.startswith("oci:"):
        body = text[4:]
        path, tag = _split_path(body)
        if not path:
            raise InvalidReference(f"invalid location {text!r}: expected oci:DIR[:TAG]")
        return Location("oci", path=path, tag=tag)
    if text.startswith("docker-archive:"):
        body = text[len("docker-archive:"):]
        path, ref = _split_path(body)
        if not path:
            raise InvalidReference(f"invalid location {text!r}: expected docker-archive:FILE[:REF]")
        return Location("docker-archive", Reference.parse(ref) if ref else None, path=path)
    head = text.split("/", 1)[0]
    if ":" in head and head.split(":", 1)[0] in ("dir", "containers-storage", "docker-daemon",
                                                 "oci-archive"):
        raise InvalidReference(f"unsupported transport in {text!r}: "
                               "use docker://, oci: or docker-archive:")
    return Location("docker", Reference.parse(text))


def _split_path(body: str) -> tuple[str, str | None]:
    """Split ``PATH[:SUFFIX]`` at the first colon, as containers/image does."""
    path, sep, rest = body.partition(":")
    return path, (rest or None) if sep else None
