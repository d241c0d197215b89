"""Remove secrets from URLs and headers before they reach a message or a log.

(Unstable internal API.)

Registry upload URLs carry opaque state (``_state``), pre-signed storage URLs carry signatures,
and a user may type ``https://user:pass@host``. Only query parameters known to be harmless are
kept; every other value becomes the one redaction marker, ``<redacted>``
(``trustbuild._internal.secrets.REDACTED``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from trustbuild._internal.secrets import REDACTED

__all__ = ["redact_url", "redact_headers", "excerpt", "REDACTED"]

_SAFE_PARAMS = frozenset({"mount", "from", "digest", "n", "last", "service", "scope",
                          "artifactType", "ns"})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie",
                             "x-registry-auth"})


def redact_url(url: str) -> str:
    """``url`` without userinfo password and with unknown query values replaced by REDACTED."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        # urlencode's quoting, but the marker is shown as it is (not as %3Credacted%3E)
        query = "&".join(
            f"{_quote(k)}={_quote(v) if k in _SAFE_PARAMS else REDACTED}" for k, v in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _quote(text: str) -> str:
    return quote_plus(text, safe=":/,")


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by REDACTED."""
    return {k: (REDACTED if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def excerpt(text: str, limit: int = 40) -> str:
    """``text`` quoted for a one-line error message: escaped, at most ``limit`` characters.

    For parse errors that name the offending token of untrusted input (a Dockerfile may be any
    file): never more than that token, never a control character or a second line.
    """
    shown = repr(text[:limit])
    return shown + "..." if len(text) > limit else shown
