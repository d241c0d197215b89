"""RUN steps start like a fresh process: every signal at its default, nothing blocked.

Python ignores SIGPIPE and SIGXFSZ, and a build may be started with SIGQUIT/SIGHUP ignored or
signals blocked; exec keeps all of that, so ``yes | head`` in a step would never end.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# timeout: a regression shows as a failed assertion instead of a hung test.
SCRIPT = ("grep -E '^Sig(Ign|Blk):' /proc/self/status; "
          "timeout -s KILL 120 sh -c 'yes | head -c 1048576 > {out}/f' && wc -c < {out}/f")
WANT = ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000", "1048576"]


_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}


def _kernel_sigaction(sig: int, handler: int) -> None:
    """Set ``sig``'s disposition with the raw syscall (glibc refuses 32 and 33)."""
    act = ctypes.create_string_buffer(64)
    ctypes.c_ulong.from_buffer(act).value = handler
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    nr = _RT_SIGACTION[os.uname().machine]
    assert libc.syscall(ctypes.c_long(nr), ctypes.c_long(sig), act, None, ctypes.c_long(8)) == 0


@contextlib.contextmanager
def _hostile_parent() -> Iterator[None]:
    """What a CI runner or ``nohup`` may hand us: SIGQUIT/SIGHUP ignored, SIGUSR1 blocked, and
    (seen under GNU make in CI) glibc's reserved signal 32 ignored."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGQUIT, signal.SIGHUP)}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    _kernel_sigaction(32, 1)  # SIG_IGN
    try:
        yield
    finally:
        _kernel_sigaction(32, 0)  # SIG_DFL, what a process starts with
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for s, h in old.items():
            signal.signal(s, h)


@pytest.mark.parametrize("profile", ["privileged", "baseline", "restricted"])
def test_chroot_mode_steps_start_with_default_signals(busybox_rootfs: Path, tmp_path: Path,
                                                     profile: str) -> None:
    with _hostile_parent(), StepRunner(busybox_rootfs, tmp_path / "scratch",
                                       output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", SCRIPT.format(out="/tmp")], env={},
                            security_profile=profile), tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail == WANT


@pytest.fixture
def sandbox_dir() -> Iterator[Path]:
    d = Path(f"/tbtest-{uuid.uuid4().hex[:12]}")
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_container_mode_steps_start_with_default_signals(sandbox_dir: Path,
                                                         tmp_path: Path) -> None:
    others = [f"/{n}" for n in os.listdir("/") if f"/{n}" != str(sandbox_dir)]
    with _hostile_parent(), StepRunner(Path("/"), tmp_path / "scratch", mode="container",
                                       force=True, ignore_paths=others,
                                       output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", SCRIPT.format(out=sandbox_dir)],
                            env={"PATH": "/usr/bin:/bin"}), tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail == WANT
