"""The BuildRecord: every input by digest, every step with its timing, the security profile used.

The build fills it in as it goes; provenance (``trustbuild.attest.provenance``) and the policy
gate read it and never recompute anything. It serialises to plain JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TypeAlias

from trustbuild._internal.jsontypes import LoadedObject

__all__ = ["BuildRecord", "MountedId", "ResolvedImage", "StepRecord"]

#: a --secret / --ssh id a RUN step mounts: ``{"id": ID, "optional": bool}`` (never a value)
MountedId: TypeAlias = dict[str, str | bool]


@dataclass
class ResolvedImage:
    """An image the build used (FROM or COPY --from), resolved once to a digest."""

    reference: str  # as written after ARG expansion, normalised (e.g. 127.0.0.1:5000/busybox:1)
    digest: str  # manifest digest actually used (the platform manifest)
    index_digest: str | None = None  # digest of the index the tag pointed at, if any
    role: str = "base"  # "base" | "copy-from" | "executor"
    stage: str | None = None  # stage name/index that used it


@dataclass
class StepRecord:
    """One instruction as executed."""

    stage: str
    line: int
    instruction: str  # e.g. "RUN"
    text: str  # the instruction as Docker writes created_by (secrets redacted)
    started: float = 0.0
    finished: float = 0.0
    layer_digest: str | None = None
    cached: bool = False


@dataclass
class BuildRecord:
    """What one build did, recorded as it happened."""

    invocation_id: str = ""
    started_on: str = ""  # RFC 3339 UTC
    finished_on: str = ""
    trustbuild_version: str = ""
    dockerfile_path: str = ""
    dockerfile_digest: str = ""  # sha256 of the Dockerfile bytes
    context_source: str = ""  # dir path, tar://..., or git URL
    # sha256 over the included files (path, mode, content), see build/context.py
    context_digest: str = ""
    git_commit: str | None = None
    # values of secret-looking names redacted
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str = ""
    destinations: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    images: list[ResolvedImage] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    security_profile: str = "baseline"
    seccomp_profile: str = ""  # name or path
    seccomp_profile_digest: str = ""
    snapshot_mode: str = ""
    mode: str = "chroot"
    reproducible: bool = False
    policy_digest: str | None = None
    policy_decision: str | None = None  # "allow" | "deny"
    policy_report: list[LoadedObject] = field(default_factory=list)
    executor_image: str | None = None  # REF@DIGEST when known
    # ids of the --secret values / --ssh agents RUN steps mount: {"id", "optional"}, never values
    secrets: list[MountedId] = field(default_factory=list)
    ssh: list[MountedId] = field(default_factory=list)
    result_digest: str | None = None  # manifest digest of the built image
    result_media_type: str | None = None
    config_digest: str | None = None

    def to_json(self) -> LoadedObject:
        """As plain JSON-able data."""
        return asdict(self)
