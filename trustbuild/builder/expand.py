"""Dockerfile variable expansion with the semantics of buildkit's shell lexer (``shell/lex.go``).

``expand`` processes one word the way Docker does for ``COPY``/``ENV``/``WORKDIR``... arguments:
``$V``, ``${V}``, ``${V:-x}``, ``${V-x}``, ``${V:+x}``, ``${V+x}``, ``${V:?msg}``, ``${V?msg}``,
``${V#pat}``, ``${V##pat}``, ``${V%pat}``, ``${V%%pat}``, ``${V/pat/rep}``, ``${V//pat/rep}``;
single quotes are literal, double quotes are processed, the escape character (``\\`` or the
``# escape=`` one) escapes the next character; quotes are removed; unset variables expand to "".

Example::

    >>> expand('"${GREETING:-hi}, $NAME"', {"NAME": "world"})
    'hi, world'
    >>> expand_words('a "b c" $X', {"X": "d e"})
    ['a', 'b c', 'd', 'e']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from trustbuild._internal.redact import excerpt
from trustbuild.errors import BuildError

__all__ = [
    "EXPANDING_INSTRUCTIONS",
    "ExpansionError",
    "Lexer",
    "expand",
    "expand_heredoc",
    "expand_words",
]

#: Instructions whose arguments Docker expands with build args and ENV (Dockerfile reference,
#: "Environment replacement", plus ARG defaults). ONBUILD triggers are expanded when they run.
EXPANDING_INSTRUCTIONS: frozenset[str] = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME",
     "WORKDIR", "ONBUILD"}
)

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class ExpansionError(BuildError):
    """A word whose ``$`` syntax or quoting is invalid (message says which and where)."""


@dataclass
class _Words:
    """Accumulates whitespace-split words the way lex.go's wordsStruct does."""

    word: str = ""
    words: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class Lexer:
    """One pass over a word; options mirror buildkit's Lex (raw_quotes, raw_escapes, skip_unset)."""

    def __init__(self, env: Mapping[str, str], *, escape: str = "\\", raw_quotes: bool = False,
                 raw_escapes: bool = False, skip_unset: bool = False,
                 skip_quotes: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape token {escape!r}")
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes
        self._src = ""
        self._pos = 0

    # -- scanner helpers -------------------------------------------------------------------
    def _peek(self) -> str:
        return self._src[self._pos] if self._pos < len(self._src) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self._pos += 1
        return ch

    # -- entry point -----------------------------------------------------------------------
    def process(self, source: str) -> tuple[str, list[str]]:
        """Return (the expanded word, the expanded text split into words)."""
        self._src, self._pos = source, 0
        try:
            return self._stop_on("", self.raw_escapes)
        except ExpansionError as exc:
            raise ExpansionError(f"failed to process {excerpt(source)}: {exc}") from None

    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on_inner(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on_inner(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self._peek():
            ch = self._peek()
            if stop and ch == stop:
                self._next()
                return "".join(result), words.result()
            if ch == "$":
                tmp = self._dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "'" and not self.skip_quotes:
                tmp = self._single_quote()
                result.append(tmp)
                words.add_raw(tmp)
            elif ch == '"' and not self.skip_quotes:
                tmp = self._double_quote()
                result.append(tmp)
                words.add_raw(tmp)
            else:
                ch = self._next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _single_quote(self) -> str:
        out: list[str] = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = self._next()
            if not ch:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        out: list[str] = []
        ch = self._next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            nxt = self._peek()
            if not nxt:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self._next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self._peek()
                if not after:
                    continue
                if after in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def _name(self) -> str:
        name: list[str] = []
        while self._peek():
            ch = self._peek()
            if not name and ch.isdecimal():
                while self._peek() and self._peek().isdecimal():
                    name.append(self._next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self._next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self._next())
        return "".join(name)

    def _dollar(self) -> str:
        self._next()  # the $
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self._next()  # the {
        first = self._peek()
        if not first:
            raise ExpansionError("syntax error: missing '}'")
        if first in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if not ch:
            raise ExpansionError("syntax error: missing '}'")
        if ch == "}":
            value, found = self._lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(name)
        mod = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            mod += ch
        if ch not in ("+", "-", "?", "#", "%"):
            raise ExpansionError(f"unsupported modifier ({mod}) in substitution")
        try:
            word, _ = self._stop_on("}", ch in ("#", "%"))
        except ExpansionError:
            if not self._peek():
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, found = self._lookup(name)
        if self.skip_unset and not found:
            return "${" + name + mod + word + "}"
        empty = not found or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not found:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "#":
            m = _pattern_regex(word, greedy=greedy, anchor="start").search(value)
            return value[m.end():] if m else value
        # %: match the suffix; shortest (non-greedy) or longest (greedy).
        regex = _pattern_regex(word, greedy=True, anchor="end")
        starts = range(len(value) + 1) if greedy else range(len(value), -1, -1)
        for i in starts:
            if regex.fullmatch(value, i):
                return value[:i]
        return value

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        try:
            pattern, _ = self._stop_on("/", True)
        except ExpansionError:
            if not self._peek():
                raise ExpansionError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self._stop_on("}", True)
        except ExpansionError:
            if not self._peek():
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, found = self._lookup(name)
        if self.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchor="")
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)


def _pattern_regex(pattern: str, *, greedy: bool, anchor: str) -> re.Pattern[str]:
    """Shell wildcard pattern (``*``, ``?``, ``\\`` escapes; no brackets) to a regex."""
    out = ["^"] if anchor == "start" else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern {excerpt(pattern)} in substitution: "
                                     f"invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    if anchor == "end":
        out.append("$")
    return re.compile("".join(out), re.DOTALL)


def expand(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Expand one Dockerfile word (quotes removed, whitespace kept) like buildkit's ProcessWord."""
    return Lexer(env, escape=escape).process(word)[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Expand ``text`` and split it into words; quoted parts stay in one word (ProcessWords)."""
    return Lexer(env, escape=escape).process(text)[1]


def expand_heredoc(content: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Expand ``$V`` in an unquoted-marker COPY/ADD heredoc body; quotes and escapes stay."""
    return Lexer(env, escape=escape, raw_escapes=True, skip_quotes=True).process(content)[0]
