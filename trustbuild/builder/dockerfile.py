"""Dockerfile parsing: directives, comments, continuations, heredocs, stages.

Follows Docker's documented semantics and buildkit's ``frontend/dockerfile/parser``. Each stage
holds its syntax nodes (``instructions``: :class:`Instruction`) and, built from them, its typed
commands (``commands``: ``trustbuild.builder.commands``). Nothing is expanded: the stage executor
expands each command once, right before it runs (``commands.expand_command``).

Example::

    >>> df = parse_dockerfile("ARG BASE=alpine\\nFROM $BASE AS build\\nRUN make\\n")
    >>> df.stages[0].name, df.stages[0].base, df.stages[0].commands[0].args
    ('build', '$BASE', ('make',))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from trustbuild._internal.redact import excerpt
from trustbuild.builder.commands import AnyCommand, ArgCmd, FromCmd, parse_command
from trustbuild.builder.expand import EXPANDING_INSTRUCTIONS, ExpansionError, Lexer, expand
from trustbuild.builder.instructions import (
    HEREDOC_INSTRUCTIONS,
    Heredoc,
    Instruction,
    go_duration_ns,
    parse_heredoc_word,
    parse_instruction,
)
from trustbuild.errors import DockerfileError

__all__ = [
    "EXPANDING_INSTRUCTIONS",
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "expand",
    "go_duration_ns",
    "parse_dockerfile",
]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_LEADING_TABS = re.compile(r"(?m)^\t+")
_NAME_AFTER_SPACE = re.compile(r"""['"]?-?[A-Za-z_][\w.'"$-]*""")


@dataclass
class Stage:
    """One build stage: its FROM and the instructions after it."""

    index: int
    name: str | None  # lower-cased, as Docker compares stage names case-insensitively
    base: str  # FROM image text, unexpanded (may name an earlier stage or "scratch")
    platform: str | None  # --platform value, unexpanded
    line: int
    instructions: list[Instruction] = field(default_factory=list)  # excluding the FROM
    from_instruction: Instruction | None = None
    commands: list[AnyCommand] = field(default_factory=list)  # instructions, typed
    from_command: FromCmd | None = None


@dataclass
class Dockerfile:
    """A parsed Dockerfile."""

    path: str
    escape: str
    syntax: str | None
    global_args: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]
    global_commands: list[ArgCmd] = field(default_factory=list)  # global_args, typed
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # "Dockerfile:LINE: ..." lint notes

    def stage_by_name_or_index(self, ref: str) -> Stage | None:
        """The stage named ``ref`` (case-insensitive) or with that index, else None."""
        low = ref.lower()
        for stage in self.stages:
            if stage.name is not None and stage.name == low:
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


class _Directives:
    """Parser-directive state: only lines at the very top, each directive at most once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = False
        self.values: dict[str, str] = {}
        self.escape = "\\"
        self.continuation = self._cont_regex("\\")

    @staticmethod
    def _cont_regex(esc: str) -> re.Pattern[str]:
        e = re.escape(esc)
        return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")

    def feed(self, line: str, lineno: int) -> None:
        if self.done:
            return
        m = _DIRECTIVE.match(line)
        if not m or m.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return
        key, value = m.group(1).lower(), m.group(2)
        if key in self.values:
            raise DockerfileError(f"only one {key} parser directive can be used",
                                  path=self.path, line=lineno)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token {excerpt(value)} does not match "
                                      "` or \\", path=self.path, line=lineno)
            self.escape = value
            self.continuation = self._cont_regex(value)
        self.values[key] = value

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without the trailing escape, True when the instruction ends here)."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line, count=1), False
        return line, True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _split_lines(text: str) -> list[str]:
    """Lines with their line endings kept (like buildkit's scanLines)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _heredocs_in(line: str) -> list[Heredoc]:
    """The heredoc markers on an instruction line, in order (buildkit heredocsFromLine)."""
    try:
        _, words = Lexer({}, raw_quotes=True, raw_escapes=True, skip_unset=True).process(line)
    except ExpansionError:
        return []
    # "<<  EOF" and "<<- EOF": a bare marker takes the next word as its name (buildkit >= 0.22),
    # when that word looks like a name, so that "$((1 << 2))" stays a shift.
    joined: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if (re.fullmatch(r"\d*<<-?", word) and i + 1 < len(words)
                and _NAME_AFTER_SPACE.fullmatch(words[i + 1])):
            word += words[i + 1]
            i += 1
        joined.append(word)
        i += 1
    docs = []
    for word in joined:
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def _instructions(text: str, path: str, d: _Directives, warnings: list[str]
                  ) -> list[Instruction]:
    lines = _split_lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        token = lines[i].rstrip("\r\n").lstrip()
        d.feed(token, i + 1)
        i += 1
        if _is_comment(token):
            token = ""
        start = i
        first, eol = d.trim_continuation(token)
        if eol and not first:
            continue
        buf = [first]
        while not eol and i < len(lines):
            raw = lines[i]
            tok = raw.rstrip("\r\n")
            d.feed(tok, i + 1)
            i += 1
            if _is_comment(raw):
                continue  # comment lines inside a continuation are skipped
            if not tok.strip():
                warnings.append(f"{path}:{i}: empty continuation line (Docker will reject "
                                "these in a future release)")
                continue
            tok, eol = d.trim_continuation(tok)
            buf.append(tok)
        joined = "".join(buf)
        inst = parse_instruction(joined, line=start, end_line=i, escape=d.escape, path=path)
        target = inst.onbuild if inst.onbuild is not None else inst
        if target.cmd in HEREDOC_INSTRUCTIONS and not target.json_form and "<<" in joined:
            for doc in _heredocs_in(target.original):
                body: list[str] = []
                while True:
                    if i >= len(lines):
                        raise DockerfileError(
                            f"unterminated heredoc: no line {excerpt(doc.name)} ends the "
                            "here-document",
                            path=path, line=start, instruction=inst.cmd)
                    raw = lines[i]
                    i += 1
                    candidate = raw.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        break
                    body.append(raw)
                content = "".join(body)
                target.heredocs.append(replace(
                    doc, content=_LEADING_TABS.sub("", content) if doc.chomp else content))
            inst.heredocs = target.heredocs
            inst.end_line = target.end_line = i
            if inst.onbuild is not None:
                # config.OnBuild keeps the bodies inline, as buildkit's ONBUILD expression does
                inst.args = [target.original + "".join(f"\n{h.content}{h.name}"
                                                       for h in target.heredocs)]
        _lint(inst, path, warnings)
        out.append(inst)
    return out


def _lint(inst: Instruction, path: str, warnings: list[str]) -> None:
    """Warnings Docker's build checks give for deprecated forms."""
    where = f"{path}:{inst.line}"
    if inst.cmd in ("ENV", "LABEL") and len(inst.pairs) == 1 and \
            "=" not in inst.raw_args.split(None, 1)[0]:
        warnings.append(f"{where}: legacy '{inst.cmd} key value' format; use "
                        f"'{inst.cmd} key=value'")
    elif inst.cmd == "MAINTAINER":
        warnings.append(f"{where}: MAINTAINER is deprecated; use LABEL "
                        "org.opencontainers.image.authors=...")


def parse_dockerfile(text: str, *, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; raise DockerfileError naming ``path:LINE`` on bad input."""
    d = _Directives(path)
    warnings: list[str] = []
    insts = _instructions(text, path, d, warnings)
    if not insts:
        raise DockerfileError("file with no instructions: a Dockerfile needs at least a FROM",
                              path=path)
    global_args: list[Instruction] = []
    global_commands: list[ArgCmd] = []
    stages: list[Stage] = []
    for inst in insts:
        command = parse_command(inst, path=path)
        if isinstance(command, FromCmd):
            stages.append(_stage(inst, command, len(stages), stages, path))
        elif not stages:
            if not isinstance(command, ArgCmd):
                raise DockerfileError(
                    f"no build stage in current context: {inst.cmd} before the first FROM "
                    "(only ARG may come before FROM)",
                    path=path, line=inst.line, instruction=inst.cmd)
            global_args.append(inst)
            global_commands.append(command)
        else:
            stages[-1].instructions.append(inst)
            stages[-1].commands.append(command)
    if not stages:
        raise DockerfileError("no FROM instruction: a Dockerfile must have at least one FROM",
                              path=path, line=insts[-1].line)
    return Dockerfile(path=path, escape=d.escape, syntax=d.values.get("syntax"),
                      global_args=global_args, stages=stages, directives=dict(d.values),
                      warnings=warnings, global_commands=global_commands)


def _stage(inst: Instruction, command: FromCmd, index: int, earlier: list[Stage],
           path: str) -> Stage:
    args = inst.args
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
        raise DockerfileError("FROM requires either one argument, or three: FROM <image> AS "
                              "<name>", path=path, line=inst.line, instruction="FROM")
    name = None
    if len(args) == 3:
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(
                f"invalid name for build stage: {excerpt(args[2])}, name can't start with a "
                "number or contain symbols", path=path, line=inst.line, instruction="FROM")
        for other in earlier:
            if other.name == name:
                raise DockerfileError(
                    f"duplicate stage name {excerpt(name)} (first used on line {other.line})",
                    path=path, line=inst.line, instruction="FROM")
    platform = inst.flag("platform")
    return Stage(index=index, name=name, base=args[0], platform=platform, line=inst.line,
                 instructions=[], from_instruction=inst,
                 from_command=replace(command, stage_name=name))
