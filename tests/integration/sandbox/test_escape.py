"""Escape attempts from RUN steps: files, syscalls, processes, mounts left behind."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from trustbuild._internal.users import resolve_user
from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
HERE = Path(__file__).parent


def sh(cmd: str, **kw: object) -> RunSpec:
    return RunSpec(["/bin/sh", "-c", cmd], env=kw.pop("env", {}), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def escape_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the static escape probe")
    out = tmp_path_factory.mktemp("escape") / "escape"
    res = subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(HERE / "escape.c")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {res.stderr.strip()[:200]}")
    return out


@pytest.fixture
def rootfs_with_probe(busybox_rootfs: Path, escape_binary: Path) -> Path:
    shutil.copy2(escape_binary, busybox_rootfs / "bin" / "escape")
    return busybox_rootfs


def run(rootfs: Path, tmp_path: Path, spec: RunSpec, *, snapshot_mode: str = "auto"):  # type: ignore[no-untyped-def]
    with StepRunner(rootfs, tmp_path / "scratch", snapshot_mode=snapshot_mode,
                    output=io.StringIO()) as r:
        return r.run(spec, tmp_path / "layer.tar")


PROBES = ["mount", "unshare", "unshare-user", "clone-newuser", "clone-newuser-hi", "keyctl",
          "bpf", "kexec_load", "init_module", "setns", "pivot_root"]


def test_dangerous_syscalls_fail_with_eperm_under_baseline(rootfs_with_probe: Path,
                                                           tmp_path: Path) -> None:
    res = run(rootfs_with_probe, tmp_path, RunSpec(["/bin/escape", *PROBES], env={}))
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail == [f"{p} 1" for p in PROBES]  # 1 == EPERM


def test_they_also_fail_for_a_non_root_user_and_under_restricted(rootfs_with_probe: Path,
                                                                 tmp_path: Path) -> None:
    res = run(rootfs_with_probe, tmp_path, RunSpec(["/bin/escape", *PROBES], env={},
                                                   user=resolve_user(rootfs_with_probe, "app"),
                                                   security_profile="restricted"))
    assert res.output_tail == [f"{p} 1" for p in PROBES]


@pytest.mark.parametrize("profile", ["baseline", "restricted"])
def test_high_bits_in_the_socket_family_do_not_open_af_vsock(rootfs_with_probe: Path,
                                                             tmp_path: Path, profile: str) -> None:
    """The kernel reads the family (an int) from the low 32 bits: (1 << 32) | 40 is AF_VSOCK,
    so the filter must deny it like 40 itself (EAFNOSUPPORT, 97), while AF_INET works."""
    res = run(rootfs_with_probe, tmp_path, RunSpec(
        ["/bin/escape", "socket-vsock", "socket-vsock-hi", "socket-inet"], env={},
        security_profile=profile))
    assert res.output_tail == ["socket-vsock 97", "socket-vsock-hi 97", "socket-inet 0"]


def test_without_seccomp_capabilities_still_stop_mount(rootfs_with_probe: Path,
                                                       tmp_path: Path) -> None:
    res = run(rootfs_with_probe, tmp_path, RunSpec(["/bin/escape", "mount", "unshare"],
                                                   env={}, seccomp_profile="unconfined"))
    assert res.output_tail == ["mount 1", "unshare 1"]


def test_chroot_escape_does_not_reach_the_host(rootfs_with_probe: Path, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("secret\n")
    res = run(rootfs_with_probe, tmp_path, RunSpec(["/bin/escape", "chroot", str(secret)],
                                                   env={}))
    assert res.output_tail == ["open 2"]  # ENOENT: the host file is not there


@pytest.mark.parametrize("mode", ["overlay", "walk"])
def test_host_files_are_invisible_and_unwritable(busybox_rootfs: Path, tmp_path: Path,
                                                 mode: str) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("secret\n")
    res = run(busybox_rootfs, tmp_path, sh(
        f"cat {secret} 2>/dev/null && echo LEAK; cat /proc/1/root{secret} 2>/dev/null && "
        f"echo LEAK; ls /; mkdir -p {tmp_path} && echo pwned > {secret} && echo wrote"),
        snapshot_mode=mode)
    assert "LEAK" not in res.output_tail
    assert "work" not in res.output_tail and "usr" not in res.output_tail
    assert res.output_tail[-1] == "wrote"
    assert secret.read_text() == "secret\n"
    assert (busybox_rootfs / str(secret).lstrip("/")).read_text() == "pwned\n"


def test_host_processes_cannot_be_seen_or_signalled(busybox_rootfs: Path,
                                                    tmp_path: Path) -> None:
    host = subprocess.Popen(["sleep", "120"])
    try:
        res = run(busybox_rootfs, tmp_path, sh(
            f"kill -9 {host.pid} 2>/dev/null && echo KILLED; echo pid=$$; "
            "ls /proc | grep -c '^[0-9]'"))
        assert "KILLED" not in res.output_tail
        assert res.output_tail[0] == "pid=1"  # the step is PID 1 of its own namespace
        assert int(res.output_tail[1]) <= 3  # sh, ls, grep
        assert host.poll() is None
    finally:
        host.kill()
        host.wait()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", ["sleep 300 &", "setsid sh -c 'sleep 300 >/dev/null 2>&1' &"])
def test_background_processes_are_killed_when_the_step_ends(busybox_rootfs: Path,
                                                            tmp_path: Path, how: str) -> None:
    marker = f"TB_MARKER_{uuid.uuid4().hex}"
    res = run(busybox_rootfs, tmp_path, sh(f"export {marker}=1; {how} echo started"))
    assert res.exit_code == 0 and "started" in res.output_tail
    assert _processes_with(marker) == []


def test_nothing_is_left_mounted_or_on_disk_after_close(busybox_rootfs: Path,
                                                        tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    r = StepRunner(busybox_rootfs, scratch, output=io.StringIO())
    for i in range(2):
        res = r.run(sh(f"echo {i} > /f{i}; sleep 300 & true"), tmp_path / f"l{i}.tar")
        assert res.exit_code == 0
    failed = r.run(sh("exit 7"), tmp_path / "l.tar")
    assert failed.exit_code == 7
    r.close()
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
    assert os.listdir(scratch) == []


def test_walk_mode_cleanup_does_not_follow_a_symlinked_etc_to_the_host(
        busybox_rootfs: Path, tmp_path: Path) -> None:
    # /etc has no resolv.conf, so the sandbox creates a mount point there and removes it after
    # the step; the step swaps /etc for a symlink to a host directory holding an empty
    # resolv.conf, which the clean-up must not delete.
    host = tmp_path / "host-etc"
    host.mkdir()
    (host / "resolv.conf").touch()
    (host / "hosts").touch()
    res = run(busybox_rootfs, tmp_path, sh(f"mv /etc /etc.old && ln -s {host} /etc"),
              snapshot_mode="walk")
    assert res.exit_code == 0, res.output_tail
    assert (host / "resolv.conf").exists() and (host / "hosts").exists()


def test_device_nodes_a_step_creates_cannot_be_opened(busybox_rootfs: Path,
                                                      tmp_path: Path) -> None:
    """There is no device cgroup: with CAP_MKNOD (baseline) a step could make a node for the
    host's disk. The root and /dev are mounted nodev, so no node it makes opens, not even a
    copy of /dev/null (c 1 3); the devices bound into /dev still work."""
    dev = os.stat("/").st_dev  # the host's root filesystem device
    major, minor = os.major(dev), os.minor(dev)
    res = run(busybox_rootfs, tmp_path, sh(
        f"mknod /tmp/disk b {major} {minor} && echo made; "
        "head -c 512 /tmp/disk >/dev/null 2>&1 && echo READ-ROOTFS; "
        f"mknod /dev/disk b {major} {minor} 2>/dev/null; "
        "head -c 512 /dev/disk >/dev/null 2>&1 && echo READ-DEV; "
        "mknod /tmp/null c 1 3 && (echo x > /tmp/null) 2>/dev/null && echo READ-NULL; "
        "mknod /dev/null2 c 1 3 && (echo x > /dev/null2) 2>/dev/null && echo READ-NULL2; "
        "head -c 1 /dev/urandom >/dev/null && echo x > /dev/null && echo dev-ok"))
    assert "made" in res.output_tail and "dev-ok" in res.output_tail
    assert not [line for line in res.output_tail if line.startswith("READ")]


def test_only_stdio_is_inherited(busybox_rootfs: Path, tmp_path: Path) -> None:
    res = run(busybox_rootfs, tmp_path, RunSpec(["/bin/ls", "/proc/self/fd"], env={}))
    assert res.output_tail == ["0", "1", "2", "3"]  # 3: ls's own directory handle


def test_the_step_has_its_own_session_and_no_controlling_terminal(busybox_rootfs: Path,
                                                                   tmp_path: Path) -> None:
    # /proc/self/stat fields 6 and 7: session id and controlling tty (0 = none).
    res = run(busybox_rootfs, tmp_path, sh(
        "cut -d' ' -f6,7 /proc/1/stat; (: > /dev/tty) 2>/dev/null && echo TTY-OPEN"))
    assert res.output_tail == ["1 0"]


@pytest.mark.parametrize("target", [
    "/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_memory",
    "/sys/kernel/uevent_helper", "/proc/sysrq-trigger",
])
def test_kernel_knobs_used_by_classic_escapes_are_read_only(busybox_rootfs: Path,
                                                            tmp_path: Path, target: str) -> None:
    # The payload is the knob's current value (or an invalid sysrq key), so a regression
    # shows as "WROTE" without changing the host.
    try:
        payload = Path(target).read_text().strip() or "x"
    except OSError:
        payload = "|"
    res = run(busybox_rootfs, tmp_path, sh(
        f"(echo '{payload}' > {target}) 2>/dev/null && echo WROTE; echo done"))
    assert res.output_tail == ["done"]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["baseline", "restricted"])
def test_af_vsock_with_high_bits_is_denied_in_a_build(escape_binary: Path, tmp_path: Path,
                                                      busybox_base: str, profile: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The same probe in a real build (busybox base image, COPY, RUN) under each profile."""
    import tarfile

    from trustbuild.cli.main import main

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy2(escape_binary, ctx / "escape")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\nCOPY escape /bin/escape\n"
        "RUN /bin/escape socket-vsock-hi socket-vsock socket-inet > /probe\n")
    tar = tmp_path / "image.tar"
    rc = main(["build", "--context", str(ctx), "--no-push", "--security-profile", profile,
               "--tar-path", str(tar)])
    assert rc == 0, capsys.readouterr().err[-3000:]
    with tarfile.open(tar) as outer:
        layers = [m for m in outer.getmembers() if m.name.endswith((".tar", ".tar.gz"))
                  or m.name.startswith("blobs/")]
        probe = None
        for m in layers:
            f = outer.extractfile(m)
            if f is None:
                continue
            try:
                with tarfile.open(fileobj=f, mode="r:*") as layer:
                    if "probe" in layer.getnames():
                        probe = layer.extractfile("probe").read()  # type: ignore[union-attr]
            except tarfile.TarError:
                continue
    assert probe == b"socket-vsock-hi 97\nsocket-vsock 97\nsocket-inet 0\n"
