"""HTTP transport to one registry host: scheme and TLS selection, ping, auth, retries, errors.

Scheme: plain HTTP for loopback registries (``127.0.0.1``, ``localhost``, ``::1``) and hosts in
``StoreOptions.insecure_registries``, HTTPS otherwise. A loopback/insecure host with a CA in
``registry_certificates`` uses HTTPS, and a plain-HTTP ping answered by Go's "Client sent an HTTP
request to an HTTPS server" switches to HTTPS. ``docker.io`` is served by
``registry-1.docker.io``. Requests are retried (:mod:`trustbuild._internal.retry`) on 408/429/5xx
and connection errors, honouring ``Retry-After``; bodies are re-opened for each attempt.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol
from urllib.parse import urlsplit

from trustbuild._internal.retry import DEFAULT_POLICY, RetryPolicy, retry_call
from trustbuild.errors import RegistryError, UsageError
from trustbuild.oci.reference import DEFAULT_REGISTRY, is_loopback_registry
from trustbuild.registry.auth import Authenticator
from trustbuild.registry.challenge import parse_challenge
from trustbuild.registry.credentials import Credentials, resolve_credentials
from trustbuild.registry.deadline import limits_for, metering
from trustbuild.registry.httpclient import HTTP_ERRORS, HttpClient, Response, environ_proxy
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.response import connection_error, error_from_response, read_limited

__all__ = ["Transport", "Body", "api_host", "USER_AGENT"]

USER_AGENT = "trustbuild/0.1 (+https://github.com/trustbuild)"
DOCKER_HUB_API = "registry-1.docker.io"
_TIMEOUT = (30.0, 300.0)
_HTTP_TO_HTTPS = "client sent an http request to an https server"

class Readable(Protocol):
    """A request body stream (sent with the ``Content-Length`` its caller gives)."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes (all that is left by default)."""
        ...


Body = bytes | Callable[[], AbstractContextManager[Readable]] | None
"""A request body: bytes, or an opener of a fresh stream (re-opened for each attempt)."""
Params = Mapping[str, str] | Sequence[tuple[str, str]] | None
"""Query parameters."""


class Unset(enum.Enum):
    """The type of ``_UNSET``: no credentials given, look them up (None means anonymous)."""

    UNSET = "unset"


_UNSET = Unset.UNSET


def api_host(registry: str) -> str:
    """The host serving the registry API (``docker.io`` -> ``registry-1.docker.io``)."""
    return DOCKER_HUB_API if registry in (DEFAULT_REGISTRY, "index.docker.io") else registry


def _host_matches(host: str, entries: Collection[str]) -> bool:
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return host in entries or bare in entries


class Transport:
    """Authenticated, retrying HTTP access to one registry (thread-safe)."""

    def __init__(self, registry: str, *, options: StoreOptions | None = None,
                 credentials: Credentials | None | Unset = _UNSET,
                 retry: RetryPolicy = DEFAULT_POLICY) -> None:
        """``credentials`` default: looked up in docker config.json on first use of auth."""
        self.options = options or StoreOptions()
        self.registry = registry
        self.host = api_host(registry)
        self.retry = retry
        certs = self.options.registry_certificates
        self._ca = certs.get(self.host) or certs.get(registry)
        if self._ca and not os.path.isfile(self._ca):
            raise UsageError(f"--registry-certificate {registry}={self._ca}: no such file "
                             "(expected a PEM CA certificate)")
        clients = self.options.registry_client_certs
        self._client_cert = clients.get(self.host) or clients.get(registry)
        for path in self._client_cert or ():
            if not os.path.isfile(path):
                raise UsageError(f"--registry-client-cert {registry}: no such file {path} "
                                 "(expected CERT.pem,KEY.pem)")
        plain = is_loopback_registry(self.host) or _host_matches(
            self.host, self.options.insecure_registries) or _host_matches(
            registry, self.options.insecure_registries)
        self.scheme = "http" if plain and not self._ca and not self._client_cert else "https"
        self.http = HttpClient(num_pools=4, maxsize=max(4, self.options.jobs + 2),
                               headers={"User-Agent": USER_AGENT})
        self._skip_verify = self.options.skip_tls_verify or _host_matches(
            self.host, self.options.skip_tls_verify_registries) or _host_matches(
            registry, self.options.skip_tls_verify_registries)
        if credentials is _UNSET:
            self.auth = Authenticator(registry, lookup=lambda: resolve_credentials(registry),
                                      send=self._send_raw)
        else:
            self.auth = Authenticator(registry, credentials=credentials, send=self._send_raw)
        self._pinged = False
        self._ping_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """``scheme://host``."""
        return f"{self.scheme}://{self.host}"

    def url(self, path: str) -> str:
        """Absolute URL of an API path (``/v2/...``) or pass-through of an absolute URL."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def _verify(self, url: str) -> bool | str:
        """TLS verification for ``url``: the registry's CA also covers its token server on
        the same host name (any port)."""
        if self._skip_verify:
            return False
        if self._ca and url.startswith("https://"):
            if urlsplit(url).hostname == urlsplit(f"https://{self.host}/").hostname:
                return self._ca
        return True

    def _send_raw(self, method: str, url: str, *, blob: bool | None = None,
                  headers: Mapping[str, str] | None = None, params: Params = None,
                  data: bytes | Readable | None = None, form: Mapping[str, str] | None = None,
                  auth: tuple[str, str] | None = None, stream: bool = False,
                  allow_redirects: bool = True) -> Response:
        """One HTTP exchange; connection failures become RegistryError (temporary).

        The response is metered (:mod:`trustbuild.registry.deadline`) with the blob deadline
        for blob downloads (``blob``; default: a GET of ``/blobs/``), the API one otherwise.
        """
        split = urlsplit(url)
        netloc = split.netloc
        if blob is None:
            blob = (method == "GET" and "/blobs/" in split.path
                    and "/blobs/uploads" not in split.path)
        # a proxy from HTTP(S)_PROXY/NO_PROXY, never for loopback; no netrc
        proxy = None if is_loopback_registry(netloc) else environ_proxy(url)
        cert = None
        if self._client_cert and url.startswith("https://") and \
                split.hostname == urlsplit(f"https://{self.host}/").hostname:
            cert = self._client_cert  # mutual TLS: only to the registry's host
        limits = limits_for(self.options.timeouts, netloc or self.host, method, url, blob=blob)
        try:
            with metering(limits):
                return self.http.request(
                    method, url, params=params, body=data, form=form, headers=headers,
                    auth=auth, timeout=_TIMEOUT, allow_redirects=allow_redirects, proxy=proxy,
                    stream=stream, verify=self._verify(url), cert=cert)
        except HTTP_ERRORS as exc:
            raise connection_error(netloc or self.host, exc) from exc

    def close(self) -> None:
        """Release pooled connections."""
        self.http.close()

    # ------------------------------------------------------------------ ping

    def ping(self) -> None:
        """``GET /v2/``: learn the auth challenge and the scheme once; errors if not a registry."""
        with self._ping_lock:
            if self._pinged:
                return
            retry_call(self._ping_once, policy=self.retry)
            self._pinged = True

    def _ping_once(self) -> None:
        resp = self._send_raw("GET", self.url("/v2/"), stream=True)
        try:
            if resp.status_code == 400 and self.scheme == "http":
                body = read_limited(resp, 4096).decode(errors="replace").lower()
                if _HTTP_TO_HTTPS in body:
                    self.scheme = "https"
                    resp.close()
                    resp = self._send_raw("GET", self.url("/v2/"), stream=True)
            if resp.status_code == 200:
                return
            if resp.status_code == 401:
                ch = parse_challenge(resp.headers.get("WWW-Authenticate"))
                if ch is None:
                    raise RegistryError(f"GET {self.url('/v2/')}: 401 without a WWW-Authenticate "
                                        "challenge; cannot authenticate", status=401)
                self.auth.challenge = ch
                return
            raise error_from_response(resp, hint=f"is {self.host} an OCI registry?")
        finally:
            resp.close()

    # ------------------------------------------------------------------ requests

    def request(self, method: str, path: str, *, scopes: Sequence[str],
                expect: Collection[int] = (200,),
                headers: Mapping[str, str] | None = None, params: Params = None, body: Body = None,
                stream: bool = False, retry: bool = True,
                allow_redirects: bool = True) -> Response:
        """Send with auth and retries; the response if its status is in ``expect``.

        Every other status raises a one-line RegistryError (``METHOD URL: STATUS code: message``).
        With ``stream=True`` the caller must close the response.
        """
        self.ping()

        def attempt() -> Response:
            return self._request_once(method, self.url(path), scopes=tuple(scopes), expect=expect,
                                      headers=dict(headers or {}), params=params, body=body,
                                      stream=stream, allow_redirects=allow_redirects)

        return retry_call(attempt, policy=self.retry if retry else RetryPolicy(attempts=1))

    @contextmanager
    def _open_body(self, body: Body) -> Iterator[bytes | Readable | None]:
        if body is None or isinstance(body, bytes):
            with nullcontext(body) as b:
                yield b
        else:
            with body() as stream:
                yield stream

    def _request_once(self, method: str, url: str, *, scopes: tuple[str, ...],
                      expect: Collection[int], headers: dict[str, str], params: Params,
                      body: Body,
                      stream: bool, allow_redirects: bool) -> Response:
        for auth_round in range(2):
            hdrs = {**headers, **self.auth.headers(scopes)}
            with self._open_body(body) as data:
                resp = self._send_raw(method, url, headers=hdrs, params=params, data=data,
                                      stream=stream, allow_redirects=allow_redirects)
            if resp.status_code == 401 and auth_round == 0:
                ch = parse_challenge(resp.headers.get("WWW-Authenticate"))
                if ch is not None and (self.auth.challenge is None or ch.scheme == "bearer"):
                    scopes = self.auth.on_unauthorized(ch, scopes)
                    resp.close()
                    continue
            break
        if resp.status_code in expect:
            return resp
        hint = self.auth.unauthorized_hint() if resp.status_code in (401, 403) else ""
        err = error_from_response(resp, method=method, hint=hint)
        resp.close()
        raise err

    def fetch_unauthenticated(self, url: str, *, expect: Collection[int],
                              headers: Mapping[str, str] | None = None) -> Response:
        """Streamed GET of a redirect target (object storage): no registry credentials sent."""

        def attempt() -> Response:
            resp = self._send_raw("GET", url, blob=True, headers=dict(headers or {}),
                                  stream=True, allow_redirects=False)
            if resp.status_code in expect:
                return resp
            err = error_from_response(resp, method="GET")
            resp.close()
            raise err

        return retry_call(attempt, policy=self.retry)
