"""RUN for a foreign architecture: qemu-user-static through the kernel's binfmt_misc.

The handler must be registered with the F (fix-binary) flag, so the kernel opens the emulator
when the handler is registered and a RUN inside the sandbox's chroot (where no qemu exists)
still works. Debian's ``qemu-user-static`` + ``binfmt-support`` register exactly that. Example::

    ensure_emulation(Platform.parse("linux/arm64"))   # no-op on an arm64 machine
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild.builder.commands import RunCmd
from trustbuild.builder.dockerfile import Stage
from trustbuild.errors import SandboxError
from trustbuild.oci.descriptor import Platform

if TYPE_CHECKING:
    from trustbuild.builder.executor import Executor

__all__ = ["ensure_emulation", "needs_emulation", "check_foreign_runs", "EmulationError"]

BINFMT = Path("/proc/sys/fs/binfmt_misc")

# OCI architecture -> qemu's name
_QEMU = {"arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64", "amd64": "x86_64", "386": "i386", "mips64le": "mips64el"}
# architectures a machine runs without emulation
_NATIVE = {"amd64": {"amd64", "386"}, "arm64": {"arm64"}, "ppc64le": {"ppc64le"},
           "s390x": {"s390x"}, "riscv64": {"riscv64"}, "arm": {"arm"}, "386": {"386"}}


class EmulationError(SandboxError):
    """No way to run a foreign architecture's programs."""


def needs_emulation(platform: Platform, host: Platform | None = None) -> bool:
    """True when ``platform``'s programs cannot run natively on ``host`` (default: here)."""
    host = host or Platform.host()
    return platform.architecture not in _NATIVE.get(host.architecture, {host.architecture})


def _handler(qarch: str) -> Path | None:
    """The enabled binfmt_misc entry for ``qarch`` with the F flag, if any."""
    for name in (f"qemu-{qarch}", f"{qarch}"):
        entry = BINFMT / name
        try:
            text = entry.read_text()
        except OSError:
            continue
        flags = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                      if ln.startswith("flags:")), "")
        if text.startswith("enabled") and "F" in flags:
            return entry
    return None


def _register(qarch: str) -> None:
    """As root: mount binfmt_misc if needed and enable Debian's qemu handler for ``qarch``."""
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                       capture_output=True, check=False, timeout=30)
    if shutil.which("update-binfmts") and Path(f"/usr/share/binfmts/qemu-{qarch}").exists():
        subprocess.run(["update-binfmts", "--enable", f"qemu-{qarch}"],
                       capture_output=True, check=False, timeout=60)


def ensure_emulation(platform: Platform) -> None:
    """Make sure RUN can execute ``platform``'s programs; EmulationError (one line) if not."""
    if not needs_emulation(platform):
        return
    qarch = _QEMU.get(platform.architecture, platform.architecture)
    if _handler(qarch) is not None:
        return
    if _machine_root():
        _register(qarch)
        if _handler(qarch) is not None:
            return
        raise EmulationError(
            f"RUN for {platform} needs qemu-user emulation, but no binfmt_misc handler for "
            f"{qarch} with the F flag could be registered: install qemu-user-static and "
            "binfmt-support (apt-get install qemu-user-static binfmt-support)")
    raise EmulationError(
        f"RUN for {platform} needs qemu-user emulation and no binfmt_misc handler for {qarch} "
        "(with the F flag) is registered; a rootless build cannot register binfmt_misc "
        "handlers: ask root to run `apt-get install qemu-user-static binfmt-support` (or "
        "build as root, which registers it)")


def _machine_root() -> bool:
    """Root that may register binfmt_misc handlers: not a non-root user, nor the uid 0 a
    rootless build has inside the user namespace it re-executed itself in."""
    from trustbuild.sandbox import userns

    return os.geteuid() == 0 and not userns.inside()


def check_foreign_runs(executor: Executor, stages: Sequence[Stage]) -> None:
    """Before anything runs: every planned stage with a RUN whose
    platform is foreign gets its emulator checked (``FROM --platform=$BUILDPLATFORM`` stages
    run natively)."""
    seen: set[str] = set()
    for stage in stages:
        if not any(isinstance(c, RunCmd) for c in stage.commands):
            continue
        plat = executor.stage_platform(stage)
        if str(plat) not in seen:
            seen.add(str(plat))
            ensure_emulation(plat)
