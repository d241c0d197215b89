"""Turning HTTP responses and connection failures into one-line RegistryErrors."""

from __future__ import annotations

import errno
import http.client
import json
import ssl

from trustbuild._internal.redact import redact_url
from trustbuild._internal.retry import parse_retry_after
from trustbuild.errors import RegistryError
from trustbuild.registry.httpclient import HTTP_ERRORS, Response

__all__ = ["read_limited", "error_from_response", "connection_error", "ERROR_BODY_LIMIT",
           "TEMPORARY_STATUSES"]

ERROR_BODY_LIMIT = 64 * 1024
TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def read_limited(resp: Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (works for streamed and non-streamed responses)."""
    if resp.consumed:
        return resp.content[:limit]
    out = bytearray()
    try:
        for chunk in resp.iter_content(64 * 1024):
            out += chunk
            if len(out) >= limit:
                break
    except HTTP_ERRORS:
        pass
    return bytes(out[:limit])


def _registry_message(body: bytes) -> str:
    """``code: message`` from a distribution error body, or its first text line."""
    try:
        obj: object = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        errs = obj.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            parts = []
            for e in errs[:3]:
                code = str(e.get("code", "")).lower()
                msg = str(e.get("message", "")).strip()
                parts.append(f"{code}: {msg}" if code and msg else code or msg)
            return "; ".join(p for p in parts if p)
        for key in ("details", "message", "error_description", "error"):
            if isinstance(obj.get(key), str) and obj[key]:
                return str(obj[key])
    text = body.decode("utf-8", errors="replace").strip()
    line = text.splitlines()[0] if text else ""
    return line[:200]


def error_from_response(resp: Response, *, method: str | None = None,
                        hint: str = "") -> RegistryError:
    """``GET https://host/v2/repo/manifests/tag: 401 unauthorized: <registry message>``."""
    method = method or resp.method or "GET"
    url = redact_url(resp.url or "")
    body = read_limited(resp, ERROR_BODY_LIMIT)
    message = _registry_message(body) if method != "HEAD" else ""
    reason = (resp.reason or "").lower()
    status = f"{resp.status_code} {reason}".strip()
    if message and not message.lower().startswith(reason or "\0"):
        status = f"{status}: {message}"
    elif message:
        status = f"{resp.status_code} {message}"
    text = f"{method} {url}: {status}"
    if hint:
        text += f" ({hint})"
    return RegistryError(text, method=method, url=url, status=resp.status_code,
                         temporary=resp.status_code in TEMPORARY_STATUSES,
                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind ``exc`` (``reason``, cause, context or first argument)."""
    seen = set()
    cur: BaseException | None = exc
    last = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        last = cur
        nxt = getattr(cur, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = cur.__cause__ or cur.__context__
        if (not isinstance(nxt, BaseException) and cur.args
                and isinstance(cur.args[0], BaseException)):
            nxt = cur.args[0]
        cur = nxt if isinstance(nxt, BaseException) else None
    return last


def connection_error(host: str, exc: BaseException) -> RegistryError:
    """``cannot reach registry HOST: connection refused`` (or timed out, TLS failure, ...)."""
    root = root_cause(exc)
    temporary = True
    if isinstance(root, ssl.SSLError):
        detail = str(getattr(root, "reason", "") or root).split("(_ssl")[0].strip()
        if "CERTIFICATE_VERIFY_FAILED" in str(root) or "certificate verify failed" in str(root):
            detail = "TLS certificate verify failed"
        msg = (f"cannot reach registry {host}: {detail or 'TLS error'} "
               f"(trust its CA with --registry-certificate {host}=CA.pem, or --skip-tls-verify)")
        return RegistryError(msg, temporary=False)
    if (isinstance(root, ConnectionRefusedError)
            or getattr(root, "errno", None) == errno.ECONNREFUSED):
        detail = "connection refused"
    elif isinstance(root, TimeoutError):
        detail = "timed out"
    elif "Name or service not known" in str(root) or "nodename nor servname" in str(root) \
            or "Temporary failure in name resolution" in str(root):
        detail = "host name does not resolve"
    elif isinstance(root, ConnectionResetError):
        detail = "connection reset"
    elif isinstance(root, http.client.IncompleteRead):
        detail = "connection closed in the middle of a response"
    else:
        detail = str(root).splitlines()[0][:200] if str(root) else type(root).__name__
    return RegistryError(f"cannot reach registry {host}: {detail}", temporary=temporary)
