"""RUN: argv from SHELL or JSON form (heredocs included), env = ENV + build args, run by the
stage's Runner (``trustbuild.sandbox.StepRunner``), which returns the step's layer."""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild._internal.secrets import redact_text
from trustbuild._internal.users import StepUser, resolve_user
from trustbuild.builder.commands import NetworkMode, RunCmd
from trustbuild.builder.config import LayerRef
from trustbuild.builder.handlers.meta import shell_of
from trustbuild.builder.mounts import SECRET_TYPES, sandbox_mounts
from trustbuild.builder.secretmounts import StepSecrets, step_secrets
from trustbuild.builder.steps import layer_step
from trustbuild.errors import BuildError, DockerfileError
from trustbuild.sandbox.paths import DEFAULT_PATH
from trustbuild.sandbox.spec import RunSpec

if TYPE_CHECKING:
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import RunContext

__all__ = ["handle_run", "run_argv"]

_ONLY_HEREDOC = re.compile(r"^\s*\d*<<-?\s*['\"]?([A-Za-z0-9_.-]+)['\"]?\s*$")


def run_argv(st: StageRun, ins: RunCmd) -> list[str]:
    """The command to execute: JSON form as is; shell form (and heredocs) through SHELL."""
    if ins.json_form:
        return list(ins.args)
    shell = shell_of(st)
    script = ins.args[0] if ins.args else ""
    if ins.heredocs:
        if _ONLY_HEREDOC.match(script) and len(ins.heredocs) == 1:
            return shell + [ins.heredocs[0].content]  # RUN <<EOF: the body is the script
        body = script
        for doc in ins.heredocs:
            body += "\n" + doc.content + doc.name
        return shell + [body]
    return shell + [script]


def _history_text(ex: RunContext, st: StageRun, argv: list[str]) -> str:
    args = {k: v for k, v in st.args.items() if v is not None and k not in st.image.env()}
    prefix = ""
    if args:
        prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " "
    body = " ".join(argv)
    return redact_text(f"RUN {prefix}{body} # buildkit", values=ex.options.build_args)


def handle_run(ex: RunContext, st: StageRun, ins: RunCmd) -> None:
    """RUN: fails the build with ``Dockerfile:LINE RUN ...: exit code N`` on a non-zero exit."""
    mounts = list(ins.mounts)
    if ins.security is not None:
        raise ex.error(ins, "RUN --security is not supported: choose the sandbox with "
                            "--security-profile for the whole build")
    network = ins.network
    argv = run_argv(st, ins)
    env = st.run_env()
    env.setdefault("PATH", DEFAULT_PATH)
    user_spec = st.image.runtime.user or ""
    workdir = st.image.runtime.working_dir or "/"
    volumes = sorted(st.image.runtime.volumes or {})
    text = _history_text(ex, st, argv)
    rec = ex.step(st, ins, text)
    plain = [m for m in mounts if m.type not in SECRET_TYPES]
    # a bind mount's content is not part of the key: such steps are never taken from the cache;
    # secret and ssh mounts enter the key by id, target and options only, never by value
    key = None
    if not any(m.type == "bind" for m in mounts):
        key = ex.cache_key(st, "RUN", {
            "argv": argv, "env": env, "user": user_spec, "workdir": workdir,
            "network": network, "volumes": volumes,
            "mounts": [[m.type, m.target, m.id, m.sharing, m.uid, m.gid, m.mode, m.rw, m.size,
                        m.required, m.env] for m in mounts]})

    def produce() -> LayerRef | None:
        run_env = dict(env)
        try:  # once, here: the sandbox runs the step with these ids
            user = resolve_user(st.rootfs, user_spec)
        except BuildError as exc:
            raise ex.error(ins, str(exc)) from None
        run_env.setdefault("HOME", user.home if user_spec else "/root")
        secrets = step_secrets(ex, st, ins, [m for m in mounts if m.type in SECRET_TYPES],
                               workdir)
        tmp = Path(tempfile.mkdtemp(prefix="run-mounts-", dir=ex.work)) if plain else None
        try:
            with ExitStack() as locks:  # cache mount locks, held while the step runs
                extra = (sandbox_mounts(ex, st, ins, plain, workdir, tmp, locks)
                         if tmp is not None else [])
                return _run(ex, st, ins, extra, secrets, argv=argv, env=run_env, user=user,
                            workdir=workdir, network=network)
        finally:
            secrets.close()
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    layer_step(ex, st, ins, rec, key=key, history=text, produce=produce)


def _run(ex: RunContext, st: StageRun, ins: RunCmd, extra: list[tuple[str, str, str]],
         secrets: StepSecrets, *, argv: list[str], env: dict[str, str], user: StepUser,
         workdir: str, network: NetworkMode | None) -> LayerRef | None:
    spec = RunSpec(argv=argv, env=env, workdir=workdir, user=user,
                   label=f"{ex.path}:{ins.line} RUN",
                   security_profile=ex.options.security_profile,
                   seccomp_profile=ex.options.seccomp_profile,
                   network=None if network is None or network == "default" else network,
                   extra_mounts=[*extra, *secrets.mounts], secrets=secrets.files,
                   secret_env=secrets.env,
                   # Docker's VOLUME rule: changes a RUN makes inside a declared volume are
                   # discarded (the runner adds the build's --ignore-path list)
                   ignore_paths=tuple(sorted(st.image.runtime.volumes or {})))
    result = ex.runner_for(st).run(spec, ex.layers.next_path())
    if result.exit_code != 0:
        tail = [t for t in result.output_tail if t.strip()][-5:]
        msg = f"exit code {result.exit_code}"
        if tail:
            msg += " (last output: " + " | ".join(t.strip() for t in tail) + ")"
        raise DockerfileError(msg, path=ex.path, line=ins.line,
                              instruction=_short(ins.original))
    if result.layer is None:
        return None
    info = result.layer
    return LayerRef(info.descriptor(), str(info.diff_id), info.path)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
