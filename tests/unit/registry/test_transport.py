"""Scheme, host and TLS selection (no network: nothing is sent before the first request)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild.errors import InvalidReference, UsageError
from trustbuild.registry import RegistryStore, Transport
from trustbuild.registry.mirror import mirror_host
from trustbuild.registry.options import StoreOptions


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "localhost"])
def test_loopback_is_plain_http(host: str) -> None:
    assert Transport(host, credentials=None).scheme == "http"


def test_remote_is_https_unless_insecure() -> None:
    assert Transport("reg.example:5000", credentials=None).base_url == "https://reg.example:5000"
    opts = StoreOptions(insecure_registries=["reg.example:5000", "other.example"])
    assert Transport("reg.example:5000", options=opts, credentials=None).scheme == "http"
    assert Transport("other.example:1234", options=opts, credentials=None).scheme == "http"
    assert Transport("third.example", options=opts, credentials=None).scheme == "https"


def test_ca_for_loopback_means_https(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    opts = StoreOptions(registry_certificates={"127.0.0.1:5443": str(ca)})
    t = Transport("127.0.0.1:5443", options=opts, credentials=None)
    assert t.scheme == "https"
    assert t._verify("https://127.0.0.1:5443/v2/") == str(ca)
    assert t._verify("https://127.0.0.1:9000/token") == str(ca)  # token server on the same host
    assert t._verify("https://elsewhere/") is True
    missing = StoreOptions(registry_certificates={"reg.example": str(tmp_path / "nope.pem")})
    with pytest.raises(UsageError,
                       match="--registry-certificate reg.example=.*nope.pem: no such file"):
        Transport("reg.example", options=missing, credentials=None)
    skip = Transport("reg.example", options=StoreOptions(skip_tls_verify=True), credentials=None)
    assert skip._verify("https://reg.example/v2/") is False


def test_docker_hub_api_host() -> None:
    t = Transport("docker.io", credentials=None)
    assert t.base_url == "https://registry-1.docker.io"


def test_store_describe_and_bad_repository() -> None:
    store = RegistryStore("127.0.0.1:5000", "team/app", StoreOptions(), credentials=None)
    assert store.describe() == "docker://127.0.0.1:5000/team/app"
    with pytest.raises(InvalidReference, match="invalid repository name 'Team/App'"):
        RegistryStore("127.0.0.1:5000", "Team/App", StoreOptions(), credentials=None)


def test_mirror_specs() -> None:
    assert mirror_host("https://mirror.gcr.io/") == ("mirror.gcr.io", False)
    assert mirror_host("http://10.0.0.1:5000") == ("10.0.0.1:5000", True)
    assert mirror_host("mirror.example") == ("mirror.example", False)


def test_refs_that_could_escape_the_api_path_are_rejected() -> None:
    store = RegistryStore("127.0.0.1:5000", "team/app", StoreOptions(), credentials=None)
    for bad in ("../../v2/other/manifests/x", "a/b", "-lead", "sha256:short"):
        with pytest.raises(InvalidReference):
            store.get_manifest(bad)
    with pytest.raises(InvalidReference):
        store.put_manifest(b"{}", "application/json", tags=["bad tag"])
