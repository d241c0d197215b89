"""The validating webhook: HTTPS on ``http.server``, one thread per connection, bounded.

``POST /validate`` takes an AdmissionReview v1 and answers one; ``GET /healthz`` answers
``ok``. Connections are kept alive (HTTP/1.1) between requests for up to ``idle_timeout``,
as the API server's client expects. Limits: the TLS handshake and every read of a request
time out (``timeout``), a body must declare its ``Content-Length`` and stay under
:data:`MAX_REVIEW_BYTES` (413 otherwise) and arrive within three timeouts (408 otherwise); at
most ``max_concurrent`` reviews are evaluated at once and a review waits up to ``queue_wait``
seconds for a turn (inside the API server's webhook timeout, 10 s by default) before it gets
503 with ``Retry-After``; at most ``max_connections`` connections are open (more are closed at
once). A body that is not an AdmissionReview gets 400 with the reason in
``response.status.message``. Errors after a complete request keep the connection open.

Example::

    server = AdmissionServer(controller, ("127.0.0.1", 8443), cert="tls.crt", key="tls.key")
    server.serve_forever()
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from trustbuild.admission.controller import AdmissionController
from trustbuild.admission.review import (
    MAX_REVIEW_BYTES,
    InvalidReview,
    ReviewAnswer,
    response,
)
from trustbuild.errors import UsageError

__all__ = ["AdmissionServer", "parse_listen", "tls_context"]

log = logging.getLogger("trustbuild.admission")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8443`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT")
    return host, int(port)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context (TLS 1.2+) with the serving certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert {cert} / --tls-key {key}: cannot load: {exc}") from None
    return ctx


class _Handler(BaseHTTPRequestHandler):
    server: AdmissionServer
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # status, headers and body leave in one write (flushed after each request)
    server_version = "trustbuild-admission"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server API
        log.debug("%s %s", self.address_string(), format % args)

    _served = 0  # requests answered on this connection

    def _send(self, status: int, body: ReviewAnswer | str, *,
              headers: dict[str, str] | None = None) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.send_response(status)
        ctype = "text/plain; charset=utf-8" if isinstance(body, str) else "application/json"
        self.send_header("Content-Type", ctype)
        data = text.encode()
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, *, close: bool = True,
               headers: dict[str, str] | None = None) -> None:
        """Answer ``status``; ``close=False`` once the whole request was read (keep-alive)."""
        if close:
            self.close_connection = True
        self._send(status, response("", allowed=False, code=status, message=message),
                   headers=headers)

    def handle_one_request(self) -> None:
        """Wait for the next request up to ``idle_timeout``, then read it under ``timeout``."""
        first = self.server.io_timeout if not self._served else self.server.idle_timeout
        try:
            self.connection.settimeout(first)
            if not self.rfile.peek(1):  # type: ignore[attr-defined]
                self.close_connection = True
                return
            self.connection.settimeout(self.server.io_timeout)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        super().handle_one_request()
        self._served += 1

    def _read_body(self, length: int) -> bytes | None:
        """Read ``length`` bytes within ``3 * timeout`` in total (a trickling client is cut)."""
        deadline = time.monotonic() + 3 * self.server.io_timeout
        chunks: list[bytes] = []
        left = length
        while left > 0:
            if time.monotonic() > deadline:
                return None
            chunk = self.rfile.read1(min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path in ("/healthz", "/readyz"):
            self._send(200, "ok\n")
        else:
            self._error(404, f"no such path {self.path[:100]!r}: POST AdmissionReviews "
                             f"to {self.server.path}")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        if self.path.split("?", 1)[0] != self.server.path:
            self._error(404, f"no such path {self.path[:100]!r}: use {self.server.path}")
            return
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            self._error(415, f"Content-Type {ctype or 'missing'!r}: expected application/json")
            return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not length.isdigit():
            self._error(411, "a Content-Length header is required (no chunked bodies)")
            return
        if int(length) > MAX_REVIEW_BYTES:
            self._error(413, f"AdmissionReview of {length} bytes is larger than "
                             f"{MAX_REVIEW_BYTES} bytes")
            return
        body = self._read_body(int(length))
        if body is None:
            self._error(408, "the body did not arrive in time")
            return
        if len(body) != int(length):
            self._error(400, "the body is shorter than its Content-Length")
            return
        if not self.server.slots.acquire(timeout=self.server.queue_wait):
            log.info("review from %s refused: %d reviews in progress for %.1f s",
                     self.address_string(), self.server.max_concurrent, self.server.queue_wait)
            self._error(503, "too many reviews in progress; retry", close=False,
                        headers={"Retry-After": "1"})
            return
        try:
            answer = self.server.controller.review(body)
        except InvalidReview as exc:
            self._error(400, str(exc), close=False)
            return
        except Exception:  # a bug must still answer (and deny): never a dropped connection
            log.exception("review failed")
            self._error(500, "internal error while evaluating the review; see the webhook log",
                        close=False)
            return
        finally:
            self.server.slots.release()
        self._send(200, answer)


#: What socketserver hands a TCP server per connection (typeshed's ``_RequestType``), and the
#: peer address (``(host, port)``, or 4 items for IPv6).
_Request = socket.socket | tuple[bytes, socket.socket]
_Address = tuple[object, ...]


class AdmissionServer(ThreadingHTTPServer):
    """HTTPS server answering AdmissionReviews with ``controller``; port 0 picks a free one."""

    daemon_threads = True
    request_queue_size = 1024  # listen backlog: a burst of new connections is not refused

    def __init__(self, controller: AdmissionController, address: tuple[str, int], *,
                 cert: str, key: str, path: str = "/validate", timeout: float = 10.0,
                 max_concurrent: int = 16, max_connections: int = 1024,
                 queue_wait: float = 5.0, idle_timeout: float = 120.0) -> None:
        self.controller = controller
        self.max_connections = max_connections
        self.connections = threading.BoundedSemaphore(max_connections)
        self.path = path
        self.io_timeout = timeout
        self.idle_timeout = idle_timeout
        self.queue_wait = queue_wait
        self.max_concurrent = max_concurrent
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.context = tls_context(cert, key)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self.server_address[1])

    def process_request(self, request: _Request, client_address: _Address) -> None:
        """Start a thread for the connection, or drop it when ``max_connections`` are open."""
        if not self.connections.acquire(blocking=False):
            log.info("connection from %s dropped: %d connections open", client_address[0],
                     self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request: _Request, client_address: _Address) -> None:
        """Serve one connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def finish_request(self, request: _Request, client_address: _Address) -> None:
        """TLS handshake in the connection's own thread, under the I/O timeout."""
        if not isinstance(request, socket.socket):  # TCP: always a socket
            return
        request.settimeout(self.io_timeout)
        try:
            # no Nagle delay on the answer (the client would hold its ACK for ~40 ms)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass

    def handle_error(self, request: _Request, client_address: _Address) -> None:
        """Log a failed connection in one line (timeouts, resets) instead of a traceback."""
        import sys

        exc = sys.exc_info()[1]
        log.info("connection from %s failed: %s", client_address[0], exc)
