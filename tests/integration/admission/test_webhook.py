"""``trustbuild admission serve`` against AdmissionReviews, with a fake API server.

A real Kubernetes API server cannot run here, so these tests play its part: they POST
AdmissionReview v1 bodies over HTTPS (trusting the webhook's CA, as ``caBundle`` would) to
the real webhook process, which resolves images in the real registry (docker-registry on
loopback) and verifies real cosign signatures made with trustbuild.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

DIGEST = "sha256:" + "0" * 64


def review(obj: dict[str, Any], *, kind: str = "Pod", group: str = "",
           operation: str = "CREATE") -> dict[str, Any]:
    """An AdmissionReview v1 request as the API server sends it."""
    version = "v1"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version,
                         "resource": kind.lower() + "s"},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": "x", "namespace": "apps", "operation": operation,
            "userInfo": {"username": "alice"},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def pod(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im}
                                           for i, im in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": im} for i, im in enumerate(init)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}


def deployment(template_spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": template_spec}}}


def answer(webhook: Any, body: dict[str, Any]) -> dict[str, Any]:
    status, out = webhook.post(body)
    assert status == 200, out
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == body["request"]["uid"]
    return out["response"]  # type: ignore[no-any-return]


def test_signed_image_from_allowed_repository_is_allowed(
        webhook: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = answer(webhook, review(pod(imgs.signed)))
    assert resp["allowed"] is True, resp
    pinned = imgs.signed.rsplit(":", 1)[0] + "@" + imgs.signed_digest
    assert answer(webhook, review(pod(pinned, init=(imgs.signed,))))["allowed"] is True


def test_unsigned_image_is_denied_with_the_reason(
        webhook: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = answer(webhook, review(pod(imgs.signed, imgs.unsigned)))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert resp["status"]["code"] == 403
    assert "spec.containers[1]" in msg and imgs.unsigned in msg and "signature" in msg


def test_image_outside_allowed_repositories_is_denied(
        webhook: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = answer(webhook, review(pod(imgs.other_repo)))
    assert resp["allowed"] is False
    assert "allowed-repository" in resp["status"]["message"]
    assert "elsewhere/app is not in spec.deploy.allowedRepositories" in resp["status"]["message"]


def test_deployment_template_images_are_checked(
        webhook: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    ok = deployment({"containers": [{"name": "a", "image": imgs.signed}]})
    assert answer(webhook, review(ok, kind="Deployment", group="apps"))["allowed"] is True
    bad = deployment({"initContainers": [{"name": "i", "image": imgs.unsigned}],
                      "containers": [{"name": "a", "image": imgs.signed}]})
    resp = answer(webhook, review(bad, kind="Deployment", group="apps"))
    assert resp["allowed"] is False
    assert "spec.template.spec.initContainers[0]" in resp["status"]["message"]
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": imgs.unsigned}]}}}}}}
    resp = answer(webhook, review(cron, kind="CronJob", group="batch"))
    assert resp["allowed"] is False
    assert "spec.jobTemplate.spec.template.spec.containers[0]" in resp["status"]["message"]


def test_missing_image_and_bad_reference_fail_closed(
        webhook: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    host = imgs.signed.split("/", 1)[0]
    resp = answer(webhook, review(pod(f"{host}/admission/nothing-here:1")))
    assert resp["allowed"] is False and "cannot be verified" in resp["status"]["message"]
    resp = answer(webhook, review(pod("Not A Reference!")))
    assert resp["allowed"] is False and "Not A Reference!" in resp["status"]["message"]
    resp = answer(webhook, review(pod(f"{host}/admission/app@{DIGEST}")))
    assert resp["allowed"] is False


def test_delete_is_allowed_without_checks(webhook: Any) -> None:
    resp = answer(webhook, review(pod("anything:1"), operation="DELETE"))
    assert resp["allowed"] is True


def test_malformed_json_gets_400_with_a_message(webhook: Any) -> None:
    status, out = webhook.post(b'{"apiVersion": "admission.k8s.io/v1", "kind": ')
    assert status == 400
    assert out["response"]["allowed"] is False
    assert "not valid JSON" in out["response"]["status"]["message"]
    status, out = webhook.post(b"[" * 100000 + b"]" * 100000)
    assert status == 400 and out["response"]["allowed"] is False
    status, out = webhook.post({"apiVersion": "admission.k8s.io/v1beta1",
                                "kind": "AdmissionReview", "request": {}})
    assert status == 400 and "expected apiVersion admission.k8s.io/v1" in \
        out["response"]["status"]["message"]


def test_malformed_pod_is_denied_naming_the_field(webhook: Any) -> None:
    body = review({"spec": {"containers": [{"name": "a", "image": 7}]}})
    resp = answer(webhook, body)
    assert resp["allowed"] is False and resp["status"]["code"] == 400
    assert "object.spec.containers[0].image: expected a non-empty string" in \
        resp["status"]["message"]
    resp = answer(webhook, review({"spec": {"containers": "nginx"}}))
    assert resp["allowed"] is False and "spec.containers: expected a list" in \
        resp["status"]["message"]


def test_oversized_body_is_refused_before_reading(webhook: Any) -> None:
    conn = webhook.connection()
    try:
        conn.putrequest("POST", "/validate")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(64 * 1024 * 1024))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        out = json.loads(resp.read())
        assert out["response"]["allowed"] is False
        assert "larger than" in out["response"]["status"]["message"]
    finally:
        conn.close()


def test_wrong_path_and_content_type(webhook: Any) -> None:
    status, out = webhook.post(review(pod("x")), path="/mutate")
    assert status == 404
    status, out = webhook.post(b"{}", content_type="text/plain")
    assert status == 415 and "expected application/json" in out["response"]["status"]["message"]


def test_server_keeps_serving_and_logs_decisions(webhook: Any) -> None:
    conn = webhook.connection()
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"ok\n"
    finally:
        conn.close()
    assert webhook.proc.poll() is None
    log = webhook.log.read_text()
    assert "deny Pod apps/x" in log


def test_a_stalled_client_does_not_block_others(webhook: Any) -> None:
    stalled = socket.create_connection(("127.0.0.1", webhook.port))  # never sends a handshake
    try:
        status, out = webhook.post(review(pod("x"), operation="CONNECT"))
        assert status == 200 and out["response"]["allowed"] is True
    finally:
        stalled.close()
