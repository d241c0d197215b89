"""Pushing blobs and manifests to the real registry: monolithic, chunked, cross-repo mount."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest
from fixtures.registry import FaultProxy, RegistryServer

from trustbuild.errors import NotFound
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.registry import RegistryStore
from trustbuild.registry.options import StoreOptions


def _store(host: str, repo: str, **kw: object) -> RegistryStore:
    return RegistryStore(host, repo, StoreOptions(), credentials=None, **kw)  # type: ignore[arg-type]


def _source(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)
    return opener


def _image(layer: bytes) -> tuple[bytes, Descriptor, bytes, Descriptor, bytes]:
    cfg = dump_json({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(layer))]}})
    cdesc = Descriptor.for_bytes(MediaType.OCI_CONFIG, cfg)
    ldesc = Descriptor.for_bytes(MediaType.OCI_LAYER, layer)
    manifest = dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                          "config": cdesc.to_json(), "layers": [ldesc.to_json()]})
    return cfg, cdesc, layer, ldesc, manifest


def _push(store: RegistryStore, layer: bytes, tags: list[str]) -> Descriptor:
    cfg, cdesc, layer, ldesc, manifest = _image(layer)
    store.put_blob(cdesc, _source(cfg))
    store.put_blob(ldesc, _source(layer))
    return store.put_manifest(manifest, MediaType.OCI_MANIFEST, tags=tags)


def test_round_trip_monolithic_and_skopeo_reads_it(registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    store = _store(registry.host, "push/mono")
    layer = os.urandom(50_000)
    desc = _push(store, layer, ["v1", "v2"])
    assert store.stats["uploaded"] == 2
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/push/mono:v2"],
                         check=True, capture_output=True).stdout
    assert Digest.of(raw) == desc.digest
    assert sorted(store.list_tags()) == ["v1", "v2"]
    _, _, _, ldesc, _ = _image(layer)
    store.fetch_blob(ldesc, tmp_path / "layer")
    assert (tmp_path / "layer").read_bytes() == layer
    # a second push finds every blob already there
    _push(store, layer, ["v3"])
    assert store.stats["present"] == 2


def test_chunked_upload_sends_patches(registry_proxy: FaultProxy, registry: RegistryServer) -> None:
    store = _store(registry_proxy.host, "push/chunked", chunk_size=10_000)
    layer = os.urandom(35_000)
    _push(store, layer, ["v1"])
    patches = [entry for entry in registry_proxy.log if entry[0] == "PATCH"]
    assert len(patches) == 4 and all(status == 202 for _, _, status in patches)
    skopeo = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                             f"docker://{registry.host}/push/chunked:v1"],
                            check=True, capture_output=True, text=True).stdout
    assert json.loads(skopeo)["Layers"] == [str(Digest.of(layer))]


def test_cross_repository_mount_answers_201(registry_proxy: FaultProxy) -> None:
    layer = os.urandom(20_000)
    _push(_store(registry_proxy.host, "mount/source"), layer, ["v1"])
    dest = _store(registry_proxy.host, "mount/dest")
    dest.set_mount_source("mount/source")
    registry_proxy.log.clear()
    _push(dest, layer, ["v1"])
    assert dest.stats["mounted"] == 2 and dest.stats["uploaded"] == 0
    mounts = [e for e in registry_proxy.log if e[0] == "POST" and "mount=" in e[1]]
    assert len(mounts) == 2 and {status for _, _, status in mounts} == {201}
    assert not [e for e in registry_proxy.log if e[0] in ("PATCH", "PUT") and "/blobs/" in e[1]]


def test_mount_from_repository_without_the_blob_falls_back_to_upload(
        registry: RegistryServer) -> None:
    store = _store(registry.host, "mount/fallback")
    cfg, cdesc, *_ = _image(b"layer")
    store.put_blob(cdesc, _source(cfg), mount_from="mount/empty-source")
    assert store.stats["uploaded"] == 1 and store.has_blob(cdesc.digest)


def test_manifest_by_digest_and_delete_tag(registry: RegistryServer) -> None:
    store = _store(registry.host, "push/delete")
    desc = _push(store, b"abc", [])
    raw, _ = store.get_manifest(str(desc.digest))
    assert Digest.of(raw) == desc.digest
    _push(store, b"one", ["one"])
    shared = _push(store, b"two", ["two", "two-again"])
    store.delete_tag("one")
    store.delete_tag("never-existed")
    assert sorted(store.list_tags()) == ["two", "two-again"]
    with pytest.raises(NotFound):
        store.get_manifest("one")
    with pytest.raises(Exception, match="point at the same"):
        store.delete_tag("two")
    assert store.resolve("two-again").digest == shared.digest


def test_relative_upload_locations(registry_proxy: FaultProxy) -> None:
    registry_proxy.relative_locations = True
    store = _store(registry_proxy.host, "push/relative", chunk_size=4096)
    layer = os.urandom(10_000)  # chunked: every PATCH answer carries a relative Location too
    desc = _push(store, layer, ["v1"])
    assert store.resolve("v1").digest == desc.digest
    assert len([e for e in registry_proxy.log if e[0] == "PATCH"]) == 3


def test_tag_list_pagination(registry_proxy: FaultProxy) -> None:
    store = _store(registry_proxy.host, "push/paged")
    tags = [f"t{i:02d}" for i in range(7)]
    _push(store, b"paged", tags)
    registry_proxy.tags_page_size = 3
    registry_proxy.log.clear()
    assert store.list_tags() == tags
    assert len([e for e in registry_proxy.log if "/tags/list" in e[1]]) == 3


@pytest.mark.parametrize("chunk_size", [1 << 20, 1000])
def test_short_source_fails_fast_and_pushes_nothing(registry: RegistryServer,
                                                    chunk_size: int) -> None:
    from trustbuild.errors import DigestMismatch

    store = _store(registry.host, "push/short", chunk_size=chunk_size)
    data = os.urandom(3000)
    desc = Descriptor.for_bytes("application/octet-stream", data)
    with pytest.raises(DigestMismatch, match=r"source ended after 2000 of 3000 bytes"):
        store.put_blob(desc, _source(data[:2000]))
    assert not store.has_blob(desc.digest)
