"""Work dirs held by a lock while their build lives; a killed build's left to the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fixtures.workdirs import gone

from trustbuild._internal.workdir import OWNER, PREFIX, make_work_dir, release, sweep_stale

ROOT = Path(__file__).resolve().parents[3]


def _killed_builds_dir(parent: Path) -> Path:
    """A work dir made by another process that was then SIGKILLed (its lock died with it)."""
    code = ("import sys, time\nfrom trustbuild._internal.workdir import make_work_dir\n"
            "w = make_work_dir(sys.argv[1])\n(w / 'rootfs').mkdir()\n"
            "print(w, flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(parent)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None
    work = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return work


def test_a_killed_builds_work_dir_is_removed_by_the_next_build(tmp_path: Path) -> None:
    stale = _killed_builds_dir(tmp_path)
    assert (stale / "rootfs").is_dir()
    mine = make_work_dir(tmp_path)
    try:
        assert gone(stale)
        assert mine.is_dir() and (mine / OWNER).is_file()
    finally:
        release(mine)


def test_a_live_builds_work_dir_is_left_alone(tmp_path: Path) -> None:
    first = make_work_dir(tmp_path)
    second = make_work_dir(tmp_path)  # sweeps, and must not take the first
    try:
        assert sweep_stale(tmp_path) == []
        assert first.is_dir() and second.is_dir()
    finally:
        release(second)
    release(first)  # first now has no owner: the next sweep takes it (and second)
    assert sorted(sweep_stale(tmp_path)) == sorted([first, second])
    assert gone(first) and gone(second)


def test_dirs_without_an_owner_or_not_ours_are_left_alone(tmp_path: Path) -> None:
    older = tmp_path / f"{PREFIX}older"  # an older trustbuild's, or one not locked yet
    older.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = _killed_builds_dir(elsewhere)
    link = tmp_path / f"{PREFIX}link"
    link.symlink_to(target)  # a symlink to a stale dir: never followed
    other = tmp_path / "not-a-work-dir"
    other.mkdir()
    (other / OWNER).write_text("")
    assert sweep_stale(tmp_path) == []
    assert older.is_dir() and link.is_symlink() and target.is_dir() and other.is_dir()
