"""copy_image between local stores: digests kept, platforms picked, conversions, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.stores import write_plain_layout

from trustbuild.errors import DigestMismatch, NotFound, StoreError
from trustbuild.oci.archive import ArchiveReader, ArchiveWriter
from trustbuild.oci.descriptor import Platform
from trustbuild.oci.digest import Digest
from trustbuild.oci.image import read_config, resolve_image
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.manifest import Manifest, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.registry.options import StoreOptions
from trustbuild.store.copy import copy_image, human_size
from trustbuild.store.location import parse_location
from trustbuild.store.open import open_store

MULTI = ["linux/amd64", "linux/arm64"]


def test_layout_to_layout_keeps_manifest_bytes(tmp_path: Path) -> None:
    info = write_plain_layout(tmp_path / "src", tag="v1", layers=3)
    msgs: list[str] = []
    desc = copy_image(
        LayoutStore(tmp_path / "src"),
        "v1",
        LayoutStore(tmp_path / "dst"),
        ["copy"],
        jobs=2,
        progress=msgs.append,
    )
    assert str(desc.digest) == info["top"]
    dst = LayoutStore(tmp_path / "dst")
    assert dst.get_manifest("copy") == LayoutStore(tmp_path / "src").get_manifest("v1")
    assert sum(m.startswith("copying blob sha256:") for m in msgs) == 4
    # a second copy finds every blob present
    msgs.clear()
    copy_image(LayoutStore(tmp_path / "src"), "v1", dst, ["again"], progress=msgs.append)
    assert sum("already present" in m for m in msgs) == 4


def test_index_all_keeps_digest_and_platform_selection(tmp_path: Path) -> None:
    info = write_plain_layout(tmp_path / "src", tag="multi", platforms=MULTI)
    src = LayoutStore(tmp_path / "src")
    desc = copy_image(src, "multi", LayoutStore(tmp_path / "all"), ["m"], all_platforms=True)
    assert str(desc.digest) == info["top"] and desc.media_type == MediaType.OCI_INDEX
    dst = LayoutStore(tmp_path / "all")
    for dg in info["manifests"].values():
        assert Digest.of(dst.get_manifest(dg)[0]) == Digest.parse(dg)
    arm = copy_image(
        src, "multi", LayoutStore(tmp_path / "arm"), ["a"], platform=Platform.parse("linux/arm64")
    )
    assert str(arm.digest) == info["manifests"]["linux/arm64"]
    host = copy_image(src, "multi", LayoutStore(tmp_path / "host"), ["h"])
    assert (
        str(host.digest) == info["manifests"][str(Platform("linux", Platform.host().architecture))]
    )
    with pytest.raises(
        NotFound, match="no image for platform linux/s390x.*linux/amd64, linux/arm64"
    ):
        copy_image(
            src,
            "multi",
            LayoutStore(tmp_path / "none"),
            ["x"],
            platform=Platform.parse("linux/s390x"),
        )
    assert not (tmp_path / "none").exists()


def test_archive_round_trip_keeps_config_and_diff_ids(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    path, info = busybox_archive
    oci = copy_image(ArchiveReader(path), None, LayoutStore(tmp_path / "l"), ["bb"])
    layout = LayoutStore(tmp_path / "l")
    img = resolve_image(layout, "bb")
    assert img.digest == oci.digest and img.manifest.media_type == MediaType.OCI_MANIFEST
    assert str(img.manifest.config.digest) == info["config"]
    assert [d.media_type for d in img.manifest.layers] == [MediaType.OCI_LAYER_GZIP]
    assert read_config(layout, img.manifest)["rootfs"]["diff_ids"] == [info["diff_id"]]
    # deterministic compression: the same archive gives the same OCI digest
    again = copy_image(ArchiveReader(path), None, LayoutStore(tmp_path / "l2"), [])
    assert again.digest == oci.digest
    w = ArchiveWriter(tmp_path / "back.tar")
    copy_image(layout, "bb", w, ["busybox:back"])
    w.close()
    m = parse_manifest(*ArchiveReader(tmp_path / "back.tar").get_manifest("busybox:back"))
    assert isinstance(m, Manifest)
    assert str(m.config.digest) == info["config"] and [str(d.digest) for d in m.layers] == [
        info["diff_id"]
    ]


def test_failure_leaves_no_destination(tmp_path: Path) -> None:
    write_plain_layout(tmp_path / "src", layers=2)
    src = LayoutStore(tmp_path / "src")
    m = parse_manifest(*src.get_manifest("latest"))
    assert isinstance(m, Manifest)
    p = src.blob_path(m.layers[1].digest)
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(DigestMismatch, match="truncated"):
        copy_image(src, "latest", LayoutStore(tmp_path / "dst"), ["t"])
    assert not (tmp_path / "dst").exists()
    w = ArchiveWriter(tmp_path / "out.tar")
    with pytest.raises(DigestMismatch):
        copy_image(src, "latest", w, ["x:y"])
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_all_platforms_to_archive_is_refused(tmp_path: Path) -> None:
    write_plain_layout(tmp_path / "src", platforms=MULTI)
    w = ArchiveWriter(tmp_path / "out.tar")
    with pytest.raises(StoreError, match="drop --all"):
        copy_image(LayoutStore(tmp_path / "src"), "latest", w, [], all_platforms=True)
    w.close()
    assert not (tmp_path / "out.tar").exists()


def test_open_store_per_transport(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    opts = StoreOptions()
    s, ref = open_store(parse_location(f"oci:{tmp_path}/l:v1"), opts, for_write=True)
    assert isinstance(s, LayoutStore) and ref == "v1"
    s, ref = open_store(parse_location(f"docker-archive:{busybox_archive[0]}"), opts)
    assert isinstance(s, ArchiveReader) and ref is None
    s, ref = open_store(
        parse_location(f"docker-archive:{tmp_path}/o.tar:app:v2"), opts, for_write=True
    )
    assert isinstance(s, ArchiveWriter) and ref == "docker.io/library/app:v2"
    with pytest.raises(NotFound, match="no such file"):
        open_store(parse_location(f"docker-archive:{tmp_path}/missing.tar"), opts)


def test_human_size() -> None:
    assert [human_size(n) for n in (999, 12_300_000, 4_000_000_000)] == [
        "999 B",
        "12.3 MB",
        "4.0 GB",
    ]


def test_docker_archive_default_config_json(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    r = ArchiveReader(busybox_archive[0])
    img = resolve_image(r, "")
    cfg = read_config(r, img.manifest)
    assert cfg["config"]["Cmd"] == ["sh"] and json.dumps(cfg)
