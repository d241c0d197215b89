"""The ``--ssh`` agents and the per-step proxy socket, with the real openssh ssh-agent."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from trustbuild.builder.sshagent import AgentProxy, SshAgents
from trustbuild.errors import BuildError

pytestmark = pytest.mark.skipif(shutil.which("ssh-agent") is None
                                or shutil.which("ssh-keygen") is None,
                                reason="openssh-client is needed")


def _list(sock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh-add", "-l"], env={"SSH_AUTH_SOCK": str(sock), "PATH":
                          os.environ["PATH"]}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_key_file_agent_is_reachable_through_the_proxy(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tb-test-key",
                    "-f", str(key)], check=True, timeout=60)
    agents = SshAgents({"deploy": [str(key)]}, tmp_path)
    try:
        upstream = agents.socket_for("deploy")
        assert upstream is not None and agents.socket_for("other") is None
        proxy = AgentProxy(upstream, tmp_path / "p.sock", uid=0, gid=0, mode=0o660)
        try:
            st = os.stat(tmp_path / "p.sock")
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
            for _ in range(2):  # two connections in a row
                res = _list(tmp_path / "p.sock")
                assert res.returncode == 0 and "tb-test-key" in res.stdout, res
        finally:
            proxy.close()
        assert not (tmp_path / "p.sock").exists()
    finally:
        agents.close()
    assert not Path(upstream).exists()  # the agent it started is gone with its socket


def test_passphrase_protected_key_is_a_one_line_error(tmp_path: Path) -> None:
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "sesame", "-f", str(key)],
                   check=True, timeout=60)
    agents = SshAgents({"k": [str(key)]}, tmp_path)
    try:
        with pytest.raises(BuildError, match="ssh-add could not load") as info:
            agents.socket_for("k")
        assert "\n" not in str(info.value) and "SSH_AUTH_SOCK" in str(info.value)
    finally:
        agents.close()


def _agent_pids(sock: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"ssh-agent") and sock.encode() in cmd:
                pids.append(int(entry.name))
    return pids


def test_agent_dies_with_a_killed_build(tmp_path: Path) -> None:
    """The agent holds the keys: a SIGKILLed build (no cleanup runs) must not leave it."""
    import sys
    import time

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, timeout=60)
    script = ("import os, sys\nfrom pathlib import Path\n"
              "from trustbuild.builder.sshagent import SshAgents\n"
              f"a = SshAgents({{'k': [{str(key)!r}]}}, Path({str(tmp_path)!r}))\n"
              "print(a.socket_for('k'), flush=True)\nos.kill(os.getpid(), 9)\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    sock = res.stdout.strip()
    assert res.returncode == -9 and sock, res
    deadline = time.monotonic() + 60
    while _agent_pids(sock) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _agent_pids(sock) == []
