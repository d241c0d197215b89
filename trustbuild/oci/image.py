"""Resolve a reference in any Store to one platform's image manifest, and read its config.

Example::

    img = resolve_image(store, "latest", platform=Platform.parse("linux/arm64"))
    cfg = read_config(store, img.manifest)
    print(img.digest, cfg["architecture"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustbuild.errors import DigestMismatch, InvalidManifest
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, Manifest, load_json, parse_manifest
from trustbuild.oci.verify import check_bytes

if TYPE_CHECKING:
    from trustbuild.oci.store import Store

__all__ = ["ResolvedImage", "resolve_image", "resolve_index", "read_config_bytes", "read_config",
           "MAX_CONFIG_BYTES"]

MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedImage:
    """What a reference resolved to: the top-level manifest/index and the chosen image manifest."""

    top: Manifest | Index
    manifest: Manifest
    platform: Platform | None  # the index entry's platform (None when ref named a manifest)

    @property
    def digest(self) -> Digest:
        """Digest of the image manifest (the platform one when ``top`` is an index)."""
        return self.manifest.digest

    @property
    def index(self) -> Index | None:
        """The index the image was picked from, if any."""
        return self.top if isinstance(self.top, Index) else None

    def descriptor(self) -> Descriptor:
        """Descriptor of the image manifest."""
        return self.manifest.descriptor()


def get_parsed(store: Store, ref: str | None) -> Manifest | Index:
    """Fetch and parse the manifest or index at ``ref`` (tag, digest, or '' where allowed)."""
    raw, mt = store.get_manifest(ref or "")
    sep = "@" if ref and ref.startswith("sha") else ":"
    what = f"{store.describe()}{sep + ref if ref else ''}"
    return parse_manifest(raw, mt, what=f"manifest of {what}")


def resolve_image(
    store: Store, ref: str | None, *, platform: Platform | None = None
) -> ResolvedImage:
    """Resolve ``ref`` once; from an index pick ``platform`` (default: this machine)."""
    top = get_parsed(store, ref)
    if isinstance(top, Manifest):
        return ResolvedImage(top, top, None)
    return resolve_index(store, top, platform=platform)


def resolve_index(store: Store, index: Index, *, platform: Platform | None = None) -> ResolvedImage:
    """The image manifest ``index`` holds for ``platform`` (default: this machine), checked
    against the entry's digest."""
    entry = index.select(platform or Platform.host())
    child = get_parsed(store, str(entry.digest))
    if not isinstance(child, Manifest):
        raise InvalidManifest(
            f"{store.describe()}: index entry {entry.digest} is not an image manifest"
        )
    if child.digest != entry.digest:
        raise DigestMismatch(
            f"{store.describe()}: index entry {entry.digest} has digest {child.digest}"
        )
    return ResolvedImage(index, child, entry.platform)


def read_config_bytes(store: Store, manifest: Manifest) -> bytes:
    """The raw config blob of ``manifest`` (verified, size-bounded)."""
    if manifest.config.size > MAX_CONFIG_BYTES:
        raise InvalidManifest(
            f"{store.describe()}: config {manifest.config.digest} is larger than "
            f"{MAX_CONFIG_BYTES} bytes"
        )
    parts: list[bytes] = []
    with store.open_blob(manifest.config) as f:
        while chunk := f.read(1 << 20):  # to EOF: the verifying reader checks digest and size
            parts.append(chunk)
    data = b"".join(parts)
    check_bytes(data, manifest.config, what=f"{store.describe()}: config {manifest.config.digest}")
    return data


def read_config(store: Store, manifest: Manifest) -> dict[str, object]:
    """The parsed config of ``manifest``."""
    return load_json(
        read_config_bytes(store, manifest),
        what=f"{store.describe()}: config {manifest.config.digest}",
    )
