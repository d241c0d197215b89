"""Instruction handlers: one function per Dockerfile instruction, all taking (executor, stage, ins).

``dispatch`` runs one instruction and times it into the BuildRecord; ``run_onbuild_triggers``
runs the ONBUILD triggers a stage inherits from its base image.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.dockerfile import Instruction, parse_dockerfile
from trustbuild.builder.handlers import copy as copy_handlers
from trustbuild.builder.handlers import meta, run
from trustbuild.builder.steps import LAYER_STEPS
from trustbuild.errors import DockerfileError, TrustbuildError

if TYPE_CHECKING:
    from trustbuild.builder.executor import Executor, StageRun

__all__ = ["dispatch", "run_onbuild_triggers", "HANDLERS"]

Handler = Callable[["Executor", "StageRun", Instruction], None]

HANDLERS: dict[str, Handler] = {
    "ARG": meta.handle_arg,
    "ENV": meta.handle_env,
    "LABEL": meta.handle_label,
    "EXPOSE": meta.handle_expose,
    "WORKDIR": meta.handle_workdir,
    "USER": meta.handle_user,
    "VOLUME": meta.handle_volume,
    "STOPSIGNAL": meta.handle_stopsignal,
    "HEALTHCHECK": meta.handle_healthcheck,
    "SHELL": meta.handle_shell,
    "ENTRYPOINT": meta.handle_entrypoint,
    "CMD": meta.handle_cmd,
    "ONBUILD": meta.handle_onbuild,
    "MAINTAINER": meta.handle_maintainer,
    "COPY": copy_handlers.handle_copy,
    "ADD": copy_handlers.handle_add,
    "RUN": run.handle_run,
}


def dispatch(ex: Executor, st: StageRun, ins: Instruction) -> None:
    """Run one instruction; errors name ``Dockerfile:LINE INSTRUCTION``."""
    handler = HANDLERS.get(ins.cmd)
    if handler is None:
        raise ex.error(ins, f"unknown instruction {ins.cmd}")
    started = time.time()
    n_steps = len(ex.record.steps)
    n_hist = len(st.image.config.get("history") or [])
    try:
        handler(ex, st, ins)
    except DockerfileError:
        raise
    except TrustbuildError as exc:
        raise ex.error(ins, _unlocated(str(exc), ex.df.path, ins.line)) from exc
    except OSError as exc:
        raise ex.error(ins, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from exc
    if ins.cmd not in LAYER_STEPS:  # filesystem steps move the chain in steps.layer_step
        hist = (st.image.config.get("history") or [])[n_hist:]
        st.chain = chain_step(st.chain, ins.cmd, *[str(h.get("created_by", "")) for h in hist])
    for rec in ex.record.steps[n_steps:]:
        rec.started = rec.started or started
        rec.finished = time.time()


def _unlocated(message: str, path: str, line: int) -> str:
    """``message`` without a leading ``PATH:LINE INSTRUCTION:`` (the error adds its own)."""
    m = re.match(rf"{re.escape(path)}:{line}( [A-Z]+)?: ", message)
    return message[m.end():] if m else message


def run_onbuild_triggers(ex: Executor, st: StageRun) -> None:
    """Run the base image's ONBUILD triggers (then clear them, as Docker does)."""
    triggers = list(st.image.c.get("OnBuild") or [])
    if not triggers:
        return
    st.image.c["OnBuild"] = None
    line = st.stage.line
    for text in triggers:
        try:
            parsed = parse_dockerfile(f"FROM scratch\n{text}\n", path=ex.df.path)
        except DockerfileError as exc:
            raise DockerfileError(f"ONBUILD trigger {text!r} of the base image: {exc}",
                                  path=ex.df.path, line=line, instruction="FROM") from None
        for ins in parsed.stages[0].instructions:
            ins.line = ins.end_line = line
            dispatch(ex, st, ins)
