"""The registry fixtures themselves: real docker-registry variants answer as promised."""

from __future__ import annotations

import requests
from fixtures.registry import RegistryServer, push_test_image

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_plain_registry_serves_image_pushed_by_skopeo(
        registry: RegistryServer, pushed_image: tuple[str, str]) -> None:
    ref, digest = pushed_image
    assert ref == f"{registry.host}/fixtures/hello:v1"
    r = requests.get(f"{registry.url}/v2/fixtures/hello/manifests/v1",
                     headers={"Accept": OCI_MANIFEST}, timeout=10)
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest


def test_tls_registry_needs_basic_auth_and_accepts_skopeo_push(
        tls_registry: RegistryServer) -> None:
    assert tls_registry.ca_path is not None
    ca = str(tls_registry.ca_path)
    assert requests.get(tls_registry.url + "/v2/", verify=ca, timeout=10).status_code == 401
    auth = (tls_registry.username or "", tls_registry.password or "")
    resp = requests.get(tls_registry.url + "/v2/", verify=ca, auth=auth, timeout=10)
    assert resp.status_code == 200
    ref, digest = push_test_image(tls_registry.host, "fixtures/tls", "v1", server=tls_registry)
    r = requests.get(f"{tls_registry.url}/v2/fixtures/tls/manifests/v1", verify=ca, auth=auth,
                     headers={"Accept": OCI_MANIFEST}, timeout=10)
    assert r.headers["Docker-Content-Digest"] == digest


def test_token_registry_accepts_tokens_from_recording_token_server(
        token_registry: RegistryServer) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.clear()
    r = requests.get(token_registry.url + "/v2/fx/tags/list", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{ts.realm}"')
    bad = requests.get(ts.realm, params={"scope": "repository:fx:pull"}, auth=("x", "y"),
                       timeout=10)
    assert bad.status_code == 401
    tok = requests.get(ts.realm, params={"service": "s", "scope": "repository:fx:pull,push"},
                       auth=(token_registry.username or "", token_registry.password or ""),
                       timeout=10).json()["token"]
    r = requests.get(token_registry.url + "/v2/fx/tags/list",
                     headers={"Authorization": f"Bearer {tok}"}, timeout=10)
    assert r.status_code == 404  # authorised; the repository just does not exist yet
    assert ts.scopes() == ["repository:fx:pull,push"]
