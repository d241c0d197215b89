""".dockerignore handling with moby's ``patternmatcher`` semantics.

Lines starting with ``#`` are comments; patterns are cleaned like Go's ``filepath.Clean`` and a
leading ``/`` is dropped (patterns are relative to the context root). ``*`` and ``?`` never match
``/``; ``**`` matches any number of directories; ``!pattern`` re-includes; the last matching
pattern wins; a pattern that matches a directory matches everything below it.

Example::

    >>> m = IgnoreMatcher.from_text("**/*.log\\n!logs/important.log\\nskip\\n")
    >>> m.excluded("logs/a.log"), m.excluded("logs/important.log"), m.excluded("skip/x")
    (True, False, True)
"""

from __future__ import annotations

import posixpath
import re
import warnings
from dataclasses import dataclass

from trustbuild._internal.redact import excerpt
from trustbuild.errors import DockerfileError

__all__ = ["IgnoreMatcher", "component_regex", "go_clean"]

_ESCAPE = set(".+()|{}$^")


def _re_compile(pattern: str) -> re.Pattern[str]:
    """Compile quietly: Go accepts ``[[]`` where Python only warns about nested sets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(pattern, re.DOTALL)


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` for slash-separated paths."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


@dataclass
class _Pattern:
    text: str  # cleaned pattern, without "!"
    exclusion: bool  # True for "!pattern" (re-include)
    kind: str  # exact | prefix | suffix | regexp
    regex: re.Pattern[str] | None
    dirs: list[str]

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """Translate one cleaned pattern like patternmatcher's Pattern.compile."""
    out = ["^"]
    kind = "exact"
    i, n = 0, len(text)
    index = 0
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regexp"
                else:
                    out.append("(.*/)?")
                    kind = "regexp"
                if index == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPE and not (ch == "^" and i >= 2 and text[i - 2] == "["):
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regexp"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regexp"
        else:
            out.append(ch)
        index += 1
    regex = None
    if kind == "regexp":
        regex = _re_compile("".join(out) + "$")
    return _Pattern(text=text, exclusion=exclusion, kind=kind, regex=regex,
                    dirs=text.split("/"))


def component_regex(component: str, *, strict: bool = False) -> re.Pattern[str]:
    """A regex for one path component of a Go filepath.Match pattern (``*``, ``?``, ``[...]``).

    An invalid pattern raises ValueError when ``strict``, else gives a match-all regex (safe
    for pruning decisions).
    """
    out = []
    i, n = 0, len(component)
    try:
        while i < n:
            ch = component[i]
            i += 1
            if ch == "*":
                out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch == "\\":
                if i >= n:
                    raise ValueError("trailing backslash")
                out.append(re.escape(component[i]))
                i += 1
            elif ch == "[":
                cls = ["["]
                if i < n and component[i] == "^":
                    cls.append("^")
                    i += 1
                first = True
                while True:
                    if i >= n:
                        raise ValueError("unterminated [")
                    c = component[i]
                    i += 1
                    if c == "]" and not first:
                        break
                    if c == "\\":
                        if i >= n:
                            raise ValueError("trailing backslash")
                        c = component[i]
                        i += 1
                    cls.append(c if c == "-" else re.escape(c))
                    first = False
                out.append("".join(cls) + "]")
            else:
                out.append(re.escape(ch))
        return _re_compile("".join(out) + r"\Z")
    except (ValueError, re.error) as exc:
        if strict:
            raise ValueError(f"bad pattern {excerpt(component)}: {exc}") from None
        return re.compile(r"[\s\S]*")


class IgnoreMatcher:
    """Decides which context paths a .dockerignore excludes."""

    def __init__(self, patterns: list[str], *, source: str = ".dockerignore") -> None:
        self.source = source
        self.patterns: list[_Pattern] = []
        for lineno, raw in enumerate(patterns, 1):
            p = raw.strip()
            if not p:
                continue
            p = go_clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise DockerfileError('illegal exclusion pattern: "!"', path=source,
                                          line=lineno)
                p = p[1:]
            try:
                self.patterns.append(_compile(p, exclusion))
            except re.error as exc:
                raise DockerfileError(f"bad pattern {excerpt(raw.strip())}: {exc}", path=source,
                                      line=lineno) from None
        self.has_exceptions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_text(cls, text: str, *, source: str = ".dockerignore") -> IgnoreMatcher:
        """Parse .dockerignore text (moby ignorefile.ReadAll rules)."""
        patterns: list[str] = []
        for i, line in enumerate(text.split("\n")):
            if i == 0:
                line = line.removeprefix("\ufeff")
            line = line.rstrip("\r")
            if line.startswith("#"):
                patterns.append("")  # keep numbering for error messages
                continue
            p = line.strip()
            if not p:
                patterns.append("")
                continue
            invert = p.startswith("!")
            if invert:
                p = p[1:].strip()
            if p:
                p = go_clean(p)
                if len(p) > 1 and p.startswith("/"):
                    p = p[1:]
            patterns.append("!" + p if invert else p)
        return cls(patterns, source=source)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, relpath: str) -> bool:
        """True when the context path (slash-separated, relative to the root) is excluded."""
        path = go_clean(relpath.lstrip("/")) if relpath else "."
        if path == "." or not self.patterns:
            return False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match and parents:
                for i in range(len(parents)):
                    if pattern.match("/".join(parents[: i + 1])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def dir_may_have_included(self, relpath: str) -> bool:
        """False only when nothing below the directory can be included: safe to prune it.

        True when the directory is not excluded, or when an exception pattern (``!p``) could
        match the directory or something below it.
        """
        path = go_clean(relpath.lstrip("/")) if relpath else "."
        if not self.excluded(path):
            return True
        if not self.has_exceptions:
            return False
        parts = path.split("/")
        for pattern in self.patterns:
            if pattern.exclusion and _may_match_below(pattern.dirs, parts):
                return True
        return False


def _may_match_below(pattern_dirs: list[str], parts: list[str]) -> bool:
    """Could a pattern split into ``pattern_dirs`` match ``parts`` or a path below it?"""
    for i, part in enumerate(parts):
        if i >= len(pattern_dirs):
            return True  # the pattern matched a parent directory: it covers everything below
        comp = pattern_dirs[i]
        if "**" in comp:
            return True
        if not component_regex(comp).match(part):
            return False
    return True
