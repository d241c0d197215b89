"""Every mount a RUN step sees is nosuid and nodev, under every profile and snapshot mode.

There is no device cgroup: with CAP_MKNOD (baseline) a step could make a node for the host's
disk on any mount that allows devices and open it. Only the device binds in /dev (null, zero,
full, random, urandom, tty) and devpts (the ptys) need dev; they are still nosuid.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

DEVICES = {f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom", "tty")}
NEED_DEV = DEVICES | {"/dev/pts"}


def mount_flags(mountinfo: str) -> dict[str, set[str]]:
    """Mount point -> per-mount options (the last mount wins for a stacked point)."""
    out = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        out[fields[4].replace("\\040", " ")] = set(fields[5].split(","))
    return out


def unsafe_mounts(mountinfo: str) -> list[str]:
    """Mounts lacking nosuid, or nodev where a device is not needed."""
    bad = []
    for point, opts in mount_flags(mountinfo).items():
        need = {"nosuid"} if point in NEED_DEV else {"nosuid", "nodev"}
        if not need <= opts:
            bad.append(f"{point} {','.join(sorted(opts))}")
    return bad


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Bind sources, each directory with a tmpfs (dev, suid) mounted inside it."""
    src: dict[str, Path] = {}
    for name, opts in (("ro", "noatime"), ("rw", "noexec"), ("cache", "strictatime")):
        d = tmp_path / "src" / name
        (d / "sub").mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d / "sub")], check=True)
        src[name] = d
    (tmp_path / "src" / "file").write_text("f\n")
    src["file"] = tmp_path / "src" / "file"
    out = tmp_path / "out"
    out.mkdir()
    src["out"] = out
    try:
        yield src
    finally:
        for name in ("ro", "rw", "cache"):
            subprocess.run(["umount", "-l", str(src[name] / "sub")], check=False)


@pytest.mark.parametrize("snapshot_mode", ["overlay", "walk"])
@pytest.mark.parametrize("profile", ["privileged", "baseline", "restricted"])
def test_every_mount_is_nosuid_and_nodev(busybox_rootfs: Path, tmp_path: Path,
                                         sources: dict[str, Path], profile: str,
                                         snapshot_mode: str) -> None:
    mounts = [(str(sources["ro"]), "/ro", "ro"), (str(sources["rw"]), "/rw", "rw"),
              (str(sources["cache"]), "/var/cache/x", "rw"), (str(sources["file"]), "/f", "ro"),
              ("size=1m", "/t", "tmpfs"), (str(sources["out"]), "/out", "rw")]
    with StepRunner(busybox_rootfs, tmp_path / "scratch", snapshot_mode=snapshot_mode,
                    output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", "cat /proc/self/mountinfo > /out/mountinfo"],
                            env={}, security_profile=profile, extra_mounts=mounts),
                    tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    info = (sources["out"] / "mountinfo").read_text()
    points = set(mount_flags(info))
    # The submounts of the binds came along (MS_REC) and are checked too.
    assert {"/", "/proc", "/dev", "/sys", "/ro/sub", "/rw/sub", "/var/cache/x/sub",
            "/f", "/t", "/dev/null", "/dev/pts"} <= points, points
    assert unsafe_mounts(info) == []
    flags = mount_flags(info)
    assert "ro" in flags["/ro/sub"] and "ro" not in flags["/rw/sub"]
    # Each submount keeps its own options (strictatime shows as no atime option).
    assert "noatime" in flags["/ro/sub"] and "noexec" in flags["/rw/sub"]
    assert not {"noatime", "relatime"} & flags["/var/cache/x/sub"]


def test_masked_proc_files_read_empty(busybox_rootfs: Path, tmp_path: Path) -> None:
    masked = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    if not masked:
        pytest.skip("this kernel has none of the masked /proc files")
    script = "".join(f"wc -c < {p}; " for p in masked) + "ls -A /dev"
    with StepRunner(busybox_rootfs, tmp_path / "scratch", output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c", script], env={}), tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail[:len(masked)] == ["0"] * len(masked)
    assert ".masked" not in res.output_tail[len(masked):]


@pytest.mark.parametrize("profile", ["privileged", "baseline"])
def test_device_nodes_made_on_a_cache_mount_cannot_be_opened(
        busybox_rootfs: Path, tmp_path: Path, sources: dict[str, Path], profile: str) -> None:
    """A block node for the host's disk, and a char node for /dev/null (c 1 3, which opens
    on any machine unless the mount is nodev): both fail with EACCES."""
    dev = os.stat("/").st_dev  # the host's root filesystem device
    with StepRunner(busybox_rootfs, tmp_path / "scratch", output=io.StringIO()) as r:
        res = r.run(RunSpec(["/bin/sh", "-c",
                             f"mknod /c/disk b {os.major(dev)} {os.minor(dev)} && echo made; "
                             "head -c 512 /c/disk > /dev/null && echo READ-DISK; "
                             "mknod /c/null c 1 3 && echo made; "
                             "echo x > /c/null && echo WROTE-NULL; true"],
                            env={}, security_profile=profile,
                            extra_mounts=[(str(sources["cache"]), "/c", "rw")]),
                    tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail == ["made", "head: /c/disk: Permission denied", "made",
                               "/bin/sh: can't create /c/null: Permission denied"]
