"""The configuration StepRunner writes to the sandbox helper's ``--config-fd`` (``marshal``
of plain dicts, lists, strings and numbers).

Types only: the helper imports this under ``TYPE_CHECKING``, never at run time.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

__all__ = ["OverlayConfig", "SecretConfig", "ProbeConfig", "StepConfig", "HelperConfig"]


class OverlayConfig(TypedDict):
    """The overlay mounted as the step's root (or probed)."""

    lower: list[str]
    upper: str
    work: str


class SecretConfig(TypedDict):
    """One ``RUN --mount=type=secret`` file (``data`` base64)."""

    data: str
    mode: int
    uid: int
    gid: int


class ProbeConfig(TypedDict):
    """``mode: probe``: can an overlay of these directories be mounted here?"""

    mode: Literal["probe"]
    root: str
    overlay: OverlayConfig
    nofile: NotRequired[int]  # RLIMIT_NOFILE soft limit the builder had before DirPins


class _StepBase(TypedDict):
    mode: Literal["chroot", "container"]
    argv: list[str]
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int
    groups: list[int]
    caps: list[str]
    no_new_privs: bool
    seccomp_bpf: str  # hex of the compiled filter; "" when unconfined
    network: str  # "host" | "none"
    mask: bool
    hostname: str
    nofile: NotRequired[int]  # RLIMIT_NOFILE soft limit the builder had before DirPins


class StepConfig(_StepBase, total=False):
    """One RUN step; the root keys are set in chroot mode only."""

    root: str  # the (empty) directory the root is mounted on
    rootfs: str  # bound on ``root`` when there is no overlay
    overlay: OverlayConfig | None
    binds: list[list[str]]  # [source, target, mode] (mountplan.helper_mounts)
    secret_stage: str
    secrets: dict[str, SecretConfig]


HelperConfig = ProbeConfig | StepConfig
