"""docker config.json lookup: auths keys, base64 auth, identity tokens, helpers' errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from trustbuild.errors import RegistryError
from trustbuild.registry.credentials import Credentials, docker_config_path, resolve_credentials


def _env(tmp_path: Path, cfg: object) -> dict[str, str]:
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": "/nonexistent"}


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_config_path_from_env_and_home(tmp_path: Path) -> None:
    assert docker_config_path({"DOCKER_CONFIG": "/x"}) == Path("/x/config.json")
    assert docker_config_path({"HOME": "/h"}) == Path("/h/.docker/config.json")


def test_auths_keys_as_urls_and_hosts(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"auth": _b64("hubuser:hub:pw")},
        "http://reg.example:5000/v2/": {"username": "u", "password": "p"},
        "ghcr.io": {"identitytoken": "refresh-me"},
    }})
    hub = resolve_credentials("docker.io", env=env)
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hub:pw")
    assert resolve_credentials("registry-1.docker.io", env=env) == hub
    assert resolve_credentials("reg.example:5000", env=env) == Credentials(
        "u", "p", source=f"{tmp_path}/config.json auths['http://reg.example:5000/v2/']")
    gh = resolve_credentials("ghcr.io", env=env)
    assert gh is not None and gh.is_token and gh.identity_token == "refresh-me"
    assert resolve_credentials("other.example", env=env) is None


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    env = _env(tmp_path, {"auths": {"h": {"auth": _b64("me:s3cret")}}})
    creds = resolve_credentials("h", env=env)
    assert creds is not None and "s3cret" not in repr(creds) and "me" in repr(creds)


def test_absent_file_means_anonymous(tmp_path: Path) -> None:
    assert resolve_credentials("h", env={"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def test_malformed_config_and_auth_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RegistryError, match="config.json is not valid JSON"):
        resolve_credentials("h", env={"DOCKER_CONFIG": str(tmp_path)})
    env = _env(tmp_path, {"auths": {"h": {"auth": _b64("no-colon")}}})
    with pytest.raises(RegistryError, match=r"auths\['h'\]: 'auth' is not base64 of user:password"):
        resolve_credentials("h", env=env)


def test_missing_helper_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, {"credHelpers": {"h": "nosuch"}})
    with pytest.raises(RegistryError, match="docker-credential-nosuch for h is not on PATH"):
        resolve_credentials("h", env=env)


def test_helper_saying_not_found_means_anonymous(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-empty"
    helper.write_text("#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n")
    helper.chmod(0o755)
    env = {**_env(tmp_path, {"credsStore": "empty"}), "PATH": str(bindir)}
    assert resolve_credentials("h", env=env) is None
    helper.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    with pytest.raises(RegistryError,
                       match="docker-credential-empty for h exited 3: keychain locked"):
        resolve_credentials("h", env=env)
