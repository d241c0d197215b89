"""A stage's RUN steps are forked by one helper server instead of each starting Python.

What a user sees: the same outputs and exit codes as with a helper process per step
(``TRUSTBUILD_HELPER_SERVER=0``), one server process per stage while it builds, none after.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fixtures.procs import processes

from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

STEPS = [("echo one > /one; cat /one", 0), ("test -f /one && echo still", 0),
         ("echo to-stderr >&2; exit 7", 7), ("id -u; hostname", 0)]


def _servers() -> list[int]:
    return processes(lambda argv: b"trustbuild.sandbox.helper" in argv and b"--server-fd" in argv)


def _run_all(rootfs: Path, scratch: Path, layers: Path) -> tuple[list[tuple[int, list[str]]],
                                                                 list[list[int]]]:
    results, servers = [], []
    with StepRunner(rootfs, scratch, output=io.StringIO()) as r:
        for n, (script, _) in enumerate(STEPS):
            res = r.run(RunSpec(["/bin/sh", "-c", script], env={}, hostname="tb-step"),
                        layers / f"{n}.tar")
            results.append((res.exit_code, res.output_tail))
            servers.append(_servers())
    servers.append(_servers())
    return results, servers


def test_one_server_forks_every_step_and_ends_with_the_runner(
        busybox_rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(_servers())
    (tmp_path / "l1").mkdir()
    results, servers = _run_all(busybox_rootfs, tmp_path / "s1", tmp_path / "l1")
    assert [code for code, _ in results] == [want for _, want in STEPS]
    assert results[0][1] == ["one"] and results[1][1] == ["still"]
    assert results[2][1] == ["to-stderr"] and results[3][1] == ["0", "tb-step"]
    during = [sorted(set(s) - before) for s in servers[:-1]]
    assert len(during[0]) == 1 and all(s == during[0] for s in during)  # the same process
    assert set(servers[-1]) - before == set()  # gone with the runner

    monkeypatch.setenv("TRUSTBUILD_HELPER_SERVER", "0")  # a helper process per step
    (tmp_path / "l2").mkdir()
    per_step, servers = _run_all(busybox_rootfs, tmp_path / "s2", tmp_path / "l2")
    assert per_step == results
    assert all(set(s) - before == set() for s in servers)
