"""``RUN --mount=type=secret`` and ``type=ssh`` for one step: what the sandbox gets.

Secret values go into ``RunSpec.secrets`` (files the sandbox puts on a private tmpfs) and
``RunSpec.secret_env``; ssh mounts become a bind of a per-step proxy socket
(``trustbuild.builder.sshagent``). The cache key material lists ids and targets only.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild.builder.mounts import MountSpec, resolve_target
from trustbuild.builder.sshagent import AgentProxy
from trustbuild.sandbox.spec import SecretFile

if TYPE_CHECKING:
    from trustbuild.builder.commands import Command
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import RunContext

__all__ = ["StepSecrets", "step_secrets", "missing_message"]


@dataclass
class StepSecrets:
    """The secret and ssh mounts of one step; ``close()`` after the step."""

    files: list[SecretFile] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # proxy socket binds
    # ids, targets, modes: never values
    key: list[list[str | int | bool]] = field(default_factory=list)
    proxies: list[AgentProxy] = field(default_factory=list)
    proxy_dir: Path | None = None

    def close(self) -> None:
        """Stop the step's agent proxies and remove their sockets."""
        for proxy in self.proxies:
            proxy.close()
        self.proxies.clear()
        if self.proxy_dir is not None:
            shutil.rmtree(self.proxy_dir, ignore_errors=True)
            self.proxy_dir = None


def missing_message(spec: MountSpec) -> str:
    """The one-line error for a required secret or ssh agent that was not given."""
    if spec.type == "secret":
        return (f"secret {spec.id!r} is required but was not given: pass "
                f"--secret id={spec.id},src=FILE (or env=VAR)")
    return (f"ssh agent {spec.id!r} is required but was not given: pass --ssh {spec.id} "
            f"(uses $SSH_AUTH_SOCK) or --ssh {spec.id}=SOCKET|KEYFILE")


def step_secrets(ex: RunContext, st: StageRun, ins: Command, specs: list[MountSpec],
                 workdir: str) -> StepSecrets:
    """Resolve the step's secret/ssh mounts (a missing optional one is simply not mounted)."""
    out = StepSecrets()
    try:
        for spec in specs:
            if spec.type == "secret":
                _add_secret(ex, st, ins, spec, workdir, out)
            elif spec.type == "ssh":
                _add_ssh(ex, st, ins, spec, workdir, out)
    except BaseException:
        out.close()
        raise
    return out


def _add_secret(ex: RunContext, st: StageRun, ins: Command, spec: MountSpec, workdir: str,
                out: StepSecrets) -> None:
    value = ex.options.secrets.get(spec.id)
    if value is None and spec.required:
        raise ex.error(ins, missing_message(spec))
    target = resolve_target(ex, st, ins, spec.target, workdir) if spec.target else ""
    out.key.append(["secret", spec.id, target, spec.env, spec.mode, spec.uid, spec.gid,
                    value is not None])
    if value is None:
        return
    if target:
        out.files.append(SecretFile(target=target, data=value, mode=spec.mode, uid=spec.uid,
                                      gid=spec.gid))
    if spec.env:
        out.env[spec.env] = value.decode("utf-8", "surrogateescape")


def _add_ssh(ex: RunContext, st: StageRun, ins: Command, spec: MountSpec, workdir: str,
             out: StepSecrets) -> None:
    try:
        upstream = ex.ssh_agents.socket_for(spec.id)
    except Exception as exc:  # noqa: BLE001 - reported at the instruction
        raise ex.error(ins, str(exc)) from None
    if upstream is None and spec.required:
        raise ex.error(ins, missing_message(spec))
    target = resolve_target(ex, st, ins, spec.target, workdir)
    out.key.append(["ssh", spec.id, target, spec.mode, spec.uid, spec.gid, upstream is not None])
    if upstream is None:
        return
    if out.proxy_dir is None:
        # short path in the temp dir: a socket path must fit in 108 bytes
        out.proxy_dir = Path(tempfile.mkdtemp(prefix="tb-ssh-"))
    path = out.proxy_dir / f"{len(out.proxies)}.sock"
    try:
        proxy = AgentProxy(upstream, path, uid=spec.uid, gid=spec.gid, mode=spec.mode)
    except OSError as exc:
        raise ex.error(ins, f"--mount type=ssh: cannot create the agent socket: "
                            f"{exc.strerror or exc}") from None
    out.proxies.append(proxy)
    out.mounts.append((str(path), target, "ro"))
    out.env.setdefault("SSH_AUTH_SOCK", target)
