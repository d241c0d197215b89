"""One Dockerfile instruction as parsed (the syntax node) and the per-instruction argument rules.

Follows buildkit's ``parser/line_parsers.go`` (how arguments are split) and
``instructions/parse.go`` (which flags each instruction takes, argument counts). The node becomes
a typed command in ``trustbuild.builder.commands``; nothing is expanded here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import NoReturn

from trustbuild._internal.redact import excerpt
from trustbuild.builder.expand import ExpansionError, Lexer
from trustbuild.errors import DockerfileError

__all__ = [
    "BOOL_FLAGS",
    "FLAGS",
    "Heredoc",
    "Instruction",
    "KNOWN_INSTRUCTIONS",
    "LIST_FLAGS",
    "go_duration_ns",
    "parse_heredoc_word",
    "parse_instruction",
]

KNOWN_INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})

#: Flags each instruction accepts (buildkit instructions/parse.go).
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude", "unpack"}),
    "RUN": frozenset({"mount", "network", "security"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval",
                              "retries"}),
}
#: Boolean flags: value "true"/"false" ("--link" alone means "true").
BOOL_FLAGS = frozenset({"link", "parents", "keep-git-dir", "unpack"})
#: Repeatable flags: always a list in ``Instruction.flags``.
LIST_FLAGS = frozenset({"mount", "exclude"})

HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})
_WS = re.compile(r"[\t\v\f\r ]+")
_KEYWORD = re.compile(r"[A-Za-z]{1,16}")
_FLAG_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)([^<]*)$")


@dataclass(frozen=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD: ``<<EOF``, ``<<-EOF``, ``<<"EOF"``."""

    name: str
    content: str  # the lines between the marker lines, newlines kept (tabs stripped if chomp)
    expand: bool  # False when the marker was quoted: content is used literally
    chomp: bool  # <<- : leading tabs were stripped from every line
    fd: int = 0  # RUN 3<<EOF: the file descriptor (0 when not given)


@dataclass
class Instruction:
    """One parsed instruction, arguments NOT expanded."""

    cmd: str  # upper-case keyword, e.g. "COPY"
    line: int  # 1-based line where it starts
    end_line: int
    original: str  # the instruction as written (continuations joined)
    flags: dict[str, str | list[str]] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    json_form: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)
    raw_args: str = ""  # argument text after the flags
    pairs: list[tuple[str, str]] = field(default_factory=list)  # ENV / LABEL key, value
    arg_defs: list[tuple[str, str | None]] = field(default_factory=list)  # ARG name, default
    onbuild: Instruction | None = None  # ONBUILD: the trigger (args[0] is its config text)
    healthcheck: dict[str, list[str] | int] | None = None  # as Docker's config.Healthcheck

    def flag(self, name: str, default: str | None = None) -> str | None:
        """A single-valued flag's value (e.g. ``flag("from")``), or ``default``."""
        value = self.flags.get(name)
        if value is None:
            return default
        return value[-1] if isinstance(value, list) else value

    def bool_flag(self, name: str) -> bool:
        """A boolean flag such as ``--link``."""
        return self.flag(name, "false") == "true"

    def heredoc_for(self, word: str) -> Heredoc | None:
        """The heredoc a ``<<NAME`` argument word refers to (COPY <<EOF /dst), else None."""
        marker = parse_heredoc_word(word)
        if marker is None:
            return None
        for doc in self.heredocs:
            if doc.name == marker.name:
                return doc
        return None


def parse_heredoc_word(word: str) -> Heredoc | None:
    """A heredoc marker word (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``) without content, else None.

    The name is the word unquoted; a quote anywhere in it disables expansion (buildkit
    heredocFromMatch).
    """
    m = HEREDOC_WORD.match(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3).strip()
    try:
        plain = Lexer({}, skip_unset=True).process(rest)[1]
        raw = Lexer({}, skip_unset=True, raw_quotes=True).process(rest)[1]
    except ExpansionError:
        return None
    if len(plain) != 1 or len(raw) != 1:
        return None
    quotes = sum(plain[0].count(q) for q in "'\"")
    raw_quotes = sum(raw[0].count(q) for q in "'\"")
    return Heredoc(name=plain[0], content="", expand=quotes == raw_quotes,
                   chomp=m.group(2) == "-", fd=int(m.group(1) or 0))


class _Err(Exception):
    """Internal: a parse problem, turned into DockerfileError with the location."""


def extract_flags(text: str) -> tuple[list[str], str]:
    """Split leading ``--flag[=value]`` words off ``text`` (buildkit extractBuilderFlags)."""
    words: list[str] = []
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return words, ""
        if not text.startswith("--", pos):
            return words, text[pos:]
        word: list[str] = []
        quote = ""
        blank_ok = False
        while pos < n:
            ch = text[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word.append(text[pos])
                elif ch != "\\":
                    word.append(ch)
                pos += 1
                continue
            if ch.isspace():
                break
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word.append(text[pos])
            else:
                word.append(ch)
            pos += 1
        w = "".join(word)
        if w == "--":
            return words, text[pos:].lstrip()
        if w or blank_ok:
            words.append(w)


def parse_flags(cmd: str, words: list[str]) -> dict[str, str | list[str]]:
    """Check ``--name=value`` words against the instruction's flags (buildkit BFlags)."""
    allowed = FLAGS.get(cmd, frozenset())
    out: dict[str, str | list[str]] = {}
    for word in words:
        if not word.startswith("--"):
            raise _Err(f"arguments to {cmd} must start with -- (got {excerpt(word)})")
        name, has_value, value = word[2:].partition("=")
        if name not in allowed:
            raise _Err(f"unknown flag: --{name if _FLAG_NAME.fullmatch(name) else excerpt(name)}")
        if name in BOOL_FLAGS:
            if not has_value:
                value = "true"
            if value.lower() not in ("true", "false"):
                raise _Err(f"expecting boolean value for flag {name}, not: {excerpt(value)}")
            out[name] = value.lower()
            continue
        if not has_value:
            raise _Err(f"missing a value on flag: --{name}")
        if name in LIST_FLAGS:
            lst = out.setdefault(name, [])
            assert isinstance(lst, list)
            lst.append(value)
        elif name in out:
            raise _Err(f"duplicate flag specified: --{name}")
        else:
            out[name] = value
    return out


def split_words(text: str, escape: str) -> list[str]:
    """Whitespace-split ``text`` keeping quotes and escapes (buildkit parseWords)."""
    words: list[str] = []
    word: list[str] = []
    in_word = blank_ok = False
    quote = ""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    break
                word.append(ch)
                i += 1
                ch = text[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            if in_word and (word or blank_ok):
                words.append("".join(word))
            word, in_word, blank_ok = [], False, False
            i += 1
            continue
        in_word = True
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i + 1 == n:
                break
            word.append(ch)
            i += 1
            ch = text[i]
        word.append(ch)
        i += 1
    if in_word and (word or blank_ok):
        words.append("".join(word))
    return words


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_json_rejects(name: str) -> NoReturn:
    """``parse_constant`` hook: Go's encoding/json has no NaN/Infinity (so: shell form)."""
    raise ValueError(f"{name} is not JSON")


def _json_array(text: str) -> list[str] | None:
    """The JSON array in ``text``, or None when it is not one (Docker then uses shell form).

    As BuildKit's parseJSON (``json.Unmarshal`` of the whole rest, since BuildKit 0.15): text
    after the array (``["x"] # comment``) makes it shell form; ``NaN``/``Infinity`` are not
    JSON; an escaped lone surrogate becomes U+FFFD; valid JSON with a non-string is an error.
    """
    text = text.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_go_json_rejects)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _Err("when using JSON array syntax, arrays must be comprised of strings only")
    return [_LONE_SURROGATE.sub("\ufffd", v) for v in value]


def _name_values(cmd: str, rest: str, escape: str) -> list[tuple[str, str]]:
    """ENV/LABEL pairs: ``K=V K2="v 2"`` or the legacy ``K value with spaces``."""
    words = split_words(rest, escape)
    if not words:
        raise _Err(f"{cmd} requires at least one argument")
    if "=" not in words[0]:
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2 or not parts[1]:
            raise _Err(f"{cmd} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise _Err(f"Syntax error - can't find = in {excerpt(word)}. Must be of the form: "
                       "name=value")
        key, _, value = word.partition("=")
        if not key:
            raise _Err(f"{cmd} names can not be blank")
        pairs.append((key, value))
    return pairs


_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
            "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def go_duration_ns(text: str) -> int:
    """Parse a Go duration (``30s``, ``1m30s``, ``1.5h``, ``0``) into nanoseconds."""
    s = text
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return sign * int(round(total))


def _healthcheck(flags: dict[str, str | list[str]], args: list[str], json_form: bool
                 ) -> dict[str, list[str] | int]:
    kind = args[0].upper()
    if kind == "NONE":
        if len(args) > 1:
            raise _Err("HEALTHCHECK NONE takes no arguments")
        if flags:
            raise _Err("HEALTHCHECK NONE takes no flags")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise _Err(f"Unknown type {excerpt(args[0])} in HEALTHCHECK (try CMD)")
    if len(args) < 2:
        raise _Err("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *args[1:]] if json_form else ["CMD-SHELL", args[1]]
    config: dict[str, list[str] | int] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = flags.get(flag)
        if value is None:
            continue
        assert isinstance(value, str)
        try:
            ns = go_duration_ns(value)
        except ValueError:
            raise _Err(f"--{flag}: invalid duration {excerpt(value)} (e.g. 30s, 1m30s)") from None
        if ns < 0 or 0 < ns < 1_000_000:
            raise _Err(f"{key} {excerpt(value)} cannot be less than 1ms")
        if ns:
            config[key] = ns
    retries = flags.get("retries")
    if retries is not None:
        assert isinstance(retries, str)
        try:
            n = int(retries)
        except ValueError:
            raise _Err(f"--retries: not an integer: {excerpt(retries)}") from None
        if n < 0:
            raise _Err("--retries cannot be negative")
        if n:
            config["Retries"] = n
    return config


def parse_instruction(text: str, *, line: int, end_line: int, escape: str,
                      path: str) -> Instruction:
    """Parse one logical line (continuations joined, heredoc bodies not included)."""
    stripped = text.strip()
    parts = _WS.split(stripped, maxsplit=1)
    word = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    cmd = word.upper()
    if cmd not in KNOWN_INSTRUCTIONS:
        # a "Dockerfile" may be any file: name the keyword only when it looks like one
        shown = word if _KEYWORD.fullmatch(word) else "the line does not start with a keyword"
        raise DockerfileError(f"unknown instruction: {shown} (the instruction keyword must be "
                              "one of the Dockerfile reference's instructions)",
                              path=path, line=line)
    inst = Instruction(cmd=cmd, line=line, end_line=end_line, original=stripped)
    try:
        if cmd == "ONBUILD":
            _parse_onbuild(inst, rest, escape=escape, path=path)
        else:
            flag_words, rest = extract_flags(rest)
            inst.flags = parse_flags(cmd, flag_words)
            inst.raw_args = rest
            _parse_args(inst, rest, escape)
    except _Err as exc:
        raise DockerfileError(str(exc), path=path, line=line, instruction=cmd) from None
    return inst


def _parse_onbuild(inst: Instruction, rest: str, *, escape: str, path: str) -> None:
    inst.raw_args = rest
    if not rest.strip():
        raise _Err("ONBUILD requires at least one argument")
    trigger = parse_instruction(rest, line=inst.line, end_line=inst.end_line, escape=escape,
                                path=path)
    if trigger.cmd == "ONBUILD":
        raise _Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger.cmd in ("FROM", "MAINTAINER"):
        raise _Err(f"{trigger.cmd} isn't allowed as an ONBUILD trigger")
    inst.onbuild = trigger
    inst.args = [trigger.original]


def _parse_args(inst: Instruction, rest: str, escape: str) -> None:
    cmd = inst.cmd
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        arr = _json_array(rest)
        if arr is not None:
            inst.args, inst.json_form = arr, True
        elif rest:
            inst.args = [rest]
        if cmd == "SHELL" and not inst.json_form:
            raise _Err('SHELL requires the arguments to be in JSON form, e.g. ["/bin/sh", "-c"]')
        if cmd in ("RUN", "SHELL") and not inst.args:
            raise _Err(f"{cmd} requires at least one argument")
        if cmd in ("CMD", "ENTRYPOINT") and not inst.args and not inst.json_form:
            raise _Err(f"{cmd} requires at least one argument")
    elif cmd in ("COPY", "ADD", "VOLUME"):
        arr = _json_array(rest)
        if arr is not None:
            inst.args, inst.json_form = arr, True
        else:
            inst.args = split_words(rest, escape)
        if cmd == "VOLUME":
            if not inst.args:
                raise _Err("VOLUME requires at least one argument")
            if any(not a.strip() for a in inst.args):
                raise _Err("VOLUME specified can not be an empty string")
        elif not inst.args:
            raise _Err(f"{cmd} requires at least two arguments: source(s) and destination")
        elif len(inst.args) < 2:
            raise _Err(f"{cmd} requires at least two arguments, but only one was provided. "
                       "Destination could not be determined")
    elif cmd in ("ENV", "LABEL"):
        inst.pairs = _name_values(cmd, rest, escape)
        inst.args = [f"{k}={v}" for k, v in inst.pairs]
    elif cmd == "ARG":
        inst.args = split_words(rest, escape)
        if not inst.args:
            raise _Err("ARG requires at least one argument")
        for w in inst.args:
            name, has_value, value = w.partition("=")
            if not name:
                raise _Err("ARG names can not be blank")
            inst.arg_defs.append((name, value if has_value else None))
    elif cmd in ("EXPOSE", "FROM"):
        inst.args = split_words(rest, escape)
        if not inst.args:
            raise _Err(f"{cmd} requires at least one argument")
    elif cmd in ("USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"):
        if not rest:
            raise _Err(f"{cmd} requires exactly one argument")
        inst.args = [rest]
    elif cmd == "HEALTHCHECK":
        sep = re.match(r"(\S+)\s*(.*)\Z", rest, re.DOTALL)
        if not sep:
            raise _Err("HEALTHCHECK requires an argument: CMD <command> or NONE")
        kind, cmdtext = sep.group(1), sep.group(2)
        arr = _json_array(cmdtext)
        if arr is not None:
            inst.args, inst.json_form = [kind, *arr], True
        else:
            inst.args = [kind, cmdtext] if cmdtext else [kind]
        inst.healthcheck = _healthcheck(inst.flags, inst.args, inst.json_form)
