"""Instruction handlers: one function per Dockerfile instruction, each taking
(step context, stage, expanded command).

``dispatch`` expands a command once (``commands.expand_command``), runs its handler and times
it into the BuildRecord; ``run_onbuild_triggers`` runs the ONBUILD triggers a stage inherits
from its base image. Handlers see the executor only as a
:class:`~trustbuild.builder.stepcontext.StepContext`.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.commands import (
    AddCmd,
    AnyCommand,
    ArgCmd,
    CmdCmd,
    CopyCmd,
    EntrypointCmd,
    EnvCmd,
    ExposeCmd,
    FromCmd,
    HealthcheckCmd,
    LabelCmd,
    MaintainerCmd,
    OnbuildCmd,
    RunCmd,
    ShellCmd,
    StopsignalCmd,
    UserCmd,
    VolumeCmd,
    WorkdirCmd,
    expand_command,
)
from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.builder.handlers import copy as copy_handlers
from trustbuild.builder.handlers import meta, run
from trustbuild.builder.steps import LAYER_STEPS
from trustbuild.errors import DockerfileError, TrustbuildError

if TYPE_CHECKING:
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import StepContext

__all__ = ["dispatch", "handle", "run_onbuild_triggers"]


def handle(ex: StepContext, st: StageRun, cmd: AnyCommand) -> None:
    """Run the handler of an expanded command."""
    if isinstance(cmd, ArgCmd):
        meta.handle_arg(ex, st, cmd)
    elif isinstance(cmd, EnvCmd):
        meta.handle_env(ex, st, cmd)
    elif isinstance(cmd, LabelCmd):
        meta.handle_label(ex, st, cmd)
    elif isinstance(cmd, ExposeCmd):
        meta.handle_expose(ex, st, cmd)
    elif isinstance(cmd, WorkdirCmd):
        meta.handle_workdir(ex, st, cmd)
    elif isinstance(cmd, UserCmd):
        meta.handle_user(ex, st, cmd)
    elif isinstance(cmd, VolumeCmd):
        meta.handle_volume(ex, st, cmd)
    elif isinstance(cmd, StopsignalCmd):
        meta.handle_stopsignal(ex, st, cmd)
    elif isinstance(cmd, HealthcheckCmd):
        meta.handle_healthcheck(ex, st, cmd)
    elif isinstance(cmd, ShellCmd):
        meta.handle_shell(ex, st, cmd)
    elif isinstance(cmd, EntrypointCmd):
        meta.handle_entrypoint(ex, st, cmd)
    elif isinstance(cmd, CmdCmd):
        meta.handle_cmd(ex, st, cmd)
    elif isinstance(cmd, OnbuildCmd):
        meta.handle_onbuild(ex, st, cmd)
    elif isinstance(cmd, MaintainerCmd):
        meta.handle_maintainer(ex, st, cmd)
    elif isinstance(cmd, CopyCmd):
        copy_handlers.handle_copy(ex, st, cmd)
    elif isinstance(cmd, AddCmd):
        copy_handlers.handle_add(ex, st, cmd)
    elif isinstance(cmd, RunCmd):
        run.handle_run(ex, st, cmd)
    else:
        assert isinstance(cmd, FromCmd)
        raise ex.error(cmd, "FROM starts a stage: it is not a step")


def dispatch(ex: StepContext, st: StageRun, cmd: AnyCommand) -> None:
    """Expand one command and run it; errors name ``Dockerfile:LINE INSTRUCTION``."""
    started = time.time()
    n_steps = len(ex.record_steps())
    n_hist = len(st.image.history())
    try:
        handle(ex, st, expand_command(cmd, ex.expander(st)))
    except DockerfileError:
        raise
    except TrustbuildError as exc:
        raise ex.error(cmd, _unlocated(str(exc), ex.path, cmd.line)) from exc
    except OSError as exc:
        raise ex.error(cmd, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from exc
    if cmd.keyword not in LAYER_STEPS:  # filesystem steps move the chain in steps.layer_step
        hist = st.image.history()[n_hist:]
        st.chain = chain_step(st.chain, cmd.keyword,
                              *[h.created_by or "" for h in hist])
    for rec in ex.record_steps()[n_steps:]:
        rec.started = rec.started or started
        rec.finished = time.time()


def _unlocated(message: str, path: str, line: int) -> str:
    """``message`` without a leading ``PATH:LINE INSTRUCTION:`` (the error adds its own)."""
    m = re.match(rf"{re.escape(path)}:{line}( [A-Z]+)?: ", message)
    return message[m.end():] if m else message


def run_onbuild_triggers(ex: StepContext, st: StageRun) -> None:
    """Run the base image's ONBUILD triggers (then clear them, as Docker does)."""
    triggers = list(st.image.runtime.on_build or [])
    if not triggers:
        return
    st.image.runtime.on_build = None
    line = st.stage.line
    for text in triggers:
        try:
            parsed = parse_dockerfile(f"FROM scratch\n{text}\n", path=ex.path)
        except DockerfileError as exc:
            raise DockerfileError(f"ONBUILD trigger {text!r} of the base image: {exc}",
                                  path=ex.path, line=line, instruction="FROM") from None
        for cmd in parsed.stages[0].commands:
            dispatch(ex, st, replace(cmd, line=line, end_line=line))
