"""Failures a user must see clearly: unreachable hosts, throttling, corrupted or truncated blobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.registry import FaultProxy, RegistryServer, free_port

from trustbuild._internal.retry import RetryPolicy
from trustbuild.errors import DigestMismatch, RegistryError
from trustbuild.oci.manifest import Manifest, parse_manifest
from trustbuild.registry import RegistryStore
from trustbuild.registry.options import StoreOptions


class _Sleeps(list[float]):
    """Records the waits chosen by the retry policy (and skips them)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _store(host: str, repo: str, sleeps: _Sleeps | None = None, attempts: int = 5) -> RegistryStore:
    policy = RetryPolicy(attempts=attempts, base_delay=0.01, sleep=sleeps if sleeps is not None
                         else (lambda s: None))
    return RegistryStore(host, repo, StoreOptions(), credentials=None, retry=policy)


def test_unreachable_host_is_one_clear_line() -> None:
    host = f"127.0.0.1:{free_port()}"
    sleeps = _Sleeps()
    store = _store(host, "any/repo", sleeps, attempts=3)
    with pytest.raises(RegistryError) as err:
        store.get_manifest("latest")
    assert str(err.value) == f"cannot reach registry {host}: connection refused"
    assert len(sleeps) == 2  # bounded retries, then the error


def test_retries_429_and_503_honouring_retry_after(registry_proxy: FaultProxy,
                                                   pushed_image: tuple[str, str]) -> None:
    registry_proxy.fail(429, 1, match="/manifests/", headers={"Retry-After": "3"})
    registry_proxy.fail(503, 1, match="/manifests/")
    sleeps = _Sleeps()
    store = _store(registry_proxy.host, "fixtures/hello", sleeps)
    raw, _ = store.get_manifest("v1")
    assert raw
    statuses = [s for m, p, s in registry_proxy.log if "/manifests/" in p]
    assert statuses == [429, 503, 200]
    assert sleeps[0] == 3.0  # the registry's Retry-After, not our backoff
    assert sleeps[1] == pytest.approx(0.02)  # exponential backoff for the 503


def test_gives_up_after_bounded_retries(registry_proxy: FaultProxy,
                                        pushed_image: tuple[str, str]) -> None:
    registry_proxy.fail(503, 100, match="/manifests/")
    sleeps = _Sleeps()
    store = _store(registry_proxy.host, "fixtures/hello", sleeps, attempts=4)
    with pytest.raises(RegistryError) as err:
        store.get_manifest("v1")
    assert str(err.value) == (f"GET http://{registry_proxy.host}/v2/fixtures/hello/manifests/v1: "
                              "503 service unavailable: unavailable: injected by test proxy")
    assert err.value.temporary and len(sleeps) == 3


def test_corrupted_blob_fails_and_leaves_nothing(registry_proxy: FaultProxy, tmp_path: Path,
                                                 pushed_image: tuple[str, str]) -> None:
    store = _store(registry_proxy.host, "fixtures/hello")
    m = parse_manifest(*store.get_manifest("v1"))
    assert isinstance(m, Manifest)
    registry_proxy.corrupt_blobs = True
    dest = tmp_path / "out" / "layer"
    with pytest.raises(DigestMismatch,
                       match=r"blob sha256:\w+ from docker://.*: content has digest"):
        store.fetch_blob(m.layers[0], dest)
    assert not dest.exists() and list((tmp_path / "out").iterdir()) == []
    with pytest.raises(DigestMismatch):
        with store.open_blob(m.config) as stream:
            while stream.read(1024):
                pass


def test_truncated_blob_fails_and_leaves_nothing(registry_proxy: FaultProxy, tmp_path: Path,
                                                 pushed_image: tuple[str, str]) -> None:
    store = _store(registry_proxy.host, "fixtures/hello", attempts=2)
    m = parse_manifest(*store.get_manifest("v1"))
    assert isinstance(m, Manifest)
    registry_proxy.truncate_blobs = True
    with pytest.raises((DigestMismatch, RegistryError), match="truncated|bytes"):
        store.fetch_blob(m.layers[0], tmp_path / "layer")
    assert list(tmp_path.iterdir()) == []


def test_not_a_registry(registry: RegistryServer) -> None:
    import http.server
    import threading

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        store = _store(f"127.0.0.1:{httpd.server_address[1]}", "x/y")
        with pytest.raises(RegistryError,
                           match=r"GET http://127.0.0.1:\d+/v2/: 404 .*OCI registry"):
            store.list_tags()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_failed_upload_is_restarted_with_the_source_reopened(registry_proxy: FaultProxy) -> None:
    import io
    from contextlib import contextmanager

    from trustbuild.oci.descriptor import Descriptor

    data = b"restart me" * 1000
    opened = []

    @contextmanager
    def source():  # type: ignore[no-untyped-def]
        opened.append(1)
        yield io.BytesIO(data)

    registry_proxy.fail(503, 1, match="digest=sha256:")  # the closing PUT of the first attempt
    store = _store(registry_proxy.host, "faults/restart")
    desc = Descriptor.for_bytes("application/octet-stream", data)
    store.put_blob(desc, source)
    assert store.has_blob(desc.digest) and len(opened) == 2
    posts = [e for e in registry_proxy.log if e[0] == "POST"]
    assert len(posts) == 2  # a fresh upload session for the second attempt
