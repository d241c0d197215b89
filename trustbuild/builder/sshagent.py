"""ssh agents for ``RUN --mount=type=ssh``: the ``--ssh`` sources and per-step socket proxies.

An ``--ssh ID=KEYFILE`` source gets its own ``ssh-agent`` (openssh-client) holding the keys,
with its socket in a private directory of the build; ``ID=SOCKET`` and ``default`` use that
agent. A step never sees the agent's own socket: it gets a proxy socket (owner and mode as the
mount asks) that forwards each connection to the agent, and that is closed after the step.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from trustbuild.errors import BuildError

__all__ = ["SshAgents", "AgentProxy"]

_AGENT_START = 10.0  # seconds ssh-agent gets to create its socket
# argv: PARENT_PID PROGRAM ARGS...: runs PROGRAM and stops it when the build dies (even by
# SIGKILL) or is asked to stop. A supervisor, not an exec: ssh-agent is setgid on Debian, and
# the kernel drops PR_SET_PDEATHSIG when it execs a setgid program.
_SUPERVISE = """\
import ctypes, os, signal, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
signal.signal(signal.SIGTERM, lambda *_: None)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
child = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
if os.getppid() != int(sys.argv[1]):
    child.terminate()
sys.exit(child.wait())
"""


class SshAgents:
    """The agents of one build, by ``--ssh`` id; ``close()`` stops those it started."""

    def __init__(self, sources: Mapping[str, list[str]], work: Path) -> None:
        self.sources = dict(sources)
        self.work = work
        self._sockets: dict[str, str] = {}
        self._agents: list[tuple[subprocess.Popen[bytes], Path]] = []

    def socket_for(self, sid: str) -> str | None:
        """The agent socket of ``sid`` (starting an agent for key files); None if not given."""
        if sid not in self.sources:
            return None
        if sid not in self._sockets:
            paths = self.sources[sid]
            if len(paths) == 1 and _is_socket(paths[0]):
                self._sockets[sid] = paths[0]
            else:
                self._sockets[sid] = self._start_agent(sid, paths)
        return self._sockets[sid]

    def _start_agent(self, sid: str, keys: list[str]) -> str:
        agent, add = shutil.which("ssh-agent"), shutil.which("ssh-add")
        if agent is None or add is None:
            raise BuildError(f"--ssh {sid}=KEYFILE needs ssh-agent and ssh-add (openssh-client); "
                             "install them or pass --ssh ID=SOCKET of a running agent")
        home = Path(tempfile.mkdtemp(prefix="ssh-agent-", dir=self.work))
        sock = home / "agent.sock"
        # under a small supervisor: the agent holds the keys and must not outlive the build
        proc = subprocess.Popen([sys.executable, "-I", "-c", _SUPERVISE, str(os.getpid()),
                                 agent, "-D", "-a", str(sock)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self._agents.append((proc, home))
        deadline = time.monotonic() + _AGENT_START
        while not _is_socket(str(sock)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BuildError(f"--ssh {sid}: ssh-agent did not start")
            time.sleep(0.05)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSH_AUTH_SOCK": str(sock),
               "SSH_ASKPASS_REQUIRE": "never"}
        res = subprocess.run([add, "-q", *keys], stdin=subprocess.DEVNULL, capture_output=True,
                             env=env, start_new_session=True, check=False)
        if res.returncode != 0:
            why = (res.stderr or res.stdout).decode("utf-8", "replace").strip().splitlines()
            raise BuildError(f"--ssh {sid}: ssh-add could not load {', '.join(keys)}"
                             + (f" ({why[-1]})" if why else "")
                             + "; a passphrase-protected key must be loaded into your own "
                             "ssh-agent and passed as --ssh ID=$SSH_AUTH_SOCK")
        return str(sock)

    def close(self) -> None:
        """Stop the agents this build started and remove their sockets."""
        for proc, home in self._agents:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(home, ignore_errors=True)
        self._agents.clear()
        self._sockets.clear()


def _is_socket(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class AgentProxy:
    """A listening socket at ``path`` (owner ``uid:gid``, ``mode``) forwarding every
    connection to the agent at ``upstream``, until ``close()``."""

    def __init__(self, upstream: str, path: Path, *, uid: int = 0, gid: int = 0,
                 mode: int = 0o600) -> None:
        self.upstream = upstream
        self.path = path
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._srv.bind(str(path))
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            self._srv.listen(16)
        except OSError:
            self._srv.close()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, name="ssh-agent-proxy",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self._srv.fileno(), self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                client, _ = self._srv.accept()
            except OSError:
                continue
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                up.connect(self.upstream)
            except OSError:
                client.close()
                up.close()
                continue
            with self._lock:
                self._conns += [client, up]
                for a, b in ((client, up), (up, client)):
                    t = threading.Thread(target=_pump, args=(a, b), daemon=True)
                    self._threads.append(t)
                    t.start()

    def close(self) -> None:
        """Stop accepting, cut every open connection, remove the socket."""
        os.write(self._wake_w, b"x")
        self._thread.join()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            threads, self._threads = self._threads, []
        for t in threads:
            t.join()
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        self._srv.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until EOF, then pass the EOF on."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
