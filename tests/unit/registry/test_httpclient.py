"""trustbuild.registry.httpclient against real loopback HTTP servers: proxies from the
environment, redirects as requests followed them, Link headers."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trustbuild.registry.httpclient import HttpClient, environ_proxy
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.transport import Transport


class _Server:
    """A loopback HTTP server recording each request; ``answer`` picks the reply."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str | None]] = []
        self.answer = lambda handler: (200, {}, b"ok")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                server.seen.append({"method": self.command, "path": self.path,
                                    "auth": self.headers.get("Authorization"),
                                    "proxy_auth": self.headers.get("Proxy-Authorization"),
                                    "body": body.decode()})
                status, headers, out = server.answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_HEAD = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    a, b = _Server(), _Server()
    yield a, b
    a.close()
    b.close()


def test_no_proxy_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(k, raising=False)
    assert environ_proxy("https://r.example.com/v2/") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example, .corp.test,10.0.0.0/8,r2:5000")
    assert environ_proxy("https://r.example.com/v2/") == "http://proxy:3128"
    assert environ_proxy("http://r.example.com/v2/") is None  # no HTTP_PROXY
    assert environ_proxy("https://internal.example/v2/") is None
    assert environ_proxy("https://a.internal.example/v2/") is None
    assert environ_proxy("https://notinternal.example/v2/") == "http://proxy:3128"
    assert environ_proxy("https://x.corp.test/v2/") is None
    assert environ_proxy("https://10.1.2.3:5000/v2/") is None
    assert environ_proxy("https://11.1.2.3/v2/") == "http://proxy:3128"
    assert environ_proxy("https://r2:5000/v2/") is None
    assert environ_proxy("https://r2:5001/v2/") == "http://proxy:3128"
    monkeypatch.setenv("no_proxy", "*")  # the lower-case variable wins
    assert environ_proxy("https://r.example.com/v2/") is None


def test_registry_requests_go_through_the_environment_proxy(
        servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, _ = servers
    for k in ("no_proxy", "NO_PROXY", "http_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://alice:s%40cret@127.0.0.1:{proxy.port}")
    host = "registry.invalid:5000"  # never resolved: only the proxy is asked
    transport = Transport(host, options=StoreOptions(insecure_registries=[host]),
                          credentials=None)
    transport.ping()
    assert proxy.seen[0]["method"] == "GET"
    assert proxy.seen[0]["path"] == f"http://{host}/v2/"  # a forwarding proxy's request line
    expected = base64.b64encode(b"alice:s@cret").decode()
    assert proxy.seen[0]["proxy_auth"] == f"Basic {expected}"


def test_loopback_registries_never_use_a_proxy(
        servers: tuple[_Server, _Server], monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _ = servers
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("http_proxy", raising=False)
    Transport(f"127.0.0.1:{registry.port}", credentials=None).ping()
    assert registry.seen[0]["path"] == "/v2/"


def test_redirects_drop_credentials_on_another_host_and_303_becomes_get(
        servers: tuple[_Server, _Server]) -> None:
    first, second = servers
    # 127.0.0.1 and localhost are different host names for the same server
    first.answer = lambda h: (
        (303, {"Location": f"http://127.0.0.1:{first.port}/after"}, b"")
        if h.path == "/form" else
        (307, {"Location": f"http://localhost:{second.port}/blob"}, b"")
        if h.path == "/start" else (200, {}, b"first"))
    second.answer = lambda h: (200, {}, b"from second")
    client = HttpClient()
    resp = client.request("GET", f"http://127.0.0.1:{first.port}/start",
                          headers={"Authorization": "Bearer secret"})
    assert resp.content == b"from second"
    assert resp.url == f"http://localhost:{second.port}/blob"
    assert first.seen[0]["auth"] == "Bearer secret"
    assert second.seen[0]["auth"] is None

    resp = client.request("POST", f"http://127.0.0.1:{first.port}/form", form={"a": "b"})
    assert resp.content == b"first" and resp.method == "GET"
    assert [(s["method"], s["path"], s["body"]) for s in first.seen[1:]] == [
        ("POST", "/form", "a=b"), ("GET", "/after", "")]

    resp = client.request("GET", f"http://127.0.0.1:{first.port}/start", allow_redirects=False)
    assert resp.status_code == 307 and resp.headers["Location"].endswith("/blob")


def test_redirect_rules_for_ports_bodies_and_methods(servers: tuple[_Server, _Server]) -> None:
    first, second = servers
    first.answer = lambda h: (
        (307, {"Location": f"http://127.0.0.1:{second.port}/other-port"}, b"")
        if h.path == "/port" else
        (302, {"Location": "/landed"}, b"") if h.path == "/put-302" else
        (307, {"Location": "/again"}, b"") if h.path == "/put-307" else (200, {}, b"first"))
    client = HttpClient()
    client.request("GET", f"http://127.0.0.1:{first.port}/port",
                   headers={"Authorization": "Bearer secret"})
    assert second.seen[0]["auth"] is None  # same host, another port: no credentials

    resp = client.request("PUT", f"http://127.0.0.1:{first.port}/put-302", body=b"data",
                          headers={"Authorization": "Bearer secret"})
    assert resp.method == "GET" and resp.content == b"first"
    assert first.seen[-1] == {"method": "GET", "path": "/landed", "auth": "Bearer secret",
                              "proxy_auth": None, "body": ""}

    resp = client.request("PUT", f"http://127.0.0.1:{first.port}/put-307", body=b"data")
    assert first.seen[-1]["path"] == "/again" and first.seen[-1]["body"] == "data"
    sent = len(first.seen)
    stream = io.BytesIO(b"streamed")  # read once: a 307 is the answer, not a second PUT
    resp = client.request("PUT", f"http://127.0.0.1:{first.port}/put-307", body=stream,
                          headers={"Content-Length": "8"})
    assert resp.status_code == 307 and len(first.seen) == sent + 1


def test_link_header_and_streamed_body(servers: tuple[_Server, _Server]) -> None:
    server, _ = servers
    server.answer = lambda h: (200, {"Link": '</v2/r/tags/list?n=2&last=b>; rel="next"'},
                               b"x" * 100_000)
    with HttpClient().request("GET", f"http://127.0.0.1:{server.port}/v2/r/tags/list",
                              stream=True, params={"n": "2"}) as resp:
        assert resp.link("next") == "/v2/r/tags/list?n=2&last=b"
        assert resp.link("prev") is None
        assert sum(len(c) for c in resp.iter_content(4096)) == 100_000
    assert server.seen[0]["path"] == "/v2/r/tags/list?n=2"
