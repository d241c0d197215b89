"""Step cache entries in an OCI layout cache (``--cache-repo oci:DIR``): round trip, lazy
layers, steps without a layer, --cache-ttl."""

from __future__ import annotations

import io
import json
from pathlib import Path

from trustbuild.builder.cache import CREATED_ANNOTATION, LayerCache
from trustbuild.builder.config import LayerRef, ensure_local
from trustbuild.oci.descriptor import Platform
from trustbuild.oci.layer import LayerWriter
from trustbuild.oci.layout import LayoutStore
from trustbuild.registry.options import StoreOptions

KEY = "a" * 64


def _cache(tmp_path: Path, **kw: object) -> LayerCache:
    return LayerCache.open(f"oci:{tmp_path / 'cache'}", options=StoreOptions(),
                           layer_dir=tmp_path / "layers", platform=Platform("linux", "amd64"),
                           output=io.StringIO(), **kw)  # type: ignore[arg-type]


def _layer(tmp_path: Path) -> LayerRef:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("hi\n")
    with LayerWriter(tmp_path / "layer.tar") as w:
        w.add_path(src / "hello.txt", "hello.txt")
        info = w.finish()
    return LayerRef(info.descriptor(), str(info.diff_id), info.path)


def test_round_trip_reads_no_layer_bytes_until_needed(tmp_path: Path) -> None:
    layer = _layer(tmp_path)
    stored = _cache(tmp_path).put(KEY, layer)
    assert stored is not None and stored.origin is not None  # pushes mount it from the cache
    entry = _cache(tmp_path).lookup(KEY)
    assert entry is not None and entry.layer is not None
    assert entry.layer.diff_id == layer.diff_id
    assert entry.layer.descriptor.digest == layer.descriptor.digest
    assert not entry.layer.path.exists()  # the lookup did not download the layer
    assert ensure_local(entry.layer).read_bytes() == layer.path.read_bytes()
    assert _cache(tmp_path).lookup("b" * 64) is None


def test_a_step_without_a_layer_is_cached_too(tmp_path: Path) -> None:
    _cache(tmp_path).put(KEY, None)
    entry = _cache(tmp_path).lookup(KEY)
    assert entry is not None and entry.layer is None


def test_entries_older_than_the_ttl_are_misses(tmp_path: Path) -> None:
    _cache(tmp_path).put(KEY, _layer(tmp_path))
    assert _cache(tmp_path, ttl=3600.0).lookup(KEY) is not None
    store = LayoutStore(tmp_path / "cache")
    raw, mt = store.get_manifest(KEY)
    doc = json.loads(raw)
    doc["annotations"][CREATED_ANNOTATION] = "2020-01-01T00:00:00Z"
    old = json.dumps(doc).encode()
    store.put_manifest(old, mt, tags=[KEY])
    assert _cache(tmp_path, ttl=3600.0).lookup(KEY) is None
    assert _cache(tmp_path).lookup(KEY) is not None  # no TTL: entries never expire
