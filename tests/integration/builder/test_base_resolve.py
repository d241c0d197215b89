"""Base images resolve through oci.image.resolve_image: its bounds hold for FROM too."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from fixtures.registry import RegistryServer

from trustbuild.builder.base import BaseImages
from trustbuild.errors import InvalidManifest
from trustbuild.oci.descriptor import Descriptor, Platform
from trustbuild.oci.image import MAX_CONFIG_BYTES
from trustbuild.oci.mediatype import MediaType
from trustbuild.registry import RegistryStore
from trustbuild.registry.options import StoreOptions


def _opener(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)
    return opener


def _push(registry: RegistryServer, repo: str, config: bytes) -> None:
    opts = StoreOptions(insecure_registries=(registry.host,))
    store = RegistryStore(registry.host, repo, opts)
    cfg = Descriptor.for_bytes(MediaType.OCI_CONFIG, config)
    store.put_blob(cfg, _opener(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                           "config": cfg.to_json(), "layers": []}).encode()
    store.put_manifest(manifest, MediaType.OCI_MANIFEST, tags=["v1"])


def _bases(registry: RegistryServer, tmp_path: Path) -> BaseImages:
    return BaseImages(store_options=StoreOptions(insecure_registries=(registry.host,)),
                      cache_dir=tmp_path / "cache", platform=Platform.parse("linux/amd64"))


def test_a_base_config_over_the_size_limit_is_refused(registry: RegistryServer,
                                                      tmp_path: Path) -> None:
    big = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []},
                      "pad": "x" * MAX_CONFIG_BYTES}).encode()
    _push(registry, "base/bigconfig", big)
    bases = _bases(registry, tmp_path)
    with pytest.raises(InvalidManifest, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        bases.resolve(f"{registry.host}/base/bigconfig:v1")


def test_a_base_within_the_limit_resolves(registry: RegistryServer, tmp_path: Path) -> None:
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    _push(registry, "base/small", cfg)
    base = _bases(registry, tmp_path).resolve(f"{registry.host}/base/small:v1")
    assert base.config_raw == cfg and base.index_digest is None
    assert base.pinned == f"{registry.host}/base/small@{base.digest}"
