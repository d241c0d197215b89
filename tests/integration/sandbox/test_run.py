"""RUN steps in the sandbox: output, exit codes, users, env, workdir, profiles, bad input."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from trustbuild._internal.users import resolve_user
from trustbuild.errors import SandboxError
from trustbuild.sandbox import RunSpec, StepRunner

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def sh(cmd: str, **kw: object) -> RunSpec:
    return RunSpec(["/bin/sh", "-c", cmd], env=kw.pop("env", {}), **kw)  # type: ignore[arg-type]


@pytest.fixture
def runner(busybox_rootfs: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    out = io.StringIO()
    r = StepRunner(busybox_rootfs, tmp_path / "scratch", output=out)
    r.out = out  # type: ignore[attr-defined]
    yield r
    r.close()


def names(layer_path: Path) -> list[str]:
    with tarfile.open(layer_path) as t:
        return t.getnames()


def test_output_is_streamed_with_the_label_and_exit_code_is_propagated(
        runner: StepRunner, tmp_path: Path) -> None:
    res = runner.run(sh("echo one; echo two >&2; exit 3", label="[2/5] RUN x"), tmp_path / "l")
    assert res.exit_code == 3
    assert res.output_tail == ["one", "two"]
    assert res.layer is None
    text = runner.out.getvalue()  # type: ignore[attr-defined]
    assert "[2/5] RUN x | one\n" in text and "[2/5] RUN x | two\n" in text


def test_output_tail_keeps_the_last_twenty_lines(runner: StepRunner, tmp_path: Path) -> None:
    res = runner.run(sh("seq 1 100; false"), tmp_path / "l")
    assert res.exit_code == 1
    assert res.output_tail == [str(i) for i in range(81, 101)]


def test_success_makes_a_layer_and_leaves_the_change_in_the_rootfs(
        runner: StepRunner, busybox_rootfs: Path, tmp_path: Path) -> None:
    res = runner.run(sh("echo hi > /hello"), tmp_path / "l.tar.gz")
    assert res.exit_code == 0 and res.layer is not None
    assert names(res.layer.path) == ["hello"]
    assert (busybox_rootfs / "hello").read_text() == "hi\n"
    assert res.profile is not None and res.profile.name == "baseline"


def test_a_step_that_changes_nothing_still_makes_an_empty_layer(
        runner: StepRunner, tmp_path: Path) -> None:
    res = runner.run(sh("true"), tmp_path / "l.tar.gz")
    assert res.layer is not None and names(res.layer.path) == []


@pytest.mark.parametrize(("user", "expect"), [
    ("", "0 0 0"),
    ("app", "1000 1000 1000 2000"),
    ("app:extra", "1000 2000 2000"),
    ("4242", "4242 0 0"),
])
def test_user_switching(runner: StepRunner, busybox_rootfs: Path, tmp_path: Path, user: str,
                       expect: str) -> None:
    ids = resolve_user(busybox_rootfs, user)
    res = runner.run(sh("echo $(id -u) $(id -g) $(id -G)", user=ids), tmp_path / "l")
    assert res.output_tail == [expect]


def test_non_root_user_cannot_write_root_files(runner: StepRunner, busybox_rootfs: Path,
                                               tmp_path: Path) -> None:
    app = resolve_user(busybox_rootfs, "app")
    res = runner.run(sh("echo x > /etc/passwd", user=app), tmp_path / "l")
    assert res.exit_code != 0
    assert any("Permission denied" in line for line in res.output_tail)


def test_env_home_path_and_workdir(runner: StepRunner, busybox_rootfs: Path,
                                   tmp_path: Path) -> None:
    res = runner.run(sh('echo "$FOO|$HOME|$PATH|$(pwd)"; touch here', env={"FOO": "bar"},
                        workdir="/srv/app"), tmp_path / "l")
    assert res.exit_code == 0
    assert res.output_tail[0] == (
        "bar|/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/srv/app")
    assert (busybox_rootfs / "srv/app/here").is_file()
    app = resolve_user(busybox_rootfs, "app")
    res = runner.run(sh('echo "$HOME"', user=app, env={"PATH": "/bin"}), tmp_path / "l")
    assert res.output_tail == ["/home/app"]


@pytest.mark.parametrize(("spec", "msg"), [
    (RunSpec(["/bin/bash", "-c", "true"], env={}), "'/bin/bash' not found in the image"),
    (RunSpec(["nosuchtool"], env={}), "'nosuchtool' not found in the image"),
    (RunSpec(["/bin/sh", "-c", "true"], env={}, security_profile="wide-open"),
     "unknown security profile"),
    (RunSpec(["/bin/sh", "-c", "true"], env={}, seccomp_profile="/nonexistent.json"),
     "no such file"),
])
def test_bad_input_fails_before_anything_runs(runner: StepRunner, busybox_rootfs: Path,
                                              tmp_path: Path, spec: RunSpec, msg: str) -> None:
    before = sorted(os.listdir(busybox_rootfs))
    with pytest.raises(SandboxError, match=msg):
        runner.run(spec, tmp_path / "l")
    assert runner.out.getvalue() == ""  # type: ignore[attr-defined]
    assert sorted(os.listdir(busybox_rootfs)) == before
    assert not (tmp_path / "l").exists()


def test_invalid_seccomp_profile_is_refused(runner: StepRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mount"], "action": "DENY"}]}))
    with pytest.raises(SandboxError, match=r"syscalls\[0\]\.action"):
        runner.run(sh("true", seccomp_profile=str(bad)), tmp_path / "l")


def _status(runner: StepRunner, tmp_path: Path, **kw: object) -> dict[str, str]:
    res = runner.run(sh("cat /proc/self/status; ls /sys/class/net", **kw), tmp_path / "l")
    assert res.exit_code == 0, res.output_tail
    runner_lines = runner.out.getvalue().splitlines()  # type: ignore[attr-defined]
    out = {}
    for line in runner_lines:
        text = line.split(" | ", 1)[1]
        if ":" in text:
            k, _, v = text.partition(":")
            out[k] = v.strip()
        else:
            out.setdefault("net", "")
            out["net"] += text + " "
    return out


def test_baseline_status(runner: StepRunner, tmp_path: Path) -> None:
    st = _status(runner, tmp_path)
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    assert st["CapBnd"] == "00000000a80405fb"  # Docker's 14 default capabilities but NET_RAW


def test_restricted_status_and_no_network(runner: StepRunner, tmp_path: Path) -> None:
    st = _status(runner, tmp_path, security_profile="restricted")
    # CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID SETFCAP
    assert st["CapBnd"] == "00000000800000db"
    assert st["net"].split() == ["lo"]


def test_privileged_status(runner: StepRunner, tmp_path: Path) -> None:
    st = _status(runner, tmp_path, security_profile="privileged")
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "0"


def test_unconfined_seccomp_keeps_caps_and_nnp(runner: StepRunner, tmp_path: Path) -> None:
    st = _status(runner, tmp_path, seccomp_profile="unconfined")
    assert st["Seccomp"] == "0" and st["NoNewPrivs"] == "1"


def test_resolv_conf_and_hosts_are_bound_read_only_and_never_captured(
        busybox_rootfs: Path, tmp_path: Path) -> None:
    for mode in ("overlay", "walk"):
        with StepRunner(busybox_rootfs, tmp_path / f"s-{mode}", snapshot_mode=mode,
                        output=io.StringIO()) as r:
            res = r.run(sh("test -s /etc/resolv.conf && test -f /etc/hosts && "
                           "! echo x >> /etc/resolv.conf && echo y > /etc/new"),
                        tmp_path / f"{mode}.tar")
            assert res.exit_code == 0, (mode, res.output_tail)
            assert names(res.layer.path) == ["etc", "etc/new"], mode  # type: ignore[union-attr]
        assert not (busybox_rootfs / "etc/resolv.conf").exists()
        assert not (busybox_rootfs / "etc/hosts").exists()
        assert not (busybox_rootfs / "proc").exists() and not (busybox_rootfs / "dev").exists()
        os.unlink(busybox_rootfs / "etc/new")


def test_extra_mounts_are_read_only_and_not_captured(busybox_rootfs: Path,
                                                     tmp_path: Path) -> None:
    src = tmp_path / "cache"
    src.mkdir()
    (src / "data").write_text("cached\n")
    with StepRunner(busybox_rootfs, tmp_path / "s", output=io.StringIO()) as r:
        res = r.run(sh("cat /mnt/cache/data && ! touch /mnt/cache/x",
                       extra_mounts=[(str(src), "/mnt/cache")]), tmp_path / "l.tar")
    assert res.exit_code == 0 and res.output_tail[0] == "cached"
    # like buildah: the missing parent stays (empty), the mount target and its content do not
    assert names(res.layer.path) == ["mnt"]  # type: ignore[union-attr]
    assert os.listdir(busybox_rootfs / "mnt") == []
    os.rmdir(busybox_rootfs / "mnt")


def test_scratch_inside_the_rootfs_is_refused(busybox_rootfs: Path) -> None:
    with pytest.raises(SandboxError, match="inside the rootfs"):
        StepRunner(busybox_rootfs, busybox_rootfs / "tmp" / "scratch")
    assert not (busybox_rootfs / "tmp" / "scratch").exists()
