"""Stage filesystems as overlays (builder/overlayroot.py): the base's layers unpacked once in the
layer store and mounted read-only as lower dirs, ``FROM <earlier stage>`` on top of that
stage's filesystem instead of extracting every layer again."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures.imagefs import fetch_dir, flatten

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions
from trustbuild.sandbox import StepRunner

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")]

# a base with deletions: a whiteout (/etc/group) and an opaque directory (/d recreated)
BASE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN rm /etc/group && mkdir /d && echo x > /d/x
RUN rm -rf /d && mkdir /d && echo y > /d/y
"""

APP_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN test ! -e /etc/group && test ! -e /d/x && cat /d/y > /seen && echo app >> /seen
"""


class _MountSpy:
    """A StepRunner that notes how the stage's rootfs is mounted when each RUN starts."""

    seen: list[str] = []

    def __init__(self, rootfs: Path, scratch: Path, **kw: Any) -> None:
        self.rootfs = rootfs
        self.inner = StepRunner(rootfs, scratch, **kw)
        self.snapshot_mode = self.inner.snapshot_mode

    def run(self, spec: Any, layer_dest: Path) -> Any:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if fields[4] == str(self.rootfs):
                _MountSpy.seen.append(line.split(" - ")[1].split()[0])  # the fs type
        return self.inner.run(spec, layer_dest)

    def close(self) -> None:
        self.inner.close()


def _build(ctx: Path, dockerfile: str, base: str, dest: str, **kw: Any) -> tuple[str, str]:
    (ctx / "Dockerfile").write_text(dockerfile)
    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[dest], output=out,
                        build_args={"BASE": base}, **kw)
    with build(opts) as result:
        return result.digest, out.getvalue()


def test_base_layers_are_unpacked_once_and_mounted_read_only(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _build(ctx, BASE_DOCKERFILE, busybox_base, f"{host}/overlay/base:1")  # plain extraction
    base = f"{host}/overlay/base:1"
    store = tmp_path / "store"
    _MountSpy.seen = []
    digest1, log1 = _build(ctx, APP_DOCKERFILE, base, f"{host}/overlay/app:1",
                           cache_dir=str(store), runner_factory=_MountSpy, reproducible=True)
    assert _MountSpy.seen == ["overlay"]  # the RUN step ran on an overlay, not a directory
    assert "mounting 3 layer(s) from the layer store (3 unpacked now)" in log1
    assert "extracting" not in log1
    unpacked = sorted(p.name for p in (store / "unpacked").iterdir())
    assert len(unpacked) == 3 and all(len(n) == 64 for n in unpacked)
    # whiteouts became overlay whiteouts, the recreated /d an opaque directory
    layer_dirs = [store / "unpacked" / n / "fs" for n in unpacked]
    assert any((d / "etc" / "group").is_char_device() for d in layer_dirs)
    assert any(os.getxattr(d / "d", "trusted.overlay.opaque") == b"y"
               for d in layer_dirs if (d / "d" / "y").exists())
    before = {p: p.stat().st_mtime_ns for d in layer_dirs for p in d.rglob("*")}

    # a second build unpacks nothing, and both produce the image an extracting build produces
    _MountSpy.seen = []
    digest2, log2 = _build(ctx, APP_DOCKERFILE, base, f"{host}/overlay/app:2",
                           cache_dir=str(store), runner_factory=_MountSpy, reproducible=True)
    assert "(0 unpacked now)" in log2 and _MountSpy.seen == ["overlay"]
    digest3, log3 = _build(ctx, APP_DOCKERFILE, base, f"{host}/overlay/app:3",
                           reproducible=True)
    assert "extracting 3 layer(s)" in log3
    assert digest1 == digest2 == digest3
    # the lower directories were never written
    assert {p: p.stat().st_mtime_ns for d in layer_dirs for p in d.rglob("*")} == before
    fs = flatten(fetch_dir(f"{host}/overlay/app:1", tmp_path / "img"))
    assert "/etc/group" not in fs and "/d/x" not in fs and "/seen" in fs
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(tmp_path) in line or "trustbuild-build-" in line]  # all unmounted


def test_a_killed_unpack_is_cleaned_up_by_the_next_one(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    """A build killed while unpacking a layer leaves ``unpacked/.tmp-PID-HEX``; the next build
    that unpacks the same layer (it holds the layer's unpacking lock) removes it. A prune's
    temporary entry (``.tmp-prune-``) is the prune's own and stays."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    store = tmp_path / "store"
    dockerfile = "ARG BASE\nFROM ${BASE}\nRUN echo one > /one\n"
    _build(ctx, dockerfile, busybox_base, f"{registry.host}/overlay/killed:1",
           cache_dir=str(store))
    (entry,) = (store / "unpacked").iterdir()
    shutil.rmtree(entry)  # as if it had never completed
    killed = store / "unpacked" / f".tmp-424242-{entry.name[:16]}"
    (killed / "fs" / "usr").mkdir(parents=True)
    pruning = store / "unpacked" / f".tmp-prune-424243-{entry.name[:16]}"
    pruning.mkdir()
    _, log = _build(ctx, dockerfile, busybox_base, f"{registry.host}/overlay/killed:2",
                    cache_dir=str(store))
    assert "(1 unpacked now)" in log
    assert not killed.exists()
    assert pruning.is_dir()
    assert (entry / ".complete").is_file()


MULTI_STAGE = """\
ARG BASE
FROM ${BASE} AS base
RUN echo one > /one && rm /etc/group
FROM base AS final
COPY --from=base /one /two
RUN test ! -e /etc/group && cat /one /two > /all
"""


@pytest.mark.parametrize("with_store", [False, True])
def test_from_an_earlier_stage_is_an_overlay_not_a_second_extraction(
        tmp_path: Path, busybox_base: str, registry: Any, with_store: bool) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    kw: dict[str, Any] = {"cache_dir": str(tmp_path / "store")} if with_store else {}
    _, log = _build(ctx, MULTI_STAGE, busybox_base, f"{host}/overlay/multi:{with_store}", **kw)
    assert "stage final: on top of stage base (overlay)" in log
    assert "stage final: extracting" not in log
    fs = flatten(fetch_dir(f"{host}/overlay/multi:{with_store}", tmp_path / "img"))
    assert "/etc/group" not in fs and {"/one", "/two", "/all"} <= set(fs)
    assert fs["/all"].size == 8


def test_where_overlay_does_not_mount_the_layers_are_extracted(
        tmp_path: Path, busybox_base: str, registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from trustbuild.sandbox import _linux

    def refuse(source: str | None, target: str, fstype: str | None, *a: Any) -> None:
        if fstype == "overlay":
            raise OSError(22, "Invalid argument")  # e.g. an upper dir on overlayfs
        raise AssertionError(f"unexpected mount {fstype} on {target}")

    monkeypatch.setattr(_linux, "mount", refuse)
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    store = tmp_path / "store"
    _, log = _build(ctx, MULTI_STAGE, busybox_base, f"{host}/overlay/nomount:1",
                    cache_dir=str(store))
    assert "stage base: extracting 1 layer(s)" in log and "stage final: extracting" in log
    assert "mounting" not in log and not (store / "unpacked").exists()  # nothing unpacked
    fs = flatten(fetch_dir(f"{host}/overlay/nomount:1", tmp_path / "img"))
    assert "/etc/group" not in fs and {"/one", "/two", "/all"} <= set(fs)


TWO_STAGES_ONE_BASE = """\
ARG BASE
FROM ${BASE} AS a
RUN echo a > /a
FROM ${BASE} AS b
RUN echo b > /b
COPY --from=a /a /a
"""


def test_two_stages_and_a_second_build_share_an_unpacked_layer(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    import subprocess
    import sys

    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(TWO_STAGES_ONE_BASE)
    store = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))

    def cli(tag: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "trustbuild", "build", "--context", str(ctx),
             "--destination", f"{host}/overlay/shared:{tag}", "--build-arg",
             f"BASE={busybox_base}", "--cache-dir", str(store)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    # both stages mount the base's one layer (the second takes the same unpacked dir, it does
    # not wait for the first stage's lock), and a second build holds it at the same time;
    # the timeout only turns a hang into a failure
    first = cli("1")
    second = cli("2")
    for proc in (first, second):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert err.count("mounting 1 layer(s) from the layer store") == 2, err
    assert len(list((store / "unpacked").iterdir())) == 1
    fs = flatten(fetch_dir(f"{host}/overlay/shared:2", tmp_path / "img"))
    assert {"/a", "/b"} <= set(fs)


LINKED_BASE = """\
ARG BASE
FROM ${BASE}
RUN mkdir /keep /d && echo old > /keep/h && ln /keep/h /keep/h2
"""

# write through one name of a hardlinked file of an earlier layer, then check in the next step
# (the stage rootfs) and in the image that every name still shows the same file
WRITE_THROUGH_LINK = """\
ARG BASE
FROM ${BASE}
RUN ln /keep/h /d/hl && echo more >> /keep/h2
RUN test /keep/h -ef /keep/h2 && test /keep/h -ef /d/hl && grep -q more /keep/h \\
    && test "$(stat -c %h /keep/h)" = 3
"""


# the same from a later stage that mounts its overlay on top of the first stage's
WRITE_THROUGH_LINK_LATER_STAGE = """\
ARG BASE
FROM ${BASE} AS first
RUN echo > /first
FROM first
COPY --from=first /first /copied
""" + WRITE_THROUGH_LINK.split("\n", 2)[2]


@pytest.mark.parametrize("mode,with_store,later", [
    ("auto", True, False), ("walk", True, False), ("auto", True, True), ("auto", False, False)])
def test_a_write_through_a_hardlink_of_a_store_layer_keeps_the_names_linked(
        tmp_path: Path, busybox_base: str, registry: Any, mode: str, with_store: bool,
        later: bool) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    base = f"{host}/overlay/linked-base:1"
    _build(ctx, LINKED_BASE, busybox_base, base)
    kw: dict[str, Any] = {"cache_dir": str(tmp_path / "store")} if with_store else {}
    dest = f"{host}/overlay/linked:{mode}-{with_store}-{later}"
    dockerfile = WRITE_THROUGH_LINK_LATER_STAGE if later else WRITE_THROUGH_LINK
    digest, log = _build(ctx, dockerfile, base, dest, snapshot_mode=mode, reproducible=True,
                         **kw)
    if with_store:
        assert "mounting 2 layer(s) from the layer store" in log
        # the copy-up before the first step is in no layer: the image an extracting build makes
        plain, _ = _build(ctx, dockerfile, base, dest + "-plain", snapshot_mode=mode,
                          reproducible=True)
        assert digest == plain
    if later:
        assert "on top of stage first (overlay)" in log
    fs = flatten(fetch_dir(dest, tmp_path / "img"))
    assert fs["/keep/h"].sha256 == fs["/keep/h2"].sha256 == fs["/d/hl"].sha256
    assert fs["/keep/h"].size == len(b"old\nmore\n")


def test_lower_hardlinks_are_copied_up_once_with_their_metadata(tmp_path: Path) -> None:
    from trustbuild.builder.overlayroot import OverlayRoots

    low1, low2 = tmp_path / "l1", tmp_path / "l2"
    for d in (low1 / "bin", low1 / "sbin", low2 / "bin"):
        d.mkdir(parents=True)
    tool = low1 / "bin" / "tool"
    tool.write_bytes(b"elf")
    os.chown(tool, 12, 34)
    tool.chmod(0o4755)
    os.setxattr(tool, "user.note", b"kept")
    os.utime(tool, ns=(1_000_000_000, 2_000_000_000))
    os.link(tool, low1 / "sbin" / "tool")
    os.link(tool, low1 / "bin" / "shadowed")
    (low2 / "bin" / "shadowed").write_bytes(b"new")  # a higher layer replaces one name
    for d in (low1 / "bin", low1 / "sbin", low2 / "bin"):
        os.utime(d, ns=(3_000_000_000, 4_000_000_000))
    merged = tmp_path / "m"
    merged.mkdir()
    roots = OverlayRoots(tmp_path / "work", None)
    try:
        roots.mount(merged, [low2, low1])
        a, b = os.lstat(merged / "bin" / "tool"), os.lstat(merged / "sbin" / "tool")
        assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)  # the shadowed name is not counted
        assert (a.st_uid, a.st_gid, a.st_mode & 0o7777, a.st_mtime_ns) == (12, 34, 0o4755,
                                                                          2_000_000_000)
        assert os.getxattr(merged / "sbin" / "tool", "user.note") == b"kept"
        assert (merged / "bin" / "shadowed").read_bytes() == b"new"
        assert {os.lstat(merged / d).st_mtime_ns for d in ("bin", "sbin")} == {4_000_000_000}
        with open(merged / "sbin" / "tool", "ab") as f:
            f.write(b"+")
        assert (merged / "bin" / "tool").read_bytes() == b"elf+"
        upper = roots.mounts[merged].upper
        assert sorted(p.name for p in upper.rglob("*") if p.is_file()) == ["tool", "tool"]
    finally:
        roots.close()
    assert tool.read_bytes() == b"elf" and os.lstat(tool).st_nlink == 3  # lower untouched


# three RUN steps on store roots: one on the base's layers, two on a stage that stacks on an
# earlier stage still mounted for COPY --from
STORE_ROOT_STEPS = """\
ARG BASE
FROM ${BASE} AS first
RUN echo one > /one && rm /etc/group
FROM first
COPY --from=first /one /copied
RUN cat /one /copied > /both && mkdir -p /d && echo z > /d/z
RUN rm /d/z && test ! -e /etc/group && cat /both >> /one
"""


def test_run_steps_on_store_roots_take_overlay_snapshots(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(STORE_ROOT_STEPS)
    out = io.StringIO()
    opts = BuildOptions(context=str(ctx), destinations=[f"{host}/overlay/snap:1"], output=out,
                        build_args={"BASE": busybox_base}, cache_dir=str(tmp_path / "store"),
                        reproducible=True)
    with build(opts) as result:
        digest, mode = result.digest, result.record.snapshot_mode
    log = out.getvalue()
    assert "mounting 1 layer(s) from the layer store" in log
    assert "on top of stage first (overlay)" in log
    # the step overlays stack the store's layer dirs, not the stage overlay (that has no
    # inodes index, so auto took the walk snapshotter)
    assert mode == "overlay" and "walk snapshot" not in log
    plain, _ = _build(ctx, STORE_ROOT_STEPS, busybox_base, f"{host}/overlay/snap:plain",
                      reproducible=True)
    assert digest == plain
    fs = flatten(fetch_dir(f"{host}/overlay/snap:1", tmp_path / "img"))
    assert "/etc/group" not in fs and "/d/z" not in fs and {"/both", "/copied"} <= set(fs)
    assert fs["/one"].size == len(b"one\none\none\n")
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(tmp_path) in line or "trustbuild-build-" in line]  # all unmounted


# a file of a store layer copied up by a step (chmod: the stage's upper copy keeps its origin)
# and linked, then written through its new name in a later step
LINK_A_COPIED_UP_FILE = """\
ARG BASE
FROM ${BASE}
RUN echo base > /f
"""
WRITE_THROUGH_COPIED_UP = """\
ARG BASE
FROM ${BASE}
RUN chmod 600 /f && ln /f /g
RUN echo more >> /g
RUN test /f -ef /g && grep -q more /f
"""


def test_a_write_through_a_link_of_a_copied_up_file_keeps_the_names_linked(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    base = f"{host}/overlay/copied-base:1"
    _build(ctx, LINK_A_COPIED_UP_FILE, busybox_base, base)
    dest = f"{host}/overlay/copied:1"
    digest, _ = _build(ctx, WRITE_THROUGH_COPIED_UP, base, dest, reproducible=True,
                       cache_dir=str(tmp_path / "store"))
    plain, _ = _build(ctx, WRITE_THROUGH_COPIED_UP, base, dest + "-plain", reproducible=True)
    assert digest == plain
    fs = flatten(fetch_dir(dest, tmp_path / "img"))
    assert fs["/f"].sha256 == fs["/g"].sha256 and fs["/f"].size == len(b"base\nmore\n")


# a step that binds the earlier stage it stacks on: that stage's overlay stays mounted, so the
# step takes a walk snapshot (an indexed overlay cannot use its upper as a lower meanwhile)
BIND_FROM_THE_STAGE_BELOW = """\
ARG BASE
FROM ${BASE} AS first
RUN echo one > /one
FROM first
RUN --mount=type=bind,from=first,target=/mnt cat /mnt/one > /seen
RUN echo two >> /seen
"""


def test_a_step_binding_the_stage_below_takes_a_walk_snapshot(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dest = f"{host}/overlay/bind-below:1"
    digest, log = _build(ctx, BIND_FROM_THE_STAGE_BELOW, busybox_base, dest, reproducible=True,
                         cache_dir=str(tmp_path / "store"))
    assert log.count("warning: walk snapshot: the stage's filesystem is in use") == 1
    plain, _ = _build(ctx, BIND_FROM_THE_STAGE_BELOW, busybox_base, dest + "-plain",
                      reproducible=True)
    assert digest == plain
    fs = flatten(fetch_dir(dest, tmp_path / "img"))
    assert fs["/seen"].size == len(b"one\ntwo\n") and "/mnt/one" not in fs


# each kind of change a step can make to what earlier steps of the stage wrote (and to the
# base's layers below): the step's overlay upper is renamed into the stage's upper
# (snapshot.merge_upper; /bulk*: enough entries for that), not copied through the stage's
# overlay
MERGE_PARENT = """\
ARG BASE
FROM ${BASE}
RUN mkdir /low && echo l > /low/l && echo f > /lowfile
"""
MERGE_CASES = """\
ARG BASE
FROM ${BASE}
RUN mkdir -p /a/dir /o && echo f > /a/dir/f && echo x > /x && echo w > /w && echo o > /o/old \
 && rm /etc/group && mkdir /bulk1 && for i in $(seq 40); do echo $i > /bulk1/$i; done
RUN rm -rf /o && mkdir /o && echo new > /o/new && rm /x && rm /w && mkdir /w && echo in > /w/in \
 && rm -rf /a/dir && echo file > /a/dir && chmod 700 /a && echo more >> /etc/passwd \
 && echo h > /h1 && ln /h1 /h2 && rm -rf /low && mkdir /low && echo n > /low/n \
 && rm /lowfile && mkdir /lowfile && echo in > /lowfile/in \
 && mkdir /bulk2 && for i in $(seq 40); do echo $i > /bulk2/$i; done
RUN echo g > /etc/group && mkdir /x && echo y > /x/y && echo more >> /h2 \
 && mkdir /bulk3 && for i in $(seq 40); do echo $i > /bulk3/$i; done
RUN test "$(ls /o)" = new && test ! -e /o/old && test -d /w && test "$(cat /w/in)" = in \
 && test -f /a/dir && test "$(cat /a/dir)" = file && test /h1 -ef /h2 \
 && test "$(cat /h1)" = "$(printf 'h\\nmore')" && test "$(ls /x)" = y \
 && test "$(cat /etc/group)" = g && tail -1 /etc/passwd | grep -qx more \
 && test "$(ls /low)" = n && test "$(ls /lowfile)" = in \
 && ls -la /a /o /w /x /low /lowfile > /listing
"""


def test_step_changes_folded_into_the_stage_upper_give_the_same_image(
        tmp_path: Path, busybox_base: str, registry: Any) -> None:
    host = registry.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    parent = f"{host}/overlay/merge-parent:1"
    _build(ctx, MERGE_PARENT, busybox_base, parent)
    dest = f"{host}/overlay/merge:1"
    digest, log = _build(ctx, MERGE_CASES, parent, dest, reproducible=True,
                         cache_dir=str(tmp_path / "store"))
    assert "walk snapshot" not in log
    # the same steps on a stage extracted into a plain directory (applied through no overlay)
    plain, _ = _build(ctx, MERGE_CASES, parent, dest + "-plain", reproducible=True)
    assert digest == plain
    fs = flatten(fetch_dir(dest, tmp_path / "img"))
    assert "/o/old" not in fs and "/x/y" in fs and "/w/in" in fs and fs["/a/dir"].size == 5
    assert "/low/l" not in fs and "/low/n" in fs and "/lowfile/in" in fs
