"""Registry authentication: anonymous, basic, and bearer tokens with scopes (cached per scope set).

The registry says which scheme it wants in the ``WWW-Authenticate`` challenge of a 401 (learnt
from ``GET /v2/`` up front). For bearer, a token is fetched from the challenge's ``realm`` with
``service`` and the scopes the operation needs: ``repository:NAME:pull`` to read,
``repository:NAME:pull,push`` to write, plus ``repository:OTHER:pull`` for a cross-repository
mount. Basic credentials are sent to the token endpoint when there are some; an identity
(refresh) token is exchanged with the OAuth2 ``refresh_token`` grant. No credentials means
anonymous tokens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence

from trustbuild._internal.redact import redact_url
from trustbuild.errors import RegistryError
from trustbuild.registry.challenge import Challenge, merge_scopes
from trustbuild.registry.credentials import Credentials
from trustbuild.registry.httpclient import Response, basic_auth
from trustbuild.registry.response import error_from_response, read_limited

__all__ = ["Authenticator"]

_TOKEN_BODY_LIMIT = 1024 * 1024
_MIN_EXPIRY = 60


class Authenticator:
    """Authorization headers for one registry host; thread-safe; tokens cached per scope set."""

    def __init__(self, host: str, *, credentials: Credentials | None = None,
                 lookup: Callable[[], Credentials | None] | None = None,
                 send: Callable[..., Response]) -> None:
        """``send(method, url, **kw)`` performs one request with the transport's TLS settings.

        ``lookup`` (e.g. a docker config.json search) is called at most once, and only when the
        registry asks for authentication; ``credentials`` are used as given otherwise.
        """
        self.host = host
        self._credentials = credentials
        self._lookup = lookup
        self.challenge: Challenge | None = None
        self._send = send
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    @property
    def credentials(self) -> Credentials | None:
        """The credentials in use (looked up on first access when a lookup was given)."""
        if self._lookup is not None:
            with self._lock:
                if self._lookup is not None:
                    self._credentials = self._lookup()
                    self._lookup = None
        return self._credentials

    def headers(self, scopes: Sequence[str]) -> dict[str, str]:
        """The ``Authorization`` header for a request needing ``scopes`` (empty if anonymous)."""
        ch = self.challenge
        if ch is None:
            return {}
        if ch.scheme == "basic":
            creds = self.credentials
            if creds is None or creds.is_token:
                return {}
            basic = basic_auth(creds.username, creds.password)
            return {"Authorization": basic}
        if ch.scheme == "bearer":
            return {"Authorization": f"Bearer {self.token(tuple(scopes))}"}
        raise RegistryError(f"registry {self.host} asks for unsupported authentication scheme "
                            f"{ch.scheme!r} (only Basic and Bearer are supported)")

    def on_unauthorized(self, challenge: Challenge | None,
                        scopes: Sequence[str]) -> tuple[str, ...]:
        """Record a new challenge from a 401; returns the scopes to retry with (grown if asked)."""
        if challenge is None:
            return tuple(scopes)
        with self._lock:
            self.challenge = challenge
            wanted = merge_scopes(tuple(scopes), challenge.scopes)
            self._tokens.pop(wanted, None)
        return wanted

    def forget(self, scopes: Sequence[str]) -> None:
        """Drop the cached token for ``scopes`` (after the registry refused it)."""
        with self._lock:
            self._tokens.pop(merge_scopes(tuple(scopes)), None)

    def token(self, scopes: tuple[str, ...]) -> str:
        """A bearer token for ``scopes`` from the cache or the token endpoint."""
        key = merge_scopes(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        tok, expires_in = self._fetch_token(key)
        with self._lock:
            self._tokens[key] = (tok, time.monotonic() + max(_MIN_EXPIRY, expires_in) - 10)
        return tok

    def _fetch_token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        ch = self.challenge
        assert ch is not None and ch.scheme == "bearer"
        if not ch.realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {self.host} sent a bearer challenge without a usable "
                                f"realm: {ch.realm!r}")
        creds = self.credentials
        if creds is not None and creds.is_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": ch.service, "client_id": "trustbuild", "scope": " ".join(scopes)}
            resp = self._send("POST", ch.realm, form=form)
        else:
            params: list[tuple[str, str]] = []
            if ch.service:
                params.append(("service", ch.service))
            params += [("scope", s) for s in scopes]
            auth = (creds.username, creds.password) if creds is not None else None
            resp = self._send("GET", ch.realm, params=params, auth=auth)
        if resp.status_code != 200:
            if resp.status_code in (401, 403):
                raise error_from_response(resp, hint=self._credential_hint())
            raise error_from_response(resp)
        body = read_limited(resp, _TOKEN_BODY_LIMIT)
        try:
            obj = json.loads(body)
            tok = obj.get("token") or obj.get("access_token")
            expires = int(obj.get("expires_in") or _MIN_EXPIRY)
        except (ValueError, AttributeError, TypeError, RecursionError):
            tok, expires = None, 0
        if not isinstance(tok, str) or not tok:
            raise RegistryError(f"token endpoint {redact_url(ch.realm)} for {self.host} returned "
                                "no token")
        return tok, expires

    def _credential_hint(self) -> str:
        if self.credentials is None:
            return (f"no credentials for {self.host}: log in or add them to docker config.json")
        src = f" from {self.credentials.source}" if self.credentials.source else ""
        return f"credentials for {self.host}{src} were rejected"

    def unauthorized_hint(self) -> str:
        """What to tell the user after a final 401/403 from the registry."""
        return self._credential_hint()
