"""Issue 10 item 8: the webhook under load queues reviews instead of refusing them.

64 clients, each on one kept-alive connection (as the API server's client does), send their
reviews at the same moment to ``trustbuild admission serve`` with its defaults (16 reviews
evaluated at once): every review gets a 200 with the right verdict for its own uid, none a 503,
no connection is reset or closed. Not timed: only the answers are checked.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.integration.admission.test_webhook import answer, pod, review

pytestmark = [pytest.mark.slow]
CLIENTS = 64
ROUNDS = 4


def test_64_concurrent_clients_all_get_correct_answers(webhook: Any,
                                                       admission_images: Any) -> None:
    imgs, _pub = admission_images
    repo = imgs.signed.rsplit(":", 1)[0]
    by_digest = f"{repo}@{imgs.signed_digest}"
    # warm the verdict cache (passed digests are remembered for the default TTL)
    assert answer(webhook, review(pod(by_digest)))["allowed"] is True
    cases = [  # (pod image, allowed, a word the denial must contain)
        (by_digest, True, ""),
        (imgs.signed, True, ""),  # the tag is resolved on every review; the verdict is cached
        (imgs.other_repo, False, "allowed-repository"),
        ("127.0.0.1:1/admission/bad@sha256:" + "0" * 63, False, "invalid"),
    ]
    barrier = threading.Barrier(CLIENTS)
    failures: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = webhook.connection()
        try:
            barrier.wait(timeout=120)
            for r in range(ROUNDS):
                image, allowed, word = cases[(n + r) % len(cases)]
                body = review(pod(image))
                conn.request("POST", "/validate", body=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                with lock:
                    statuses.append(resp.status)
                if resp.status != 200 or resp.getheader("Connection", "").lower() == "close":
                    raise AssertionError(f"HTTP {resp.status} {resp.getheader('Connection')}: "
                                         f"{data[:200]!r}")
                out = json.loads(data)["response"]
                if out["uid"] != body["request"]["uid"] or out["allowed"] is not allowed or \
                        word not in out.get("status", {}).get("message", ""):
                    raise AssertionError(f"wrong verdict for {image}: {out}")
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            with lock:
                failures.append(f"client {n}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert failures == [], failures[:5]
    assert statuses == [200] * (CLIENTS * ROUNDS)
    assert webhook.proc.poll() is None
