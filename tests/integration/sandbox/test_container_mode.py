"""Kaniko mode: RUN in "/" of the current container, with the ignore list, walk snapshots."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tarfile
import uuid
from pathlib import Path

import pytest

from trustbuild.errors import SandboxError
from trustbuild.sandbox import RunSpec, StepRunner, detect_container, kaniko_ignore_list
from trustbuild.sandbox.container import container_hints

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_refuses_outside_a_container_without_force(tmp_path: Path) -> None:
    if detect_container():
        pytest.skip("running inside a container")
    with pytest.raises(SandboxError, match="--force"):
        StepRunner(Path("/"), tmp_path, mode="container")


def test_overlay_snapshots_need_chroot_mode(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="overlay needs --mode chroot"):
        StepRunner(Path("/"), tmp_path, mode="container", force=True, snapshot_mode="overlay")


def test_container_hints(tmp_path: Path) -> None:
    assert container_hints(root=str(tmp_path), environ={}) == []
    assert container_hints(root=str(tmp_path), environ={"container": "podman"}) == [
        "container=podman"]
    (tmp_path / ".dockerenv").touch()
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text("0::/kubepods/besteffort/pod1\n")
    assert container_hints(root=str(tmp_path), environ={}) == [
        "/.dockerenv exists", "cgroup mentions kubepods"]


def test_ignore_list_has_mount_points_var_run_and_extras(tmp_path: Path) -> None:
    ignored = kaniko_ignore_list(extra=["/cache/"], scratch=tmp_path)
    assert {"/proc", "/sys", "/dev", "/var/run", "/cache", str(tmp_path.resolve())} <= set(ignored)
    assert "/" not in ignored


@pytest.fixture
def sandbox_dir() -> Path:  # type: ignore[misc]
    d = Path(f"/tbtest-{uuid.uuid4().hex[:12]}")
    d.mkdir()
    (d / "old").write_text("old\n")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_runs_in_root_and_snapshots_only_what_changed(sandbox_dir: Path, tmp_path: Path) -> None:
    # Everything at the top level but our directory is ignored: other processes on this
    # machine change files all the time and would leak into the layer.
    others = [f"/{n}" for n in os.listdir("/") if f"/{n}" != str(sandbox_dir)]
    out = io.StringIO()
    marker = f"TB_MARKER_{uuid.uuid4().hex}"
    with StepRunner(Path("/"), tmp_path / "scratch", mode="container", force=True,
                    ignore_paths=others, output=out) as r:
        assert r.snapshot_mode == "walk"
        res = r.run(RunSpec(["/bin/sh", "-c", f"export {marker}=1; sleep 300 & "
                             f"echo new > {sandbox_dir}/new && rm {sandbox_dir}/old && id -u"],
                            env={"PATH": "/usr/bin:/bin"}, label="K"), tmp_path / "l.tar")
    assert res.exit_code == 0, res.output_tail
    assert res.output_tail == ["0"]
    with tarfile.open(res.layer.path) as t:  # type: ignore[union-attr]
        names = t.getnames()
    top = str(sandbox_dir).lstrip("/")
    assert names == [top, f"{top}/new", f"{top}/.wh.old"]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    assert marker.encode() not in f.read()
            except OSError:
                continue


def test_extra_mounts_are_refused_in_container_mode(tmp_path: Path) -> None:
    with StepRunner(Path("/"), tmp_path / "s", mode="container", force=True,
                    output=io.StringIO()) as r:
        with pytest.raises(SandboxError, match="needs --mode chroot"):
            r.run(RunSpec(["/bin/sh", "-c", "true"], env={},
                          extra_mounts=[(str(tmp_path), "/mnt")]), tmp_path / "l.tar")


class _Stop(BaseException):
    pass


class _Watch(io.StringIO):
    """Output that sends SIGUSR1 to this process once the step printed ``started``."""

    def write(self, s: str) -> int:
        if s.endswith("| started\n"):
            os.kill(os.getpid(), signal.SIGUSR1)
        return super().write(s)


def _with_word(word: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if word.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_an_interrupted_step_leaves_no_background_process(sandbox_dir: Path,
                                                          tmp_path: Path) -> None:
    """Ctrl-C/SIGTERM unwinding through run(): the helper must kill the step's background
    processes too (killed outright, it left them re-parented to init)."""
    others = [f"/{n}" for n in os.listdir("/") if f"/{n}" != str(sandbox_dir)]
    word = str(4000 + os.getpid() % 1000)

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    old = signal.signal(signal.SIGUSR1, stop)
    try:
        with StepRunner(Path("/"), tmp_path / "scratch", mode="container", force=True,
                        ignore_paths=others, output=_Watch()) as r:
            with pytest.raises(_Stop):
                r.run(RunSpec(["/bin/sh", "-c", f"setsid sleep {word} & sleep 1{word} & "
                               "echo started; wait"], env={"PATH": "/usr/bin:/bin"},
                              label="K"), tmp_path / "l.tar")
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert _with_word(word) == []
