"""Metadata instructions: ARG ENV LABEL EXPOSE WORKDIR USER VOLUME STOPSIGNAL HEALTHCHECK SHELL
ENTRYPOINT CMD ONBUILD MAINTAINER. All but WORKDIR and VOLUME (when they create a directory) add
a history entry with ``empty_layer``. Commands arrive expanded (``commands.expand_command``)."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.commands import (
    ArgCmd,
    CmdCmd,
    Command,
    EntrypointCmd,
    EnvCmd,
    ExposeCmd,
    HealthcheckCmd,
    LabelCmd,
    MaintainerCmd,
    OnbuildCmd,
    ShellCmd,
    StopsignalCmd,
    UserCmd,
    VolumeCmd,
    WorkdirCmd,
)
from trustbuild.builder.config import LayerRef
from trustbuild.builder.layers import write_paths_layer
from trustbuild.builder.rootfs import clean_abs, mkdir_all, secure_join
from trustbuild.builder.steps import layer_step
from trustbuild.builder.users import resolve_chown
from trustbuild.errors import TrustbuildError

if TYPE_CHECKING:
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import MetaContext

__all__ = ["handle_arg", "handle_env", "handle_label", "handle_expose", "handle_workdir",
           "handle_user", "handle_volume", "handle_stopsignal", "handle_healthcheck",
           "handle_shell", "handle_entrypoint", "handle_cmd", "handle_onbuild",
           "handle_maintainer", "shell_of", "json_list"]

DEFAULT_SHELL = ["/bin/sh", "-c"]
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def shell_of(st: StageRun) -> list[str]:
    """The stage's SHELL (Docker's default ``/bin/sh -c``)."""
    return list(st.image.runtime.shell or DEFAULT_SHELL)


def json_list(values: list[str]) -> str:
    """A list as BuildKit prints it in history (Go's ``%q``: ``["a" "b"]``)."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _meta(ex: MetaContext, st: StageRun, ins: Command, created_by: str) -> None:
    ex.step(st, ins, created_by)
    st.image.add_history(created_by, created=ex.created(), empty_layer=True)


def handle_arg(ex: MetaContext, st: StageRun, ins: ArgCmd) -> None:
    """ARG NAME[=default]: --build-arg wins, then the default, then the global ARG value.

    The name is expanded too (``ARG ${PREFIX}_VERSION=1``), as Docker does.
    """
    values = ex.expander(st)
    for name, default in ins.pairs:
        st.args[name] = values.arg_value(name, default)
    _meta(ex, st, ins, ins.original)  # as written: never a --build-arg value


def handle_env(ex: MetaContext, st: StageRun, ins: EnvCmd) -> None:
    """ENV k=v ...: every value expanded against the variables as they were before it."""
    for k, v in ins.pairs:
        st.image.set_env(k, v)
    _meta(ex, st, ins, "ENV " + " ".join(f"{k}={v}" for k, v in ins.pairs))


def handle_label(ex: MetaContext, st: StageRun, ins: LabelCmd) -> None:
    """LABEL k=v ..."""
    labels = st.image.runtime.labels or {}
    for k, v in ins.pairs:
        labels[k] = v
    st.image.runtime.labels = labels
    _meta(ex, st, ins, "LABEL " + " ".join(f"{k}={v}" for k, v in ins.pairs))


def handle_expose(ex: MetaContext, st: StageRun, ins: ExposeCmd) -> None:
    """EXPOSE port[/proto] and ranges."""
    ports = dict(st.image.runtime.exposed_ports or {})
    added = []
    for item in ins.ports:
        m = _PORT.match(item)
        if not m:
            raise ex.error(ins, f"invalid port {item!r}: expected PORT[-END][/tcp|udp|sctp]")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        proto = (m.group(3) or "tcp").lower()
        if hi < lo or hi > 65535:
            raise ex.error(ins, f"invalid port range {item!r}")
        key = f"{lo}-{hi}/{proto}" if m.group(2) else f"{lo}/{proto}"
        ports[key] = {}  # ranges kept as one key, as buildah writes them
        added.append(key)
    st.image.runtime.exposed_ports = ports
    _meta(ex, st, ins, "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in added) + "]")


def _user_ids(st: StageRun) -> tuple[int, int]:
    user = st.image.runtime.user or ""
    if not user:
        return 0, 0
    try:
        return resolve_chown(st.rootfs, user)  # a bare uid means uid:uid, as buildah does
    except TrustbuildError:
        return 0, 0


def handle_workdir(ex: MetaContext, st: StageRun, ins: WorkdirCmd) -> None:
    """WORKDIR: relative to the previous one; created (owned by USER) when missing."""
    if not ins.path:
        raise ex.error(ins, "WORKDIR requires a non-empty path")
    new = clean_abs(ins.path, workdir=st.image.runtime.working_dir or "/")
    st.image.runtime.working_dir = new
    text = f"WORKDIR {new}"
    rec = ex.step(st, ins, text)
    key = ex.cache_key(st, "WORKDIR", {"path": new, "user": st.image.runtime.user or ""})

    def produce() -> LayerRef | None:
        uid, gid = _user_ids(st)
        created = mkdir_all(st.rootfs, new, uid=uid, gid=gid)
        return write_paths_layer(ex.layers, st.rootfs, created) if created else None

    layer_step(ex, st, ins, rec, key=key, history=text, produce=produce)


def handle_user(ex: MetaContext, st: StageRun, ins: UserCmd) -> None:
    """USER name|uid[:group|gid] (kept as written; resolved when a RUN needs it)."""
    st.image.runtime.user = ins.user
    _meta(ex, st, ins, f"USER {ins.user}")


def _covered(path: str, volumes: list[str]) -> bool:
    return any(path == v or path.startswith(v.rstrip("/") + "/") for v in volumes)


def _run_follows(st: StageRun, ins: Command) -> bool:
    """True when ``ins`` ends the stage or a RUN comes after it (buildah's rule for VOLUME)."""
    rest = st.stage.commands
    for i, other in enumerate(rest):
        if other.line == ins.line:
            rest = rest[i + 1:]
            break
    return not rest or any(other.keyword == "RUN" for other in rest)


def handle_volume(ex: MetaContext, st: StageRun, ins: VolumeCmd) -> None:
    """VOLUME ["/a", "/b"] or VOLUME /a /b.

    Missing volume directories are created (root, 0755, symlinks resolved inside the rootfs) in
    a layer of their own when a RUN follows in the stage or the VOLUME ends it, as buildah
    does (a path inside an earlier volume is left alone); BuildKit only records the config.
    """
    vols = dict(st.image.runtime.volumes or {})
    declared = [clean_abs(v) for v in vols]
    added = []
    for value in ins.paths:
        if not value.strip():
            raise ex.error(ins, "VOLUME specified can not be an empty string")
        vols[value] = {}
        added.append(value)
    st.image.runtime.volumes = vols
    text = "VOLUME [" + " ".join(added) + "]"
    wanted = [(v, clean_abs(v)) for v in added] if _run_follows(st, ins) else []
    rec = ex.step(st, ins, text)
    key = ex.cache_key(st, "VOLUME", {"create": [p for _, p in wanted],
                                      "declared": sorted(declared)})

    def produce() -> LayerRef | None:
        created: list[str] = []
        for value, path in wanted:
            if _covered(path, declared):
                continue
            declared.append(path)
            if os.path.lexists(secure_join(st.rootfs, path)):
                continue  # whatever is there already (even a file) stays
            try:
                created.extend(mkdir_all(st.rootfs, path))
            except TrustbuildError as exc:
                raise ex.error(ins, f"cannot create volume directory {value}: {exc}") from None
        return write_paths_layer(ex.layers, st.rootfs, created) if created else None

    if not wanted:  # nothing to create: metadata only
        st.image.add_history(text, created=ex.created(), empty_layer=True)
        st.chain = chain_step(st.chain, "VOLUME", text)
        return
    layer_step(ex, st, ins, rec, key=key, history=text, produce=produce)


def handle_stopsignal(ex: MetaContext, st: StageRun, ins: StopsignalCmd) -> None:
    """STOPSIGNAL signal."""
    st.image.runtime.stop_signal = ins.signal
    _meta(ex, st, ins, f"STOPSIGNAL {ins.signal}")


def handle_healthcheck(ex: MetaContext, st: StageRun, ins: HealthcheckCmd) -> None:
    """HEALTHCHECK [options] CMD ... | NONE (durations in nanoseconds, as Docker stores them)."""
    st.image.runtime.healthcheck = ins.health
    test = list(ins.health.test)
    if test and test[0] == "NONE":
        text = "HEALTHCHECK NONE"
    else:
        text = f"HEALTHCHECK &{{{json_list(test)} ...}}"
    _meta(ex, st, ins, text)


def handle_shell(ex: MetaContext, st: StageRun, ins: ShellCmd) -> None:
    """SHELL ["exe", "arg"]."""
    st.image.runtime.shell = list(ins.shell)
    _meta(ex, st, ins, "SHELL " + json_list(list(ins.shell)))


def _command(st: StageRun, ins: CmdCmd | EntrypointCmd) -> list[str]:
    if ins.json_form:
        return list(ins.args)
    return shell_of(st) + [ins.args[0]] if ins.args else []


def handle_entrypoint(ex: MetaContext, st: StageRun, ins: EntrypointCmd) -> None:
    """ENTRYPOINT: shell form wrapped with SHELL; resets a CMD inherited from the base."""
    cmd = _command(st, ins)
    st.image.runtime.entrypoint = cmd or None
    if not st.cmd_set:
        st.image.runtime.cmd = None
    _meta(ex, st, ins, "ENTRYPOINT " + json_list(cmd))


def handle_cmd(ex: MetaContext, st: StageRun, ins: CmdCmd) -> None:
    """CMD: shell form wrapped with SHELL."""
    cmd = _command(st, ins)
    st.image.runtime.cmd = cmd
    st.cmd_set = True
    _meta(ex, st, ins, "CMD " + json_list(cmd))


def handle_onbuild(ex: MetaContext, st: StageRun, ins: OnbuildCmd) -> None:
    """ONBUILD INSTRUCTION: recorded in the config for images built FROM this one."""
    triggers = list(st.image.runtime.on_build or [])
    triggers.append(ins.expression)
    st.image.runtime.on_build = triggers
    _meta(ex, st, ins, f"ONBUILD {ins.expression}")


def handle_maintainer(ex: MetaContext, st: StageRun, ins: MaintainerCmd) -> None:
    """MAINTAINER name (deprecated; sets ``author``)."""
    st.image.config.author = ins.maintainer
    _meta(ex, st, ins, f"MAINTAINER {ins.maintainer}")
