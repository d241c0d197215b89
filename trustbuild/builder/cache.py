"""Step cache in a repository (``--cache``, ``--cache-repo``), like Kaniko's.

Every RUN, COPY, ADD and WORKDIR step has a key computed from its *inputs*
(``trustbuild.builder.cachekey``, described in docs/cache.md). A cached step is an image with
zero or one layer, tagged with the key's hex in the cache repository; the layer's diff_id is
in the config and, so a lookup is one request, in the manifest annotation
``dev.trustbuild.cache.diff_id``; ``org.opencontainers.image.created`` says when it was
stored (``--cache-ttl``: older entries are misses). A lookup reads only the manifest: the layer
stays in the repository (``LayerRef.origin``) until something needs its bytes, and a push to
the same registry mounts it from there. Whoever can push to the cache repository can change build
results: use a repository only the builder writes to.

Example::

    cache = LayerCache.open("127.0.0.1:5000/app/cache", options=StoreOptions(),
                            layer_dir=tmp, platform=plat, output=sys.stderr)
    entry = cache.lookup(key)     # CacheEntry or None
    cache.put(key, layer)         # layer: LayerRef, or None for a step without a layer
"""

from __future__ import annotations

import datetime as _dt
import io
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.config import LayerRef, ensure_local, rfc3339
from trustbuild.builder.configfile import ConfigFile, RootFS, diff_ids_of
from trustbuild.errors import InvalidManifest, NotFound, TrustbuildError, UsageError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.manifest import Manifest, dump_json, load_json, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.oci.verify import check_bytes
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import Location, parse_location

if TYPE_CHECKING:
    from trustbuild.builder.layerstore import LayerStore

__all__ = ["LayerCache", "CacheEntry", "chain_step", "cache_repo_for", "DIFF_ID_ANNOTATION"]

DIFF_ID_ANNOTATION = "dev.trustbuild.cache.diff_id"
CREATED_ANNOTATION = "org.opencontainers.image.created"


def cache_repo_for(cache_repo: str | None, destinations: list[str]) -> str:
    """``--cache-repo``, else ``<first destination's repository>/cache`` (Kaniko's default)."""
    if cache_repo:
        return cache_repo
    if not destinations:
        raise UsageError("--cache needs --cache-repo or a --destination to derive it from")
    loc = parse_location(destinations[0])
    assert loc.reference is not None
    return f"{loc.reference.name}/cache"


@dataclass(frozen=True)
class CacheEntry:
    """A cached step: its layer (not downloaded yet), or None when the step made no layer."""

    key: str
    layer: LayerRef | None


class LayerCache:
    """Cached steps in one repository (registry or OCI layout)."""

    def __init__(self, store: Store, *, layer_dir: Path, platform: Platform,
                 output: TextIO, layer_store: LayerStore | None = None,
                 ttl: float | None = None) -> None:
        self.store = store
        self.layer_store = layer_store
        self.ttl = ttl
        self.layer_dir = layer_dir
        self.layer_dir.mkdir(parents=True, exist_ok=True)
        self.platform = platform
        self.output = output
        self.hits = 0
        self.misses = 0
        self._pool: ThreadPoolExecutor | None = None  # put_later's uploader
        self._pending: list[Future[LayerRef | None]] = []

    @classmethod
    def open(cls, repo: str, *, options: StoreOptions, layer_dir: Path, platform: Platform,
             output: TextIO, layer_store: LayerStore | None = None,
             ttl: float | None = None) -> LayerCache:
        """The cache at ``repo`` (``REGISTRY/REPO``, ``docker://...`` or ``oci:DIR``)."""
        from trustbuild.store.open import open_store

        loc = parse_location(repo)
        if loc.transport == "docker" and loc.reference is not None:
            loc = Location("docker", loc.reference.with_tag("latest"))
        elif loc.transport != "oci":
            raise UsageError(f"--cache-repo {repo!r}: expected a registry repository or oci:DIR")
        store, _ = open_store(loc, options, for_write=True)
        return cls(store, layer_dir=layer_dir, platform=platform, output=output,
                   layer_store=layer_store, ttl=ttl)

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry of ``key`` (its manifest read, no layer bytes), or None on a miss."""
        what = f"cache entry {key[:12]}"
        try:
            raw, mt = self.store.get_manifest(key)
            m = parse_manifest(raw, mt, what=what)
            if not isinstance(m, Manifest) or len(m.layers) > 1 or self._expired(m):
                self.misses += 1
                return None
            layer = None
            if m.layers:
                diff_id = (m.annotations or {}).get(DIFF_ID_ANNOTATION) or self._config_diff_id(m)
                if not diff_id:
                    self.misses += 1
                    return None
                desc = Descriptor(m.layers[0].media_type, m.layers[0].digest, m.layers[0].size)
                if not self._available(desc):
                    print(f"[warning] cache entry {key[:12]}: layer {desc.digest} is missing "
                          "from the cache repository; running the step", file=self.output)
                    self.misses += 1
                    return None
                if self.layer_store is not None:
                    layer = LayerRef(desc, diff_id, self.layer_store.path(desc.digest),
                                     self.layer_store.origin(self.store))
                else:
                    layer = LayerRef(desc, diff_id, self.layer_dir / f"cache-{desc.digest.hex}",
                                     self.store)
        except NotFound:
            self.misses += 1
            return None
        except TrustbuildError as exc:
            if "not found" not in str(exc).lower():
                print(f"[warning] cache lookup failed ({exc}); running the step",
                      file=self.output)
            self.misses += 1
            return None
        self.hits += 1
        return CacheEntry(key, layer)

    def _available(self, desc: Descriptor) -> bool:
        """Whether the layer of a hit can be had: in the local layer store (no request; its
        digest is checked when it is used), else present in the cache repository (one HEAD).
        An entry whose layer is gone (deleted, garbage-collected) is a miss, so the step runs
        and stores it again instead of failing the build when the bytes are needed."""
        if self.layer_store is not None and self.layer_store.holds(desc):
            return True
        return self.store.has_blob(desc.digest)

    def _expired(self, m: Manifest) -> bool:
        """``--cache-ttl``: an entry stored longer ago than the TTL is a miss (as in Kaniko)."""
        if self.ttl is None:
            return False
        created = (m.annotations or {}).get(CREATED_ANNOTATION, "")
        try:
            when = _dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return True
        return time.time() - when > self.ttl

    def _config_diff_id(self, m: Manifest) -> str:
        with self.store.open_blob(m.config) as f:
            cfg_raw = f.read()
            f.read()
        check_bytes(cfg_raw, m.config, what="cache entry config")
        doc = load_json(cfg_raw, what="cache config")
        try:
            diff_ids = diff_ids_of(doc, what="cache config")
        except InvalidManifest:
            return ""  # a miss, as an entry without one diff_id is
        return diff_ids[0] if len(diff_ids) == 1 else ""

    def put(self, key: str, layer: LayerRef | None) -> LayerRef | None:
        """Store the step's ``layer`` (None: no layer) under ``key``; failures are warnings.

        Returns the layer with the cache repository as its origin once it is stored there, so
        a push to the same registry mounts it instead of uploading it again.
        """
        diff_ids = [layer.diff_id] if layer is not None else []
        config = dump_json(ConfigFile(  # {"architecture", "os", "config": {}, "rootfs"}
            architecture=self.platform.architecture, os=self.platform.os,
            rootfs=RootFS(type="layers", diff_ids=diff_ids)).to_json())
        cdesc = Descriptor.for_bytes(MediaType.OCI_CONFIG, config)
        annotations = {CREATED_ANNOTATION: rfc3339(int(time.time()))}
        manifest: dict[str, object] = {"schemaVersion": 2,
                                       "mediaType": str(MediaType.OCI_MANIFEST),
                                       "config": cdesc.to_json(), "layers": [],
                                       "annotations": annotations}
        try:
            if layer is not None:
                ldesc = layer.descriptor
                if ldesc.media_type == MediaType.DOCKER_LAYER_GZIP:
                    ldesc = Descriptor(MediaType.OCI_LAYER_GZIP, ldesc.digest, ldesc.size)
                manifest["layers"] = [ldesc.to_json()]
                annotations[DIFF_ID_ANNOTATION] = layer.diff_id
                if getattr(layer.origin, "upstream", layer.origin) is not self.store:
                    self.store.put_blob(ldesc, lambda: open(ensure_local(layer), "rb"))  # noqa: SIM115
            self.store.put_blob(cdesc, lambda: io.BytesIO(config))
            self.store.put_manifest(dump_json(manifest), str(MediaType.OCI_MANIFEST), tags=[key])
        except TrustbuildError as exc:
            print(f"[warning] cannot store the step in the cache ({exc})", file=self.output)
            return layer
        if layer is not None and layer.origin is None:
            if self.layer_store is not None:
                try:
                    self.layer_store.adopt(layer.descriptor, layer.path)
                except OSError as exc:
                    print(f"[warning] cannot keep the layer in the layer store ({exc})",
                          file=self.output)
            return replace(layer, origin=self.store)
        return layer

    def put_later(self, key: str, layer: LayerRef | None) -> LayerRef | None:
        """:meth:`put` in a background thread (one at a time, in order), so the build goes on
        while the layer uploads; :meth:`flush` waits for every one.

        The layer is returned with the cache repository as its origin at once: its local file
        stays in the work dir, so if storing fails (a warning) a push whose mount from the
        cache repository is refused uploads that file instead.
        """
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="cache-put")
        self._pending.append(self._pool.submit(self.put, key, layer))
        if layer is not None and layer.origin is None:
            return replace(layer, origin=self.store)
        return layer

    def flush(self) -> None:
        """Wait until every :meth:`put_later` finished (a failure was a warning)."""
        pending, self._pending = self._pending, []
        for fut in pending:
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - storing in the cache never fails a build
                print(f"[warning] cannot store the step in the cache ({exc})", file=self.output)

    def close(self) -> None:
        """Wait for pending stores (none are started after a failure) and release the store."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
        self.store.close()
