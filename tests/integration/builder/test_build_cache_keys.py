"""--cache keys from inputs: every RUN/COPY/WORKDIR step cached, stable across context copies,
and a build whose every step hits neither downloads nor extracts a layer (docs/cache.md)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures.imagefs import fetch_dir, flatten

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions

pytestmark = [pytest.mark.slow]

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
WORKDIR /app
COPY src/ /app/src/
ENV GREETING=hi
RUN echo "$GREETING" > /app/out.txt && cat /dev/urandom | head -c 16 | od -x > /app/random.txt
COPY marker.txt /app/
RUN cat /app/marker.txt /app/src/a.txt > /app/both.txt
"""

FS_STEPS = ["WORKDIR", "COPY", "RUN", "COPY", "RUN"]


def _context(path: Path, marker: str = "one\n") -> Path:
    (path / "src" / "sub").mkdir(parents=True)
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "src" / "a.txt").write_text("a\n")
    (path / "src" / "sub" / "b.sh").write_text("#!/bin/sh\n")
    (path / "src" / "sub" / "b.sh").chmod(0o755)
    (path / "marker.txt").write_text(marker)
    return path


def _copy_with_new_mtimes(src: Path, dst: Path) -> Path:
    """A copy of the context as another checkout would have it: same content, other mtimes."""
    shutil.copytree(src, dst)
    for dirpath, dirnames, filenames in os.walk(dst):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (1_000_000_000, 1_000_000_000))
    os.utime(dst, (1_000_000_000, 1_000_000_000))
    return dst


def _build(ctx: Path, base: str, dest: str, cache_repo: str, **kw: Any) -> dict[str, Any]:
    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[dest], output=out,
                        build_args={"BASE": base}, cache=True, cache_repo=cache_repo, **kw)
    with build(opts) as result:
        steps = [s for s in result.record.steps if s.instruction in ("RUN", "COPY", "WORKDIR")]
        return {"digest": result.digest, "cached": [s.cached for s in steps],
                "kinds": [s.instruction for s in steps], "log": out.getvalue(),
                "layers": [str(lay.descriptor.digest) for lay in result.image.layers],
                "random": (result.rootfs / "app" / "random.txt").read_text()}


def _blob_requests(log: list[tuple[str, str, int]], digests: list[str]) -> list[str]:
    """Requests that downloaded or uploaded one of ``digests`` (a mount is neither)."""
    out = []
    for method, path, _status in log:
        hit = next((d for d in digests if d in path), None)
        if hit is None:
            continue
        if method == "GET" and "/blobs/" in path:
            out.append(f"{method} {path}")
        elif method in ("PUT", "PATCH") and "/blobs/uploads/" in path:
            out.append(f"{method} {path}")
    return out


def test_no_change_rebuild_from_another_checkout_hits_every_step(
        tmp_path: Path, busybox_base: str, registry: Any, registry_proxy: Any) -> None:
    host = registry_proxy.host
    base = busybox_base.replace(busybox_base.split("/")[0], host, 1)
    cache = f"{host}/keys/app-cache"
    ctx1 = _context(tmp_path / "ctx1")
    first = _build(ctx1, base, f"{host}/keys/app:1", cache)
    assert first["kinds"] == FS_STEPS and first["cached"] == [False] * 5
    assert "extracting" in first["log"]
    # the new layers went up once, to the cache; the destination mounted them from there
    new_layers = [d.split(":")[1] for d in first["layers"][-5:]]
    to_dest = [e for e in registry_proxy.log if e[1].startswith("/v2/keys/app/blobs/uploads")]
    assert [e for e in to_dest if e[0] in ("PUT", "PATCH")
            and any(d in e[1] for d in new_layers)] == []
    assert len([e for e in to_dest if e[0] == "POST" and "mount=" in e[1] and e[2] == 201]) >= 5

    ctx2 = _copy_with_new_mtimes(ctx1, tmp_path / "ctx2")
    registry_proxy.log.clear()
    second = _build(ctx2, base, f"{host}/keys/app:2", cache)
    assert second["cached"] == [True] * 5, second["log"]
    assert second["log"].count("cache hit") == 5
    assert "extracting" not in second["log"]  # neither the base nor a cached layer
    assert second["layers"] == first["layers"]
    # nothing was downloaded for the build (a layer is read only by result.rootfs, after it),
    # and the push mounted or found every layer: only the config and manifest went up
    pushed = [e for e in registry_proxy.log if e[0] == "PUT" and "/manifests/" in e[1]]
    assert pushed, registry_proxy.log
    build_log = registry_proxy.log[: registry_proxy.log.index(pushed[-1]) + 1]
    assert _blob_requests(build_log, [d.split(":")[1] for d in second["layers"]]) == []
    assert second["random"] == first["random"]  # the RUN did not run again

    fs = flatten(fetch_dir(f"{registry.host}/keys/app:2", tmp_path / "img"))
    assert fs["/app/both.txt"].sha256 == hashlib.sha256(b"one\na\n").hexdigest()
    assert fs["/app/src/sub/b.sh"].mode & 0o777 == 0o755


def test_partial_hit_extracts_only_up_to_the_first_miss(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    cache = f"{host}/keys/partial-cache"
    ctx = _context(tmp_path / "ctx")
    first = _build(ctx, busybox_base, f"{host}/keys/partial:1", cache)
    (ctx / "marker.txt").write_text("two\n")
    second = _build(ctx, busybox_base, f"{host}/keys/partial:2", cache)
    assert second["cached"] == [True, True, True, False, False], second["log"]
    # base layer(s) + the three cached layers, extracted once, when COPY marker.txt had to run
    n_base = len(first["layers"]) - 5
    assert f"extracting {n_base + 3} layer(s)" in second["log"]
    assert second["log"].count("extracting") == 1
    assert second["random"] == first["random"]
    fs = flatten(fetch_dir(f"{host}/keys/partial:2", tmp_path / "img"))
    assert fs["/app/both.txt"].sha256 == hashlib.sha256(b"two\na\n").hexdigest()
    # the changed step missed; a later build with the first content hits everything again
    (ctx / "marker.txt").write_text("one\n")
    third = _build(ctx, busybox_base, f"{host}/keys/partial:3", cache)
    assert third["cached"] == [True] * 5 and third["digest"] != second["digest"]


def test_mode_change_is_a_miss_but_ignored_files_are_not(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    cache = f"{host}/keys/mode-cache"
    ctx = _context(tmp_path / "ctx")
    (ctx / ".dockerignore").write_text("src/*.log\n")
    (ctx / "src" / "x.log").write_text("1\n")
    _build(ctx, busybox_base, f"{host}/keys/mode:1", cache)
    (ctx / "src" / "x.log").write_text("2\n")  # excluded: not part of the key
    assert _build(ctx, busybox_base, f"{host}/keys/mode:2", cache)["cached"] == [True] * 5
    (ctx / "src" / "a.txt").chmod(0o600)
    assert _build(ctx, busybox_base, f"{host}/keys/mode:3", cache)["cached"] == \
        [True, False, False, False, False]


def test_copy_layers_not_cached_still_key_the_steps_after(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    cache = f"{host}/keys/nocopy-cache"
    ctx = _context(tmp_path / "ctx")
    first = _build(ctx, busybox_base, f"{host}/keys/nocopy:1", cache, cache_copy_layers=False)
    second = _build(ctx, busybox_base, f"{host}/keys/nocopy:2", cache, cache_copy_layers=False)
    assert second["cached"] == [True, False, True, False, True], second["log"]
    assert second["random"] == first["random"]


def test_no_push_cache_reads_but_stores_nothing(tmp_path: Path, busybox_base: str,
                                                registry: Any) -> None:
    host = registry.host
    cache = f"{host}/keys/ro-cache"
    ctx = _context(tmp_path / "ctx")
    _build(ctx, busybox_base, f"{host}/keys/ro:1", cache, no_push_cache=True)
    assert _build(ctx, busybox_base, f"{host}/keys/ro:2", cache,
                  no_push_cache=True)["cached"] == [False] * 5
    _build(ctx, busybox_base, f"{host}/keys/ro:3", cache)  # fills the cache
    assert _build(ctx, busybox_base, f"{host}/keys/ro:4", cache,
                  no_push_cache=True)["cached"] == [True] * 5


MULTI = """\
ARG BASE
FROM ${BASE} AS builder
COPY marker.txt /src/marker.txt
RUN cat /src/marker.txt /src/marker.txt > /out.txt
FROM ${BASE}
COPY --from=builder /out.txt /app/out.txt
LABEL stage=final
RUN wc -l /app/out.txt > /app/count.txt
"""


def test_multi_stage_full_hit_extracts_no_stage(tmp_path: Path, busybox_base: str,
                                                registry: Any) -> None:
    host = registry.host
    cache = f"{host}/keys/multi-cache"
    ctx = _context(tmp_path / "ctx")
    (ctx / "Dockerfile").write_text(MULTI)

    def run(tag: str) -> tuple[list[bool], str]:
        out = io.StringIO()
        opts = BuildOptions(context=str(ctx), destinations=[f"{host}/keys/multi:{tag}"],
                            output=out, build_args={"BASE": busybox_base}, cache=True,
                            cache_repo=cache)
        with build(opts) as result:
            return [s.cached for s in result.record.steps
                    if s.instruction in ("RUN", "COPY")], out.getvalue()

    assert run("1")[0] == [False] * 4
    cached, log = run("2")
    assert cached == [True] * 4 and "extracting" not in log, log
    (ctx / "marker.txt").write_text("changed\n")
    cached, _ = run("3")
    assert cached == [False] * 4  # the builder's key changed, so did COPY --from's


def test_cli_json_record_shows_every_step_cached(tmp_path: Path, busybox_base: str,
                                                 registry: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from trustbuild.cli.main import main

    host = registry.host
    ctx = _context(tmp_path / "ctx")
    argv = ["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}", "--cache",
            "--cache-dir", str(tmp_path / "store"), "--cache-ttl", "1h", "--log-format", "json"]
    assert main([*argv, "--destination", f"{host}/keys/cli:1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--destination", f"{host}/keys/cli:2"]) == 0
    out = capsys.readouterr()
    steps = json.loads(out.out)["record"]["steps"]
    assert [s["cached"] for s in steps if s["instruction"] in FS_STEPS] == [True] * 5
    assert "extracting" not in out.err and out.err.count("cache hit") == 5


def test_volume_directories_are_a_cached_step(tmp_path: Path, busybox_base: str,
                                              registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nVOLUME /data/v\n"
                                    "RUN ls -d /data/v > /seen.txt\n")

    def run(tag: str) -> tuple[list[bool], str]:
        out = io.StringIO()
        opts = BuildOptions(context=str(ctx), destinations=[f"{host}/keys/vol:{tag}"],
                            output=out, build_args={"BASE": busybox_base}, cache=True,
                            cache_repo=f"{host}/keys/vol-cache")
        with build(opts) as result:
            return ([s.cached for s in result.record.steps
                     if s.instruction in ("VOLUME", "RUN")], out.getvalue())

    assert run("1")[0] == [False, False]
    cached, log = run("2")
    assert cached == [True, True] and "extracting" not in log, log
    fs = flatten(fetch_dir(f"{host}/keys/vol:2", tmp_path / "img"))
    assert fs["/data/v"].type == "dir" and "/seen.txt" in fs
