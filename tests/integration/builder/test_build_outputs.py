"""Outputs of ``trustbuild build`` read back by independent tools (skopeo, umoci)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from fixtures.imagefs import fetch_dir, flatten, read_dir_image, tag_exists

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.interop]

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY app.txt /app/app.txt
RUN echo built > /app/built.txt
LABEL stage=final
"""


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "app.txt").write_text("app\n")
    return d


def _build(ctx: Path, base: str, *extra: str) -> str:
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={base}", *extra])
    assert rc == 0
    return ""


def _skopeo_json(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out)


def test_reproducible_builds_give_the_same_digest(ctx: Path, busybox_base: str, tmp_path: Path,
                                                  registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    _build(ctx, busybox_base, "--reproducible", "--destination", f"{host}/out/repro:a",
           "--digest-file", str(d1))
    _build(ctx, busybox_base, "--reproducible", "--destination", f"{host}/out/repro:b",
           "--digest-file", str(d2))
    assert d1.read_text().startswith("sha256:")
    assert d1.read_text() == d2.read_text()
    cfg = _skopeo_json("inspect", "--tls-verify=false", "--config",
                       f"docker://{host}/out/repro:a")
    assert cfg["created"] == "1970-01-01T00:00:00Z"


def test_destinations_tar_and_layout(ctx: Path, busybox_base: str, tmp_path: Path,
                                     registry: object) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    host = registry.host  # type: ignore[attr-defined]
    tar, layout = tmp_path / "image.tar", tmp_path / "layout"
    digest_file, names_file = tmp_path / "digest", tmp_path / "names"
    _build(ctx, busybox_base, "--destination", f"{host}/out/multi:1",
           "--destination", f"{host}/out/multi:latest", "--destination", f"{host}/out/other:2",
           "--tar-path", str(tar), "--oci-layout-path", str(layout),
           "--digest-file", str(digest_file), "--image-name-with-digest-file", str(names_file),
           "--label", "org.example.extra=yes")
    digest = digest_file.read_text()
    for ref in ("out/multi:1", "out/multi:latest", "out/other:2"):
        got = _skopeo_json("inspect", "--tls-verify=false", f"docker://{host}/{ref}")
        assert got["Digest"] == digest, ref
        assert got["Labels"]["org.example.extra"] == "yes"
        assert got["Labels"]["stage"] == "final"
    assert names_file.read_text().splitlines() == [f"{host}/out/multi@{digest}",
                                                   f"{host}/out/other@{digest}"]
    archived = _skopeo_json("inspect", f"docker-archive:{tar}")
    assert archived["Labels"]["stage"] == "final"
    assert len(archived["Layers"]) == 3
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:1", str(bundle)], check=True,
                   capture_output=True, timeout=120)
    assert (bundle / "rootfs" / "app" / "app.txt").read_text() == "app\n"
    assert (bundle / "rootfs" / "app" / "built.txt").read_text() == "built\n"
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    shutil.rmtree(bundle)


def test_no_push_writes_only_files(ctx: Path, busybox_base: str, tmp_path: Path,
                                   registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    tar = tmp_path / "image.tar"
    _build(ctx, busybox_base, "--no-push", "--destination", f"{host}/out/nopush:1",
           "--tar-path", str(tar))
    assert tar.is_file()
    assert not tag_exists(host, "out/nopush", "1")


def test_docker_format_and_zstd(ctx: Path, busybox_base: str, tmp_path: Path,
                                registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    _build(ctx, busybox_base, "--image-format", "docker", "--destination",
           f"{host}/out/docker:1")
    manifest, config = read_dir_image(fetch_dir(f"{host}/out/docker:1", tmp_path / "docker"))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"}
    assert config["config"]["Labels"]["stage"] == "final"

    _build(ctx, busybox_base, "--compression", "zstd", "--destination", f"{host}/out/zstd:1")
    d = fetch_dir(f"{host}/out/zstd:1", tmp_path / "zstd")
    manifest, _ = read_dir_image(d)
    types = [layer["mediaType"] for layer in manifest["layers"]]
    assert types[0] == "application/vnd.oci.image.layer.v1.tar+gzip"  # the base, reused as is
    assert set(types[1:]) == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    fs = flatten(d)
    assert fs["/app/app.txt"].size == 4 and fs["/app/built.txt"].size == 6


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    import sys

    return subprocess.run([sys.executable, "-m", "trustbuild", *args], input=stdin,
                          capture_output=True, timeout=300)


def test_stdin_dockerfile_and_tar_context_with_json_output(ctx: Path, busybox_base: str,
                                                           tmp_path: Path,
                                                           registry: object) -> None:
    import io
    import tarfile

    host = registry.host  # type: ignore[attr-defined]
    r = _cli("build", "--context", str(ctx), "--dockerfile", "-", "--build-arg",
             f"BASE={busybox_base}", "--destination", f"{host}/out/stdin:1", "--log-format",
             "json", stdin=b"ARG BASE\nFROM $BASE\nCOPY app.txt /from-stdin-dockerfile\n")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    out = json.loads(r.stdout)
    assert out["digest"].startswith("sha256:")
    assert out["record"]["result_digest"] == out["digest"]
    assert out["record"]["build_args"] == {"BASE": busybox_base}
    got = _skopeo_json("inspect", "--tls-verify=false", f"docker://{host}/out/stdin:1")
    assert got["Digest"] == out["digest"]

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tf:
        tf.add(ctx / "Dockerfile", "Dockerfile")
        tf.add(ctx / "app.txt", "app.txt")
    r = _cli("build", "--context", "tar://stdin", "--build-arg", f"BASE={busybox_base}",
             "--destination", f"{host}/out/tarstdin:1", stdin=raw.getvalue())
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    digest = r.stdout.decode().strip()
    fs = flatten(fetch_dir(f"{host}/out/tarstdin:1", tmp_path / "tarstdin"))
    assert fs["/app/app.txt"].size == 4 and digest.startswith("sha256:")


def test_tar_path_loads_with_podman(ctx: Path, busybox_base: str, tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    tar = tmp_path / "image.tar"
    _build(ctx, busybox_base, "--no-push", "--destination", "127.0.0.1:5999/out/podman:v1",
           "--tar-path", str(tar))
    store = Path(tempfile.mkdtemp(prefix="tb-podman-"))  # podman wants a short runroot
    podman = ["podman", "--root", str(store / "root"), "--runroot", str(store / "runroot"),
              "--storage-driver", "vfs"]
    try:
        r = subprocess.run([*podman, "load", "-i", str(tar)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "127.0.0.1:5999/out/podman:v1" in r.stdout
        info = json.loads(subprocess.run([*podman, "image", "inspect",
                                          "127.0.0.1:5999/out/podman:v1"], check=True,
                                         capture_output=True, text=True, timeout=60).stdout)
        assert info[0]["Labels"]["stage"] == "final"
        assert len(info[0]["RootFS"]["Layers"]) == 3
    finally:
        subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(store, ignore_errors=True)
