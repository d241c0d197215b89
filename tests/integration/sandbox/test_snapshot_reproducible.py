"""Walk and full snapshots give the same bytes every run when a step deletes a directory and
creates it again (``rm -rf /d && mkdir /d``), whether or not the kernel would hand the new
directory the old inode number.

On an overlay stage rootfs (``--cache-dir``: the stage is an overlay of unpacked layers) a
directory made by an earlier step lives in the overlay's upper directory, overlayfs has no
inode generations, and ext4 gives the re-created directory the number just freed: the layer
got whiteouts for the old children in walk/full mode, an opaque directory in overlay mode.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from trustbuild.cli.main import main
from trustbuild.sandbox.snapshot import DirPins, diff_snapshots, step_nofile, take_snapshot

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

DIRS = [f"d{i}" for i in range(8)]


@pytest.fixture
def overlay_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An overlay mount (lower: one directory with content), like a stage rootfs."""
    for d in ("lower/base/old", "upper", "work", "merged"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "lower/base/old/f").write_text("f")
    merged = tmp_path / "merged"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={tmp_path / 'lower'},upperdir={tmp_path / 'upper'},"
                    f"workdir={tmp_path / 'work'}", str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def _populate(root: Path) -> None:
    for d in DIRS:
        (root / d / "sub").mkdir(parents=True)
        (root / d / "a").write_text("a")
        (root / d / "sub" / "b").write_text("b")


def _recreate(root: Path, dirs: list[str]) -> None:
    """``rm -rf /d && mkdir /d && echo f > /d/f`` for each."""
    for d in dirs:
        shutil.rmtree(root / d)
        (root / d).mkdir()
        (root / d / "f").write_text("f")


@pytest.mark.parametrize("full", [False, True])
def test_recreated_directory_is_opaque_on_an_overlay_rootfs(overlay_root: Path,
                                                            full: bool) -> None:
    # An upper-only directory (made by an earlier step): ext4 hands the new one the number
    # just freed most of the time, so 20 rounds all used to see at least one reuse.
    (overlay_root / "x").mkdir()
    (overlay_root / "x" / "f").write_text("f")
    for _ in range(20):
        with DirPins() as pins:
            before = take_snapshot(overlay_root, full=full, pins=pins)
            _recreate(overlay_root, ["x", "base"])  # base: merged with the lower at first
            after = take_snapshot(overlay_root, full=full)
        ch = diff_snapshots(before, after, full=full)
        assert ch.opaque == {"x", "base"}
        assert not ch.whiteouts  # none for x/f or base/old: the markers hide them
        assert "x/f" in ch.added


def test_pins_are_released_and_the_step_gets_the_old_limit(tmp_path: Path) -> None:
    _populate(tmp_path)
    fds = len(os.listdir("/proc/self/fd"))
    with DirPins() as pins:
        take_snapshot(tmp_path, pins=pins)
        assert len(os.listdir("/proc/self/fd")) >= fds + 2 * len(DIRS)
    assert len(os.listdir("/proc/self/fd")) == fds


DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN mkdir -p /d/sub /e/deep /f2d /keep && echo a > /d/a && echo b > /d/sub/b \\
 && echo e > /e/deep/e && echo f > /file && echo x > /f2d/x && echo h > /keep/h \\
 && ln /keep/h /keep/h2
RUN rm -rf /d /e && mkdir /d /e && echo new > /d/new && rm /file && mkdir /file \\
 && echo in > /file/in && rm -rf /f2d && echo now-a-file > /f2d && echo n > /d/n1 \\
 && ln /d/n1 /e/n2 && ulimit -n > /nofile
"""
RUNS = 4


def _build(ctx: Path, base: str, host: str, mode: str, out: Path, cache: Path) -> str:
    digest = out / "digest"
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={base}",
               "--snapshot-mode", mode, "--reproducible", "--cache-dir", str(cache),
               "--destination", f"{host}/repro/snap:{mode}", "--no-push",
               "--oci-layout-path", str(out / "layout"), "--digest-file", str(digest)])
    assert rc == 0
    return digest.read_text().strip()


def test_rm_rf_and_mkdir_builds_the_same_digest_in_every_run_and_mode(
        busybox_base: str, registry: object, tmp_path: Path) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    cache = tmp_path / "cache"  # a layer store: every stage rootfs is an overlay mount
    digests: dict[str, set[str]] = {}
    for mode in ("overlay", "walk", "full"):
        for i in range(RUNS if mode != "overlay" else 1):
            out = tmp_path / f"{mode}-{i}"
            out.mkdir()
            digests.setdefault(mode, set()).add(_build(ctx, busybox_base, host, mode, out,
                                                       cache))
    assert digests["walk"] == digests["full"] == digests["overlay"], digests
    layout = tmp_path / "walk-0" / "layout"
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:walk", str(bundle)],
                   check=True, capture_output=True, timeout=120)
    root = bundle / "rootfs"
    assert sorted(os.listdir(root / "d")) == ["n1", "new"]
    assert os.listdir(root / "e") == ["n2"]
    assert (root / "file" / "in").read_text() == "in\n"
    assert (root / "f2d").read_text() == "now-a-file\n"
    assert os.path.samefile(root / "keep/h", root / "keep/h2")
    assert os.path.samefile(root / "d/n1", root / "e/n2")
    assert (root / "e/n2").read_text() == "n\n"
    # the builder may have raised its own limit to hold directories: the step has the old one
    soft = step_nofile() or resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert (root / "nofile").read_text().strip() == str(soft)
