"""HTTP exchanges on urllib3: connection pools, TLS settings, proxies, redirects, responses.

The registry transport (and the remote build context) used ``requests`` on top of urllib3.
Importing ``requests`` (with ``charset_normalizer``, ``idna``, ``http.cookiejar`` and
``urllib.request``) took ~25 ms and each request ~0.5 ms of session machinery, a tenth of a
no-change rebuild, for features trustbuild does not use (cookies, netrc, hooks, content
sniffing). This module keeps the behaviour trustbuild relied on:

- **TLS**: certifi's CA bundle by default (what ``requests`` used), a CA file, or no
  verification; a client certificate for mutual TLS;
- **proxies** from ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` (host
  suffixes, ``host:port``, IP addresses and CIDR ranges, ``*``), as ``requests`` read them;
  credentials in the proxy URL are sent as ``Proxy-Authorization``;
- **redirects** followed up to 30 hops: 303, and 301/302 after anything but GET or HEAD, become
  a GET without a body (Go's ``net/http`` rule); a 307/308 is followed with the same body only
  when it is bytes (a stream already sent is returned as the answer). ``Authorization`` is
  dropped when the host, port or scheme changes (except http to https on default ports), as
  ``requests`` drops it;
- **responses**: read whole unless streamed; :class:`Response` offers what callers used.

No retries here (``trustbuild._internal.retry`` retries whole requests); every failure is a
urllib3 ``HTTPError`` or an ``OSError``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.util.retry import Retry

from trustbuild.errors import UsageError

__all__ = ["Response", "HttpClient", "TooManyRedirects", "basic_auth", "environ_proxy"]

_MAX_REDIRECTS = 30
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_RETRIES = Retry(total=False, redirect=False)
_CHUNK = 64 * 1024


class TooManyRedirects(urllib3.exceptions.HTTPError):
    """More than 30 redirects for one request."""


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth (UTF-8 user and password)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class Response:
    """One HTTP response: the urllib3 response, its final URL and the request method."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, *, method: str, url: str) -> None:
        self.raw = raw
        self.method = method
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason or ""
        self.headers = raw.headers
        self._content: bytes | None = None

    @property
    def content(self) -> bytes:
        """The whole body (read now unless it already was), content-encoding decoded."""
        if self._content is None:
            self._content = self.raw.read(decode_content=True)
            self.raw.release_conn()
        return self._content

    @property
    def consumed(self) -> bool:
        """True once the body has been read whole (``content``)."""
        return self._content is not None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)

    def iter_content(self, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The body in chunks of up to ``chunk_size`` bytes, content-encoding decoded."""
        if self._content is not None:
            for i in range(0, len(self._content), chunk_size):
                yield self._content[i:i + chunk_size]
            return
        yield from self.raw.stream(chunk_size, decode_content=True)

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
        """Release the connection (closed first if the body was not read to its end)."""
        if self._content is None:
            self.raw.close()
        self.raw.release_conn()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_proxy_match(host: str, port: int | None, entries: str) -> bool:
    """``NO_PROXY`` semantics of ``requests``: ``*``, host suffixes (``.example.com`` or
    ``example.com``), ``host:port``, and for IP addresses an exact address or a CIDR range."""
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


class HttpClient:
    """Pooled HTTP(S) to any host, with per-request TLS settings (thread-safe)."""

    def __init__(self, *, pool_classes: Mapping[str, type] | None = None, num_pools: int = 4,
                 maxsize: int = 4, headers: Mapping[str, str] | None = None) -> None:
        """``pool_classes``: urllib3 connection pool classes by scheme (the metered ones of
        :mod:`trustbuild.registry.deadline`); ``headers``: sent with every request."""
        self._pool_classes = dict(pool_classes or {})
        self._num_pools = num_pools
        self._maxsize = maxsize
        self.headers = dict(headers or {})
        self._direct = self._manager(urllib3.PoolManager(num_pools=num_pools, maxsize=maxsize))
        self._proxied: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _manager(self, manager: urllib3.PoolManager) -> urllib3.PoolManager:
        if self._pool_classes:
            manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme,
                                              **self._pool_classes}
        return manager

    def _proxy_manager(self, proxy: str) -> urllib3.PoolManager:
        with self._lock:
            manager = self._proxied.get(proxy)
            if manager is None:
                split = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
                if split.scheme.startswith("socks"):
                    raise UsageError(f"proxy {split.scheme}://{split.hostname}: SOCKS proxies "
                                     "are not supported; use an HTTP(S) proxy")
                headers = {}
                if split.username:
                    from urllib.parse import unquote

                    headers["Proxy-Authorization"] = basic_auth(unquote(split.username),
                                                                unquote(split.password or ""))
                netloc = split.netloc.rpartition("@")[2]
                manager = self._manager(urllib3.ProxyManager(
                    f"{split.scheme}://{netloc}", proxy_headers=headers,
                    num_pools=self._num_pools, maxsize=self._maxsize))
                self._proxied[proxy] = manager
            return manager

    def close(self) -> None:
        """Close every pooled connection (the client stays usable)."""
        with self._lock:
            managers = [self._direct, *self._proxied.values()]
        for manager in managers:
            manager.clear()

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
        pool_kwargs: dict[str, Any] = {}
        if split.scheme == "https":
            if verify is False:
                pool_kwargs.update(cert_reqs="CERT_NONE", ca_certs=None)
            else:
                if verify is True:
                    import certifi

                    verify = certifi.where()
                pool_kwargs.update(cert_reqs="CERT_REQUIRED", ca_certs=verify)
            if cert is not None:
                pool_kwargs.update(cert_file=cert[0], key_file=cert[1])
        manager = self._proxy_manager(proxy) if proxy else self._direct
        pool = manager.connection_from_url(url, pool_kwargs=pool_kwargs)
        # through a forwarding proxy (plain http) the request line carries the whole URL
        target = url if proxy and split.scheme == "http" else \
            (split.path or "/") + (f"?{split.query}" if split.query else "")
        raw = pool.urlopen(method, target, body=body, headers=dict(headers), redirect=False,
                           assert_same_host=False, preload_content=False,
                           decode_content=False, retries=_NO_RETRIES,
                           timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]))
        return Response(raw, method=method, url=url)
