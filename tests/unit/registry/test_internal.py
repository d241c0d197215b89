"""trustbuild._internal.retry and .redact, and registry error messages."""

from __future__ import annotations

import http.client
import io

from trustbuild._internal.redact import redact_headers, redact_url
from trustbuild._internal.retry import RetryPolicy, parse_retry_after, retry_call
from trustbuild.errors import RegistryError
from trustbuild.registry.httpclient import Response
from trustbuild.registry.response import error_from_response


def test_redact_url_hides_state_signatures_and_passwords() -> None:
    url = ("https://user:pw@h:5000/v2/r/blobs/uploads/u?_state=abc&digest=sha256:00"
           "&X-Amz-Signature=sig")
    out = redact_url(url)
    assert "pw" not in out and "abc" not in out and "=sig" not in out
    assert out.startswith("https://user:<redacted>@h:5000/v2/r/blobs/uploads/u?")
    assert "digest=sha256:00" in out
    assert redact_headers({"Authorization": "Bearer x", "Accept": "a"}) == {
        "Authorization": "<redacted>", "Accept": "a"}


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_call_backs_off_and_stops() -> None:
    sleeps: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RegistryError("busy", temporary=True)
        return "ok"

    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=0.8, sleep=sleeps.append)
    assert retry_call(flaky, policy=policy) == "ok"
    assert sleeps == [0.5, 0.8]

    def permanent() -> None:
        calls.append(1)
        raise RegistryError("no", temporary=False)

    calls.clear()
    try:
        retry_call(permanent, policy=policy)
    except RegistryError:
        pass
    assert len(calls) == 1


def _response(status: int, body: bytes, url: str, reason: str) -> Response:
    wire = (f"HTTP/1.1 {status} {reason}\r\nRetry-After: 2\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    class _Socket:
        def makefile(self, *args: object, **kw: object) -> io.BytesIO:
            return io.BytesIO(wire)

    raw = http.client.HTTPResponse(_Socket(), method="GET")  # type: ignore[arg-type]
    raw.begin()
    return Response(raw, method="GET", url=url)


def test_error_message_is_one_line_with_registry_message() -> None:
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    err = error_from_response(
        _response(401, body, "https://h/v2/r/manifests/t?_state=s", "Unauthorized"), method="GET")
    assert str(err) == ("GET https://h/v2/r/manifests/t?_state=<redacted>: "
                        "401 unauthorized: authentication required")
    assert not err.temporary
    busy = error_from_response(
        _response(429, b"slow down\nmore", "http://h/v2/", "Too Many Requests"), method="HEAD")
    assert str(busy) == "HEAD http://h/v2/: 429 too many requests"
    assert busy.temporary and busy.retry_after == 2.0
