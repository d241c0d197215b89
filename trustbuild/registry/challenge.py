"""``WWW-Authenticate`` challenges (RFC 7235) as registries send them, and token scopes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenge", "repository_scope", "merge_scopes"]

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)')


@dataclass(frozen=True)
class Challenge:
    """One challenge: ``scheme`` is lower case (``basic`` or ``bearer``); ``params`` keys too."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        """The ``realm`` parameter (the token endpoint for bearer)."""
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        """The ``service`` parameter (bearer)."""
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """Scopes the registry asked for (space separated in the ``scope`` parameter)."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)

    @property
    def error(self) -> str:
        """The ``error`` parameter, e.g. ``insufficient_scope``."""
        return self.params.get("error", "")


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="..",service="..",scope=".."`` or ``Basic realm=".."``.

    Returns None for an empty or unparseable header. Unknown schemes are kept as-is so the
    caller can name them in an error.
    """
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*", scheme):
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m:
            break
        value = m.group(2) if m.group(2) is not None else (m.group(3) or "")
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def repository_scope(repository: str, actions: str) -> str:
    """``repository:NAME:ACTIONS`` (actions like ``pull`` or ``pull,push``)."""
    return f"repository:{repository}:{actions}"


def merge_scopes(*groups: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Union of scopes; actions of the same resource are merged (``pull`` + ``push``)."""
    merged: dict[str, list[str]] = {}
    for group in groups:
        for scope in group:
            resource, sep, actions = scope.rpartition(":")
            if not sep or not resource:
                merged.setdefault(scope, [])
                continue
            acts = merged.setdefault(resource, [])
            for a in actions.split(","):
                if a and a not in acts:
                    acts.append(a)
    out = []
    for resource, acts in merged.items():
        order = sorted(acts, key=lambda a: ({"pull": 0, "push": 1}.get(a, 2), a))
        out.append(f"{resource}:{','.join(order)}" if acts else resource)
    return tuple(sorted(out))
