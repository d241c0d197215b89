"""Registry credentials from docker's ``config.json`` (``auths``, ``credsStore``, ``credHelpers``).

Lookup order for a registry host, as docker does it:

1. ``credHelpers[host]`` -> run ``docker-credential-<helper> get`` (host on stdin, JSON out);
2. ``auths[host]`` with ``auth`` (base64 ``user:password``), ``username``/``password`` or
   ``identitytoken``; keys may be URLs (``https://index.docker.io/v1/``, ``http://host/v2/``);
3. ``credsStore`` -> the same helper protocol for every host.

The file is ``$DOCKER_CONFIG/config.json`` when ``DOCKER_CONFIG`` is set, else
``~/.docker/config.json``. Secrets are never logged; ``repr(Credentials)`` hides them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trustbuild._internal.b64 import std_b64decode
from trustbuild.errors import RegistryError

__all__ = ["Credentials", "docker_config_path", "load_docker_config", "resolve_credentials",
           "DOCKER_HUB_AUTH_KEY"]

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_HELPER_TIMEOUT = 60


@dataclass(frozen=True)
class Credentials:
    """A username and a secret (password, or an identity/refresh token when ``identity_token``)."""

    username: str = field(repr=True)
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # where they came from, for messages ("config.json auths", "helper pass")

    @property
    def is_token(self) -> bool:
        """True if the secret is an OAuth2 refresh token rather than a password."""
        return bool(self.identity_token)


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def load_docker_config(path: Path) -> dict[str, object]:
    """The parsed config, ``{}`` if the file is absent; RegistryError if it is not valid JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RegistryError(f"cannot read docker config {path}: {exc.strerror}") from None
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"docker config {path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RegistryError(f"docker config {path}: expected a JSON object")
    return obj


def _normalise_key(key: str) -> str:
    """``https://host/v1/`` -> ``host``; hub aliases -> ``docker.io``."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0]
    return "docker.io" if k in _HUB_ALIASES else k


def _helper_server_url(host: str) -> str:
    return DOCKER_HUB_AUTH_KEY if host == "docker.io" else host


def _from_auth_entry(entry: object, where: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user = entry.get("username") or ""
    password = entry.get("password") or ""
    if entry.get("auth"):
        try:
            decoded = std_b64decode(str(entry["auth"])).decode()  # docker/cli: StdEncoding
        except (ValueError, UnicodeDecodeError):
            raise RegistryError(f"{where}: 'auth' is not base64 of user:password") from None
        user, sep, password = decoded.partition(":")
        if not sep:
            raise RegistryError(f"{where}: 'auth' is not base64 of user:password")
    token = entry.get("identitytoken") or ""
    if token:
        return Credentials(user or "<token>", "", str(token), source=where)
    if not user and not password:
        return None
    return Credentials(str(user), str(password), source=where)


def _run_helper(helper: str, host: str, env: Mapping[str, str] | None) -> Credentials | None:
    prog = f"docker-credential-{helper}"
    path = shutil.which(prog, path=(env or os.environ).get("PATH"))
    if path is None:
        raise RegistryError(f"credential helper {prog} for {host} is not on PATH "
                            "(install it or remove it from docker config.json)")
    try:
        proc = subprocess.run([path, "get"], input=_helper_server_url(host).encode(),
                              capture_output=True, timeout=_HELPER_TIMEOUT,
                              env=dict(env) if env is not None else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"credential helper {prog} for {host} failed: {exc}") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in (out + proc.stderr.decode(errors="replace")).lower():
            return None
        first = (out or proc.stderr.decode(errors="replace")).strip().splitlines()[:1]
        raise RegistryError(f"credential helper {prog} for {host} exited {proc.returncode}: "
                            f"{first[0] if first else 'no message'}")
    try:
        obj: object = json.loads(out)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        user, secret = str(obj.get("Username", "")), str(obj.get("Secret", ""))
    except ValueError:
        raise RegistryError(f"credential helper {prog} for {host} did not print JSON "
                            "with Username and Secret") from None
    if not user and not secret:
        return None
    if user == "<token>":
        return Credentials(user, "", secret, source=f"helper {helper}")
    return Credentials(user, secret, source=f"helper {helper}")


def resolve_credentials(host: str, *, config_path: Path | None = None,
                        env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for registry ``host`` (``docker.io`` or ``host[:port]``), or None (anonymous)."""
    want = _normalise_key(host)
    path = config_path or docker_config_path(env)
    cfg = load_docker_config(path)
    helpers = cfg.get("credHelpers")
    for key, helper in (helpers.items() if isinstance(helpers, dict) else ()):
        if _normalise_key(key) == want and isinstance(helper, str) and helper:
            return _run_helper(helper, want, env)
    auths = cfg.get("auths")
    for key, entry in (auths.items() if isinstance(auths, dict) else ()):
        if _normalise_key(key) == want:
            creds = _from_auth_entry(entry, f"{path} auths[{key!r}]")
            if creds is not None:
                return creds
    store = cfg.get("credsStore")
    if isinstance(store, str) and store:
        return _run_helper(store, want, env)
    return None
