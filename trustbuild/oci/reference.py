"""Image references with Docker's normalisation.

``alpine`` -> ``docker.io/library/alpine:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustbuild.errors import InvalidReference
from trustbuild.oci.digest import Digest

__all__ = ["Reference", "DEFAULT_REGISTRY", "is_loopback_registry"]

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: registry host, repository, and tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise a reference.

        A bare name gets ``docker.io/library/`` and ``:latest``.
        """
        orig = text
        if not text or text != text.strip():
            raise InvalidReference(f"invalid image reference {orig!r}: "
                                   "empty or surrounded by spaces")
        digest: Digest | None = None
        if "@" in text:
            text, _, dg = text.partition("@")
            try:
                digest = Digest.parse(dg)
            except Exception as exc:
                raise InvalidReference(f"invalid image reference {orig!r}: {exc}") from None
        tag: str | None = None
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            text, tag = text[:colon], text[colon + 1:]
            if not _TAG.match(tag):
                raise InvalidReference(
                    f"invalid image reference {orig!r}: bad tag {tag!r} "
                    "(letters, digits, '_', '.', '-'; at most 128)"
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, repo = first, rest
            if not _DOMAIN.match(registry):
                raise InvalidReference(f"invalid image reference {orig!r}: "
                                       f"bad registry host {registry!r}")
        else:
            registry, repo = DEFAULT_REGISTRY, text
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and "/" not in repo:
            repo = f"library/{repo}"
        if not _REPO.match(repo):
            raise InvalidReference(
                f"invalid image reference {orig!r}: repository {repo!r} must be lowercase "
                "components of [a-z0-9] separated by '/', '.', '_' or '-'"
            )
        if len(registry) + 1 + len(repo) > 255:
            raise InvalidReference(f"invalid image reference {orig!r}: "
                                   "name longer than 255 characters")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, repo, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """The digest if there is one, else the tag: what to ask the registry for."""
        return str(self.digest) if self.digest else (self.tag or DEFAULT_TAG)

    def with_tag(self, tag: str) -> Reference:
        """The same repository at ``tag`` (no digest)."""
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    def familiar(self) -> str:
        """The short form Docker prints (``alpine:latest``)."""
        s = str(self)
        for prefix in (f"{DEFAULT_REGISTRY}/library/", f"{DEFAULT_REGISTRY}/"):
            if s.startswith(prefix):
                return s[len(prefix):]
        return s


def is_loopback_registry(host: str) -> bool:
    """True for registries on this machine (plain HTTP is used for them automatically)."""
    h = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    h = h.strip("[]")
    return h in ("localhost", "::1") or h.startswith("127.")
