"""Cancelling a build: SIGTERM (CI systems, Kubernetes) cleans up exactly like Ctrl-C.

One line on stderr, exit 128+N, no temp dir left under $TMPDIR, no mount and no sandbox
process (here: the step's ``sleep``) left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.procs import parent_of, processes_with, stat_fields

pytestmark = [pytest.mark.slow, pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

ROOT = Path(__file__).resolve().parents[3]


def _state(pid: int) -> str:
    fields = stat_fields(pid)
    return fields[0] if fields else ""


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _build_until_step_starts(ctx: Path, env: dict[str, str], base: str,
                             *extra: str) -> subprocess.Popen[bytes]:
    """Start ``trustbuild build`` of ``ctx`` and return once its step printed ``started``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustbuild", "build", "--context", str(ctx), "--no-push",
         *extra, "--insecure-registry", base.split("/")[0]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ctx.parent)
    assert proc.stderr is not None
    seen = []
    for raw in proc.stderr:
        seen.append(raw.decode(errors="replace").rstrip("\n"))
        if seen[-1].endswith("| started"):
            return proc
    proc.wait()
    pytest.fail("the build ended before the step started:\n" + "\n".join(seen[-20:]))


@pytest.mark.parametrize(("sig", "code", "word"), [
    (signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
@pytest.mark.parametrize("mode", ["overlay", "walk"])
def test_a_cancelled_build_leaves_nothing_behind(sig: int, code: int, word: str, mode: str,
                                                 tmp_path: Path, busybox_base: str) -> None:
    seconds = str(3000 + os.getpid() % 1000)  # a sleep no other test runs
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\nRUN dd if=/dev/zero of=/big bs=1M count=20\n"
        f"RUN sleep {seconds} & echo started; wait\n")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    before = _mounts()
    proc = _build_until_step_starts(ctx, env, busybox_base, "--snapshot-mode", mode)
    assert proc.stderr is not None
    try:
        assert processes_with(seconds)  # the step is running
        proc.send_signal(sig)
        rest = proc.stderr.read().decode(errors="replace").splitlines()
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == code, rest
    assert rest == [f"trustbuild: {word}"]
    assert list(tmpdir.iterdir()) == []
    assert _mounts() <= before
    assert processes_with(seconds) == []


def test_a_killed_build_takes_its_step_and_mounts_with_it(tmp_path: Path,
                                                           busybox_base: str) -> None:
    """SIGKILL (an OOM kill, a CI runner's hard timeout) cannot be caught: the step's processes
    die with the builder (the helper server and each step's helper have PDEATHSIG) and its mounts
    with its private mount namespace. Its work dir under $TMPDIR stays, until the next build
    there removes it (docs/build.md, "Work dir")."""
    import time

    seconds = str(4000 + os.getpid() % 1000)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\nRUN echo one > /one\nRUN sleep {seconds} & echo started; wait\n")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    before = _mounts()
    proc = _build_until_step_starts(ctx, env, busybox_base)
    try:
        assert processes_with(seconds)
        helpers = [pid for pid in processes_with("trustbuild.sandbox.helper")
                   if parent_of(pid) == proc.pid]
        assert helpers  # the stage's helper server
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    def left() -> list[int]:  # running, not exited and waiting for its new parent to reap it
        return [pid for pid in [*processes_with(seconds), *helpers] if _state(pid) not in "Z"]

    deadline = time.monotonic() + 10
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []
    assert _mounts() <= before
    left = list(tmpdir.iterdir())
    assert [p.name.split("-")[0] for p in left] == ["trustbuild"]  # the work dir stays
    # the next build in the same place removes it (its owner lock died with the builder)
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN echo two > /two\n")
    done = subprocess.run(
        [sys.executable, "-m", "trustbuild", "build", "--context", str(ctx), "--no-push",
         "--insecure-registry", busybox_base.split("/")[0]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20  # both dirs go to a detached rm
    while list(tmpdir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmpdir.iterdir()) == []
