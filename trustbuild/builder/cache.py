"""RUN layer cache in a repository (``--cache``, ``--cache-repo``), like Kaniko's.

Every RUN step gets a key: sha256 over the stage's *chain* (the base image digest followed by
every instruction's history text and layer diff_id so far) and the step's full execution spec
(argv, env, user, workdir, network, security profile). A cached step is a one-layer image tagged
with the key's hex in the cache repository. On a hit the layer is pulled (verified by digest and
diff_id) and applied to the rootfs instead of running the step; on a miss the step runs and its
layer is pushed. Because the chain is made of content digests, later steps are still probed
after a miss. Whoever can push to the cache repository can change build results: use a
repository only the builder writes to.

Example::

    cache = LayerCache.open("127.0.0.1:5000/app/cache", options=StoreOptions(), work=tmp)
    key = cache.key(chain, spec_json)
    layer = cache.fetch(key)      # LayerRef or None
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, TextIO

from trustbuild.builder.config import LayerRef
from trustbuild.errors import TrustbuildError, UsageError
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.manifest import Manifest, dump_json, load_json, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.oci.verify import check_bytes
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import Location, parse_location

__all__ = ["LayerCache", "chain_step", "cache_repo_for"]


def chain_step(chain: str, *parts: str) -> str:
    """The next chain value after an instruction described by ``parts``."""
    h = hashlib.sha256(chain.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()


def cache_repo_for(cache_repo: str | None, destinations: list[str]) -> str:
    """``--cache-repo``, else ``<first destination's repository>/cache`` (Kaniko's default)."""
    if cache_repo:
        return cache_repo
    if not destinations:
        raise UsageError("--cache needs --cache-repo or a --destination to derive it from")
    loc = parse_location(destinations[0])
    assert loc.reference is not None
    return f"{loc.reference.name}/cache"


class LayerCache:
    """Cached RUN layers in one repository (registry or OCI layout)."""

    def __init__(self, store: Store, *, layer_dir: Path, platform: Platform,
                 output: TextIO) -> None:
        self.store = store
        self.layer_dir = layer_dir
        self.layer_dir.mkdir(parents=True, exist_ok=True)
        self.platform = platform
        self.output = output
        self.hits = 0
        self.misses = 0

    @classmethod
    def open(cls, repo: str, *, options: StoreOptions, layer_dir: Path, platform: Platform,
             output: TextIO) -> LayerCache:
        """The cache at ``repo`` (``REGISTRY/REPO``, ``docker://...`` or ``oci:DIR``)."""
        from trustbuild.store.open import open_store

        loc = parse_location(repo)
        if loc.transport == "docker" and loc.reference is not None:
            loc = Location("docker", loc.reference.with_tag("latest"))
        elif loc.transport != "oci":
            raise UsageError(f"--cache-repo {repo!r}: expected a registry repository or oci:DIR")
        store, _ = open_store(loc, options, for_write=True)
        return cls(store, layer_dir=layer_dir, platform=platform, output=output)

    @staticmethod
    def key(chain: str, spec: dict[str, Any]) -> str:
        """The cache key (64 hex characters, used as the tag) of a step."""
        return chain_step(chain, "RUN", json.dumps(spec, sort_keys=True))

    def fetch(self, key: str) -> LayerRef | None:
        """The cached layer of ``key`` (downloaded and verified), or None on a miss."""
        try:
            raw, mt = self.store.get_manifest(key)
            m = parse_manifest(raw, mt, what=f"cache entry {key[:12]}")
            if not isinstance(m, Manifest) or len(m.layers) != 1:
                self.misses += 1
                return None
            with self.store.open_blob(m.config) as f:
                cfg_raw = f.read()
                f.read()
            check_bytes(cfg_raw, m.config, what=f"cache entry {key[:12]} config")
            diff_ids = (load_json(cfg_raw, what="cache config").get("rootfs") or {}).get(
                "diff_ids") or []
            if len(diff_ids) != 1:
                self.misses += 1
                return None
            dest = self.layer_dir / f"cache-{m.layers[0].digest.hex}"
            if not dest.exists():
                self.store.fetch_blob(m.layers[0], dest)
        except TrustbuildError as exc:
            if "not found" not in str(exc).lower() and type(exc).__name__ != "NotFound":
                print(f"[warning] cache lookup failed ({exc}); running the step",
                      file=self.output)
            self.misses += 1
            return None
        self.hits += 1
        return LayerRef(m.layers[0], str(diff_ids[0]), dest)

    def put(self, key: str, layer: LayerRef) -> None:
        """Store ``layer`` under ``key``; failures are warnings (the build goes on)."""
        config = dump_json({
            "architecture": self.platform.architecture, "os": self.platform.os,
            "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        })
        cdesc = Descriptor.for_bytes(MediaType.OCI_CONFIG, config)
        ldesc = layer.descriptor
        if ldesc.media_type == MediaType.DOCKER_LAYER_GZIP:
            ldesc = Descriptor(MediaType.OCI_LAYER_GZIP, ldesc.digest, ldesc.size)
        manifest = dump_json({"schemaVersion": 2, "mediaType": str(MediaType.OCI_MANIFEST),
                              "config": cdesc.to_json(), "layers": [ldesc.to_json()]})
        try:
            self.store.put_blob(ldesc, lambda: open(layer.path, "rb"))  # noqa: SIM115
            self.store.put_blob(cdesc, lambda: io.BytesIO(config))
            self.store.put_manifest(manifest, str(MediaType.OCI_MANIFEST), tags=[key])
        except TrustbuildError as exc:
            print(f"[warning] cannot store the step in the cache ({exc})", file=self.output)

    def close(self) -> None:
        """Release the store."""
        self.store.close()
