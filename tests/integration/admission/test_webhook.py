"""``trustbuild admission serve`` against AdmissionReviews, with a fake API server.

A real Kubernetes API server cannot run here, so these tests play its part: ``api_server``
(conftest.FakeAPIServer) follows the ValidatingWebhookConfiguration rendered by
``trustbuild policy render --format webhook`` (rules, namespace selector, CA bundle, Service
name, path, failurePolicy) and POSTs AdmissionReview v1 bodies over HTTPS to the real webhook
process, which resolves images in the real registry (docker-registry on loopback) and verifies
real cosign signatures made with trustbuild. Hostile bodies are POSTed directly.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
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


def test_signed_image_from_allowed_repository_is_allowed(api_server: Any,
                                                        admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = api_server.admit(pod(imgs.signed))
    assert resp["allowed"] is True, resp
    pinned = imgs.signed.rsplit(":", 1)[0] + "@" + imgs.signed_digest
    assert api_server.admit(pod(pinned, init=(imgs.signed,)))["allowed"] is True


def test_unsigned_image_is_denied_with_the_reason(api_server: Any,
                                                  admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = api_server.admit(pod(imgs.signed, imgs.unsigned))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert resp["status"]["code"] == 403
    assert "spec.containers[1]" in msg and imgs.unsigned in msg and "signature" in msg


def test_missing_or_foreign_provenance_is_denied(api_server: Any,
                                                 admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = api_server.admit(pod(imgs.no_provenance))
    assert resp["allowed"] is False
    assert "attestation:slsaprovenance" in resp["status"]["message"]
    resp = api_server.admit(pod(imgs.other_builder))
    assert resp["allowed"] is False
    assert "https://ci.example/untrusted-builder" in resp["status"]["message"]


def test_image_outside_allowed_repositories_is_denied(api_server: Any,
                                                      admission_images: Any) -> None:
    imgs, _ = admission_images
    resp = api_server.admit(pod(imgs.other_repo))
    assert resp["allowed"] is False
    assert "allowed-repository" in resp["status"]["message"]
    assert "elsewhere/app is not in spec.deploy.allowedRepositories" in resp["status"]["message"]
    # decided without contacting the registry: nothing listens on port 1
    resp = api_server.admit(pod("127.0.0.1:1/elsewhere/app:1"))
    assert resp["allowed"] is False
    assert "allowed-repository: 127.0.0.1:1/elsewhere/app is not in" in resp["status"]["message"]


def test_workload_templates_are_checked(api_server: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    ok = deployment({"containers": [{"name": "a", "image": imgs.signed}]})
    resp = api_server.admit(ok, kind="Deployment", group="apps", resource="deployments")
    assert resp["allowed"] is True
    bad = deployment({"initContainers": [{"name": "i", "image": imgs.unsigned}],
                      "containers": [{"name": "a", "image": imgs.signed}]})
    resp = api_server.admit(bad, kind="Deployment", group="apps", resource="deployments")
    assert resp["allowed"] is False
    assert "spec.template.spec.initContainers[0]" in resp["status"]["message"]
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "a", "image": imgs.unsigned}]}}}}}}
    resp = api_server.admit(cron, kind="CronJob", group="batch", resource="cronjobs")
    assert resp["allowed"] is False
    assert "spec.jobTemplate.spec.template.spec.containers[0]" in resp["status"]["message"]


def test_ephemeral_containers_subresource(api_server: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    obj = pod(imgs.signed)
    obj["spec"]["ephemeralContainers"] = [{"name": "debug", "image": imgs.unsigned}]
    resp = api_server.admit(obj, resource="pods/ephemeralcontainers", operation="UPDATE")
    assert resp["allowed"] is False
    assert "spec.ephemeralContainers[0]" in resp["status"]["message"]


def test_update_is_judged_on_the_images_it_adds(api_server: Any, admission_images: Any) -> None:
    imgs, _ = admission_images
    running = pod(imgs.signed, imgs.unsigned)  # admitted before the policy was installed
    relabelled = pod(imgs.signed, imgs.unsigned)
    relabelled["metadata"]["labels"] = {"tier": "web"}
    resp = api_server.admit(relabelled, operation="UPDATE", old=running)
    assert resp["allowed"] is True
    changed = pod(imgs.signed, imgs.no_provenance)
    resp = api_server.admit(changed, operation="UPDATE", old=running)
    assert resp["allowed"] is False and imgs.no_provenance in resp["status"]["message"]


def test_requests_the_configuration_does_not_send(api_server: Any) -> None:
    assert api_server.admit(pod("anything:1"), namespace="kube-system") is None
    assert api_server.admit(pod("anything:1"), operation="DELETE") is None
    assert api_server.admit({"data": {}}, kind="ConfigMap", resource="configmaps") is None


def test_missing_image_and_bad_reference_fail_closed(api_server: Any,
                                                     admission_images: Any) -> None:
    imgs, _ = admission_images
    host = imgs.signed.split("/", 1)[0]
    resp = api_server.admit(pod(f"{host}/admission/nothing-here:1"))
    assert resp["allowed"] is False and "cannot be verified" in resp["status"]["message"]
    resp = api_server.admit(pod("Not A Reference!"))
    assert resp["allowed"] is False and "Not A Reference!" in resp["status"]["message"]
    # pod images are registry references only: no local layouts or archives on the webhook host
    for local in ("oci:/etc", "docker-archive:/etc/passwd", "oci:/tmp/layout:1"):
        resp = api_server.admit(pod(local))
        assert resp["allowed"] is False and "invalid image reference" in \
            resp["status"]["message"], resp
    resp = api_server.admit(pod(f"{host}/admission/app@{DIGEST}"))
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


def test_serve_usage_errors(tmp_path: Any) -> None:
    from trustbuild.cli.main import main

    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\n"
                      "spec: {deploy: {allowedRepositories: ['x/*']}}\n")
    base = ["admission", "serve", "--policy", str(policy)]
    assert main([*base, "--tls-cert", str(tmp_path / "no.crt"), "--tls-key",
                 str(tmp_path / "no.key"), "--listen", "127.0.0.1:0"]) == 2
    assert main([*base, "--tls-cert", "c", "--tls-key", "k", "--listen", "nowhere"]) == 2


def test_connections_beyond_the_limit_are_closed(tmp_path: Any) -> None:
    from tests.integration.admission.conftest import make_tls
    from trustbuild.admission.controller import AdmissionController
    from trustbuild.admission.server import AdmissionServer
    from trustbuild.policy.model import parse_policy
    from trustbuild.registry.options import StoreOptions

    ca, crt, key = make_tls(tmp_path)
    policy = parse_policy(b"apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\n"
                          b"spec: {deploy: {allowedRepositories: ['x/*']}}\n")
    server = AdmissionServer(AdmissionController(policy, StoreOptions()), ("127.0.0.1", 0),
                             cert=str(crt), key=str(key), timeout=30, max_connections=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        stalled = socket.create_connection(("127.0.0.1", server.port))  # holds the one slot
        second = socket.create_connection(("127.0.0.1", server.port))
        try:
            ctx.wrap_socket(second, server_hostname="127.0.0.1")
            refused = False
        except (ssl.SSLError, OSError):
            refused = True
        finally:
            second.close()
        stalled.close()
        assert refused
        for _ in range(100):  # the slot comes back once the stalled handshake fails
            try:
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)),
                                     server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert tls.recv(100).startswith(b"HTTP/1.1 200")
                    break
            except (ssl.SSLError, OSError):
                time.sleep(0.05)
        else:
            raise AssertionError("the server did not accept a connection after the slot freed")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _delete_signature(registry_url: str, repo: str, digest: str) -> None:
    """Remove the cosign signature manifest (``sha256-<hex>.sig``) from the real registry."""
    import urllib.request

    tag = digest.replace(":", "-") + ".sig"
    accept = ", ".join(["application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.v2+json"])
    head = urllib.request.Request(f"{registry_url}/v2/{repo}/manifests/{tag}", method="HEAD",
                                  headers={"Accept": accept})
    with urllib.request.urlopen(head, timeout=30) as resp:
        sig_digest = resp.headers["Docker-Content-Digest"]
    delete = urllib.request.Request(f"{registry_url}/v2/{repo}/manifests/{sig_digest}",
                                    method="DELETE")
    with urllib.request.urlopen(delete, timeout=30) as resp:
        assert resp.status == 202


def test_passed_digests_are_cached_for_the_ttl_only(registry: Any, admission_images: Any,
                                                    tmp_path: Any) -> None:
    from fixtures.registry import push_test_image

    from tests.integration.admission.conftest import PASSWORD, _sign
    from trustbuild.admission.controller import AdmissionController
    from trustbuild.policy.model import parse_policy
    from trustbuild.registry.options import StoreOptions
    from trustbuild.sign.keys import generate_key_pair

    key, pub = generate_key_pair(str(tmp_path / "k"), password=PASSWORD)
    ref, _ = push_test_image(registry.host, "admission/cached", "1", content=b"cached\n")
    digest = _sign(ref, key)
    policy = parse_policy(b"apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\n"
                          b"spec: {deploy: {signatures: [{key: %s}]}}\n" % str(pub).encode())
    now = [1000.0]
    ctl = AdmissionController(policy, StoreOptions(), cache_ttl=60, clock=lambda: now[0])
    uncached = AdmissionController(policy, StoreOptions())
    assert ctl.check_image(ref).allowed
    _delete_signature(registry.url, "admission/cached", digest)  # revoked
    assert not uncached.check_image(ref).allowed
    now[0] += 59
    assert ctl.check_image(ref).allowed  # still within the TTL
    now[0] += 2
    verdict = ctl.check_image(ref)
    assert not verdict.allowed and "signature" in verdict.message
    _sign(ref, key)  # signed again: a denial was not remembered
    assert ctl.check_image(ref).allowed
