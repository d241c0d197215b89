"""Authentication against the real registry: basic over TLS, bearer tokens, config.json, helpers."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from fixtures.registry import RegistryServer, push_test_image

from trustbuild.errors import RegistryError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.registry import Credentials, RegistryStore, resolve_credentials
from trustbuild.registry.options import StoreOptions


def _opener(data: bytes):  # type: ignore[no-untyped-def]
    from contextlib import contextmanager

    @contextmanager
    def opener():  # type: ignore[no-untyped-def]
        yield io.BytesIO(data)
    return opener


def _tls_opts(reg: RegistryServer) -> StoreOptions:
    return StoreOptions(registry_certificates={reg.host: str(reg.ca_path)})


def test_basic_auth_over_tls_with_test_ca(tls_registry: RegistryServer) -> None:
    creds = Credentials(tls_registry.username or "", tls_registry.password or "")
    store = RegistryStore(tls_registry.host, "auth/basic", _tls_opts(tls_registry),
                          credentials=creds)
    assert store.transport.scheme == "https"
    blob = b"basic over tls"
    desc = Descriptor.for_bytes("application/octet-stream", blob)
    store.put_blob(desc, _opener(blob))
    assert store.has_blob(desc.digest)
    assert store.transport.auth.challenge is not None
    assert store.transport.auth.challenge.scheme == "basic"


def test_reads_skopeo_image_over_tls(tls_registry: RegistryServer) -> None:
    _, digest = push_test_image(tls_registry.host, "auth/skopeo", "v1", server=tls_registry)
    creds = Credentials(tls_registry.username or "", tls_registry.password or "")
    store = RegistryStore(tls_registry.host, "auth/skopeo", _tls_opts(tls_registry),
                          credentials=creds)
    raw, _ = store.get_manifest("v1")
    assert str(Digest.of(raw)) == digest


def test_wrong_password_is_a_clear_error(tls_registry: RegistryServer) -> None:
    creds = Credentials(tls_registry.username or "", "wrong", source="test config")
    store = RegistryStore(tls_registry.host, "auth/basic", _tls_opts(tls_registry),
                          credentials=creds)
    with pytest.raises(RegistryError) as err:
        store.get_manifest("latest")
    msg = str(err.value)
    assert msg.startswith(f"GET https://{tls_registry.host}/v2/auth/basic/manifests/latest: 401")
    assert "were rejected" in msg and "wrong" not in msg and "\n" not in msg
    assert err.value.status == 401


def test_no_credentials_is_a_clear_error(tls_registry: RegistryServer) -> None:
    store = RegistryStore(tls_registry.host, "auth/basic", _tls_opts(tls_registry),
                          credentials=None)
    with pytest.raises(RegistryError, match=r": 401 unauthorized: .*no credentials for"):
        store.list_tags()


def test_unknown_ca_fails_unless_skip_tls_verify(tls_registry: RegistryServer) -> None:
    creds = Credentials(tls_registry.username or "", tls_registry.password or "")
    # loopback means plain HTTP first; the registry's TLS answer upgrades us to HTTPS, whose
    # certificate we cannot verify without the CA.
    store = RegistryStore(tls_registry.host, "auth/basic", StoreOptions(), credentials=creds)
    with pytest.raises(RegistryError,
                       match="TLS certificate verify failed.*--registry-certificate"):
        store.list_tags()
    insecure = RegistryStore(tls_registry.host, "auth/basic", StoreOptions(skip_tls_verify=True),
                             credentials=creds)
    assert isinstance(insecure.list_tags(), list)


def test_bearer_token_scopes_for_pull_push_and_mount(token_registry: RegistryServer) -> None:
    ts = token_registry.token_server
    assert ts is not None
    ts.clear()
    creds = Credentials(token_registry.username or "", token_registry.password or "")
    src = RegistryStore(token_registry.host, "tok/src", StoreOptions(), credentials=creds)
    blob = b"token blob"
    desc = Descriptor.for_bytes("application/octet-stream", blob)
    src.put_blob(desc, _opener(blob))
    assert "repository:tok/src:pull,push" in ts.scopes()
    dst = RegistryStore(token_registry.host, "tok/dst", StoreOptions(), credentials=creds)
    ts.clear()
    dst.put_blob(desc, _opener(blob), mount_from="tok/src")
    assert dst.stats["mounted"] == 1
    asked = [r["scopes"] for r in ts.requests]
    assert ["repository:tok/dst:pull,push", "repository:tok/src:pull"] in [sorted(s) for s in asked]
    ts.clear()
    reader = RegistryStore(token_registry.host, "tok/src", StoreOptions(), credentials=creds)
    assert reader.has_blob(desc.digest)
    assert reader.has_blob(Digest.of(b"other"))is False
    assert ts.scopes() == ["repository:tok/src:pull"]  # fetched once, then cached
    assert all(r["user"] == token_registry.username for r in ts.requests)


def test_bearer_wrong_password_names_token_endpoint(token_registry: RegistryServer) -> None:
    creds = Credentials(token_registry.username or "", "bad", source="config.json")
    store = RegistryStore(token_registry.host, "tok/src", StoreOptions(), credentials=creds)
    with pytest.raises(RegistryError, match=r"GET http://127.0.0.1:\d+/token\?.*: 401 .*invalid "
                                            r"username or password.*were rejected"):
        store.list_tags()


def test_bearer_anonymous_gets_clear_denial(token_registry: RegistryServer) -> None:
    store = RegistryStore(token_registry.host, "tok/src", StoreOptions(), credentials=None)
    with pytest.raises(RegistryError, match=r"401 unauthorized.*no credentials for 127.0.0.1"):
        store.list_tags()


def _config(tmp_path: Path, obj: dict[str, object]) -> dict[str, str]:
    d = tmp_path / "dockercfg"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(obj))
    return {"DOCKER_CONFIG": str(d), "PATH": os.environ.get("PATH", "")}


def test_credentials_from_config_json_base64_auth(tls_registry: RegistryServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode()).decode()
    env = _config(tmp_path, {"auths": {f"https://{tls_registry.host}/v2/": {"auth": auth}}})
    monkeypatch.setenv("DOCKER_CONFIG", env["DOCKER_CONFIG"])
    store = RegistryStore(tls_registry.host, "auth/config", _tls_opts(tls_registry))
    assert store.list_tags() == []  # authenticated: 404 on the repository, not 401
    creds = store.transport.auth.credentials
    assert creds is not None and creds.username == tls_registry.username
    assert tls_registry.password not in repr(creds)


def test_credentials_from_helper_on_path(token_registry: RegistryServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    seen = tmp_path / "helper-stdin"
    helper = bindir / "docker-credential-test"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 2\ncat > {seen}\n'
        f'printf \'{{"ServerURL":"x","Username":"{token_registry.username}",'
        f'"Secret":"{token_registry.password}"}}\'\n')
    helper.chmod(0o755)
    env = _config(tmp_path, {"credHelpers": {token_registry.host: "test"}})
    monkeypatch.setenv("DOCKER_CONFIG", env["DOCKER_CONFIG"])
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    store = RegistryStore(token_registry.host, "tok/helper", StoreOptions())
    assert store.list_tags() == []
    assert seen.read_text() == token_registry.host
    # credsStore uses the same protocol for every host
    env = _config(tmp_path, {"credsStore": "test"})
    assert resolve_credentials(token_registry.host, env={**env, "PATH": os.environ["PATH"]}) \
        == Credentials(token_registry.username or "", token_registry.password or "",
                       source="helper test")


def test_identity_token_uses_refresh_token_grant(token_registry: RegistryServer) -> None:
    from fixtures.registry import TokenServer

    ts = token_registry.token_server
    assert ts is not None
    ts.clear()
    creds = Credentials("<token>", identity_token=TokenServer.REFRESH_TOKEN)
    store = RegistryStore(token_registry.host, "tok/identity", StoreOptions(), credentials=creds)
    assert store.list_tags() == []
    assert ts.scopes() == ["repository:tok/identity:pull"]
    bad = RegistryStore(token_registry.host, "tok/identity", StoreOptions(),
                        credentials=Credentials("<token>", identity_token="stale"))
    with pytest.raises(RegistryError,
                       match=r"POST http://127.0.0.1:\d+/token: 401 .*bad refresh token"):
        bad.list_tags()


def test_parallel_pushes_share_one_token(token_registry: RegistryServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ts = token_registry.token_server
    assert ts is not None
    creds = Credentials(token_registry.username or "", token_registry.password or "")
    store = RegistryStore(token_registry.host, "tok/parallel", StoreOptions(jobs=4),
                          credentials=creds)
    store.ping()
    ts.clear()
    blobs = [os.urandom(4096) for _ in range(12)]
    descs = [Descriptor.for_bytes("application/octet-stream", b) for b in blobs]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: store.put_blob(p[0], _opener(p[1])),
                      zip(descs, blobs, strict=True)))
    assert store.stats["uploaded"] == 12
    assert all(store.has_blob(d.digest) for d in descs)
    # tokens are cached per scope set: a few concurrent first fetches at most, not one per blob
    fetches = [r for r in ts.requests if r["scopes"] == ["repository:tok/parallel:pull,push"]]
    assert 1 <= len(fetches) <= 4


def test_https_registry_through_a_connect_proxy(tls_registry: RegistryServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``HTTPS_PROXY``: a CONNECT tunnel (with the proxy's credentials) to the real TLS
    registry, under a host name only the proxy can reach; TLS and basic auth inside it."""
    import socket
    import threading

    port = int(tls_registry.host.rsplit(":", 1)[1])
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            b.close()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            seen.append(head)
            upstream = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    for k in ("https_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://bob:pw@127.0.0.1:{listener.getsockname()[1]}")
    host = f"registry.invalid:{port}"  # does not resolve: only the proxy knows the way
    try:
        creds = Credentials(tls_registry.username or "", tls_registry.password or "")
        # the test CA names 127.0.0.1/localhost, not registry.invalid
        with pytest.raises(RegistryError, match="certificate verify failed"):
            RegistryStore(host, "auth/proxied", StoreOptions(
                registry_certificates={host: str(tls_registry.ca_path)}),
                credentials=creds).transport.ping()
        store = RegistryStore(host, "auth/proxied", StoreOptions(skip_tls_verify=True),
                              credentials=creds)
        blob = b"through the tunnel"
        desc = Descriptor.for_bytes("application/octet-stream", blob)
        store.put_blob(desc, _opener(blob))
        assert store.has_blob(desc.digest)
    finally:
        listener.close()
    assert seen and all(h.startswith(f"CONNECT {host} HTTP/1.".encode()) for h in seen)
    expected = base64.b64encode(b"bob:pw")
    assert all(b"Proxy-Authorization: Basic " + expected in h for h in seen)
