"""What an instruction handler may use: narrow views of the executor, one per kind of handler.

Handlers (``trustbuild.builder.handlers``) get the build's step-level services through these
Protocols instead of the whole ``Executor``. :class:`LayerStepContext` is what every step that
may produce a layer needs (errors, step records, the step cache, the layer settings;
``steps.layer_step``); the metadata handlers add the stage's variables
(:class:`MetaContext`), RUN adds its runner, mounts and ssh agents (:class:`RunContext`), COPY
and ADD add the build context and other stages' filesystems (:class:`CopyContext`); the
dispatcher sees all of them (:class:`StepContext`). ``Executor`` implements them; mypy checks
that each handler uses nothing beyond its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from trustbuild.builder.cache import LayerCache
    from trustbuild.builder.cachekey import CacheKeySpec, SourceHasher
    from trustbuild.builder.commands import Command, Expander
    from trustbuild.builder.container_fs import ContainerFS
    from trustbuild.builder.context import BuildContext
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.layers import LayerSettings
    from trustbuild.builder.layerstore import LayerStore
    from trustbuild.builder.record import StepRecord
    from trustbuild.builder.sshagent import SshAgents
    from trustbuild.errors import DockerfileError
    from trustbuild.sandbox.spec import ProfileName, Runner

__all__ = ["StepContext", "StepOptions", "LayerStepContext", "MetaContext", "RunContext",
           "CopyContext"]


class StepOptions(Protocol):
    """The build options a step reads (``BuildOptions`` has them)."""

    @property
    def build_args(self) -> Mapping[str, str]: ...
    @property
    def secrets(self) -> Mapping[str, bytes]: ...
    @property
    def security_profile(self) -> ProfileName: ...
    @property
    def seccomp_profile(self) -> str | None: ...
    @property
    def ignore_paths(self) -> Sequence[str]: ...
    @property
    def reproducible(self) -> bool: ...
    @property
    def no_push_cache(self) -> bool: ...
    @property
    def output(self) -> TextIO: ...


class LayerStepContext(Protocol):
    """What a step that may produce a layer needs (``steps.layer_step`` and every handler)."""

    @property
    def path(self) -> str:
        """The Dockerfile's name, for messages."""
        ...

    @property
    def options(self) -> StepOptions: ...
    @property
    def layers(self) -> LayerSettings: ...
    @property
    def cache(self) -> LayerCache | None: ...
    @property
    def cfs(self) -> ContainerFS | None: ...

    def error(self, cmd: Command, message: str) -> DockerfileError:
        """A DockerfileError naming ``Dockerfile:LINE INSTRUCTION``."""
        ...

    def created(self) -> str:
        """Timestamp for history entries."""
        ...

    def step(self, st: StageRun, cmd: Command, text: str) -> StepRecord:
        """A step record appended to the build record."""
        ...

    def cache_key(self, st: StageRun, cmd: str, spec: CacheKeySpec) -> str | None:
        """The key of a step with inputs ``spec`` (None without ``--cache``)."""
        ...

    def cache_enabled(self, cmd: str) -> bool:
        """Whether steps of kind ``cmd`` are looked up and stored."""
        ...

    def materialize(self, st: StageRun) -> None:
        """Extract the stage's layers into its rootfs (once)."""
        ...


class MetaContext(LayerStepContext, Protocol):
    """ARG, ENV, LABEL, WORKDIR, VOLUME and the other metadata handlers."""

    def expander(self, st: StageRun) -> Expander:
        """The stage's variables, for ``commands.expand_command``."""
        ...


class _StageSources(Protocol):
    """The build context and other stages' filesystems (RUN bind mounts, COPY --from)."""

    @property
    def work(self) -> Path: ...
    @property
    def ctx(self) -> BuildContext: ...

    def source_root(self, st: StageRun, cmd: Command, ref: str) -> Path:
        """The filesystem ``--from=ref`` reads."""
        ...


class RunContext(LayerStepContext, _StageSources, Protocol):
    """RUN: the stage's runner, its mounts (cache mounts in the layer store) and ssh agents."""

    @property
    def layer_store(self) -> LayerStore | None: ...
    @property
    def ssh_agents(self) -> SshAgents: ...

    def runner_for(self, st: StageRun) -> Runner:
        """The stage's RUN runner."""
        ...


class CopyContext(LayerStepContext, _StageSources, Protocol):
    """COPY and ADD: sources, their content keys and the timestamps they get."""

    @property
    def hasher(self) -> SourceHasher: ...
    @property
    def epoch(self) -> int | None: ...

    def source_key(self, st: StageRun, ref: str) -> str:
        """What ``COPY --from=ref`` reads, for a key."""
        ...

    def copy_from_ref(self, st: StageRun, cmd: Command) -> str | None:
        """The ``--from`` value of ``cmd`` as planned."""
        ...


class StepContext(MetaContext, RunContext, CopyContext, Protocol):
    """The executor as the dispatcher sees it: every handler's view, and the build record."""

    def record_steps(self) -> list[StepRecord]:
        """The build record's steps so far."""
        ...
