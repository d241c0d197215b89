"""The typed instruction model: one frozen dataclass per Dockerfile instruction.

Follows BuildKit's ``frontend/dockerfile/instructions`` (``commands.go``, ``parse.go``): the
parser (``trustbuild.builder.dockerfile``) gives syntax nodes (:class:`Instruction`: keyword,
argument words, a flags dict); :func:`parse_command` turns a node into its command, checking
flag values (``--network``, ``--security``) and reporting a bad one as a one-line
``DockerfileError`` naming the line. Nothing is expanded here: :func:`expand_command` expands a
command once, right before it is dispatched, in exactly the fields BuildKit's ``Expand``
methods expand (plus ``COPY --from``, ``EXPOSE`` and ``RUN --mount``, which BuildKit expands in
its dispatcher), with the stage's ARG/ENV values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, Literal, Protocol, TypeAlias, TypedDict, TypeVar

from trustbuild._internal.redact import excerpt
from trustbuild.builder.expand import ExpansionError
from trustbuild.builder.imageconfig import Healthcheck
from trustbuild.builder.instructions import Heredoc, Instruction, parse_heredoc_word
from trustbuild.builder.mounts import MountSpec, number_ssh_targets, parse_mount
from trustbuild.errors import DockerfileError

__all__ = [
    "AddCmd", "AnyCommand", "ArgCmd", "CmdCmd", "Command", "CopyCmd", "EntrypointCmd", "EnvCmd",
    "ExposeCmd", "Expander", "FromCmd", "HealthcheckCmd", "LabelCmd", "MaintainerCmd",
    "NetworkMode", "OnbuildCmd", "RunCmd", "SecurityMode", "ShellCmd", "StopsignalCmd", "UserCmd",
    "VolumeCmd", "WorkdirCmd", "expand_command", "parse_command",
]

NetworkMode = Literal["default", "none", "host"]
SecurityMode = Literal["sandbox", "insecure"]
_NETWORKS: dict[str, NetworkMode] = {"default": "default", "none": "none", "host": "host"}
_SECURITY: dict[str, SecurityMode] = {"sandbox": "sandbox", "insecure": "insecure"}


@dataclass(frozen=True, kw_only=True)
class Command:
    """What every instruction has: where it is and how it was written."""

    keyword: ClassVar[str]
    line: int  # 1-based line where it starts
    end_line: int
    original: str  # as written (continuations joined), for messages and ARG's history


@dataclass(frozen=True, kw_only=True)
class FromCmd(Command):
    """``FROM [--platform=P] image [AS name]``."""

    keyword: ClassVar[str] = "FROM"
    base: str
    stage_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Command):
    """RUN, CMD, ENTRYPOINT: JSON form as is, shell form (one string) run through SHELL."""

    args: tuple[str, ...]
    json_form: bool = False


@dataclass(frozen=True, kw_only=True)
class RunCmd(_CommandLine):
    """``RUN [--mount=...] [--network=...] [--security=...] command``.

    ``mount_values`` are the ``--mount`` values as written; ``mounts`` is empty until the command
    is expanded, then holds them expanded and parsed.
    """

    keyword: ClassVar[str] = "RUN"
    mount_values: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    network: NetworkMode | None = None
    security: SecurityMode | None = None
    heredocs: tuple[Heredoc, ...] = ()

    def script(self) -> str:
        """The shell-form command line (empty for the JSON form)."""
        return "" if self.json_form or not self.args else self.args[0]


@dataclass(frozen=True, kw_only=True)
class CmdCmd(_CommandLine):
    """``CMD``."""

    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True, kw_only=True)
class EntrypointCmd(_CommandLine):
    """``ENTRYPOINT``."""

    keyword: ClassVar[str] = "ENTRYPOINT"


@dataclass(frozen=True, kw_only=True)
class _FileCommand(Command):
    """COPY and ADD: sources (paths, globs, heredoc markers, ADD URLs) and a destination."""

    sources: tuple[str, ...]
    dest: str
    chown: str = ""
    chmod: str = ""
    link: bool | None = None  # None: --link not given
    exclude: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()

    def heredoc_for(self, word: str) -> Heredoc | None:
        """The heredoc a ``<<NAME`` source refers to, else None."""
        if not self.heredocs:
            return None
        marker = parse_heredoc_word(word)
        if marker is None:
            return None
        return next((doc for doc in self.heredocs if doc.name == marker.name), None)


@dataclass(frozen=True, kw_only=True)
class CopyCmd(_FileCommand):
    """``COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude] src... dest``."""

    keyword: ClassVar[str] = "COPY"
    from_: str = ""
    parents: bool | None = None


@dataclass(frozen=True, kw_only=True)
class AddCmd(_FileCommand):
    """``ADD [--chown] [--chmod] [--link] [--checksum] [--keep-git-dir] [--unpack] src... dest``."""

    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class EnvCmd(Command):
    """``ENV k=v ...``."""

    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class LabelCmd(Command):
    """``LABEL k=v ...``."""

    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ArgCmd(Command):
    """``ARG name[=default] ...`` (a default of None: declared without one)."""

    keyword: ClassVar[str] = "ARG"
    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class ExposeCmd(Command):
    """``EXPOSE port[/proto] ...`` (after expansion: one port per item)."""

    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UserCmd(Command):
    """``USER name|uid[:group|gid]``."""

    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class WorkdirCmd(Command):
    """``WORKDIR path``."""

    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, kw_only=True)
class VolumeCmd(Command):
    """``VOLUME ["/a"]`` or ``VOLUME /a /b``."""

    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StopsignalCmd(Command):
    """``STOPSIGNAL signal``."""

    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, kw_only=True)
class ShellCmd(Command):
    """``SHELL ["exe", "arg"...]``."""

    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HealthcheckCmd(Command):
    """``HEALTHCHECK [options] CMD ...`` or ``HEALTHCHECK NONE``."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    health: Healthcheck


@dataclass(frozen=True, kw_only=True)
class OnbuildCmd(Command):
    """``ONBUILD INSTRUCTION``: ``expression`` is the trigger stored in the config."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str


@dataclass(frozen=True, kw_only=True)
class MaintainerCmd(Command):
    """``MAINTAINER name`` (deprecated)."""

    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


AnyCommand: TypeAlias = (
    FromCmd | RunCmd | CmdCmd | EntrypointCmd | CopyCmd | AddCmd | EnvCmd | LabelCmd | ArgCmd
    | ExposeCmd | UserCmd | WorkdirCmd | VolumeCmd | StopsignalCmd | ShellCmd | HealthcheckCmd
    | OnbuildCmd | MaintainerCmd)


# ---------------------------------------------------------------------------------- parsing
class _Loc(TypedDict):
    line: int
    end_line: int
    original: str


def _flag(node: Instruction, name: str) -> str:
    return node.flag(name) or ""


def _bool(node: Instruction, name: str) -> bool | None:
    value = node.flag(name)
    return None if value is None else value == "true"


def _list(node: Instruction, name: str) -> tuple[str, ...]:
    value = node.flags.get(name)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _choice(node: Instruction, name: str, allowed: Mapping[str, str], path: str) -> str | None:
    value = node.flag(name)
    if value is None:
        return None
    if value not in allowed:
        names = list(allowed)
        shown = ", ".join(names[:-1]) + " or " + names[-1]
        text = value if re.fullmatch(r"[\w.-]{1,32}", value) else excerpt(value)
        raise DockerfileError(f"{node.cmd} --{name}={text}: expected {shown}",
                              path=path, line=node.line, instruction=node.cmd)
    return value


def parse_command(node: Instruction, *, path: str) -> AnyCommand:
    """The typed command of a parsed node (its flags were checked by the parser; their values
    are checked here). Raises DockerfileError naming ``path:LINE``."""
    loc = _Loc(line=node.line, end_line=node.end_line, original=node.original)
    args = tuple(node.args)
    cmd = node.cmd
    if cmd == "FROM":
        name = args[2] if len(args) == 3 else None
        return FromCmd(**loc, base=args[0] if args else "", stage_name=name,
                       platform=node.flag("platform"))
    if cmd == "RUN":
        network = _choice(node, "network", _NETWORKS, path)
        security = _choice(node, "security", _SECURITY, path)
        return RunCmd(**loc, args=args, json_form=node.json_form,
                      mount_values=_list(node, "mount"),
                      network=_NETWORKS[network] if network else None,
                      security=_SECURITY[security] if security else None,
                      heredocs=tuple(node.heredocs))
    if cmd == "CMD":
        return CmdCmd(**loc, args=args, json_form=node.json_form)
    if cmd == "ENTRYPOINT":
        return EntrypointCmd(**loc, args=args, json_form=node.json_form)
    if cmd == "COPY":
        return CopyCmd(**loc, sources=args[:-1], dest=args[-1], from_=_flag(node, "from"),
                       chown=_flag(node, "chown"), chmod=_flag(node, "chmod"),
                       link=_bool(node, "link"), parents=_bool(node, "parents"),
                       exclude=_list(node, "exclude"), heredocs=tuple(node.heredocs))
    if cmd == "ADD":
        return AddCmd(**loc, sources=args[:-1], dest=args[-1], chown=_flag(node, "chown"),
                      chmod=_flag(node, "chmod"), link=_bool(node, "link"),
                      checksum=_flag(node, "checksum"),
                      keep_git_dir=_bool(node, "keep-git-dir"), unpack=_bool(node, "unpack"),
                      exclude=_list(node, "exclude"), heredocs=tuple(node.heredocs))
    if cmd == "ENV":
        return EnvCmd(**loc, pairs=tuple(node.pairs))
    if cmd == "LABEL":
        return LabelCmd(**loc, pairs=tuple(node.pairs))
    if cmd == "ARG":
        return ArgCmd(**loc, pairs=tuple(node.arg_defs))
    if cmd == "EXPOSE":
        return ExposeCmd(**loc, ports=args)
    if cmd == "USER":
        return UserCmd(**loc, user=args[0])
    if cmd == "WORKDIR":
        return WorkdirCmd(**loc, path=args[0])
    if cmd == "VOLUME":
        return VolumeCmd(**loc, paths=args)
    if cmd == "STOPSIGNAL":
        return StopsignalCmd(**loc, signal=args[0])
    if cmd == "SHELL":
        return ShellCmd(**loc, shell=args)
    if cmd == "HEALTHCHECK":
        assert node.healthcheck is not None  # the parser built it (or raised)
        return HealthcheckCmd(**loc, health=Healthcheck.from_json(node.healthcheck,
                                                                  what=f"{path}:{node.line}"))
    if cmd == "ONBUILD":
        trigger = node.raw_args.strip()
        if node.onbuild is not None and node.onbuild.original:
            trigger = node.onbuild.original.strip()
        return OnbuildCmd(**loc, expression=trigger)
    if cmd == "MAINTAINER":
        return MaintainerCmd(**loc, maintainer=node.raw_args.strip() or " ".join(args))
    raise DockerfileError(f"unknown instruction: {cmd}", path=path, line=node.line)


# -------------------------------------------------------------------------------- expansion
class Expander(Protocol):
    """The stage's variables, for :func:`expand_command` (``StepContext.expander``)."""

    def word(self, text: str) -> str:
        """One word expanded (quotes removed), as BuildKit's ProcessWord."""
        ...

    def words(self, text: str) -> list[str]:
        """Expanded and split into words, as BuildKit's ProcessWords."""
        ...

    def heredoc(self, text: str) -> str:
        """A COPY/ADD heredoc body: ``$V`` expanded, quotes and escapes kept."""
        ...

    def with_args(self, args: Mapping[str, str | None]) -> Expander:
        """This scope plus ``args`` (ARG values declared earlier in the same instruction)."""
        ...

    def arg_value(self, name: str, default: str | None) -> str | None:
        """What ``ARG name[=default]`` (default already expanded) gives: --build-arg, the
        default, the global ARG, the predefined value (TARGETPLATFORM...), else None."""
        ...


_F = TypeVar("_F", CopyCmd, AddCmd)


def _expand_file(cmd: _F, e: Expander) -> _F:
    sources = tuple(w if cmd.heredoc_for(w) is not None else e.word(w) for w in cmd.sources)
    heredocs = tuple(replace(doc, content=e.heredoc(doc.content))
                     if doc.expand and "$" in doc.content else doc for doc in cmd.heredocs)
    return replace(cmd, sources=sources, dest=e.word(cmd.dest), chown=e.word(cmd.chown),
                   chmod=e.word(cmd.chmod), heredocs=heredocs)


def expand_command(cmd: AnyCommand, e: Expander) -> AnyCommand:
    """``cmd`` with its variables expanded (a new object; raises ExpansionError).

    Which fields, as BuildKit: ENV and LABEL keys and values (all against the variables from
    before the instruction); ARG names and defaults (each seeing the ARGs declared before it
    in the same instruction, as buildah); COPY/ADD sources, destination, ``--chown``,
    ``--chmod``, ``--from``, ADD ``--checksum`` and unquoted heredoc bodies; WORKDIR, USER,
    STOPSIGNAL, VOLUME, EXPOSE (split into words); RUN ``--mount`` values (then parsed).
    RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK commands are left to the shell; ONBUILD triggers
    expand when they run; FROM expands at planning (``Executor.base_name``).
    """
    if isinstance(cmd, EnvCmd):
        return replace(cmd, pairs=tuple((e.word(k), e.word(v)) for k, v in cmd.pairs))
    if isinstance(cmd, LabelCmd):
        return replace(cmd, pairs=tuple((e.word(k), e.word(v)) for k, v in cmd.pairs))
    if isinstance(cmd, ArgCmd):
        pairs: list[tuple[str, str | None]] = []
        declared: dict[str, str | None] = {}
        for name, default in cmd.pairs:
            scope = e.with_args(declared)
            raw, name = name, scope.word(name) if "$" in name else name
            if not name:
                raise ExpansionError(f"ARG name {raw!r} expands to an empty name")
            value = scope.word(default) if default is not None else None
            pairs.append((name, value))
            declared[name] = e.arg_value(name, value)
        return replace(cmd, pairs=tuple(pairs))
    if isinstance(cmd, CopyCmd):
        source = e.word(cmd.from_)
        if cmd.from_ and not source:  # not "no --from": that would copy from the context
            raise ExpansionError(f"--from={cmd.from_} expands to an empty name")
        return replace(_expand_file(cmd, e), from_=source)
    if isinstance(cmd, AddCmd):
        return replace(_expand_file(cmd, e), checksum=e.word(cmd.checksum))
    if isinstance(cmd, WorkdirCmd):
        return replace(cmd, path=e.word(cmd.path))
    if isinstance(cmd, UserCmd):
        return replace(cmd, user=e.word(cmd.user))
    if isinstance(cmd, StopsignalCmd):
        return replace(cmd, signal=e.word(cmd.signal))
    if isinstance(cmd, VolumeCmd):
        return replace(cmd, paths=tuple(e.word(p) for p in cmd.paths))
    if isinstance(cmd, ExposeCmd):
        return replace(cmd, ports=tuple(p for w in cmd.ports for p in e.words(w)))
    if isinstance(cmd, RunCmd):
        specs = [parse_mount(e.word(v)) for v in cmd.mount_values]
        return replace(cmd, mounts=tuple(number_ssh_targets(specs)))
    return cmd

