"""--cache: RUN layers stored in and reused from a cache repository."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from fixtures.imagefs import fetch_dir, flatten

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions

pytestmark = [pytest.mark.slow]

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY input.txt /input.txt
RUN cat /dev/urandom | head -c 16 | od -x > /random.txt
RUN cp /random.txt /copy.txt
"""


def _build(ctx: Path, base: str, dest: str, **kw: object) -> tuple[str, list[bool], str]:
    opts = BuildOptions(context=str(ctx), destinations=[dest], output=io.StringIO(),
                        build_args={"BASE": base}, cache=True, **kw)  # type: ignore[arg-type]
    with build(opts) as result:
        random = (result.rootfs / "random.txt").read_text()
        return result.digest, [s.cached for s in result.record.steps if s.instruction == "RUN"], \
            random


def test_run_layers_come_from_the_cache(tmp_path: Path, busybox_base: str,
                                        registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "input.txt").write_text("one\n")
    cache = f"{host}/cache/app-cache"
    _, cached1, random1 = _build(ctx, busybox_base, f"{host}/cache/app:1", cache_repo=cache)
    assert cached1 == [False, False]
    _, cached2, random2 = _build(ctx, busybox_base, f"{host}/cache/app:2", cache_repo=cache)
    assert cached2 == [True, True]
    assert random2 == random1  # the step did not run again
    fs = flatten(fetch_dir(f"{host}/cache/app:2", tmp_path / "img"))
    assert fs["/copy.txt"].sha256 == fs["/random.txt"].sha256
    # a different COPY input changes the chain: both RUN steps run again
    (ctx / "input.txt").write_text("two\n")
    _, cached3, random3 = _build(ctx, busybox_base, f"{host}/cache/app:3", cache_repo=cache)
    assert cached3 == [False, False] and random3 != random1


def test_default_cache_repo_is_derived_from_the_destination(tmp_path: Path, busybox_base: str,
                                                           registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "input.txt").write_text("x\n")
    _build(ctx, busybox_base, f"{host}/cache/derived:1")
    _, cached, _ = _build(ctx, busybox_base, f"{host}/cache/derived:2")
    assert cached == [True, True]


def _delete_blob(host: str, repo: str, digest: str) -> None:
    import requests

    resp = requests.delete(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30)
    assert resp.status_code == 202, resp.text
    assert requests.head(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 404


def _has_blob(host: str, repo: str, digest: str) -> bool:
    import requests

    return requests.head(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 200


def test_a_hit_whose_layer_is_gone_from_the_cache_runs_again_and_refills_it(
        tmp_path: Path, busybox_base: str, registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "input.txt").write_text("gone\n")
    cache = "cache/gone-cache"
    opts = BuildOptions(context=str(ctx), destinations=[f"{host}/cache/gone:1"],
                        output=io.StringIO(), build_args={"BASE": busybox_base}, cache=True,
                        cache_repo=f"{host}/{cache}")
    with build(opts) as result:
        first_run = str(result.image.layers[-2].descriptor.digest)
        random1 = (result.rootfs / "random.txt").read_text()
    _delete_blob(host, cache, first_run)  # the entry (manifest) stays, its layer is gone

    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[f"{host}/cache/gone:2"], output=out,
                        build_args={"BASE": busybox_base}, cache=True,
                        cache_repo=f"{host}/{cache}")
    with build(opts) as result:
        cached = [s.cached for s in result.record.steps if s.instruction in ("COPY", "RUN")]
        random2 = (result.rootfs / "random.txt").read_text()
    # the step ran again; the one after it still hits (its key is made of its inputs)
    assert cached == [True, False, True]
    assert random2 != random1
    assert f"layer {first_run[:19]}" in out.getvalue() and "missing" in out.getvalue()
    fs = flatten(fetch_dir(f"{host}/cache/gone:2", tmp_path / "img"))
    assert fs["/random.txt"].sha256 == hashlib.sha256(random2.encode()).hexdigest()
    # the entry was stored again: the next build takes every step from the cache
    _, cached3, random3 = _build(ctx, busybox_base, f"{host}/cache/gone:3",
                                 cache_repo=f"{host}/{cache}")
    assert cached3 == [True, True] and random3 == random2


def test_a_cache_that_refuses_the_layers_warns_and_the_push_uploads_them(
        tmp_path: Path, busybox_base: str, registry_proxy: object) -> None:
    host = registry_proxy.host  # type: ignore[attr-defined]
    registry_proxy.fail(403, 1000, match="/refusing/cache/")  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "input.txt").write_text("refused\n")
    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[f"{host}/refusing/app:1"], output=out,
                        build_args={"BASE": busybox_base}, cache=True,
                        cache_repo=f"{host}/refusing/cache", skip_push_permission_check=True)
    with build(opts) as result:
        random = (result.rootfs / "random.txt").read_text()
    # every step was stored in the background, and each store failed: warnings, no failure
    assert out.getvalue().count("[warning] cannot store the step in the cache") == 3
    # refused mounts from the cache repository: the push uploaded the layers' local files
    upstream = registry_proxy.upstream.host  # type: ignore[attr-defined]
    fs = flatten(fetch_dir(f"{upstream}/refusing/app:1", tmp_path / "img"))
    assert fs["/random.txt"].sha256 == hashlib.sha256(random.encode()).hexdigest()
    assert fs["/copy.txt"].sha256 == fs["/random.txt"].sha256
