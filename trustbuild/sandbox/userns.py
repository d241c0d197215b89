"""Rootless builds: run a command as root of a new user namespace (as ``buildah unshare``).

A build started by a user other than root re-executes itself through
:func:`run_in_user_namespace`: the process forks, the child unshares a user namespace and waits
while the parent writes its id maps, then the child becomes uid/gid 0 there and ``execve``s the
command. The maps:

- ``subuid``: the caller's ``/etc/subuid`` and ``/etc/subgid`` ranges exist: in-namespace 0 is
  the caller and 1..N are the ranges, written by the setuid ``newuidmap``/``newgidmap``
  (Debian package ``uidmap``); ``chown`` to in-image ids works as for root.
- ``single``: no range: only 0 maps (to the caller), written by the parent itself after
  ``setgroups`` is denied. An owner other than 0 is recorded instead of applied
  (``trustbuild._internal.idmap``).

The parent forwards SIGTERM and SIGHUP to the child, ignores SIGINT (a terminal's Ctrl-C
reaches the child directly) and exits with the child's code. See docs/rootless.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from trustbuild.errors import SandboxError

__all__ = ["UserNamespaceError", "IdMaps", "subordinate_ranges", "plan_maps", "needed",
           "run_in_user_namespace", "build_command"]

CLONE_NEWUSER = 0x10000000
MODE_ENV = "TRUSTBUILD_ROOTLESS"  # set in the child: "subuid" or "single"
_PKG_PARENT = str(Path(__file__).resolve().parents[2])
_FORWARD = (signal.SIGTERM, signal.SIGHUP)
_SETUP_FAILED = 125


class UserNamespaceError(SandboxError):
    """A rootless build could not set up its user namespace."""


@dataclass(frozen=True)
class IdMaps:
    """The uid and gid maps of the namespace: rows of (inside, outside, count)."""

    mode: str  # "subuid" | "single"
    uids: tuple[tuple[int, int, int], ...]
    gids: tuple[tuple[int, int, int], ...]


def subordinate_ranges(path: Path, name: str | None, ident: int) -> list[tuple[int, int]]:
    """The (start, count) ranges ``path`` (/etc/subuid or /etc/subgid format) gives a user,
    named or by number, in file order; malformed lines are skipped as shadow-utils does."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            continue
        if parts[0] not in (name, str(ident)) or int(parts[2]) == 0:
            continue
        out.append((int(parts[1]), int(parts[2])))
    return out


def _rows(own: int, ranges: list[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    rows, inside = [(0, own, 1)], 1
    for start, count in ranges:
        rows.append((inside, start, count))
        inside += count
    return tuple(rows)


def plan_maps(uid: int, gid: int, *, subuid: Path = Path("/etc/subuid"),
              subgid: Path = Path("/etc/subgid")) -> IdMaps:
    """Subordinate ranges for both uids and gids when the user has them, else the single map."""
    try:
        name: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    uranges = subordinate_ranges(subuid, name, uid)
    granges = subordinate_ranges(subgid, name, uid)
    if uranges and granges:
        return IdMaps("subuid", _rows(uid, uranges), _rows(gid, granges))
    return IdMaps("single", ((0, uid, 1),), ((0, gid, 1),))


def inside() -> bool:
    """Whether this process is a rootless build re-executed in its user namespace (uid 0 there,
    not root of the machine)."""
    return bool(os.environ.get(MODE_ENV))


def needed() -> bool:
    """Whether a build must enter a user namespace first (it is not run by root)."""
    return os.geteuid() != 0


def build_command(argv: Sequence[str]) -> list[str]:
    """``python -m trustbuild ARGV`` with this interpreter."""
    return [sys.executable, "-m", "trustbuild", *argv]


def _unshare(flags: int) -> None:
    from trustbuild.sandbox import _linux as L

    L.unshare(flags)


def _child(cmd: Sequence[str], env: dict[str, str], ready_w: int, go_r: int,
           parent: int) -> None:
    """After fork: unshare, report, wait for the maps, become 0:0, exec (never returns)."""
    try:
        try:
            _unshare(CLONE_NEWUSER)
        except OSError as exc:
            os.write(ready_w, f"E{exc.errno}".encode())
            os._exit(_SETUP_FAILED)
        os.write(ready_w, b"U")
        os.close(ready_w)
        if os.read(go_r, 1) != b"1":
            os._exit(_SETUP_FAILED)
        os.close(go_r)
        os.setresgid(0, 0, 0)
        if env[MODE_ENV] == "subuid":
            os.setgroups([])
        os.setresuid(0, 0, 0)
        from trustbuild.sandbox import _linux as L

        # the death signal is reset by the uid change: set it now; SIGTERM lets a build clean up
        L.prctl(L.PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(_SETUP_FAILED)
        for sig in _FORWARD + (signal.SIGINT,):
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execvpe(cmd[0], list(cmd), env)
        except OSError as exc:
            os.write(2, f"trustbuild: error: rootless: cannot run {cmd[0]} in the user "
                        f"namespace: {exc.strerror}\n".encode("utf-8", "replace"))
            os._exit(127 if exc.errno == errno.ENOENT else 126)
    except BaseException as exc:  # noqa: BLE001 - nothing may unwind into the parent's code
        with contextlib.suppress(OSError):
            os.write(2, f"trustbuild: error: rootless: {exc}\n".encode("utf-8", "replace"))
    os._exit(_SETUP_FAILED)


def _unavailable(errno_: int) -> UserNamespaceError:
    reason = os.strerror(errno_)
    return UserNamespaceError(
        f"rootless build: cannot create a user namespace ({reason}): unprivileged user "
        "namespaces are disabled here (sysctl user.max_user_namespaces, "
        "kernel.unprivileged_userns_clone or an AppArmor/seccomp policy); enable them or "
        "run the build as root")


def _write_maps(pid: int, maps: IdMaps) -> None:
    if maps.mode == "single":
        try:
            with open(f"/proc/{pid}/setgroups", "w") as f:
                f.write("deny")
            with open(f"/proc/{pid}/uid_map", "w") as f:
                f.write("".join(f"{a} {b} {c}\n" for a, b, c in maps.uids))
            with open(f"/proc/{pid}/gid_map", "w") as f:
                f.write("".join(f"{a} {b} {c}\n" for a, b, c in maps.gids))
        except OSError as exc:
            raise UserNamespaceError(
                f"rootless build: cannot write the id map of the user namespace: "
                f"{exc.strerror}") from exc
        return
    for tool, rows, file in (("newuidmap", maps.uids, "/etc/subuid"),
                             ("newgidmap", maps.gids, "/etc/subgid")):
        exe = shutil.which(tool) or (f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}")
                                     else None)
        if exe is None:
            raise UserNamespaceError(
                f"rootless build: {file} gives this user a range but {tool} is not installed: "
                "install it (Debian/Ubuntu: apt-get install uidmap) or remove the range")
        args = [exe, str(pid)] + [str(v) for row in rows for v in row]
        res = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["failed"])[-1]
            raise UserNamespaceError(f"rootless build: {tool} failed: {last} (check the "
                                     f"ranges of this user in {file} and that {tool} is setuid)")


def _wait(pid: int) -> int:
    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    old = {sig: signal.signal(sig, forward) for sig in _FORWARD}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_in_user_namespace(cmd: Sequence[str], *, maps: IdMaps | None = None,
                          env: dict[str, str] | None = None) -> int:
    """Run ``cmd`` as 0:0 of a new user namespace with ``maps`` (default :func:`plan_maps`
    for this user); returns its exit code. Raises UserNamespaceError when the namespace or
    its maps cannot be made (nothing has run then)."""
    maps = maps or plan_maps(os.getuid(), os.getgid())
    child_env = dict(os.environ if env is None else env)
    child_env[MODE_ENV] = maps.mode
    path = child_env.get("PYTHONPATH", "")
    child_env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + path if path else "")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _child(cmd, child_env, ready_w, go_r, parent)
    os.close(ready_w)
    os.close(go_r)
    try:
        with os.fdopen(ready_r, "rb") as f:
            ready = f.read(64)
        if ready != b"U":
            os.waitpid(pid, 0)
            if ready.startswith(b"E") and ready[1:].isdigit():
                raise _unavailable(int(ready[1:]))
            raise UserNamespaceError("rootless build: the user namespace process failed "
                                     "before it was set up")
        try:
            _write_maps(pid, maps)
        except BaseException:
            os.close(go_w)
            go_w = -1
            os.waitpid(pid, 0)
            raise
        os.write(go_w, b"1")
    finally:
        if go_w >= 0:
            os.close(go_w)
    return _wait(pid)
