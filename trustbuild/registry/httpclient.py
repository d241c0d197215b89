"""HTTP exchanges on ``http.client``: connection pools, TLS, proxies, redirects, responses.

The registry transport used ``requests`` on top of urllib3. Importing the two (with
``charset_normalizer``, ``idna``, ``http.cookiejar``, ``urllib.request`` and urllib3's own
modules) took ~45 ms and each request ~0.5 ms of their machinery, a fifth of a no-change
rebuild, for features trustbuild does not use (cookies, netrc, hooks, content sniffing, retry
policies: ``trustbuild._internal.retry`` retries whole requests). The standard library's
``http.client`` speaks HTTP/1.1 (keep-alive, chunked bodies, CONNECT tunnels) and ``ssl``
verifies certificates and host names; this module adds what the callers relied on:

- **connection pools**: idle keep-alive connections per host, TLS settings and proxy, at most
  ``maxsize`` kept; one the server has closed is dropped before reuse, and a request that finds
  its reused connection closed before any answer (and whose body can be sent again) is sent
  once more on a new one, as Go's ``net/http`` does;
- **TLS** 1.2 or later: certifi's CA bundle by default (what ``requests`` used), a CA file, or
  no verification; a client certificate for mutual TLS;
- **proxies** from ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` (host
  suffixes, ``host:port``, IP addresses and CIDR ranges, ``*``), as ``requests`` read them;
  credentials in the proxy URL are sent as ``Proxy-Authorization``; an ``https://`` target goes
  through a CONNECT tunnel, a plain one is forwarded;
- **redirects** followed up to 30 hops: 303, and 301/302 after anything but GET or HEAD, become
  a GET without a body (Go's ``net/http`` rule); a 307/308 is followed with the same body only
  when it is bytes (a stream already sent is returned as the answer). ``Authorization`` is
  dropped when the host, port or scheme changes (except http to https on default ports), as
  ``requests`` drops it;
- **timeouts**: one for connecting, one for each read; a response is read whole unless
  streamed.

Every failure is one of :data:`HTTP_ERRORS` (``OSError``, which includes TLS errors and
timeouts, or ``http.client.HTTPException``).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from trustbuild.errors import UsageError
from trustbuild.registry.deadline import MeteredResponse

__all__ = ["Response", "HttpClient", "TooManyRedirects", "HTTP_ERRORS", "basic_auth",
           "environ_proxy", "download"]

_MAX_REDIRECTS = 30
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TooManyRedirects(http.client.HTTPException):
    """More than 30 redirects for one request."""


HTTP_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
"""What a request or a response read can raise besides a registry's own errors."""


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth (UTF-8 user and password)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class Response:
    """One HTTP response: status, headers, body, its final URL and the request method."""

    def __init__(self, raw: http.client.HTTPResponse, *, method: str, url: str,
                 done: Any = None) -> None:
        """``done(reusable)`` is called once, when the body has been read or the response
        closed (``reusable``: the connection may carry another request)."""
        self.raw = raw
        self.method = method
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason or ""
        self.headers = raw.headers
        self._content: bytes | None = None
        self._done = done

    def _finish(self, reusable: bool) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(reusable and self.raw.isclosed() and not self.raw.will_close)

    @property
    def content(self) -> bytes:
        """The whole body (read now unless it already was)."""
        if self._content is None:
            try:
                self._content = self.raw.read()
            except BaseException:
                self._finish(False)
                raise
            self._finish(True)
        return self._content

    @property
    def consumed(self) -> bool:
        """True once the body has been read whole (``content``)."""
        return self._content is not None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body (all that is left by default); b"" at its end."""
        try:
            data = self.raw.read(None if n < 0 else n)
        except BaseException:
            self._finish(False)
            raise
        if self.raw.isclosed():
            self._finish(True)
        return data

    def iter_content(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The body in chunks of up to ``chunk_size`` bytes."""
        if self._content is not None:
            for i in range(0, len(self._content), chunk_size):
                yield self._content[i:i + chunk_size]
            return
        while chunk := self.read(chunk_size):
            yield chunk

    def link(self, rel: str) -> str | None:
        """The URL of the ``Link`` header entry with ``rel`` (RFC 8288), as sent (relative or
        absolute)."""
        value = self.headers.get("Link")
        if not value:
            return None
        for entry in value.split(","):
            target, _, params = entry.partition(";")
            target = target.strip().strip("<>'\" ")
            for param in params.split(";"):
                key, _, val = param.partition("=")
                if key.strip().lower() == "rel" and rel in val.strip(" '\"").split():
                    return target
        return None

    def close(self) -> None:
        """Release the connection (closed if the body was not read to its end)."""
        if not self.raw.isclosed():
            self.raw.close()
            self._finish(False)
        self._finish(True)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_proxy_match(host: str, port: int | None, entries: str) -> bool:
    """``NO_PROXY`` entries as ``requests`` takes them: ``*``, host suffixes (``.example.com``
    or ``example.com``; matched at a dot, so ``ample.com`` does not cover ``example.com``, which
    ``requests`` let through), ``host:port``, and for IP addresses an exact address or a CIDR
    range."""
    import ipaddress

    names = [e.strip() for e in entries.replace(" ", "").split(",") if e.strip()]
    if "*" in names:
        return True
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addr = None
    with_port = f"{host}:{port}" if port else host
    for name in names:
        if addr is not None:
            try:
                if addr in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        bare = name.lstrip(".")
        if host == bare or host.endswith("." + bare) or with_port == bare \
                or with_port.endswith("." + bare):
            return True
    return False


def environ_proxy(url: str) -> str | None:
    """The proxy URL for ``url`` from the environment (lower-case names win), or None."""
    env = {k.lower(): v for k, v in os.environ.items() if k.lower().endswith("_proxy") and v}
    for k, v in os.environ.items():  # lower-case variables take precedence, as in curl
        if k.endswith("_proxy") and v:
            env[k] = v
    if not env:
        return None
    split = urlsplit(url)
    host = split.hostname or ""
    if "no_proxy" in env and _no_proxy_match(host, split.port, env["no_proxy"]):
        return None
    return env.get(f"{split.scheme}_proxy") or env.get("all_proxy")


def _strips_auth(old: str, new: str) -> bool:
    """``requests``' rule: credentials do not follow a redirect to another host, port or
    scheme, except from http to https on the default ports."""
    a, b = urlsplit(old), urlsplit(new)
    if a.hostname != b.hostname:
        return True
    if a.scheme == "http" and a.port in (80, None) and b.scheme == "https" \
            and b.port in (443, None):
        return False
    defaults = {"http": 80, "https": 443}
    a_port = a.port or defaults.get(a.scheme)
    b_port = b.port or defaults.get(b.scheme)
    return a.scheme != b.scheme or a_port != b_port


class _Tuned:
    """What both connection kinds add to ``http.client``: metered responses, a read timeout
    apart from the connect timeout, and a host name handed to the resolver as bytes (as a
    ``str`` it loads the ``idna`` codec)."""

    response_class: type[http.client.HTTPResponse] = MeteredResponse
    sock: socket.socket | None
    _read_timeout: float

    def _tune(self, timeout: tuple[float, float]) -> None:
        self._read_timeout = timeout[1]
        self._create_connection = _create_connection

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        assert self.sock is not None
        self.sock.settimeout(self._read_timeout)


class _Connection(_Tuned, http.client.HTTPConnection):
    """A plain connection."""

    def __init__(self, host: str, port: int | None, *, timeout: tuple[float, float]) -> None:
        super().__init__(host, port, timeout=timeout[0], blocksize=_CHUNK)
        self._tune(timeout)


class _TLSConnection(_Tuned, http.client.HTTPSConnection):
    """A connection over TLS."""

    def __init__(self, host: str, port: int | None, *, timeout: tuple[float, float],
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout[0], blocksize=_CHUNK, context=context)
        self._tune(timeout)


def _create_connection(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
    host, port = address
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    return socket.create_connection((name, port), *args, **kw)  # type: ignore[arg-type]


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True if an idle connection can no longer carry a request (the server closed it)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)  # an idle connection has nothing to read unless it was closed


def _proxy_url(proxy: str) -> str:
    """``HTTP_PROXY=host:port`` means ``http://host:port``, as curl and requests read it."""
    return proxy if "://" in proxy else f"http://{proxy}"


_PoolKey = tuple[str, str, int, str | None, int]
_CONTEXTS: dict[tuple[bool | str, tuple[str, str] | None], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()


class HttpClient:
    """Pooled HTTP(S) to any host, with per-request TLS settings (thread-safe)."""

    def __init__(self, *, num_pools: int = 4, maxsize: int = 4,
                 headers: Mapping[str, str] | None = None) -> None:
        """Keep at most ``maxsize`` idle connections per host (and ``num_pools`` hosts);
        ``headers`` are sent with every request."""
        self._num_pools = num_pools
        self._maxsize = maxsize
        self.headers = dict(headers or {})
        self._idle: dict[_PoolKey, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every idle connection (the client stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _context(self, verify: bool | str, cert: tuple[str, str] | None) -> ssl.SSLContext:
        """The TLS settings for ``verify`` and ``cert``, made once per process (loading a CA
        bundle takes milliseconds)."""
        key = (verify, cert)
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.get(key)
        if ctx is not None:
            return ctx
        if verify is False:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            if verify is True:
                import certifi

                verify = certifi.where()
            ctx = ssl.create_default_context(cafile=verify)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])
        if cert is not None:
            ctx.load_cert_chain(cert[0], cert[1])
        with _CONTEXTS_LOCK:
            return _CONTEXTS.setdefault(key, ctx)

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
                body: Any = None, form: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None, stream: bool = False,
                allow_redirects: bool = True, verify: bool | str = True,
                cert: tuple[str, str] | None = None, proxy: str | None = None,
                timeout: tuple[float, float] = (30.0, 300.0)) -> Response:
        """Send one request (following redirects unless told not to).

        ``body``: bytes or a readable stream (give ``Content-Length`` for a stream);
        ``form``: sent url-encoded instead; ``verify``: True (certifi's bundle), a CA file
        or False; ``cert``: ``(CERT.pem, KEY.pem)``; ``proxy``: a proxy URL or None.
        Unless ``stream``, the body is read before returning.
        """
        hdrs = {**self.headers, **(headers or {})}
        if auth is not None:
            hdrs["Authorization"] = basic_auth(*auth)
        if form is not None:
            body = urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if params:
            query = urlencode(params)
            url = f"{url}{'&' if urlsplit(url).query else '?'}{query}"
        for _hop in range(_MAX_REDIRECTS + 1):
            resp = self._send_once(method, url, hdrs, body, stream=stream, verify=verify,
                                   cert=cert, proxy=proxy, timeout=timeout)
            location = resp.headers.get("Location")
            status = resp.status_code
            to_get = status == 303 and method != "HEAD" or \
                status in (301, 302) and method not in ("GET", "HEAD")
            if not allow_redirects or status not in _REDIRECT_STATUSES or not location or \
                    not to_get and body is not None and not isinstance(body, bytes | str):
                if not stream:
                    resp.content  # noqa: B018 - read the body now, as requests did
                return resp
            resp.close()
            target = urljoin(url, location)
            if to_get:
                method, body = "GET", None
                hdrs = {k: v for k, v in hdrs.items()
                        if k.lower() not in ("content-length", "content-type")}
            if _strips_auth(url, target):
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
            url = target
        raise TooManyRedirects(f"{method} {url}: more than {_MAX_REDIRECTS} redirects")

    def _send_once(self, method: str, url: str, headers: Mapping[str, str], body: Any, *,
                   stream: bool, verify: bool | str, cert: tuple[str, str] | None,
                   proxy: str | None, timeout: tuple[float, float]) -> Response:
        split = urlsplit(url)
        scheme = split.scheme
        if scheme not in _DEFAULT_PORTS or not split.hostname:
            raise http.client.InvalidURL(f"not an http(s) URL: {url}")
        host, port = split.hostname, split.port or _DEFAULT_PORTS[scheme]
        context = self._context(verify, cert) if scheme == "https" else None
        key: _PoolKey = (scheme, host, port, proxy, id(context))
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        hdrs = dict(headers)
        if proxy and scheme == "http":
            target = url  # a forwarding proxy gets the whole URL
            hdrs.update(self._proxy_headers(proxy))
        if isinstance(body, str):
            body = body.encode()
        resendable = body is None or isinstance(body, bytes)
        while True:
            conn, reused = self._checkout(key, host, port, proxy, context, timeout)
            try:
                conn.request(method, target, body=body, headers=hdrs)
                raw = conn.getresponse()
            except BaseException as exc:
                conn.close()
                if reused and resendable and isinstance(
                        exc, (http.client.RemoteDisconnected, ConnectionResetError,
                              BrokenPipeError)):
                    continue  # the server closed the idle connection: once more, on a new one
                raise
            break

        def done(reusable: bool) -> None:
            self._checkin(key, conn, reusable)

        return Response(raw, method=method, url=url, done=done)

    def _proxy_headers(self, proxy: str) -> dict[str, str]:
        split = urlsplit(_proxy_url(proxy))
        if not split.username:
            return {}
        return {"Proxy-Authorization": basic_auth(unquote(split.username),
                                                  unquote(split.password or ""))}

    def _checkout(self, key: _PoolKey, host: str, port: int, proxy: str | None,
                  context: ssl.SSLContext | None, timeout: tuple[float, float]
                  ) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key) or []
            while idle:
                conn = idle.pop()
                if not _dropped(conn):
                    return conn, True
                conn.close()
        if proxy:
            split = urlsplit(_proxy_url(proxy))
            if split.scheme != "http" or not split.hostname:
                raise UsageError(f"proxy {split.scheme}://{split.hostname}: only http:// "
                                 "proxies are supported")
            via = (split.hostname, split.port or 80)
            if context is None:
                return _Connection(*via, timeout=timeout), False
            tunnel = _TLSConnection(*via, timeout=timeout, context=context)
            tunnel.set_tunnel(host, port, headers=self._proxy_headers(proxy))
            return tunnel, False
        if context is None:
            return _Connection(host, port, timeout=timeout), False
        return _TLSConnection(host, port, timeout=timeout, context=context), False

    def _checkin(self, key: _PoolKey, conn: http.client.HTTPConnection, reusable: bool) -> None:
        if not reusable:
            conn.close()
            return
        with self._lock:
            if key not in self._idle and len(self._idle) >= self._num_pools:
                for old in self._idle.pop(next(iter(self._idle))):
                    old.close()
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._maxsize:
                idle.append(conn)
                return
        conn.close()


def download(url: str, *, timeout: tuple[float, float], verify: bool | str = True) -> Response:
    """A one-off streamed GET of ``url`` (a build context, an ``ADD`` source) through the
    environment's proxy; close the response (``with``)."""
    return HttpClient().request("GET", url, stream=True, timeout=timeout, verify=verify,
                                proxy=environ_proxy(url))
