"""What an instruction handler may use: :class:`StepContext`, a narrow view of the executor.

Handlers (``trustbuild.builder.handlers``) get the build's step-level services through this
Protocol instead of the whole ``Executor``: locating errors, recording steps, the step cache,
the build context, other stages' filesystems, the stage's runner. ``Executor`` implements it;
mypy checks that handlers use nothing else.
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

__all__ = ["StepContext", "StepOptions"]


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


class StepContext(Protocol):
    """The executor as handlers see it."""

    @property
    def path(self) -> str:
        """The Dockerfile's name, for messages."""
        ...

    @property
    def options(self) -> StepOptions: ...
    @property
    def work(self) -> Path: ...
    @property
    def ctx(self) -> BuildContext: ...
    @property
    def layers(self) -> LayerSettings: ...
    @property
    def cache(self) -> LayerCache | None: ...
    @property
    def hasher(self) -> SourceHasher: ...
    @property
    def cfs(self) -> ContainerFS | None: ...
    @property
    def epoch(self) -> int | None: ...
    @property
    def ssh_agents(self) -> SshAgents: ...
    @property
    def layer_store(self) -> LayerStore | None: ...

    def error(self, cmd: Command, message: str) -> DockerfileError:
        """A DockerfileError naming ``Dockerfile:LINE INSTRUCTION``."""
        ...

    def created(self) -> str:
        """Timestamp for history entries."""
        ...

    def record_steps(self) -> list[StepRecord]:
        """The build record's steps so far."""
        ...

    def step(self, st: StageRun, cmd: Command, text: str) -> StepRecord:
        """A step record appended to the build record."""
        ...

    def expander(self, st: StageRun) -> Expander:
        """The stage's variables, for ``commands.expand_command``."""
        ...

    def cache_key(self, st: StageRun, cmd: str, spec: CacheKeySpec) -> str | None:
        """The key of a step with inputs ``spec`` (None without ``--cache``)."""
        ...

    def cache_enabled(self, cmd: str) -> bool:
        """Whether steps of kind ``cmd`` are looked up and stored."""
        ...

    def source_key(self, st: StageRun, ref: str) -> str:
        """What ``COPY --from=ref`` reads, for a key."""
        ...

    def copy_from_ref(self, st: StageRun, cmd: Command) -> str | None:
        """The ``--from`` value of ``cmd`` as planned."""
        ...

    def source_root(self, st: StageRun, cmd: Command, ref: str) -> Path:
        """The filesystem ``--from=ref`` reads."""
        ...

    def materialize(self, st: StageRun) -> None:
        """Extract the stage's layers into its rootfs (once)."""
        ...

    def runner_for(self, st: StageRun) -> Runner:
        """The stage's RUN runner."""
        ...
