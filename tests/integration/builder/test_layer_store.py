"""--cache-dir: base layers downloaded once per machine (``cache warm`` fills it ahead), and
RUN --mount=type=cache directories kept there across builds."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions
from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow]


def _build(ctx: Path, base: str, dest: str, store: Path | None) -> tuple[list[str], str, str]:
    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[dest], output=out,
                        build_args={"BASE": base},
                        cache_dir=str(store) if store is not None else None)
    with build(opts) as result:
        layers = [str(lay.descriptor.digest) for lay in result.image.layers]
        count = (result.rootfs / "count.txt").read_text().strip() \
            if (result.rootfs / "count.txt").exists() else ""
        return layers, count, out.getvalue()


def _layer_gets(log: list[tuple[str, str, int]], digests: list[str]) -> list[str]:
    return [path for method, path, _ in log
            if method == "GET" and "/blobs/" in path and any(d in path for d in digests)]


def test_warm_then_builds_download_no_base_layer(tmp_path: Path, busybox_base: str,
                                                 registry_proxy: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    host = registry_proxy.host
    base = busybox_base.replace(busybox_base.split("/")[0], host, 1)
    store = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo hi > /hi.txt\n")

    assert main(["cache", "warm", "--cache-dir", str(store), base]) == 0
    warm = json.loads(capsys.readouterr().out.splitlines()[0])
    assert warm["downloaded"] == warm["layers"] >= 1
    warmed_gets = len([e for e in registry_proxy.log if e[0] == "GET" and "/blobs/" in e[1]])
    assert warmed_gets >= warm["layers"]

    for tag in ("1", "2"):
        registry_proxy.log.clear()
        layers, _, log = _build(ctx, base, f"{host}/store/app:{tag}", store)
        base_layers = layers[:-1]
        assert len(base_layers) == warm["layers"]
        assert _layer_gets(registry_proxy.log, [d.split(":")[1] for d in base_layers]) == []
        # the base's config was kept by the warm too: only its manifest is asked for
        base_repo = base.split("/", 1)[1].rsplit(":", 1)[0]
        assert [p for m, p, _ in registry_proxy.log
                if m == "GET" and p.startswith(f"/v2/{base_repo}/blobs/")] == []
        assert any(m == "GET" and p.startswith(f"/v2/{base_repo}/manifests/")
                   for m, p, _ in registry_proxy.log)
        # the RUN step needs the filesystem: the base, unpacked once, is its overlay lower dir
        unpacked = 1 if tag == "1" else 0
        assert f"mounting 1 layer(s) from the layer store ({unpacked} unpacked now)" in log
    assert main(["cache", "warm", "--cache-dir", str(store), base]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["downloaded"] == 0


def test_partial_hit_extracts_cached_layers_from_the_store(tmp_path: Path, busybox_base: str,
                                                           registry_proxy: Any) -> None:
    host = registry_proxy.host
    base = busybox_base.replace(busybox_base.split("/")[0], host, 1)
    store = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo one > /one.txt\n"
                                    "COPY marker.txt /marker.txt\nRUN cat /marker.txt\n")
    (ctx / "marker.txt").write_text("1\n")

    def run(tag: str) -> tuple[list[str], list[bool], str]:
        out = io.StringIO()
        opts = BuildOptions(context=str(ctx), destinations=[f"{host}/store/partial:{tag}"],
                            output=out, build_args={"BASE": base}, cache=True,
                            cache_repo=f"{host}/store/partial-cache", cache_dir=str(store))
        with build(opts) as result:
            return ([str(lay.descriptor.digest) for lay in result.image.layers],
                    [s.cached for s in result.record.steps if s.instruction in ("RUN", "COPY")],
                    out.getvalue())

    first, _, _ = run("1")
    (ctx / "marker.txt").write_text("2\n")
    registry_proxy.log.clear()
    layers, cached, log = run("2")
    assert cached == [True, False, False]
    # the base (unpacked by the first build) and the cached RUN layer
    assert "mounting 2 layer(s) from the layer store (1 unpacked now)" in log
    # neither came from the registry: the base was kept by the first build, the RUN layer too
    # when the first build stored it in the cache repository
    assert _layer_gets(registry_proxy.log, [d.split(":")[1] for d in first[:2]]) == []


def test_a_cached_layer_gone_from_store_and_registry_is_built_again(
        tmp_path: Path, busybox_base: str, registry_proxy: Any) -> None:
    import requests

    host = registry_proxy.host
    base = busybox_base.replace(busybox_base.split("/")[0], host, 1)
    store = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n"
                                    "RUN head -c 16 /dev/urandom | od -x > /random.txt\n")
    cache = "store/gone-cache"

    def run(tag: str) -> tuple[str, bool, str]:
        opts = BuildOptions(context=str(ctx), destinations=[f"{host}/store/gone:{tag}"],
                            output=io.StringIO(), build_args={"BASE": base}, cache=True,
                            cache_repo=f"{host}/{cache}", cache_dir=str(store))
        with build(opts) as result:
            step = next(s for s in result.record.steps if s.instruction == "RUN")
            return (str(result.image.layers[-1].descriptor.digest), bool(step.cached),
                    (result.rootfs / "random.txt").read_text())

    def blob_url(digest: str) -> str:
        return f"http://{registry_proxy.upstream.host}/v2/{cache}/blobs/{digest}"

    layer, cached, random1 = run("1")
    assert not cached
    # only the registry lost it: the hit takes the layer from the store
    assert requests.delete(blob_url(layer), timeout=30).status_code == 202
    assert run("2")[1:] == (True, random1)
    # gone from both: the step runs again and stores its layer in both again
    (store / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    layer3, cached3, random3 = run("3")
    assert not cached3 and random3 != random1
    assert requests.head(blob_url(layer3), timeout=30).status_code == 200
    assert (store / "blobs" / "sha256" / layer3.split(":")[1]).exists()
    assert run("4")[1:] == (True, random3)


CACHE_MOUNT = """\
ARG BASE
FROM ${BASE}
RUN --mount=type=cache,id=counter,target=/var/cache/c,sharing=SHARING \\
    echo run >> /var/cache/c/log && wc -l < /var/cache/c/log > /count.txt
"""


@pytest.mark.parametrize("sharing", ["shared", "locked"])
def test_cache_mount_persists_across_builds(tmp_path: Path, busybox_base: str, registry: Any,
                                            sharing: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(CACHE_MOUNT.replace("SHARING", sharing))
    store = tmp_path / "store"
    dest = f"{registry.host}/store/mount-{sharing}:1"
    assert _build(ctx, busybox_base, dest, store)[1] == "1"
    assert _build(ctx, busybox_base, dest, store)[1] == "2"
    assert _build(ctx, busybox_base, dest, None)[1] == "1"  # no store: per build


def test_private_cache_mount_in_use_gets_its_own_directory(tmp_path: Path, busybox_base: str,
                                                           registry: Any) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(CACHE_MOUNT.replace("SHARING", "private"))
    store = tmp_path / "store"
    dest = f"{registry.host}/store/mount-private:1"
    assert _build(ctx, busybox_base, dest, store)[1] == "1"
    name = hashlib.sha256(b"counter").hexdigest()[:32]
    fd = os.open(store / "run-cache" / f"{name}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another build is using the directory
        assert _build(ctx, busybox_base, dest, store)[1] == "1"
    finally:
        os.close(fd)
    assert (store / "run-cache" / f"{name}-1" / "log").read_text() == "run\n"
    assert _build(ctx, busybox_base, dest, store)[1] == "2"  # the first one again
