"""Load on the admission webhook: reviews/s and latency at N concurrent clients, verdicts checked.

Setup (all on loopback): Debian's docker-registry, one image signed with a fresh key (pushed by
skopeo, signed by trustbuild), and ``trustbuild admission serve`` as its own process with its
defaults (16 reviews at once, 5 s queue wait, 60 s verdict cache) and a policy requiring
``allowedRepositories`` and that signature. The cache is warmed with one review.

Each client is a thread with one kept-alive HTTPS connection (as the API server's client) that
sends reviews back to back for ``--seconds``, cycling through: the signed image by digest
(allowed, cached verdict, no registry request), the same image by tag (allowed: the tag is
resolved in the registry, the verdict cached), and an image outside the allowed repositories
(denied before any registry request). Every answer is checked (HTTP 200, its uid, the verdict);
anything else counts as an error. The client runs in a separate process from the server, but
shares the machine's cores with it.

    .venv/bin/python bench/admission_load.py                   # 16, 64 and 256 clients, 10 s each
    .venv/bin/python bench/admission_load.py --clients 64 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def _review(image: str) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()),
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "name": "x", "namespace": "apps", "operation": "CREATE",
                        "userInfo": {"username": "bench"}, "oldObject": None, "dryRun": False,
                        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                                   "spec": {"containers": [{"name": "c", "image": image}]}}}}


def _start_server(policy: Path, crt: Path, key: Path, log: Path) -> tuple[subprocess.Popen[bytes],
                                                                           int]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "wb") as errf:
        proc = subprocess.Popen([sys.executable, "-m", "trustbuild", "admission", "serve",
                                 "--policy", str(policy), "--listen", "127.0.0.1:0",
                                 "--tls-cert", str(crt), "--tls-key", str(key)],
                                stdout=subprocess.DEVNULL, stderr=errf, env=env)
    for _ in range(300):
        m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)/", log.read_bytes())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"admission serve did not start: {log.read_text()}")


def _run(port: int, ca: Path, cases: list[tuple[str, bool]], clients: int,
         seconds: float) -> dict[str, Any]:
    import http.client
    import socket
    import ssl

    from integration.admission.conftest import SERVICE_DNS

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        ctx = ssl.create_default_context(cafile=str(ca))
        conn = http.client.HTTPSConnection(SERVICE_DNS, port, context=ctx, timeout=30)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 30),
                                    server_hostname=SERVICE_DNS)
        mine: list[float] = []
        i = n
        start_gate.wait()
        try:
            while time.monotonic() < stop_at[0]:
                image, allowed = cases[i % len(cases)]
                i += 1
                body = _review(image)
                t0 = time.perf_counter()
                conn.request("POST", "/validate", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                out = json.loads(data)["response"]
                if out["uid"] != body["request"]["uid"] or out["allowed"] is not allowed:
                    raise RuntimeError(f"wrong verdict for {image}: {out}")
        except Exception as exc:  # noqa: BLE001 - counted
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    start_gate.wait()
    began = time.monotonic()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies \
            else float("nan")

    return {"clients": clients, "seconds": round(elapsed, 1), "reviews": len(latencies),
            "reviews_per_s": round(len(latencies) / elapsed, 1), "p50_ms": round(pct(0.50), 1),
            "p99_ms": round(pct(0.99), 1), "max_ms": round(latencies[-1] * 1000, 1)
            if latencies else None, "errors": len(errors), "first_errors": errors[:3]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, action="append", help="concurrent clients "
                    "(repeatable; default 16, 64, 256)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per level (default 10)")
    args = ap.parse_args()
    levels = args.clients or [16, 64, 256]

    from fixtures.registry import push_test_image, run_registry
    from integration.admission.conftest import PASSWORD, _sign, make_tls

    from trustbuild.sign.keys import generate_key_pair

    with tempfile.TemporaryDirectory(prefix="tb-admission-bench-") as tmp, run_registry() as reg:
        d = Path(tmp)
        ca, crt, key = make_tls(d)
        priv, pub = generate_key_pair(str(d / "release"), password=PASSWORD)
        ref, _ = push_test_image(reg.host, "bench/app", "1", content=b"bench\n")
        digest = _sign(ref, Path(priv))
        policy = d / "policy.yaml"
        policy.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\n"
                          "metadata: {name: bench}\nspec:\n  deploy:\n"
                          f"    allowedRepositories: ['{reg.host}/bench/**']\n"
                          f"    signatures: [{{key: {pub}}}]\n")
        cases = [(f"{reg.host}/bench/app@{digest}", True), (ref, True),
                 (f"{reg.host}/elsewhere/app:1", False)]
        proc, port = _start_server(policy, crt, key, d / "serve.log")
        try:
            _run(port, ca, cases[:1], 1, 1.0)  # warm the verdict cache
            results = [_run(port, ca, cases, n, args.seconds) for n in levels]
        finally:
            proc.terminate()
            proc.wait(10)
    print("| clients | reviews/s | p50 ms | p99 ms | max ms | reviews | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['clients']} | {r['reviews_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['reviews']} | {r['errors']} |")
    for r in results:
        for e in r["first_errors"]:
            print(f"clients={r['clients']}: {e}", file=sys.stderr)
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
