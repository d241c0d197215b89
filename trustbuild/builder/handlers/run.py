"""RUN: argv from SHELL or JSON form (heredocs included), env = ENV + build args, run by the
stage's Runner (``trustbuild.sandbox.StepRunner``), which returns the step's layer."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from trustbuild._internal.secrets import redact_text
from trustbuild.builder.config import DEFAULT_PATH, LayerRef
from trustbuild.builder.dockerfile import Instruction
from trustbuild.builder.handlers.meta import shell_of
from trustbuild.builder.mounts import SECRET_TYPES, MountSpec, mount_specs, sandbox_mounts
from trustbuild.builder.secretmounts import StepSecrets, step_secrets
from trustbuild.builder.users import resolve_user
from trustbuild.errors import BuildError, DockerfileError
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer

if TYPE_CHECKING:
    from trustbuild.builder.executor import Executor, StageRun

__all__ = ["handle_run", "run_argv", "make_spec"]

_ONLY_HEREDOC = re.compile(r"^\s*\d*<<-?\s*['\"]?([A-Za-z0-9_.-]+)['\"]?\s*$")


def run_argv(st: StageRun, ins: Instruction) -> list[str]:
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


def make_spec(**kw: Any) -> Any:
    """A ``trustbuild.sandbox.RunSpec`` (a plain namespace when the sandbox is not installed)."""
    try:
        from trustbuild.sandbox import RunSpec
    except ImportError:
        return SimpleNamespace(**kw)
    return RunSpec(**kw)


def _history_text(ex: Executor, st: StageRun, argv: list[str], ins: Instruction) -> str:
    args = {k: v for k, v in st.args.items() if v is not None and k not in st.image.env()}
    prefix = ""
    if args:
        prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " "
    body = " ".join(argv)
    return redact_text(f"RUN {prefix}{body} # buildkit", values=ex.options.build_args)


def handle_run(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """RUN: fails the build with ``Dockerfile:LINE RUN ...: exit code N`` on a non-zero exit."""
    mounts = mount_specs(ex, st, ins)
    if ins.flag("security"):
        raise ex.error(ins, "RUN --security is not supported: choose the sandbox with "
                            "--security-profile for the whole build")
    network = ins.flag("network")
    if network not in (None, "default", "none", "host"):
        raise ex.error(ins, f"RUN --network={network}: expected default, none or host")
    argv = run_argv(st, ins)
    env = st.run_env()
    env.setdefault("PATH", DEFAULT_PATH)
    user_spec = st.image.c.get("User") or ""
    user = ""
    if user_spec:
        try:
            ids = resolve_user(st.rootfs, user_spec)
        except BuildError as exc:
            raise ex.error(ins, str(exc)) from None
        user = user_spec  # the sandbox resolves it again and adds supplementary groups
        env.setdefault("HOME", ids.home)
    else:
        env.setdefault("HOME", "/root")
    workdir = st.image.c.get("WorkingDir") or "/"
    text = _history_text(ex, st, argv, ins)
    rec = ex.step(st, ins, text)
    plain = [m for m in mounts if m.type not in SECRET_TYPES]
    secrets = step_secrets(ex, st, ins, [m for m in mounts if m.type in SECRET_TYPES], workdir)
    tmp = Path(tempfile.mkdtemp(prefix="run-mounts-", dir=ex.work)) if plain else None
    try:
        _run(ex, st, ins, plain, tmp, rec, secrets, argv=argv, env=env, user=user,
             workdir=workdir, network=network, text=text)
    finally:
        secrets.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(ex: Executor, st: StageRun, ins: Instruction, mounts: list[MountSpec],
         tmp: Path | None, rec: Any, secrets: StepSecrets, *, argv: list[str],
         env: dict[str, str], user: str, workdir: str, network: str | None,
         text: str) -> None:
    extra = sandbox_mounts(ex, st, ins, mounts, workdir, tmp) if tmp is not None else []
    spec = make_spec(argv=argv, env=env, workdir=workdir,
                     user=user, label=f"{ex.df.path}:{ins.line} RUN",
                     security_profile=ex.options.security_profile,
                     seccomp_profile=ex.options.seccomp_profile,
                     network=None if network in (None, "default") else network,
                     **({"extra_mounts": extra + secrets.mounts}
                        if extra or secrets.mounts else {}),
                     **({"secrets": secrets.files, "secret_env": secrets.env}
                        if secrets.files or secrets.env else {}))
    # a bind mount's content is not part of the key: such steps are never taken from the cache
    cacheable = ex.cache is not None and not any(m.type == "bind" for m in mounts)
    if cacheable:
        assert ex.cache is not None
        key = ex.cache.key(st.chain, {
            "argv": argv, "env": env, "user": user, "workdir": workdir, "network": network,
            "security_profile": ex.options.security_profile,
            "seccomp_profile": ex.options.seccomp_profile,
            "volumes": sorted(st.image.c.get("Volumes") or {}),
            **({"mounts": [[m.type, e[1], e[2]] for m, e in zip(mounts, extra, strict=True)]}
               if mounts else {}),
            # secret and ssh mounts by id and target only: a value is never key material
            **({"secrets": secrets.key} if secrets.key else {})})
        cached = ex.cache.fetch(key)
        if cached is not None:
            extract_layer(cached.path, st.rootfs, diff_id=Digest.parse(cached.diff_id),
                          what=f"cached layer of {ex.df.path}:{ins.line}",
                          exclude=ex.cfs.excluded if ex.cfs is not None else None)
            print(f"{ex.df.path}:{ins.line} RUN: using cached layer {cached.descriptor.digest}",
                  file=ex.options.output)
            st.image.add_layer(cached)
            st.image.add_history(text, created=ex.created(), empty_layer=False)
            rec.layer_digest = str(cached.descriptor.digest)
            rec.cached = True
            return
    runner = ex.runner_for(st)
    # Docker's VOLUME rule: changes a RUN makes inside a declared volume are discarded
    volumes = tuple(sorted(st.image.c.get("Volumes") or {}))
    if hasattr(runner, "ignore_paths"):
        runner.ignore_paths = tuple(ex.options.ignore_paths) + volumes
    dest = ex.layers.next_path()
    result = runner.run(spec, dest)
    if result.exit_code != 0:
        raw_tail = result.output_tail or []
        lines = raw_tail.splitlines() if isinstance(raw_tail, str) else list(raw_tail)
        tail = [t for t in lines if t.strip()][-5:]
        msg = f"exit code {result.exit_code}"
        if tail:
            msg += " (last output: " + " | ".join(t.strip() for t in tail) + ")"
        raise DockerfileError(msg, path=ex.df.path, line=ins.line,
                              instruction=_short(ins.original))
    if result.layer is not None:
        info = result.layer
        layer = LayerRef(info.descriptor(), str(info.diff_id), info.path)
        st.image.add_layer(layer)
        rec.layer_digest = str(layer.descriptor.digest)
        st.image.add_history(text, created=ex.created(), empty_layer=False)
        if cacheable and not ex.options.no_push_cache:  # --no-push-cache: read-only cache
            assert ex.cache is not None
            ex.cache.put(key, layer)
    else:
        st.image.add_history(text, created=ex.created(), empty_layer=True)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
