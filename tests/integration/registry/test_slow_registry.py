"""Issue 10 item 6: a registry that trickles bytes cannot keep trustbuild waiting forever.

A :class:`FaultProxy` in front of the real registry sends chosen responses one byte at a time;
``trustbuild inspect`` (run as a subprocess, so the old unbounded behaviour fails the test by
its timeout instead of hanging the suite) must give up with one line naming the registry, long
before the trickle would have finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.registry import FaultProxy

REPO = Path(__file__).resolve().parents[3]


def _inspect(proxy: FaultProxy, *flags: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "trustbuild", "inspect", *flags,
         f"docker://{proxy.host}/fixtures/hello:v1"],
        capture_output=True, text=True, timeout=120, env=full_env, check=False)


def _one_line_error(proc: subprocess.CompletedProcess[str], proxy: FaultProxy) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"trustbuild: error: registry {proxy.host} too slow: GET ")
    assert proxy.trickled < proxy.trickle_total  # gave up long before the end
    return lines[0]


def test_trickled_manifest_trips_the_low_speed_limit(registry_proxy: FaultProxy,
                                                     pushed_image: tuple[str, str]) -> None:
    registry_proxy.trickle("/manifests/", 0.5)  # 2 bytes/s
    proc = _inspect(registry_proxy, "--registry-speed-limit", "100",
                    "--registry-speed-time", "1")
    line = _one_line_error(proc, registry_proxy)
    assert "/v2/fixtures/hello/manifests/v1" in line
    assert "below 100 bytes/s" in line and "--registry-speed-limit" in line


def test_trickled_headers_trip_the_request_deadline(registry_proxy: FaultProxy,
                                                    pushed_image: tuple[str, str]) -> None:
    registry_proxy.trickle("/manifests/", 0.1, headers=True)  # 10 bytes/s, status line included
    proc = _inspect(registry_proxy, "--registry-speed-limit", "0", "--registry-timeout", "2")
    line = _one_line_error(proc, registry_proxy)
    assert "no complete response after 2 s of waiting" in line
    assert "--registry-timeout or TRUSTBUILD_REGISTRY_TIMEOUT" in line


def test_trickled_blob_trips_the_blob_deadline_from_the_environment(
        registry_proxy: FaultProxy, pushed_image: tuple[str, str]) -> None:
    registry_proxy.trickle("/blobs/sha256:", 0.1)
    proc = _inspect(registry_proxy, env={"TRUSTBUILD_REGISTRY_BLOB_TIMEOUT": "2",
                                         "TRUSTBUILD_REGISTRY_SPEED_LIMIT": "0"})
    line = _one_line_error(proc, registry_proxy)
    assert "/blobs/sha256:" in line and "after 2 s" in line
    assert "--registry-blob-timeout" in line
    # not retried: one blob GET reached the proxy
    assert sum(1 for m, p, _s in registry_proxy.log if m == "GET" and "/blobs/" in p) <= 1


def test_normal_registry_is_unaffected_by_tight_limits(registry_proxy: FaultProxy,
                                                       pushed_image: tuple[str, str]) -> None:
    proc = _inspect(registry_proxy, "--registry-timeout", "30", "--registry-speed-limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert '"layers"' in proc.stdout


@pytest.mark.parametrize(("flags", "env", "message"), [
    (["--registry-timeout", "soon"], {}, "--registry-timeout='soon': expected a non-negative"),
    (["--registry-speed-limit", "1.5"], {}, "--registry-speed-limit='1.5': expected"),
    ([], {"TRUSTBUILD_REGISTRY_SPEED_TIME": "-1"}, "TRUSTBUILD_REGISTRY_SPEED_TIME='-1'"),
])
def test_bad_limits_are_usage_errors(registry_proxy: FaultProxy, flags: list[str],
                                     env: dict[str, str], message: str) -> None:
    proc = _inspect(registry_proxy, *flags, env=env)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
