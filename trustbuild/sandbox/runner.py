"""StepRunner: run RUN steps sandboxed in a stage rootfs and turn each into a layer.

Usage::

    runner = StepRunner(rootfs, scratch, snapshot_mode="auto", mtime=epoch)
    try:
        res = runner.run(RunSpec(["/bin/sh", "-c", "echo hi > /hi"], env={}), tmp / "l.tar.gz")
        if res.exit_code:
            raise BuildError(f"Dockerfile:3 RUN ...: exit code {res.exit_code}")
        layers.append(res.layer)
    finally:
        runner.close()
"""

from __future__ import annotations

import base64
import collections
import contextlib
import marshal
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO, TypeGuard, get_args

from trustbuild._internal.seccomp import compile_bpf, load_profile
from trustbuild._internal.secrets import REDACTED
from trustbuild.errors import SandboxError
from trustbuild.oci.layer import LayerInfo, LayerWriter, write_overlay_upper
from trustbuild.sandbox import mountplan, overlay_index, snapshot
from trustbuild.sandbox.container import detect_container, kaniko_ignore_list
from trustbuild.sandbox.helper import PROBE_NO_INDEX, recv_exact
from trustbuild.sandbox.helperconfig import HelperConfig, StepConfig
from trustbuild.sandbox.paths import DEFAULT_PATH, find_executable
from trustbuild.sandbox.profiles import SecurityProfile, resolve_profile
from trustbuild.sandbox.spec import RunResult, RunSpec, SnapshotMode, Snapshotter

__all__ = ["StepRunner", "StageLayers", "SNAPSHOT_MODES", "MODES"]

SNAPSHOT_MODES: tuple[SnapshotMode, ...] = get_args(SnapshotMode)
MODES = ("chroot", "container")
_TAIL = 20
_KILL_GRACE = 10.0  # seconds the helper gets to kill and reap a step before SIGKILL
_PKG_PARENT = str(Path(__file__).resolve().parents[2])
_OVERLAY_PROBES: dict[tuple[int, ...], int] = {}  # (lower devs..., scratch dev) -> probe exit
_MAX_OPTION = 3500  # the overlay mount options must fit in one page


class StageLayers(Protocol):
    """The plain directories an overlay rootfs is made of, so that a step's overlay can stack
    them directly: an overlay whose lower is another overlay has no inodes index."""

    def lowers(self) -> list[Path]:
        """The rootfs's upper and lower directories, top first."""

    def detach(self, keep: Sequence[str] = ()) -> bool:
        """Unmount the overlays that use one of :meth:`lowers` as their upper (the kernel
        refuses an indexed overlay on a directory that is the upper of a mounted one); False
        (and nothing unmounted) when one is busy or holds a path of ``keep``."""

    def attach(self) -> None:
        """Mount again what :meth:`detach` unmounted."""

    def merge(self, upper: Path) -> bool:
        """Fold a step's overlay ``upper`` into the rootfs's own upper directory (unmounted
        meanwhile) by renames; False (nothing changed) when that cannot be done here."""



Exclude = Callable[[str], bool]

_MERGE_FROM = 32  # entries in a step's upper from which it is merged, not copied, into the stage


def _more_entries_than(top: Path, limit: int) -> bool:
    """Whether the tree ``top`` has more than ``limit`` entries (stops counting there)."""
    count = 0
    stack = [str(top)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                count += 1
                if count > limit:
                    return True
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return False


@dataclass(frozen=True)
class _LayerOptions:
    compression: str
    level: int | None
    docker_media_types: bool
    mtime: int | None


def _excluder(paths: set[str]) -> Exclude:
    def exclude(rel: str) -> bool:
        if rel in paths:
            return True
        p = rel.rpartition("/")[0]
        while p:
            if p in paths:
                return True
            p = p.rpartition("/")[0]
        return False

    return exclude


def _masked(spec: RunSpec) -> list[str]:
    """Secret values to mask in a step's output: each whole value and each line of it (a
    multi-line key is printed line by line); values shorter than 4 characters are left."""
    values = [f.data.decode("utf-8", "replace") for f in spec.secrets]
    values += [v for k, v in spec.secret_env.items() if k != "SSH_AUTH_SOCK"]
    out: set[str] = set()
    for value in values:
        for part in (value, *value.splitlines()):
            if len(part.strip()) >= 4:
                out.add(part.strip())
    return sorted(out, key=len, reverse=True)


# -S: no site (the helper is stdlib + trustbuild, found by PYTHONPATH): ~25 ms less start-up
# than processing site-packages' .pth files
_HELPER = (sys.executable, "-S", "-P", "-m", "trustbuild.sandbox.helper")


def _helper_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", DEFAULT_PATH), "PYTHONPATH": _PKG_PARENT,
            "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    try:
        return recv_exact(sock, n)
    except EOFError:
        raise SandboxError("the sandbox helper server ended unexpectedly") from None


class _ServedStep:
    """A step forked by the :class:`_HelperServer`, with the part of ``Popen`` StepRunner
    uses: ``stdout``, ``wait``, ``terminate``, ``kill``."""

    def __init__(self, server: _HelperServer, pid: int, stdout: BinaryIO) -> None:
        self._server = server
        self.pid = pid
        self.stdout: BinaryIO | None = stdout
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """The step's exit code (128+N: signal N), from the server once it has reaped it."""
        if self.returncode is None:
            self._server.sock.settimeout(timeout)
            try:
                self.returncode = int.from_bytes(_recv_exact(self._server.sock, 4), "big")
            except TimeoutError:
                raise subprocess.TimeoutExpired(list(_HELPER), timeout or 0) from None
            finally:
                self._server.sock.settimeout(None)
            if self.stdout is not None:
                self.stdout.close()
                self.stdout = None
        return self.returncode

    def _reaped(self) -> bool:
        """Whether the server has reported the exit (read then) or is gone (the child with it)."""
        if self.returncode is not None:
            return True
        try:
            ready = self._server.sock.recv(4, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if len(ready) == 4:
            self.wait()
            return True
        return not ready  # EOF: the server (and with it the child) is gone

    def _signal(self, sig: int) -> None:
        if not self._reaped():
            os.kill(self.pid, sig)  # not reaped: the pid is still this step's helper

    def terminate(self) -> None:
        """SIGTERM: the helper SIGKILLs the step and reaps what it left, then exits."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the helper (the step dies with it: PDEATHSIG)."""
        self._signal(signal.SIGKILL)


class _HelperServer:
    """One helper interpreter per stage (``helper --server-fd``) that forks each step's helper
    (trustbuild.sandbox.helper._serve), so a RUN step does not start Python."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [*_HELPER, "--server-fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env=_helper_env(), cwd="/", close_fds=True)
        except OSError as exc:
            self.sock.close()
            raise SandboxError(f"cannot start the sandbox helper: {exc.strerror}") from exc
        finally:
            theirs.close()

    def start(self, cfg: HelperConfig) -> tuple[_ServedStep, int]:
        """Fork a helper for ``cfg``; the step and the read end of its error pipe."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        data = marshal.dumps(dict(cfg))
        try:
            socket.send_fds(self.sock, [len(data).to_bytes(8, "big")], [out_w, err_w])
            self.sock.sendall(data)
            pid = int.from_bytes(_recv_exact(self.sock, 8), "big")
        except (OSError, SandboxError) as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise SandboxError(f"cannot start the step in the sandbox helper: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
        return _ServedStep(self, pid, os.fdopen(out_r, "rb")), err_r

    def close(self) -> None:
        """End the server (EOF on its socket); SIGKILL if it does not go."""
        self.sock.close()
        try:
            self.proc.wait(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _is_snapshot_mode(name: str) -> TypeGuard[SnapshotMode]:
    return name in SNAPSHOT_MODES


class StepRunner:
    """Runs RUN steps in ``rootfs`` (chroot mode) or in "/" (container mode)."""

    def __init__(self, rootfs: Path, scratch: Path, *, snapshot_mode: str = "auto",
                 mode: str = "chroot", ignore_paths: Sequence[str] = (),
                 compression: str = "gzip", level: int | None = None, mtime: int | None = None,
                 docker_media_types: bool = False, output: TextIO | None = None,
                 force: bool = False, protect: Sequence[str] = (),
                 layers: StageLayers | None = None) -> None:
        if not _is_snapshot_mode(snapshot_mode):
            raise SandboxError(f"unknown snapshot mode {snapshot_mode!r}: use one of "
                               f"{', '.join(SNAPSHOT_MODES)}")
        if mode not in MODES:
            raise SandboxError(f"unknown mode {mode!r}: use 'chroot' or 'container'")
        self.mode = mode
        self.rootfs = Path(rootfs) if mode == "chroot" else Path("/")
        self.output = output if output is not None else sys.stderr
        self.ignore_paths = tuple(ignore_paths)
        self.protect = tuple(protect)  # container mode: the build's whole ignore list
        self._layer_opts = _LayerOptions(compression, level, docker_media_types, mtime)
        if mode == "container":
            if not force and not detect_container():
                raise SandboxError("--mode container builds in / of the machine it runs on and "
                                   "this does not look like a container; pass --force to do it "
                                   "anyway, or use --mode chroot")
            if snapshot_mode == "overlay":
                raise SandboxError("--snapshot-mode overlay needs --mode chroot; "
                                   "use walk or full in container mode")
        elif not self.rootfs.is_dir():
            raise SandboxError(f"rootfs {self.rootfs} is not a directory")
        else:
            real_root, real_scratch = self.rootfs.resolve(), Path(scratch).resolve()
            if real_scratch == real_root or real_root in real_scratch.parents:
                raise SandboxError(f"scratch directory {scratch} is inside the rootfs "
                                   f"{rootfs}: put it next to the rootfs instead")
        scratch = Path(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        self._tmp: Path | None = Path(tempfile.mkdtemp(prefix="sandbox-", dir=scratch))
        self._steps = 0
        self._proc: subprocess.Popen[bytes] | _ServedStep | None = None
        self._server: _HelperServer | None = None
        self.layers = layers if mode == "chroot" and snapshot_mode in ("auto", "overlay") else None
        if self.layers is not None and not self._layers_indexed():
            self.layers = None
        resolved: Snapshotter
        if snapshot_mode == "auto":
            # auto wants the inodes index (hardlinks stay linked, as in walk mode)
            resolved = ("overlay" if mode == "chroot" and self._overlay_works(indexed=True)
                        else "walk")
        elif snapshot_mode == "overlay" and not self._overlay_works():
            self.close()
            raise SandboxError("--snapshot-mode overlay: this kernel or scratch filesystem "
                               "cannot mount overlayfs here; use --snapshot-mode walk")
        else:
            resolved = snapshot_mode
        self.snapshot_mode: Snapshotter = resolved

    # -- helper process -----------------------------------------------------------------

    def _start(self, cfg: HelperConfig) -> subprocess.Popen[bytes] | _ServedStep:
        """A step's helper: forked by the stage's helper server (started on the first step),
        or a helper process of its own with ``TRUSTBUILD_HELPER_SERVER=0``."""
        if (nofile := snapshot.step_nofile()) is not None:
            cfg["nofile"] = nofile  # the limit the builder had before DirPins
        if os.environ.get("TRUSTBUILD_HELPER_SERVER", "1") == "0":
            return self._spawn(cfg)
        if self._server is None:
            self._server = _HelperServer()
        step, self._err_fd = self._server.start(cfg)
        return step

    def _spawn(self, cfg: HelperConfig) -> subprocess.Popen[bytes]:
        cfg_r, cfg_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [*_HELPER, "--config-fd", str(cfg_r), "--err-fd", str(err_w)],
                pass_fds=(cfg_r, err_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=_helper_env(), cwd="/", close_fds=True,
            )
        except OSError as exc:
            for fd in (cfg_r, cfg_w, err_r, err_w):
                os.close(fd)
            raise SandboxError(f"cannot start the sandbox helper: {exc.strerror}") from exc
        os.close(cfg_r)
        os.close(err_w)
        self._err_fd = err_r
        # marshal: the helper is this interpreter (sys.executable), and marshal is built in
        data = marshal.dumps(dict(cfg))
        try:
            with open(cfg_w, "wb") as f:
                f.write(data)
        except BrokenPipeError:
            pass
        return proc

    def _read_error(self) -> str:
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(self._err_fd, 65536):
                chunks.append(chunk)
        os.close(self._err_fd)
        return b"".join(chunks).decode("utf-8", "replace").strip()

    def _lowers(self) -> list[str] | None:
        """The stage's layer directories for a step overlay, or None to stack on the rootfs."""
        if self.layers is None:
            return None
        lowers = [str(p) for p in self.layers.lowers()]
        assert self._tmp is not None
        if (any(c in d for d in (*lowers, str(self._tmp)) for c in ",:")
                or sum(len(d) + 1 for d in lowers) + 3 * len(str(self._tmp)) > _MAX_OPTION):
            return None
        # one filesystem: the merged view then shows the layers' own inode numbers, which
        # overlay_index.link_lower_aliases matches the index entries against
        if len({os.stat(d).st_dev for d in (*lowers, str(self._tmp))}) != 1:
            return None
        return lowers

    def _layers_indexed(self) -> bool:
        """Whether a step overlay on the stage's layers gets the inodes index (probed once per
        set of filesystems, with the stage's overlays unmounted meanwhile)."""
        lowers = self._lowers()
        if lowers is None:
            return False
        assert self._tmp is not None and self.layers is not None
        key = (os.stat(lowers[0]).st_dev, os.stat(self._tmp).st_dev)
        if key not in _OVERLAY_PROBES:
            if not self.layers.detach():
                return False
            try:
                _OVERLAY_PROBES[key] = self._probe_overlay(lowers)
            finally:
                self.layers.attach()
        return _OVERLAY_PROBES[key] == 0

    def _overlay_works(self, *, indexed: bool = False) -> bool:
        assert self._tmp is not None
        if self.layers is not None:
            return True  # probed with the layers: indexed
        if any(c in str(self.rootfs) for c in ",:") or any(c in str(self._tmp) for c in ",:"):
            return False
        key = (os.stat(self.rootfs).st_dev, os.stat(self._tmp).st_dev)
        if key not in _OVERLAY_PROBES:
            _OVERLAY_PROBES[key] = self._probe_overlay()
        code = _OVERLAY_PROBES[key]
        return code == 0 or (not indexed and code == PROBE_NO_INDEX)

    def _probe_overlay(self, lowers: list[str] | None = None) -> int:
        assert self._tmp is not None
        probe = self._tmp / "probe"
        for d in ("upper", "work", "merged"):
            (probe / d).mkdir(parents=True)
        proc = self._spawn({"mode": "probe", "root": str(probe / "merged"),
                            "overlay": {"lower": lowers or [str(self.rootfs)],
                                        "upper": str(probe / "upper"),
                                        "work": str(probe / "work")}})
        assert proc.stdout is not None
        proc.stdout.read()
        code = proc.wait()
        self._read_error()
        shutil.rmtree(probe, ignore_errors=True)
        return code

    # -- running a step -------------------------------------------------------------------

    def _check_spec(self, spec: RunSpec) -> tuple[SecurityProfile, StepConfig]:
        if not spec.argv or not all(isinstance(a, str) for a in spec.argv):
            raise SandboxError(f"{spec.label}: empty command")
        profile = resolve_profile(spec.security_profile, seccomp=spec.seccomp_profile,
                                  network=spec.network)
        user = spec.user
        env = {k: v for k, v in spec.env.items() if "=" not in k and "\0" not in k + v}
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOME", user.home)
        workdir = "/" + spec.workdir.strip("/") if spec.workdir else "/"
        if find_executable(self.rootfs, spec.argv[0], path_var=env["PATH"],
                           workdir=workdir) is None:
            raise SandboxError(
                f"{spec.label}: {spec.argv[0]!r} not found in the image"
                + ("" if "/" in spec.argv[0] else f" (PATH={env['PATH']})")
                + "; install it in an earlier step or change SHELL"
            )
        bpf = ""
        if profile.seccomp_path:
            prof = load_profile(profile.seccomp_path)
            if prof.digest != profile.seccomp_digest:
                raise SandboxError(
                    f"seccomp profile {profile.seccomp_path} changed during the build")
            bpf = compile_bpf(prof, capabilities=profile.capabilities,
                              no_new_privs=profile.no_new_privs).hex()
        env.update({k: v for k, v in spec.secret_env.items()
                    if k and "=" not in k and "\0" not in k + v})
        cfg: StepConfig = {
            "mode": "container" if self.mode == "container" else "chroot",
            "argv": list(spec.argv), "env": env, "workdir": workdir,
            "uid": user.uid, "gid": user.gid, "groups": user.groups,
            "caps": profile.capabilities, "no_new_privs": profile.no_new_privs,
            "seccomp_bpf": bpf, "network": profile.network, "mask": profile.mask_paths,
            "hostname": spec.hostname,
        }
        return profile, cfg

    def _stream(self, proc: subprocess.Popen[bytes] | _ServedStep, label: str,
                masked: Sequence[str] = ()) -> list[str]:
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
        assert proc.stdout is not None
        for raw in iter(lambda: proc.stdout.readline(65536), b""):  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            for value in masked:
                line = line.replace(value, REDACTED)
            tail.append(line)
            self.output.write(f"{label} | {line}\n")
            self.output.flush()
        return list(tail)

    def run(self, spec: RunSpec, layer_dest: Path) -> RunResult:
        """Run one step; on exit code 0 write its diff to ``layer_dest`` and keep it in rootfs."""
        if self._tmp is None:
            raise SandboxError("StepRunner is closed")
        start = time.monotonic()
        profile, cfg = self._check_spec(spec)
        warnings: list[str] = []
        self._steps += 1
        step = self._tmp / f"step{self._steps}"
        step.mkdir()
        created: mountplan.CreatedMounts | None = None
        pins: snapshot.DirPins | None = None
        try:
            if self.mode == "container":
                if spec.secrets:
                    raise SandboxError(f"{spec.label}: RUN --mount=type=secret needs --mode "
                                       "chroot (container mode has no private mounts)")
                if spec.extra_mounts:
                    raise SandboxError(f"{spec.label}: RUN --mount needs --mode chroot "
                                       "(container mode cannot mount)")
                if profile.network == "none":
                    warnings.append("network isolation is not available in container mode")
                ignored = set(self.protect) or set(kaniko_ignore_list())
                ignored.update(self.ignore_paths)
                ignored.update(spec.ignore_paths)
                ignored.add(str(self._tmp.resolve()))
                exclude = _excluder({p.strip("/") for p in ignored} | {
                    str(Path(layer_dest).resolve().parent).lstrip("/")})
                plan: list[mountplan.MountPoint] = []
            else:
                plan = mountplan.plan_mounts(
                    self.rootfs, [*spec.extra_mounts,
                                  *(("", f.target, "secret") for f in spec.secrets)])
                exclude = _excluder(mountplan.excluder(plan) | {
                    p.strip("/") for p in (*self.ignore_paths, *spec.ignore_paths)})
                merged = step / "merged"
                merged.mkdir()
                cfg["root"], cfg["rootfs"], cfg["overlay"] = str(merged), str(self.rootfs), None
                cfg["binds"] = mountplan.helper_mounts(plan)
                if spec.secrets:
                    (step / "secrets").mkdir(mode=0o700)
                    cfg["secret_stage"] = str(step / "secrets")
                    cfg["secrets"] = {f.target: {
                        "data": base64.b64encode(f.data).decode(), "mode": f.mode,
                        "uid": f.uid, "gid": f.gid} for f in spec.secrets}
            before = None
            step_mode = self.snapshot_mode
            lowers = self._lowers() if step_mode == "overlay" else None
            detached = False
            if step_mode == "overlay":
                upper, work = step / "upper", step / "work"
                upper.mkdir()
                work.mkdir()
                lower = lowers or [str(self.rootfs)]
                if mountplan.build_lower(self.rootfs, step / "lower0", plan):
                    lower.insert(0, str(step / "lower0"))
                cfg["overlay"] = {"lower": lower, "upper": str(upper), "work": str(work)}
                if lowers is not None:  # the layers must not be the upper of a mounted overlay
                    sources = [b[0] for b in cfg.get("binds", [])
                               if (b[2] if len(b) > 2 else "ro") in ("ro", "rw")]
                    detached = self.layers.detach(sources)  # type: ignore[union-attr]
                    if not detached:  # busy: a walk snapshot of the rootfs, as without layers
                        step_mode, cfg["overlay"] = "walk", None
                        warnings.append("walk snapshot: the stage's filesystem is in use, its "
                                        "overlay cannot be unmounted for an overlay snapshot")
            try:
                if step_mode != "overlay":
                    pins = snapshot.DirPins()
                    before = snapshot.take_snapshot(self.rootfs, full=step_mode == "full",
                                                    exclude=exclude, pins=pins)
                    created = mountplan.create_in_rootfs(self.rootfs, plan)
                for w in warnings:
                    self.output.write(f"{spec.label} | warning: {w}\n")
                self._proc = self._start(cfg)
                tail = self._stream(self._proc, spec.label, _masked(spec))
                code = self._proc.wait()
                error = self._read_error()
                self._proc = None
            finally:
                if detached:
                    if self._proc is not None:
                        self._kill()
                    self.layers.attach()  # type: ignore[union-attr]
            if created is not None:
                created.remove()
                created = None
            if error:
                raise SandboxError(f"{spec.label}: sandbox set-up failed: {error}")
            snap_start = time.monotonic()
            layer = None
            if code == 0:
                layer = self._write_layer(step, layer_dest, before, exclude, plan, pins,
                                          mode=step_mode)
            return RunResult(exit_code=code, output_tail=tail, layer=layer,
                             seconds=time.monotonic() - start,
                             snapshot_seconds=time.monotonic() - snap_start,
                             snapshot_mode=step_mode, profile=profile,
                             warnings=warnings)
        finally:
            if pins is not None:
                pins.close()
            if self._proc is not None:
                self._kill()
            if created is not None:
                created.remove()
            shutil.rmtree(step, ignore_errors=True)

    def _write_layer(self, step: Path, dest: Path, before: snapshot.Snapshot | None,
                     exclude: Exclude, plan: list[mountplan.MountPoint],
                     pins: snapshot.DirPins | None = None, *, mode: str = "") -> LayerInfo:
        opts = self._layer_opts
        with LayerWriter(dest, compression=opts.compression, level=opts.level,
                         docker_media_types=opts.docker_media_types,
                         mtime=opts.mtime) as writer:
            mode = mode or self.snapshot_mode
            if mode == "overlay":
                upper = step / "upper"
                mountplan.add_kept_parents(upper, plan)
                overlay_index.clear_new_dir_opaque(upper, self.rootfs)
                overlay_index.link_lower_aliases(upper, step / "work", self.rootfs,
                                                 exclude=exclude)
                write_overlay_upper(upper, writer, exclude=exclude)
                info = writer.finish()
                # many entries: renamed into the stage's upper (unmounting and mounting the
                # stage again, ~15 ms) rather than copied through its overlay mount (an inode
                # created per file, ~0.5 ms each here)
                if (self.layers is None or not _more_entries_than(upper, _MERGE_FROM)
                        or not self.layers.merge(upper)):
                    snapshot.apply_upper(upper, self.rootfs)
                return info
            assert before is not None
            full = mode == "full"
            after = snapshot.take_snapshot(self.rootfs, full=full, exclude=exclude)
            if pins is not None:
                pins.close()
            changes = snapshot.diff_snapshots(before, after, full=full)
            snapshot.write_changes(self.rootfs, changes, writer)
            return writer.finish()

    def _kill(self) -> None:
        """Stop a running step: SIGTERM makes the helper SIGKILL the step and reap every
        process it left (PID namespace or subreaper) before it exits; SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            self._read_error()

    def close(self) -> None:
        """Kill a running step and remove every temp dir (mounts die with the helper)."""
        self._kill()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> StepRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
