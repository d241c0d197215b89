"""Reading images pushed by skopeo from the real registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from fixtures.registry import RegistryServer

from trustbuild.errors import NotFound
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Manifest, parse_manifest
from trustbuild.oci.store import Store
from trustbuild.registry import RegistryStore
from trustbuild.registry.options import StoreOptions


def _store(registry: RegistryServer, repo: str) -> RegistryStore:
    return RegistryStore(registry.host, repo, StoreOptions(), credentials=None)


def test_registry_store_is_a_store(registry: RegistryServer) -> None:
    store = _store(registry, "fixtures/hello")
    assert isinstance(store, Store)
    assert store.describe() == f"docker://{registry.host}/fixtures/hello"


def test_reads_manifest_by_tag_and_digest_as_skopeo_pushed_it(
        registry: RegistryServer, pushed_image: tuple[str, str]) -> None:
    _, digest = pushed_image
    store = _store(registry, "fixtures/hello")
    raw, mt = store.get_manifest("v1")
    assert mt == "application/vnd.oci.image.manifest.v1+json"
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    raw2, _ = store.get_manifest(digest)
    assert raw2 == raw
    assert store.resolve("v1").digest == Digest.parse(digest)


def test_fetches_blobs_verified_and_streams_them(
        registry: RegistryServer, pushed_image: tuple[str, str], tmp_path: Path) -> None:
    store = _store(registry, "fixtures/hello")
    m = parse_manifest(*store.get_manifest("v1"))
    assert isinstance(m, Manifest)
    cfg_path = tmp_path / "config.json"
    store.fetch_blob(m.config, cfg_path)
    assert json.loads(cfg_path.read_bytes())["rootfs"]["diff_ids"]
    with store.open_blob(m.layers[0]) as stream:
        data = b""
        while chunk := stream.read(7):
            data += chunk
    assert Digest.of(data) == m.layers[0].digest
    assert store.has_blob(m.layers[0].digest)
    assert not store.has_blob(Digest.of(b"not there"))


def test_missing_manifest_blob_and_repository(registry: RegistryServer, tmp_path: Path,
                                              pushed_image: tuple[str, str]) -> None:
    store = _store(registry, "fixtures/hello")
    with pytest.raises(NotFound, match=r"manifest docker://.*/fixtures/hello:nope not found"):
        store.get_manifest("nope")
    missing = Descriptor("application/octet-stream", Digest.of(b"x"), 1)
    with pytest.raises(NotFound, match="blob sha256:.* not found"):
        store.fetch_blob(missing, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert _store(registry, "no/such/repo").list_tags() == []
    assert store.list_tags() == ["v1"]


def test_reads_image_pushed_by_skopeo_in_docker_format(registry: RegistryServer,
                                                       pushed_image: tuple[str, str],
                                                       tmp_path: Path) -> None:
    ref, _ = pushed_image
    dst = f"{registry.host}/fixtures/docker-format:v1"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    "--dest-tls-verify=false", "--format", "v2s2",
                    f"docker://{ref}", f"docker://{dst}"],
                   check=True, capture_output=True, timeout=120)
    raw_skopeo = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                 f"docker://{dst}"], check=True, capture_output=True).stdout
    store = _store(registry, "fixtures/docker-format")
    raw, mt = store.get_manifest("v1")
    assert raw == raw_skopeo
    assert mt == "application/vnd.docker.distribution.manifest.v2+json"
    m = parse_manifest(raw, mt)
    assert isinstance(m, Manifest)
    for i, layer in enumerate(m.layers):
        store.fetch_blob(layer, tmp_path / f"l{i}")
        assert Digest.of((tmp_path / f"l{i}").read_bytes()) == layer.digest


def test_blob_redirects_are_followed_without_credentials(registry_proxy, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         pushed_image: tuple[str, str]) -> None:
    store = RegistryStore(registry_proxy.host, "fixtures/hello", StoreOptions(),
                          credentials=None)
    m = parse_manifest(*store.get_manifest("v1"))
    assert isinstance(m, Manifest)
    registry_proxy.redirect_blobs = True
    store.fetch_blob(m.layers[0], tmp_path / "layer")
    assert Digest.of((tmp_path / "layer").read_bytes()) == m.layers[0].digest
    assert registry_proxy.storage_auth == [None]
    assert (("GET", f"/v2/fixtures/hello/blobs/{m.layers[0].digest}", 307)
            in registry_proxy.log)


def test_docker_hub_reads_go_through_the_mirror(registry: RegistryServer, tmp_path: Path) -> None:
    from fixtures.registry import push_test_image

    _, digest = push_test_image(registry.host, "library/mirrored", "v1", content=b"mirror\n")
    opts = StoreOptions(registry_mirrors=[f"http://{registry.host}/"])
    store = RegistryStore("docker.io", "library/mirrored", opts, credentials=None)
    raw, mt = store.get_manifest("v1")  # served by the mirror: Docker Hub is never contacted
    assert str(Digest.of(raw)) == digest
    m = parse_manifest(raw, mt)
    assert isinstance(m, Manifest)
    store.fetch_blob(m.layers[0], tmp_path / "layer")
    with store.open_blob(m.config) as s:
        assert json.loads(s.read())["rootfs"]
    assert store.transport.host == "registry-1.docker.io"
