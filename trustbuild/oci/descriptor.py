"""Descriptors and platforms (OCI image spec ``descriptor.md`` and ``image-index.md``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from trustbuild._internal.jsontypes import LoadedObject
from trustbuild.errors import InvalidManifest, UsageError
from trustbuild.oci.digest import Digest

__all__ = ["Descriptor", "Platform"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Platform:
    """``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` (a usage error otherwise)."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}: "
                             "expected os/arch[/variant], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform."""
        m = os.uname().machine  # what platform.machine() answers, without its import
        arch = _ARCH.get(m, m)
        return cls("linux", arch, "v8" if arch == "arm64" else None)

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> Platform:
        """From an index entry's ``platform`` object."""
        variant, os_version = d.get("variant"), d.get("os.version")
        return cls(str(d.get("os", "")), str(d.get("architecture", "")),
                   variant if isinstance(variant, str) else None,
                   os_version if isinstance(os_version, str) else None)

    def to_json(self) -> dict[str, str]:
        """As an index entry's ``platform`` object."""
        d = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        if self.os_version:
            d["os.version"] = self.os_version
        return d

    def matches(self, other: Platform) -> bool:
        """True if ``other`` (an index entry) satisfies this requested platform."""
        if self.os != other.os or self.architecture != other.architecture:
            return False
        if self.variant and other.variant and self.variant != other.variant:
            return False
        return True

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A typed pointer to content: media type, digest, size (plus optional fields, kept)."""

    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] | None = None
    extra: LoadedObject = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, d: object, *, where: str = "descriptor") -> Descriptor:
        """Parse and check a descriptor object."""
        if not isinstance(d, dict):
            raise InvalidManifest(f"{where}: expected an object")
        try:
            mt = d["mediaType"]
            size = d["size"]
            dg = Digest.parse(d["digest"])
        except KeyError as exc:
            raise InvalidManifest(f"{where}: missing field {exc.args[0]!r}") from None
        except Exception as exc:
            raise InvalidManifest(f"{where}: {exc}") from None
        if (not isinstance(mt, str) or not isinstance(size, int) or isinstance(size, bool)
                or size < 0):
            raise InvalidManifest(f"{where}: mediaType must be a string "
                                  "and size a non-negative integer")
        ann = d.get("annotations")
        if ann is not None and not (isinstance(ann, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in ann.items())):
            raise InvalidManifest(f"{where}: annotations must map strings to strings")
        if not isinstance(d.get("artifactType", ""), str):
            raise InvalidManifest(f"{where}: artifactType must be a string")
        urls = d.get("urls")
        if urls is not None and not (isinstance(urls, list)
                                     and all(isinstance(u, str) for u in urls)):
            raise InvalidManifest(f"{where}: urls must be a list of strings")
        plat = d.get("platform")
        if plat is not None and not (isinstance(plat, dict) and all(
                isinstance(plat.get(k) or "", str) for k in ("os", "architecture", "variant",
                                                            "os.version"))):
            raise InvalidManifest(f"{where}: platform must be an object of strings")
        known = {"mediaType", "size", "digest", "annotations", "platform", "artifactType", "urls"}
        return cls(
            mt, dg, size, ann,
            Platform.from_json(plat) if isinstance(plat, dict) else None,
            d.get("artifactType"),
            tuple(d["urls"]) if isinstance(d.get("urls"), list) else None,
            {k: v for k, v in d.items() if k not in known},
        )

    def to_json(self) -> LoadedObject:
        """As a JSON object in the spec's field order."""
        d: LoadedObject = {"mediaType": self.media_type, "digest": str(self.digest),
                         "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform.to_json())
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d.update(self.extra)
        return d

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes, *,
                  annotations: dict[str, str] | None = None, platform: Platform | None = None,
                  artifact_type: str | None = None) -> Descriptor:
        """A descriptor of in-memory content."""
        return cls(media_type, Digest.of(data), len(data), annotations=annotations,
                   platform=platform, artifact_type=artifact_type)
