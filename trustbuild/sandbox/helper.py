"""The sandbox helper process: ``python -m trustbuild.sandbox.helper --config-fd N --err-fd M``.

Started by ``StepRunner`` for every RUN step (never with ``preexec_fn``). It reads its JSON
configuration from ``--config-fd``, then:

chroot mode: unshare mount/PID/UTS/IPC (+net) namespaces, fork so the step is PID 1 of the new
PID namespace, mount the root (overlay or bind), /proc, a minimal /dev, read-only /sys, the
read-only binds (resolv.conf, hosts), the extra mounts (RUN --mount: bind ro/rw, tmpfs), mask
/proc paths, pivot_root, create and
enter the workdir, reset every signal disposition and the signal mask, drop the capability
bounding set, switch to the step's user, set no_new_privs, load the seccomp filter last and
``execve`` the command. When PID 1 exits the
kernel kills every other process of the step; the namespaces and mounts vanish with them.

container mode (Kaniko): no namespaces; the helper becomes a child subreaper, the step runs in a
new session and every process it leaves behind is killed when it ends.

A setup failure is written as one line to ``--err-fd`` and the helper exits 125; the parent
turns it into a SandboxError. Otherwise the helper exits with the step's exit code
(128+N when the step was killed by signal N).
"""

from __future__ import annotations

import errno
import fcntl
import marshal
import os
import resource
import signal
import struct
import sys

from trustbuild._internal.idmap import in_user_namespace
from trustbuild.sandbox import _linux as L
from trustbuild.sandbox.mountinfo import mount_table

# Every RUN step starts this module in a fresh interpreter (python -S): only what a step needs
# is imported (no typing, json, pathlib, socket or base64: ~40 ms of a 70 ms step here).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from types import FrameType
    from typing import Protocol

    from trustbuild.sandbox.helperconfig import (
        HelperConfig,
        OverlayConfig,
        ProbeConfig,
        StepConfig,
    )

    class _Filter(Protocol):
        def load(self) -> None: ...

SETUP_FAILED = 125

_MASKED = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
           "/sys/firmware", "/sys/devices/virtual/powercap")
_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Every mount a step sees is nosuid and nodev: with CAP_MKNOD (baseline) and no device cgroup a
# step could otherwise make a node for the host's disk on any writable mount and open it.
# Only the device binds in /dev and devpts (the ptys) keep dev; they are still nosuid.
_SAFE = L.MS_NOSUID | L.MS_NODEV
# Per-mount options kept when a bind is remounted (a remount replaces all of them; mountinfo
# shows strictatime as neither noatime nor relatime).
_KEPT = {"ro": L.MS_RDONLY, "noexec": L.MS_NOEXEC, "noatime": L.MS_NOATIME,
         "nodiratime": L.MS_NODIRATIME, "relatime": L.MS_RELATIME}


class SetupError(Exception):
    """A sandbox set-up step failed; the message goes to the parent."""


def _fail(err_fd: int, msg: str) -> None:
    try:
        os.write(err_fd, msg.replace("\n", " ").encode("utf-8", "replace")[:4000] + b"\n")
    finally:
        os._exit(SETUP_FAILED)


def _do(what: str, fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except OSError as exc:
        raise SetupError(f"{what}: {exc.strerror or exc}") from exc


def _lo_up() -> None:
    import socket  # network "none" only

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
    finally:
        s.close()


def _lock_tree(target: str, extra: int = 0) -> None:
    """Remount the bind at ``target`` and every mount below it nosuid, nodev (+ ``extra``).

    A bind (even MS_REC) copies the source's per-mount flags; only a remount of each mount
    changes them. Each keeps its own ro/noexec/atime options.
    """
    real = os.path.realpath(target)
    inside = real.rstrip("/") + "/"
    for point, opts in mount_table():
        if point != real and not point.startswith(inside):
            continue
        flags = L.MS_BIND | L.MS_REMOUNT | _SAFE | extra
        for opt in opts:
            flags |= _KEPT.get(opt, 0)
        if not flags & (L.MS_NOATIME | L.MS_RELATIME):
            flags |= L.MS_STRICTATIME
        _do(f"remount {point} nosuid,nodev", L.mount, None, point, None, flags)


def _bind(src: str, target: str, extra: int = 0) -> None:
    """Recursive bind of ``src`` on ``target``, then nosuid, nodev (+ ``extra``) on every mount."""
    _do(f"bind {src}", L.mount, src, target, None, L.MS_BIND | L.MS_REC)
    _lock_tree(target, extra)


def _setup_dev(root: str) -> None:
    dev = root + "/dev"
    # nodev: device nodes a step creates cannot be opened; only the binds below work.
    _do("mount /dev tmpfs", L.mount, "tmpfs", dev, "tmpfs",
        _SAFE | L.MS_NOEXEC, "mode=755,size=65536k")
    for name in _DEVICES:
        target = f"{dev}/{name}"
        if not os.path.exists(f"/dev/{name}"):
            continue
        with open(target, "w"):
            pass
        _do(f"bind /dev/{name}", L.mount, f"/dev/{name}", target, None, L.MS_BIND)
        _do(f"remount /dev/{name} nosuid", L.mount, None, target, None,
            L.MS_BIND | L.MS_REMOUNT | L.MS_NOSUID | L.MS_NOEXEC)
    os.mkdir(f"{dev}/pts", 0o755)
    # devpts keeps dev: its nodes are the ptys themselves; mknod is impossible on it.
    _do("mount /dev/pts", L.mount, "devpts", f"{dev}/pts", "devpts",
        L.MS_NOSUID | L.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.mkdir(f"{dev}/shm", 0o1777)
    _do("mount /dev/shm", L.mount, "shm", f"{dev}/shm", "tmpfs",
        _SAFE | L.MS_NOEXEC, "mode=1777,size=65536k")
    os.mkdir(f"{dev}/mqueue", 0o755)
    for src, name in (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                      ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr")):
        os.symlink(src, f"{dev}/{name}")


def _bind_ro(src: str, target: str) -> None:
    _bind(src, target, L.MS_RDONLY)


def _mask(root: str) -> None:
    # Files are masked with an empty read-only file (reads give EOF, as Docker's /dev/null
    # does) that, unlike a device, can be mounted nodev. Its name is gone before the step runs.
    empty = root + "/dev/.masked"
    with open(empty, "w"):
        pass
    os.chmod(empty, 0o444)
    for path in _MASKED:
        target = root + path
        if not os.path.lexists(target):
            continue
        if os.path.isdir(target):
            _do(f"mask {path}", L.mount, "tmpfs", target, "tmpfs",
                L.MS_RDONLY | _SAFE | L.MS_NOEXEC, "size=0")
        else:
            _do(f"mask {path}", L.mount, empty, target, None, L.MS_BIND)
            _do(f"mask {path} read-only", L.mount, None, target, None,
                L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _SAFE | L.MS_NOEXEC)
    os.unlink(empty)
    for path in _READONLY:
        target = root + path
        if os.path.lexists(target):
            _bind_ro(target, target)


def _mount_overlay(ov: OverlayConfig, root: str) -> None:
    # In a user namespace (rootless) overlayfs keeps its state in user.overlay.* xattrs
    # (userxattr, which implies redirect_dir=nofollow); the index falls back to off there.
    redirect = "userxattr" if in_user_namespace() else "redirect_dir=off"
    opts = (f"lowerdir={':'.join(ov['lower'])},upperdir={ov['upper']},workdir={ov['work']},"
            f"{redirect},index=on,nfs_export=off,metacopy=off")
    _do("mount overlay", L.mount_overlay, root, opts, _SAFE)  # volatile, EBUSY retried


def _stage_secrets(cfg: StepConfig) -> dict[str, str]:
    """Write each secret to a file on a private tmpfs (in this mount namespace only, so it
    never touches a disk nor the rootfs); returns target -> file."""
    stage = cfg["secret_stage"]
    import base64  # steps with secrets only

    data = {t: base64.b64decode(v["data"]) for t, v in cfg["secrets"].items()}
    size = sum(len(d) for d in data.values()) + 65536
    _do("mount the secrets tmpfs", L.mount, "tmpfs", stage, "tmpfs",
        _SAFE | L.MS_NOEXEC, f"mode=700,size={size}")
    out = {}
    for i, (target, value) in enumerate(data.items()):
        meta = cfg["secrets"][target]
        path = f"{stage}/{i}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(value)
                while view:
                    view = view[os.write(fd, view):]
                os.fchown(fd, meta["uid"], meta["gid"])
                os.fchmod(fd, meta["mode"])
            finally:
                os.close(fd)
        except OSError as exc:
            raise SetupError(f"secret for {target}: {exc.strerror}") from exc
        out[target] = path
    return out


def _mount_root(cfg: StepConfig) -> str:
    root = cfg["root"]
    overlay = cfg.get("overlay")
    if overlay:
        _mount_overlay(overlay, root)
    else:
        _bind(cfg["rootfs"], root)
    _do("mount /proc", L.mount, "proc", root + "/proc", "proc", _SAFE | L.MS_NOEXEC)
    _setup_dev(root)
    try:
        L.mount("sysfs", root + "/sys", "sysfs", L.MS_RDONLY | _SAFE | L.MS_NOEXEC)
    except OSError:
        _bind_ro("/sys", root + "/sys")
    secrets = _stage_secrets(cfg) if cfg.get("secrets") else {}
    for src, target, *mode in cfg.get("binds", []):
        kind = mode[0] if mode else "ro"
        if kind == "secret":
            _do(f"mount secret on {target}", L.mount, secrets[target], root + target, None,
                L.MS_BIND)
            _do(f"remount secret on {target} read-only", L.mount, None, root + target, None,
                L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _SAFE | L.MS_NOEXEC)
        elif kind == "tmpfs":
            _do(f"mount tmpfs on {target}", L.mount, "tmpfs", root + target, "tmpfs",
                _SAFE, src)  # src: the tmpfs options
        elif kind == "rw":
            _bind(src, root + target)
        else:
            _bind_ro(src, root + target)
    if secrets:
        # the staging tmpfs leaves this namespace; the files live on in their binds only
        _do("detach the secrets tmpfs", L.umount2, cfg["secret_stage"], L.MNT_DETACH)
    if cfg.get("mask"):
        _mask(root)
    return root


def _pivot(root: str) -> None:
    os.chdir(root)
    _do("pivot_root", L.pivot_root, ".", ".")
    _do("detach the old root", L.umount2, ".", L.MNT_DETACH)
    os.chdir("/")


def _reset_signals() -> None:
    """Default disposition for every signal and an empty mask, as a fresh process has.

    Python ignores SIGPIPE and SIGXFSZ, and the build may have inherited ignored signals
    (SIGQUIT, SIGHUP from nohup) or a mask; exec keeps both, so ``yes | head`` would never end.
    """
    valid = signal.valid_signals()
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if sig not in valid:
                raise ValueError(sig)
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            # glibc keeps 32 and 33 to itself (Python does not even list them); one left
            # ignored (seen under GNU make in CI) would stay ignored after exec: ask the kernel
            L.default_signal_action(sig)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups", "rb") as f:  # binary: no codec import after pivot
            return f.read().strip() == b"deny"
    except OSError:
        return False


def _drop_privileges(cfg: StepConfig, seccomp_filter: _Filter | None) -> None:
    _reset_signals()
    keep = {L.CAPABILITIES[c] for c in cfg["caps"] if c in L.CAPABILITIES}
    for cap in range(L.last_cap() + 1):
        if cap not in keep:
            _do(f"drop capability {cap}", L.prctl, L.PR_CAPBSET_DROP, cap)
    _do("clear ambient capabilities", L.prctl, L.PR_CAP_AMBIENT, L.PR_CAP_AMBIENT_CLEAR_ALL)
    _do("clear inheritable capabilities", L.clear_inheritable_caps)
    if seccomp_filter is not None and not cfg["no_new_privs"]:
        _do("load seccomp filter", seccomp_filter.load)
    if not _setgroups_denied():  # a single-id user namespace (rootless) keeps the caller's
        _do("setgroups", os.setgroups, cfg["groups"])
    _do("setgid", os.setresgid, cfg["gid"], cfg["gid"], cfg["gid"])
    _do("setuid", os.setresuid, cfg["uid"], cfg["uid"], cfg["uid"])
    if cfg["no_new_privs"]:
        _do("no_new_privs", L.prctl, L.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_filter is not None and cfg["no_new_privs"]:
        _do("load seccomp filter", seccomp_filter.load)


def _compile(cfg: StepConfig) -> _Filter | None:
    """The step's seccomp filter: raw BPF compiled by the parent (hex in the config)."""
    if not cfg.get("seccomp_bpf"):
        return None
    program = bytes.fromhex(cfg["seccomp_bpf"])

    class _Filter:
        def load(self) -> None:
            L.load_seccomp_bpf(program)

    return _Filter()


def _exec(cfg: StepConfig, err_fd: int) -> None:
    argv = cfg["argv"]
    try:
        os.execvpe(argv[0], argv, cfg["env"])
    except OSError as exc:
        _fail(err_fd, f"cannot run {argv[0]!r}: {exc.strerror}")


def _step_child(cfg: StepConfig, err_fd: int) -> None:
    """PID 1 of the new PID namespace: build the root, drop privileges, exec."""
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        # A new session: no controlling terminal, so /dev/tty cannot reach (or TIOCSTI-type
        # into) the terminal the build was started from.
        os.setsid()
        _do("set hostname", L.sethostname, cfg.get("hostname", "trustbuild"))
        if cfg["network"] == "none":
            _do("bring up loopback", _lo_up)
        filt = _compile(cfg)
        root = _mount_root(cfg)
        _pivot(root)
        _enter_workdir_and_drop(cfg, filt)
    except SetupError as exc:
        _fail(err_fd, str(exc))
    except Exception as exc:  # noqa: BLE001 - anything else is still a set-up failure
        _fail(err_fd, f"{type(exc).__name__}: {exc}")
    _exec(cfg, err_fd)


def _enter_workdir_and_drop(cfg: StepConfig, filt: _Filter | None) -> None:
    """chdir into the step's WORKDIR (created if missing), umask 022, then drop privileges."""
    workdir = cfg["workdir"]
    try:
        os.makedirs(workdir, mode=0o755, exist_ok=True)
        os.chdir(workdir)
    except OSError as exc:
        raise SetupError(f"workdir {workdir}: {exc.strerror}") from exc
    os.umask(0o022)
    _drop_privileges(cfg, filt)


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


_STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _fork_step(child: Callable[[StepConfig, int], None], cfg: StepConfig, err_fd: int) -> int:
    """Fork; the child runs ``child(*args)`` (never returns). In the parent, a stop signal
    SIGKILLs the step, and the caller's waitpid then returns once the step is reaped.

    The stop signals are blocked across the fork, so one that arrives early is not lost and
    cannot kill the helper before the step is tracked. The child keeps them blocked until
    ``_reset_signals`` right before exec.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(_STOP))
    pid = os.fork()
    if pid == 0:
        child(cfg, err_fd)
        os._exit(SETUP_FAILED)

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    for sig in _STOP:
        signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid


def _run_chroot(cfg: StepConfig, err_fd: int) -> None:
    flags = L.CLONE_NEWNS | L.CLONE_NEWPID | L.CLONE_NEWUTS | L.CLONE_NEWIPC
    if cfg["network"] == "none":
        flags |= L.CLONE_NEWNET
    try:
        L.unshare(flags)
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
    except OSError as exc:
        _fail(err_fd, f"cannot create namespaces: {exc.strerror} (run as root, or use "
                      "--mode container inside a container)")
    pid = _fork_step(_step_child, cfg, err_fd)
    os.close(err_fd)
    _, status = os.waitpid(pid, 0)
    _exit_like(status)


def _kill_children() -> None:
    """Kill every process re-parented to us (we are a child subreaper) until none is left."""
    me = str(os.getpid())
    while True:
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read().decode("ascii", "replace")
            except OSError:
                continue
            ppid = data.rsplit(")", 1)[-1].split()[1]
            if ppid == me:
                found = True
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG if found else 0)[0] > 0:
                pass
        except ChildProcessError:
            if not found:
                return


def _container_child(cfg: StepConfig, err_fd: int) -> None:
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        filt = _compile(cfg)
        _enter_workdir_and_drop(cfg, filt)
    except SetupError as exc:
        _fail(err_fd, str(exc))
    except Exception as exc:  # noqa: BLE001
        _fail(err_fd, f"{type(exc).__name__}: {exc}")
    _exec(cfg, err_fd)


def _run_container(cfg: StepConfig, err_fd: int) -> None:
    L.prctl(L.PR_SET_CHILD_SUBREAPER, 1)
    pid = _fork_step(_container_child, cfg, err_fd)
    os.close(err_fd)
    _, status = os.waitpid(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _kill_children()
    _exit_like(status)


PROBE_NO_INDEX = 3


def _probe(cfg: ProbeConfig, err_fd: int) -> None:
    """Check that an overlay with these directories can be mounted (then unmount it).

    Exits 0, or PROBE_NO_INDEX when the kernel mounted it with the inodes index off (no
    ``work/index``: a user namespace, or an upper without file handles)."""
    try:
        L.unshare(L.CLONE_NEWNS)
        L.mount(None, "/", None, L.MS_REC | L.MS_PRIVATE)
        _mount_overlay(cfg["overlay"], cfg["root"])
        indexed = os.path.isdir(cfg["overlay"]["work"] + "/index")
        L.umount2(cfg["root"], L.MNT_DETACH)
    except (OSError, SetupError) as exc:
        _fail(err_fd, f"overlay not available: {exc}")
    os._exit(0 if indexed else PROBE_NO_INDEX)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``--config-fd N --err-fd M`` runs one step (or probe) and exits with its
    code; ``--server-fd N`` serves a whole stage's steps (:func:`_serve`)."""
    args = sys.argv[1:] if argv is None else argv
    opts = dict(zip(args[::2], args[1::2], strict=False))
    if "--server-fd" in opts:
        _serve(int(opts["--server-fd"]))
        return
    cfg_fd, err_fd = int(opts["--config-fd"]), int(opts["--err-fd"])
    chunks = []
    while True:
        chunk = os.read(cfg_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(cfg_fd)
    _start(b"".join(chunks), err_fd)


def _start(raw: bytes, err_fd: int) -> None:
    """Run the step (or probe) configured by ``raw``; never returns."""
    os.set_inheritable(err_fd, False)
    try:  # written by StepRunner, our parent (marshal: built in, where json imports re & co.)
        cfg: HelperConfig = marshal.loads(raw)
    except (ValueError, EOFError, TypeError) as exc:
        _fail(err_fd, f"bad helper configuration: {exc}")
    if cfg.get("nofile"):  # the builder raised its own soft limit to pin directories
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(int(cfg["nofile"]), hard), hard))
    try:
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    if cfg["mode"] == "probe":
        _probe(cfg, err_fd)
    elif cfg["mode"] == "container":
        _run_container(cfg, err_fd)
    else:
        _run_chroot(cfg, err_fd)
    os._exit(SETUP_FAILED)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock`` (both ends of the helper server's socket);
    EOFError if the other end closed it first."""
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other end of the helper socket closed it")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _serve(sock_fd: int) -> None:
    """The stage's helper server: one interpreter for all of a stage's RUN steps.

    Starting this module costs a step 30-40 ms of interpreter start-up and imports; the server
    pays it once and forks a child per step, which then does exactly what a helper started for
    that step does (:func:`_start`). Per step, StepRunner sends an 8-byte length with two file
    descriptors (the step's output pipe and its error pipe), then the marshalled config; the
    server answers the child's pid (8 bytes), and its exit code (4 bytes, 128+N for signal N)
    once it has ended. The server is single-threaded, so forking it is safe; it dies with the
    builder (PDEATHSIG), and each child with it. EOF on the socket ends it.
    """
    import socket  # once per stage

    L.prctl(L.PR_SET_PDEATHSIG, signal.SIGKILL)
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(sock, 8, 2)
            if not head:
                return
            head += recv_exact(sock, 8 - len(head)) if len(head) < 8 else b""
            raw = recv_exact(sock, int.from_bytes(head, "big"))
        except (OSError, EOFError):
            return
        if len(fds) != 2:
            return
        out_fd, err_fd = fds
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.dup2(out_fd, 1)
                os.dup2(out_fd, 2)
                os.close(out_fd)
                _start(raw, err_fd)
            finally:
                os._exit(SETUP_FAILED)
        os.close(out_fd)
        os.close(err_fd)
        try:
            sock.sendall(pid.to_bytes(8, "big"))
            _, status = os.waitpid(pid, 0)
            code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                os.WEXITSTATUS(status)
            sock.sendall(code.to_bytes(4, "big"))
        except OSError:
            return


if __name__ == "__main__":
    main()
