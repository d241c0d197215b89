"""Redaction of secret-looking values (build args, env) before they reach provenance or logs.

A name looks secret when it contains, in any case, one of TOKEN, SECRET, PASSWORD, PASSWD, KEY,
CREDENTIAL or AUTH. The builder, the provenance generator and the policy rules share this test
(it lives low in the tree so ``build`` can use it without importing ``attest``)::

    >>> redact_mapping({"MY_TOKEN": "abc", "VERSION": "1"})
    {'MY_TOKEN': '<redacted>', 'VERSION': '1'}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "SECRET_WORDS", "REDACTED", "is_secret_name", "redact_mapping", "redact_env_list",
    "redact_text",
]

SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH")
REDACTED = "<redacted>"
_SECRET = re.compile("|".join(SECRET_WORDS), re.IGNORECASE)
_LEGACY_ENV = re.compile(r"^(?P<head>\s*ENV\s+)(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\s+(?!\S*=)\S.*$",
                         re.IGNORECASE | re.DOTALL)
_ASSIGN = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s]*)""")


def is_secret_name(name: str) -> bool:
    """True if ``name`` (a build arg or env name) looks like it holds a secret."""
    return bool(_SECRET.search(name))


def redact_mapping(values: Mapping[str, str | None], *,
                   marker: str = REDACTED) -> dict[str, str | None]:
    """A copy of ``values`` with the values of secret-looking names replaced by ``marker``.

    ``None`` values (an ARG declared without a value) stay ``None``.
    """
    return {k: (marker if v is not None and is_secret_name(k) else v) for k, v in values.items()}


def redact_env_list(env: list[str], *, marker: str = REDACTED) -> list[str]:
    """Redact ``NAME=value`` strings (image config ``Env``) the same way."""
    out = []
    for item in env:
        name, sep, _value = item.partition("=")
        out.append(f"{name}={marker}" if sep and is_secret_name(name) else item)
    return out


def redact_text(text: str, *, values: Mapping[str, str | None] | None = None,
                marker: str = REDACTED) -> str:
    """Redact secrets inside free text (instruction text, history, messages).

    Every ``NAME=value`` assignment with a secret-looking name (``ARG MY_TOKEN=x``,
    ``ENV API_KEY="y"``, ``|1 MY_TOKEN=x /bin/sh``), and every occurrence of the value of a
    secret-looking name in ``values`` (the build args: ``RUN curl -H "$TOKEN"`` once expanded).
    """
    for name, value in (values or {}).items():
        if value and is_secret_name(name):
            text = text.replace(value, marker)

    def repl(m: re.Match[str]) -> str:
        return f"{m.group('name')}={marker}" if is_secret_name(m.group("name")) else m.group(0)

    m = _LEGACY_ENV.match(text)
    if m and is_secret_name(m.group("name")):
        return f"{m.group('head')}{m.group('name')} {marker}"
    return _ASSIGN.sub(repl, text)
