"""Work dirs deleted off the critical path, except where pid 1's exit would kill the ``rm``."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.workdirs import gone

from trustbuild._internal.removal import TRASH_PREFIX, init_is_near, remove_later
from trustbuild._internal.workdir import PREFIX, make_work_dir, remove_work_dir, sweep_stale

ROOT = Path(__file__).resolve().parents[3]


def _fds_into(path: Path) -> list[str]:
    """This process's open files under ``path`` (or its renamed-aside twin)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if path.name in target:
            out.append(target)
    return out


def _fill(work: Path) -> None:
    (work / "rootfs/etc").mkdir(parents=True)
    (work / "rootfs/etc/hosts").write_text("x\n")


@pytest.mark.parametrize("later", [False, True])
def test_remove_work_dir_deletes_it_and_drops_its_lock(tmp_path: Path, later: bool) -> None:
    work = make_work_dir(tmp_path)
    _fill(work)
    assert _fds_into(work)  # the owner lock
    remove_work_dir(work, later=later)
    assert not work.exists()  # now, or renamed aside at once
    assert _fds_into(work) == []
    assert gone(tmp_path / f"{TRASH_PREFIX}{work.name}")
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_restarts_a_removal_that_died(tmp_path: Path) -> None:
    dead = tmp_path / f"{TRASH_PREFIX}{PREFIX}dead"  # its rm was killed an hour ago
    _fill(dead)
    two_hours_ago = time.time() - 7200
    os.utime(dead, (two_hours_ago, two_hours_ago))
    running = tmp_path / f"{TRASH_PREFIX}{PREFIX}running"  # its rm may still be at work
    _fill(running)
    other = tmp_path / f"{TRASH_PREFIX}something-else"
    other.mkdir()
    os.utime(other, (two_hours_ago, two_hours_ago))
    assert sweep_stale(tmp_path) == [dead]
    assert gone(dead)
    assert running.is_dir() and other.is_dir()


_IN_NAMESPACE = (
    "import sys; from pathlib import Path\n"
    "from trustbuild._internal.removal import init_is_near, remove_later\n"
    "p = Path(sys.argv[1]); p.mkdir(parents=True); (p / 'f').write_text('x')\n"
    "near = init_is_near(); remove_later(p)\n"
    "left = sorted(q.name for q in p.parent.iterdir())\n"
    "print(near, left)\n")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a PID namespace")
@pytest.mark.parametrize(("shells", "near"), [(0, True), (1, True), (2, True), (3, False)])
def test_remove_later_deletes_at_once_when_pid_1_is_near(tmp_path: Path, shells: int,
                                                          near: bool) -> None:
    """pid 1 (a container's entrypoint) is the process, its parent or its grandparent: its exit
    would kill a detached rm, so the dir is gone before remove_later returns."""
    path = tmp_path / "d" / "work"
    probe = tmp_path / "probe.py"
    probe.write_text(_IN_NAMESPACE)
    slow = tmp_path / "bin"  # an rm that starts late, so a detached one is seen at work
    slow.mkdir()
    (slow / "rm").write_text(f"#!/bin/sh\nsleep 1\nexec {shutil.which('rm')} \"$@\"\n")
    (slow / "rm").chmod(0o755)
    argv = [sys.executable, str(probe), str(path)]
    for _ in range(shells):  # `; exit $?` keeps sh from exec'ing the command in its place
        argv = ["sh", "-c", shlex.join(argv) + "; exit $?"]
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *argv],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT),
                                  PATH=f"{slow}:{os.environ['PATH']}"), check=False)
    assert out.returncode == 0, out.stderr
    if near:
        assert out.stdout.strip() == "True []"
    else:  # renamed aside for a detached rm (which dies with the namespace: that is the point)
        assert out.stdout.strip() == f"False ['{TRASH_PREFIX}work']"


def test_init_is_near_answers_for_this_process() -> None:
    ancestors = [os.getpid()]
    for _ in range(2):
        with open(f"/proc/{ancestors[-1]}/stat") as f:
            ancestors.append(int(f.read().rsplit(")", 1)[1].split()[1]))
    assert init_is_near() == (1 in ancestors)


def test_remove_later_of_a_missing_dir_is_quiet(tmp_path: Path) -> None:
    remove_later(tmp_path / "never-made")
    assert list(tmp_path.iterdir()) == []
