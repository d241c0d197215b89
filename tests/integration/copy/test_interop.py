"""trustbuild copy/inspect against the real registry, skopeo, umoci and podman."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from fixtures.stores import inspect_json, need, raw_digest, skopeo, write_plain_layout

from trustbuild.oci.descriptor import Platform

pytestmark = [pytest.mark.interop]


def test_skopeo_pushed_image_round_trips_through_oci_byte_for_byte(
    tb,
    registry,
    pushed_image,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    ref, digest = pushed_image
    r = tb("inspect", ref)
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["digest"] == digest and info["config"]["os"] == "linux"
    assert "v1" in info["tags"]
    r = tb("copy", f"docker://{ref}", f"oci:{tmp_path}/l:saved")
    assert (r.code, r.out.strip()) == (0, digest), r.err
    assert raw_digest(f"oci:{tmp_path}/l:saved") == digest
    r = tb("copy", f"oci:{tmp_path}/l:saved", f"{registry.host}/roundtrip/oci:v2")
    assert (r.code, r.out.strip()) == (0, digest), r.err
    assert raw_digest(f"docker://{registry.host}/roundtrip/oci:v2") == digest
    need("umoci")
    subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path}/l:saved", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "bundle" / "rootfs" / "hello.txt").read_bytes() == b"hello\n"


def test_archive_to_registry_to_archive_keeps_config_and_diff_ids(
    tb,
    registry,
    busybox_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    path, info = busybox_archive
    dst = f"{registry.host}/interop/busybox:1"
    r = tb("copy", f"docker-archive:{path}", dst)
    assert r.code == 0, r.err
    assert "copying blob sha256:" in r.err
    pushed = r.out.strip()
    assert raw_digest(f"docker://{dst}") == pushed
    seen = inspect_json(f"docker://{dst}")
    assert seen["Architecture"] == Platform.host().architecture and seen["Digest"] == pushed
    cfg_raw = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{dst}").stdout
    assert "sha256:" + hashlib.sha256(cfg_raw).hexdigest() == info["config"]
    # skopeo pulls what we pushed into an OCI layout that umoci unpacks and busybox runs from
    skopeo("copy", "--src-tls-verify=false", f"docker://{dst}", f"oci:{tmp_path}/sk:bb")
    # ...and trustbuild reads skopeo's layout (skopeo converts to OCI media types: new digest)
    r = tb("inspect", f"oci:{tmp_path}/sk:bb")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["digest"] == raw_digest(f"oci:{tmp_path}/sk:bb")
    assert doc["config"]["rootfs"]["diff_ids"] == [info["diff_id"]]
    need("umoci")
    subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path}/sk:bb", str(tmp_path / "b")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rootfs = tmp_path / "b" / "rootfs"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    # back out to a docker-archive with trustbuild: config digest and every diff_id kept
    out = tmp_path / "back.tar"
    r = tb("copy", f"docker://{dst}", f"docker-archive:{out}:busybox:back")
    assert r.code == 0, r.err
    seen = inspect_json(f"docker-archive:{out}")
    assert seen["Layers"] == [info["diff_id"]]
    cfg_raw = skopeo("inspect", "--config", "--raw", f"docker-archive:{out}").stdout
    assert "sha256:" + hashlib.sha256(cfg_raw).hexdigest() == info["config"]


def test_oci_layout_written_by_trustbuild_is_read_by_skopeo_and_umoci(
    tb,
    busybox_archive,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    path, info = busybox_archive
    r = tb("copy", f"docker-archive:{path}", f"oci:{tmp_path}/l:bb")
    assert r.code == 0, r.err
    digest = r.out.strip()
    assert raw_digest(f"oci:{tmp_path}/l:bb") == digest
    assert inspect_json(f"oci:{tmp_path}/l:bb")["Layers"][0].startswith("sha256:")
    skopeo("copy", f"oci:{tmp_path}/l:bb", f"docker-archive:{tmp_path}/sk.tar:bb:sk")
    assert inspect_json(f"docker-archive:{tmp_path}/sk.tar")["Layers"] == [info["diff_id"]]
    # trustbuild reads skopeo's archive; deterministic gzip gives the very same OCI digest again
    r = tb("copy", f"docker-archive:{tmp_path}/sk.tar:bb:sk", f"oci:{tmp_path}/again:x")
    assert (r.code, r.out.strip()) == (0, digest), r.err
    need("umoci")
    subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path}/l:bb", str(tmp_path / "u")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "u" / "rootfs" / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    r = tb("inspect", f"oci:{tmp_path}/l:bb")
    doc = json.loads(r.out)
    assert doc["digest"] == digest and doc["configDigest"] == info["config"]
    assert doc["tags"] == ["bb"] and doc["config"]["rootfs"]["diff_ids"] == [info["diff_id"]]


def test_docker_archive_written_by_trustbuild_loads_in_podman(
    tb, busybox_archive, tmp_path: Path
) -> None:  # noqa: ANN001
    need("podman")
    path, info = busybox_archive
    r = tb("copy", f"docker-archive:{path}", f"oci:{tmp_path}/l:bb")
    assert r.code == 0, r.err
    out = tmp_path / "out.tar"
    r = tb("copy", f"oci:{tmp_path}/l:bb", f"docker-archive:{out}:example.com/bb:loaded")
    assert r.code == 0, r.err
    short = Path(tempfile.mkdtemp(prefix="tbp-", dir="/tmp"))  # podman wants a short runroot
    store = [
        "--root",
        str(short / "root"),
        "--runroot",
        str(short / "run"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]
    try:
        p = subprocess.run(
            ["podman", *store, "load", "-i", str(out)], capture_output=True, text=True, timeout=180
        )
        if p.returncode != 0 and "permission" in p.stderr.lower():
            pytest.skip(f"podman cannot run in this VM: {p.stderr.strip()[:200]}")
        assert p.returncode == 0, p.stderr
        assert "example.com/bb:loaded" in p.stdout
        p = subprocess.run(
            ["podman", *store, "image", "inspect", "example.com/bb:loaded"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        img = json.loads(p.stdout)[0]
        assert "sha256:" + img["Id"] == info["config"]
        assert img["RootFS"]["Layers"] == [info["diff_id"]]
    finally:
        subprocess.run(["podman", *store, "rmi", "-a", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def multiarch(registry, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """A two-platform OCI index written in plain Python and pushed by ``skopeo copy --all``."""
    d = tmp_path_factory.mktemp("multi")
    info = write_plain_layout(d, tag="multi", platforms=["linux/amd64", "linux/arm64"])
    ref = f"{registry.host}/interop/multi:1"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{d}:multi", f"docker://{ref}")
    assert raw_digest(f"docker://{ref}") == info["top"]
    return ref, info


def test_multiarch_all_keeps_index_digest(tb, registry, multiarch, tmp_path: Path) -> None:  # noqa: ANN001
    ref, info = multiarch
    dst = f"{registry.host}/interop/multi-copy:all"
    r = tb("copy", "--all", ref, dst)
    assert (r.code, r.out.strip()) == (0, info["top"]), r.err
    assert raw_digest(f"docker://{dst}") == info["top"]
    for dg in info["manifests"].values():
        assert raw_digest(f"docker://{registry.host}/interop/multi-copy@{dg}") == dg
    r = tb("copy", "--all", ref, f"oci:{tmp_path}/all:m")
    assert r.code == 0 and raw_digest(f"oci:{tmp_path}/all:m") == info["top"]


def test_multiarch_picks_host_or_requested_platform(
    tb, registry, multiarch, tmp_path: Path
) -> None:  # noqa: ANN001
    ref, info = multiarch
    host = f"linux/{Platform.host().architecture}"
    r = tb("copy", ref, f"{registry.host}/interop/multi-copy:host")
    assert (r.code, r.out.strip()) == (0, info["manifests"][host]), r.err
    r = tb("copy", "--platform", "linux/arm64", ref, f"oci:{tmp_path}/arm:a")
    assert (r.code, r.out.strip()) == (0, info["manifests"]["linux/arm64"]), r.err
    assert inspect_json(f"oci:{tmp_path}/arm:a")["Architecture"] == "arm64"
    r = tb("inspect", "--platform", "linux/arm64", ref)
    doc = json.loads(r.out)
    assert (
        doc["digest"] == info["manifests"]["linux/arm64"] and doc["index"]["digest"] == info["top"]
    )
    assert doc["platform"] == {"os": "linux", "architecture": "arm64"}
    r = tb("inspect", "--raw", ref)
    assert "sha256:" + hashlib.sha256(r.out.encode()).hexdigest() == info["top"]


def test_docker_schema2_pushed_by_skopeo_round_trips(
    tb, registry, busybox_archive, tmp_path: Path
) -> None:  # noqa: ANN001
    path, info = busybox_archive
    src = f"{registry.host}/interop/skopeo-docker:1"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{path}", f"docker://{src}")
    digest = raw_digest(f"docker://{src}")
    r = tb("inspect", src)
    doc = json.loads(r.out)
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["digest"] == digest and doc["configDigest"] == info["config"]
    assert tb("copy", src, f"oci:{tmp_path}/l").out.strip() == digest
    r = tb("copy", f"oci:{tmp_path}/l", f"{registry.host}/interop/skopeo-docker-back:1")
    assert (r.code, r.out.strip()) == (0, digest), r.err
    assert raw_digest(f"docker://{registry.host}/interop/skopeo-docker-back:1") == digest


def test_copy_between_repositories_mounts_blobs(registry, pushed_image) -> None:  # noqa: ANN001
    from trustbuild.registry.options import StoreOptions
    from trustbuild.store.copy import copy_image
    from trustbuild.store.location import parse_location
    from trustbuild.store.open import open_store

    ref, digest = pushed_image
    src, src_ref = open_store(parse_location(ref), StoreOptions())
    dst, _ = open_store(
        parse_location(f"{registry.host}/interop/mounted:v1"), StoreOptions(), for_write=True
    )
    try:
        desc = copy_image(src, src_ref, dst, ["v1"])
        assert str(desc.digest) == digest
        assert dst.stats["mounted"] == 2 and dst.stats["uploaded"] == 0  # type: ignore[attr-defined]
    finally:
        src.close()
        dst.close()
    assert raw_digest(f"docker://{registry.host}/interop/mounted:v1") == digest
