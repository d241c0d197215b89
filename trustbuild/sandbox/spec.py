"""The RUN step contract between the stage executor and the sandbox: a Runner takes a RunSpec
and returns a RunResult (``trustbuild.sandbox.StepRunner`` is the Runner)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from trustbuild._internal.users import ROOT, StepUser

if TYPE_CHECKING:
    from trustbuild.oci.layer import LayerInfo
    from trustbuild.sandbox.profiles import SecurityProfile

__all__ = ["RunSpec", "RunResult", "Runner", "SecretFile", "StepUser", "ProfileName",
           "StepNetwork", "SnapshotMode", "Snapshotter"]

# the sandbox's mode names (the runtime checks: profiles.resolve_profile, StepRunner)
ProfileName = Literal["privileged", "baseline", "restricted"]  # --security-profile
StepNetwork = Literal["host", "none"]  # a step's network, over its profile's default
SnapshotMode = Literal["auto", "overlay", "walk", "full"]  # --snapshot-mode
Snapshotter = Literal["overlay", "walk", "full"]  # what a runner resolved "auto" to


@dataclass(frozen=True)
class SecretFile:
    """A secret shown to one step as a read-only file on a private tmpfs (never on disk)."""

    target: str  # absolute path inside the rootfs
    data: bytes = field(repr=False)
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


@dataclass
class RunSpec:
    """One RUN step, fully resolved by the builder."""

    argv: list[str]  # final argv; the builder already applied SHELL (["/bin/sh", "-c", cmd])
    env: dict[str, str]  # image ENV + build args (build args are visible to this step only)
    workdir: str = "/"  # inside the rootfs; created if missing
    # the builder resolved USER once (trustbuild._internal.users.resolve_user); HOME defaults
    # to its home
    user: StepUser = ROOT
    label: str = "RUN"  # output prefix, e.g. "[2/5] RUN echo hi"
    security_profile: ProfileName = "baseline"
    seccomp_profile: str | None = None  # path, name in seccomp/, "unconfined", None = default
    network: StepNetwork | None = None  # None: the profile's default
    # (host_path, target) read-only binds, or (host_path, target, mode) with mode "ro", "rw"
    # (read-write bind) or "tmpfs" (host_path: "" or "size=BYTES"); targets never reach the layer
    extra_mounts: Sequence[tuple[str, ...]] = ()
    hostname: str = "trustbuild"
    # RUN --mount=type=secret files, and environment only this run sees (secret env=,
    # SSH_AUTH_SOCK); neither is written anywhere, and their values are masked in the output
    secrets: Sequence[SecretFile] = ()
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    # container paths (and everything below) this step's layer never records, on top of the
    # runner's own ignore list: the image's VOLUMEs (Docker discards a RUN's changes there)
    ignore_paths: Sequence[str] = ()


@dataclass
class RunResult:
    """What a RUN step did."""

    exit_code: int
    output_tail: list[str]  # the last ~20 lines, for the error message
    layer: LayerInfo | None  # the diff as a layer blob; None when the step failed
    seconds: float  # wall time of the whole step (sandbox + snapshot)
    snapshot_seconds: float = 0.0  # of which: taking the diff and writing the layer
    snapshot_mode: str = ""  # overlay | walk | full
    profile: SecurityProfile | None = None  # the security profile actually applied
    warnings: list[str] = field(default_factory=list)


class Runner(Protocol):
    """What RUN needs of a sandbox: :class:`trustbuild.sandbox.StepRunner` is one."""

    snapshot_mode: Snapshotter  # the snapshotter it resolved "auto" to

    def run(self, spec: RunSpec, layer_dest: Path) -> RunResult:
        """Run one step; on exit code 0 its diff is written to ``layer_dest``."""
        ...

    def close(self) -> None:
        """Kill a running step and release mounts and scratch space."""
        ...
