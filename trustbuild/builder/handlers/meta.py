"""Metadata instructions: ARG ENV LABEL EXPOSE WORKDIR USER VOLUME STOPSIGNAL HEALTHCHECK SHELL
ENTRYPOINT CMD ONBUILD MAINTAINER. All but WORKDIR and VOLUME (when they create a directory) add
a history entry with ``empty_layer``."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.config import LayerRef
from trustbuild.builder.dockerfile import Instruction
from trustbuild.builder.layers import write_paths_layer
from trustbuild.builder.rootfs import clean_abs, mkdir_all, secure_join
from trustbuild.builder.steps import layer_step
from trustbuild.builder.users import resolve_chown
from trustbuild.errors import TrustbuildError

if TYPE_CHECKING:
    from trustbuild.builder.executor import Executor, StageRun

__all__ = ["handle_arg", "handle_env", "handle_label", "handle_expose", "handle_workdir",
           "handle_user", "handle_volume", "handle_stopsignal", "handle_healthcheck",
           "handle_shell", "handle_entrypoint", "handle_cmd", "handle_onbuild",
           "handle_maintainer", "shell_of", "json_list"]

DEFAULT_SHELL = ["/bin/sh", "-c"]
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def shell_of(st: StageRun) -> list[str]:
    """The stage's SHELL (Docker's default ``/bin/sh -c``)."""
    return list(st.image.c.get("Shell") or DEFAULT_SHELL)


def json_list(values: list[str]) -> str:
    """A list as BuildKit prints it in history (Go's ``%q``: ``["a" "b"]``)."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def _meta(ex: Executor, st: StageRun, ins: Instruction, created_by: str) -> None:
    ex.step(st, ins, created_by)
    st.image.add_history(created_by, created=ex.created(), empty_layer=True)


def handle_arg(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """ARG NAME[=default]: --build-arg wins, then the default, then the global ARG value.

    The name is expanded too (``ARG ${PREFIX}_VERSION=1``), as Docker does.
    """
    for raw_name, default in ins.arg_defs:
        name = ex.expand(st, raw_name) if "$" in raw_name else raw_name
        if not name:
            raise ex.error(ins, f"ARG name {raw_name!r} expands to an empty name")
        if name in ex.options.build_args:
            value: str | None = ex.options.build_args[name]
            ex.used_args.add(name)
        elif default is not None:
            value = ex.expand(st, default)
        elif ex.global_args.get(name) is not None:
            value = ex.global_args[name]
        elif name in ex.predefined:
            value = ex.predefined[name]
        else:
            value = None
        st.args[name] = value
    _meta(ex, st, ins, ins.original)  # as written: never a --build-arg value


def handle_env(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """ENV k=v ...: every value expands against the variables as they were before it."""
    env = st.expansion_env()
    from trustbuild.builder.expand import expand

    pairs = [(expand(k, env, escape=ex.df.escape), expand(v, env, escape=ex.df.escape))
             for k, v in ins.pairs]
    for k, v in pairs:
        st.image.set_env(k, v)
    _meta(ex, st, ins, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))


def handle_label(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """LABEL k=v ..."""
    labels = st.image.c.get("Labels") or {}
    pairs = [(ex.expand(st, k), ex.expand(st, v)) for k, v in ins.pairs]
    for k, v in pairs:
        labels[k] = v
    st.image.c["Labels"] = labels
    _meta(ex, st, ins, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))


def handle_expose(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """EXPOSE port[/proto] and ranges."""
    ports = dict(st.image.c.get("ExposedPorts") or {})
    added = []
    for word in ins.args:
        for item in ex.expand_words(st, word):
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
    st.image.c["ExposedPorts"] = ports
    _meta(ex, st, ins, "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in added) + "]")


def _user_ids(st: StageRun) -> tuple[int, int]:
    user = st.image.c.get("User") or ""
    if not user:
        return 0, 0
    try:
        return resolve_chown(st.rootfs, user)  # a bare uid means uid:uid, as buildah does
    except TrustbuildError:
        return 0, 0


def handle_workdir(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """WORKDIR: relative to the previous one; created (owned by USER) when missing."""
    if len(ins.args) != 1:
        raise ex.error(ins, "WORKDIR requires exactly one argument")
    path = ex.expand(st, ins.args[0])
    if not path:
        raise ex.error(ins, "WORKDIR requires a non-empty path")
    new = clean_abs(path, workdir=st.image.c.get("WorkingDir") or "/")
    st.image.c["WorkingDir"] = new
    text = f"WORKDIR {new}"
    rec = ex.step(st, ins, text)
    key = ex.cache_key(st, "WORKDIR", {"path": new, "user": st.image.c.get("User") or ""})

    def produce() -> LayerRef | None:
        uid, gid = _user_ids(st)
        created = mkdir_all(st.rootfs, new, uid=uid, gid=gid)
        return write_paths_layer(ex.layers, st.rootfs, created) if created else None

    layer_step(ex, st, ins, rec, key=key, history=text, produce=produce)


def handle_user(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """USER name|uid[:group|gid] (kept as written; resolved when a RUN needs it)."""
    if len(ins.args) != 1:
        raise ex.error(ins, "USER requires exactly one argument")
    user = ex.expand(st, ins.args[0])
    st.image.c["User"] = user
    _meta(ex, st, ins, f"USER {user}")


def _covered(path: str, volumes: list[str]) -> bool:
    return any(path == v or path.startswith(v.rstrip("/") + "/") for v in volumes)


def _run_follows(st: StageRun, ins: Instruction) -> bool:
    """True when ``ins`` ends the stage or a RUN comes after it (buildah's rule for VOLUME)."""
    rest = st.stage.instructions
    for i, other in enumerate(rest):
        if other is ins:
            rest = rest[i + 1:]
            break
    return not rest or any(other.cmd == "RUN" for other in rest)


def handle_volume(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """VOLUME ["/a", "/b"] or VOLUME /a /b.

    Missing volume directories are created (root, 0755, symlinks resolved inside the rootfs) in
    a layer of their own when a RUN follows in the stage or the VOLUME ends it, as buildah
    does (a path inside an earlier volume is left alone); BuildKit only records the config.
    """
    vols = dict(st.image.c.get("Volumes") or {})
    declared = [clean_abs(v) for v in vols]
    added = []
    for word in ins.args:
        value = ex.expand(st, word)
        if not value.strip():
            raise ex.error(ins, "VOLUME specified can not be an empty string")
        vols[value] = {}
        added.append(value)
    st.image.c["Volumes"] = vols
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


def handle_stopsignal(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """STOPSIGNAL signal."""
    if len(ins.args) != 1:
        raise ex.error(ins, "STOPSIGNAL requires exactly one argument")
    sig = ex.expand(st, ins.args[0])
    st.image.c["StopSignal"] = sig
    _meta(ex, st, ins, f"STOPSIGNAL {sig}")


def handle_healthcheck(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """HEALTHCHECK [options] CMD ... | NONE (durations in nanoseconds, as Docker stores them)."""
    hc = dict(ins.healthcheck or {})
    if not hc:
        raise ex.error(ins, "HEALTHCHECK requires CMD or NONE")
    st.image.c["Healthcheck"] = hc
    test = hc.get("Test") or []
    if test and test[0] == "NONE":
        text = "HEALTHCHECK NONE"
    else:
        text = f"HEALTHCHECK &{{{json_list(test)} ...}}"
    _meta(ex, st, ins, text)


def handle_shell(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """SHELL ["exe", "arg"]."""
    if not ins.json_form or not ins.args:
        raise ex.error(ins, 'SHELL requires the arguments to be in JSON form, '
                            'e.g. ["/bin/sh", "-c"]')
    st.image.c["Shell"] = list(ins.args)
    _meta(ex, st, ins, "SHELL " + json_list(list(ins.args)))


def _command(st: StageRun, ins: Instruction) -> list[str]:
    if ins.json_form:
        return list(ins.args)
    return shell_of(st) + [ins.args[0]] if ins.args else []


def handle_entrypoint(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """ENTRYPOINT: shell form wrapped with SHELL; resets a CMD inherited from the base."""
    cmd = _command(st, ins)
    st.image.c["Entrypoint"] = cmd or None
    if not st.cmd_set:
        st.image.c["Cmd"] = None
    _meta(ex, st, ins, "ENTRYPOINT " + json_list(cmd))


def handle_cmd(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """CMD: shell form wrapped with SHELL."""
    cmd = _command(st, ins)
    st.image.c["Cmd"] = cmd
    st.cmd_set = True
    _meta(ex, st, ins, "CMD " + json_list(cmd))


def handle_onbuild(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """ONBUILD INSTRUCTION: recorded in the config for images built FROM this one."""
    trigger = ins.raw_args.strip()
    if ins.onbuild is not None and ins.onbuild.original:
        trigger = ins.onbuild.original.strip()
    triggers = list(st.image.c.get("OnBuild") or [])
    triggers.append(trigger)
    st.image.c["OnBuild"] = triggers
    _meta(ex, st, ins, f"ONBUILD {trigger}")


def handle_maintainer(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """MAINTAINER name (deprecated; sets ``author``)."""
    name = ins.raw_args.strip() or " ".join(ins.args)
    st.image.config["author"] = name
    _meta(ex, st, ins, f"MAINTAINER {name}")
