"""Base images: resolve a reference to a digest once, pull each layer once (verified), extract.

Example::

    bases = BaseImages(store_options=StoreOptions(), cache_dir=work / "blobs", platform=plat)
    img = bases.resolve("127.0.0.1:5000/busybox:1")     # manifest + config, no layers yet
    state = bases.image_state(img)                        # layers fetched only when needed
    extract_image(state, rootfs)                          # fetches (once each) and extracts
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.jsontypes import LoadedObject
from trustbuild.builder.config import ImageState, LayerRef, ensure_local
from trustbuild.builder.configfile import diff_ids_of
from trustbuild.errors import InvalidManifest, NotFound, RegistryError, TrustbuildError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.digest import Digest
from trustbuild.oci.image import MAX_CONFIG_BYTES, read_config_bytes, resolve_image
from trustbuild.oci.manifest import Manifest
from trustbuild.oci.reference import Reference
from trustbuild.oci.store import Store
from trustbuild.oci.verify import check_bytes
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import Location

if TYPE_CHECKING:
    from trustbuild.builder.events import BuildLog
    from trustbuild.builder.layerstore import LayerStore

__all__ = ["BaseImages", "ResolvedBase", "BaseImageError", "extract_image"]


class BaseImageError(TrustbuildError):
    """A base image that cannot be resolved, pulled or used."""


@dataclass
class ResolvedBase:
    """An external image pinned to one platform manifest digest."""

    reference: Reference
    digest: Digest  # platform manifest digest
    index_digest: Digest | None
    manifest: Manifest
    config_raw: bytes
    store: Store

    @property
    def pinned(self) -> str:
        """``name@digest`` (what everything downstream uses)."""
        return f"{self.reference.name}@{self.digest}"

    def config(self) -> LoadedObject:
        """The parsed config document."""
        value = json.loads(self.config_raw)
        return dict(value) if isinstance(value, dict) else {}


class BaseImages:
    """Resolver and layer cache shared by every stage of one build."""

    def __init__(self, *, store_options: StoreOptions, cache_dir: Path, platform: Platform,
                 log: BuildLog | None = None, layer_store: LayerStore | None = None) -> None:
        self.options = store_options
        self.log = log  # one progress line per pulled layer
        self.layer_store = layer_store  # blobs kept between builds (--cache-dir)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.platform = platform
        self._stores: dict[str, Store] = {}
        self._resolved: dict[str, ResolvedBase] = {}
        self.warnings: list[str] = []  # e.g. a base image of another platform
        self._lock = threading.Lock()

    def _store(self, ref: Reference) -> Store:
        from trustbuild.store.open import open_store

        key = ref.name
        if key not in self._stores:
            store, _ = open_store(Location("docker", ref), self.options)
            self._stores[key] = store
        return self._stores[key]

    def resolve(self, text: str, *, platform: Platform | None = None) -> ResolvedBase:
        """Resolve ``text`` (tag or digest) to one platform manifest; cached per reference."""
        plat = platform or self.platform
        key = f"{text}|{plat}"
        if key in self._resolved:
            return self._resolved[key]
        ref = Reference.parse(text)
        store = self._store(ref)
        try:
            img = resolve_image(store, ref.identifier, platform=plat)
            config_raw = self._config_bytes(store, img.manifest)
        except (NotFound, RegistryError) as exc:
            raise BaseImageError(f"cannot pull base image {ref}: {exc}") from exc
        except OSError as exc:
            raise BaseImageError(f"cannot pull base image {ref}: {exc}") from exc
        index = img.index
        resolved = ResolvedBase(ref, img.digest, index.digest if index is not None else None,
                                img.manifest, config_raw, store)
        self._check_platform(resolved, plat)
        self._resolved[key] = resolved
        return resolved

    def _config_bytes(self, store: Store, manifest: Manifest) -> bytes:
        """The base's config blob, verified; kept in the layer store (when there is one) like
        its layers, so a rebuild asks the registry for the manifest only."""
        if self.layer_store is None or manifest.config.size > MAX_CONFIG_BYTES:
            return read_config_bytes(store, manifest)  # (which refuses an oversized one)
        path = self.layer_store.ensure(manifest.config, store)  # verified once per build
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        check_bytes(data, manifest.config, what=f"{path}: config {manifest.config.digest}")
        return data

    def _check_platform(self, base: ResolvedBase, plat: Platform) -> None:
        try:
            cfg = base.config()
        except ValueError as exc:
            raise InvalidManifest(f"config of {base.reference}: not valid JSON ({exc})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("rootfs", {}), dict):
            raise InvalidManifest(f"config of {base.reference}: expected a JSON object")
        os_, arch = cfg.get("os"), cfg.get("architecture")
        if os_ and arch and (os_ != plat.os or arch != plat.architecture):
            self.warnings.append(f"base image {base.reference} is {os_}/{arch}, not {plat}")

    def layer_path(self, desc: Descriptor) -> Path:
        """Where the verified blob of ``desc`` lives in the cache."""
        if self.layer_store is not None:
            return self.layer_store.path(desc.digest)
        return self.cache_dir / desc.digest.algorithm / desc.digest.hex

    def fetch_layers(self, base: ResolvedBase) -> list[Path]:
        """Every layer blob of ``base`` in the cache, each pulled once and verified by digest."""
        return [self.fetch_layer(base, desc) for desc in base.manifest.layers]

    def fetch_layer(self, base: ResolvedBase, desc: Descriptor) -> Path:
        """One layer blob of ``base``: pulled (with a progress event) unless it is there."""
        try:
            if self.layer_store is not None:
                return self.layer_store.ensure(desc, _LoggedPull(self, base))
            dest = self.layer_path(desc)
            with self._lock:
                if not dest.exists():
                    self.pull(base, desc, dest)
            return dest
        except (NotFound, RegistryError) as exc:
            raise BaseImageError(
                f"cannot pull layer {desc.digest} of {base.reference}: {exc}") from exc

    def pull(self, base: ResolvedBase, desc: Descriptor, dest: Path) -> None:
        """Download one blob of ``base`` to ``dest`` (verified), reported to the build log."""
        if self.log is None:
            base.store.fetch_blob(desc, dest)
            return
        with self.log.blob("pull", str(desc.digest), desc.size,
                           where=str(base.reference)) as count:
            self._fetch_with_bar(base, desc, dest, count)

    def _fetch_with_bar(self, base: ResolvedBase, desc: Descriptor, dest: Path,
                        count: Callable[[int], None]) -> None:
        """fetch_blob, with the growing temp file feeding a terminal's bar."""
        if self.log is None or not self.log.tty:
            base.store.fetch_blob(desc, dest)
            count(desc.size)
            return
        from trustbuild.builder.events import watch_growth

        got = 0

        def seen(n: int) -> None:
            nonlocal got
            got += n
            count(n)

        dest.parent.mkdir(parents=True, exist_ok=True)
        with watch_growth(dest.parent, ".tmp-*", seen):  # copy_verified_to_file's temp file
            base.store.fetch_blob(desc, dest)
        count(max(0, desc.size - got))

    def image_state(self, base: ResolvedBase) -> ImageState:
        """The base image as an :class:`ImageState`; its layers are fetched into the blob cache
        only when something needs their bytes (``ensure_local``: extraction, a push elsewhere)."""
        paths = [self.layer_path(desc) for desc in base.manifest.layers]
        diff_ids = diff_ids_of(base.config(), what=str(base.reference))
        origin = _BaseOrigin(self, base)
        layers = [LayerRef(d, diff_ids[i] if i < len(diff_ids) else "", p, origin)
                  for i, (d, p) in enumerate(zip(base.manifest.layers, paths, strict=True))]
        return ImageState.from_config(base.config_raw, layers, what=str(base.reference))

    def close(self) -> None:
        """Release registry connections."""
        for store in self._stores.values():
            with contextlib.suppress(Exception):
                store.close()
        self._stores.clear()


class _LoggedPull:
    """What the layer store fetches a base layer from: the base's store, through the log."""

    def __init__(self, bases: BaseImages, base: ResolvedBase) -> None:
        self.bases, self.base = bases, base

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        self.bases.pull(self.base, desc, dest)


class _BaseOrigin:
    """``LayerRef.origin`` of a base image layer: fetched on first use through
    :meth:`BaseImages.fetch_layer` (the layer store, progress events); ``upstream`` is the
    repository a push to the same registry mounts it from."""

    def __init__(self, bases: BaseImages, base: ResolvedBase) -> None:
        self.bases, self.base = bases, base
        self.upstream = base.store

    def ensure_blob(self, desc: Descriptor) -> Path:
        return self.bases.fetch_layer(self.base, desc)

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        self.bases.pull(self.base, desc, dest)


def extract_image(state: ImageState, rootfs: Path) -> None:
    """Apply every layer of ``state`` in order into ``rootfs`` (checked against its diff_id)."""
    from trustbuild.oci.extract import extract_layer  # not on a build whose every step hit

    rootfs.mkdir(parents=True, exist_ok=True)
    for layer in state.layers:
        expected = Digest.parse(layer.diff_id) if layer.diff_id else None
        try:
            path = ensure_local(layer)
        except (NotFound, RegistryError) as exc:
            raise BaseImageError(f"cannot pull layer {layer.descriptor.digest}: {exc}") from exc
        extract_layer(path, rootfs, media_type=layer.descriptor.media_type,
                      diff_id=expected, what=f"layer {layer.descriptor.digest}")
