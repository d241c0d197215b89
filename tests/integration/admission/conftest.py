"""Fixtures for the admission webhook: signed/unsigned images in the real registry, a TLS
certificate made here, ``trustbuild admission serve`` running as a real process, and a fake
API server that calls it the way the rendered ValidatingWebhookConfiguration tells it to."""

from __future__ import annotations

import datetime as _dt
import http.client
import ipaddress
import json
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image

from trustbuild.oci.reference import Reference
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.store import RegistryStore
from trustbuild.sign.keys import generate_key_pair, load_signing_key
from trustbuild.sign.sign import sign_image

PASSWORD = b"admission-test"
SERVICE = "trustbuild-system/trustbuild-admission"
#: The name the API server checks the serving certificate against (service.namespace.svc).
SERVICE_DNS = "trustbuild-admission.trustbuild-system.svc"


def _sign(ref: str, key: Path) -> str:
    r = Reference.parse(ref)
    store = RegistryStore(r.registry, r.repository, StoreOptions())
    try:
        res = sign_image(store, r.tag, load_signing_key(key, password=PASSWORD),
                         docker_reference=r.name)
    finally:
        store.close()
    return str(res.digest)


def make_tls(dirpath: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a serving certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admission test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admission")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(SERVICE_DNS),
                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = dirpath / "ca.pem", dirpath / "tls.crt", dirpath / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


BUILDER_ID = "https://trustbuild.dev/test-builder"


def _attest(ref: str, key: Path, builder_id: str) -> None:
    from trustbuild.attest.attach import attest_image

    r = Reference.parse(ref)
    store = RegistryStore(r.registry, r.repository, StoreOptions())
    predicate = {"buildDefinition": {"buildType": "https://trustbuild.dev/build/v1",
                                     "externalParameters": {}},
                 "runDetails": {"builder": {"id": builder_id}}}
    try:
        attest_image(store, r.tag, key=load_signing_key(key, password=PASSWORD),
                     predicate=predicate, predicate_type="slsaprovenance", subject_name=r.name)
    finally:
        store.close()


@dataclass
class Images:
    """References in the session registry: signed with provenance, unsigned, signed without
    provenance, signed with provenance from another builder, and signed-but-elsewhere."""

    signed: str
    signed_digest: str
    unsigned: str
    no_provenance: str
    other_builder: str
    other_repo: str


@pytest.fixture(scope="module")
def admission_images(registry: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Images, Path]:
    keys = tmp_path_factory.mktemp("admission-keys")
    key, pub = generate_key_pair(str(keys / "release"), password=PASSWORD)
    host = registry.host
    imgs = Images(signed=f"{host}/admission/app:1", signed_digest="",
                  unsigned=f"{host}/admission/unsigned:1",
                  no_provenance=f"{host}/admission/no-provenance:1",
                  other_builder=f"{host}/admission/other-builder:1",
                  other_repo=f"{host}/elsewhere/app:1")
    # distinct images (one layer each), so signatures of one never apply to another
    for i, ref in enumerate((imgs.signed, imgs.unsigned, imgs.no_provenance,
                             imgs.other_builder, imgs.other_repo)):
        push_test_image(host, Reference.parse(ref).repository, "1",
                        content=f"admission image {i}\n".encode())
    imgs.signed_digest = _sign(imgs.signed, key)
    _attest(imgs.signed, key, BUILDER_ID)
    for ref in (imgs.no_provenance, imgs.other_builder, imgs.other_repo):
        _sign(ref, key)
    _attest(imgs.other_builder, key, "https://ci.example/untrusted-builder")
    _attest(imgs.other_repo, key, BUILDER_ID)
    return imgs, Path(pub)


@dataclass
class Webhook:
    """A running ``trustbuild admission serve``; ``post`` talks to it as the API server would."""

    port: int
    ca: Path
    proc: subprocess.Popen[bytes]
    log: Path
    policy: Path

    def connection(self, *, cadata: str | None = None) -> http.client.HTTPSConnection:
        """HTTPS to the webhook on loopback, checking its certificate as the API server does:
        against the CA bundle, for the Service's DNS name."""
        if cadata is not None:
            ctx = ssl.create_default_context(cadata=cadata)
        else:
            ctx = ssl.create_default_context(cafile=str(self.ca))
        conn = http.client.HTTPSConnection(SERVICE_DNS, self.port, context=ctx, timeout=60)
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), 60),
                                    server_hostname=SERVICE_DNS)
        return conn

    def post(self, body: bytes | dict[str, Any], *, path: str = "/validate",
             content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = self.connection()
        try:
            conn.request("POST", path, body=data, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def webhook(admission_images: tuple[Images, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    _, pub = admission_images
    d = tmp_path_factory.mktemp("admission")
    ca, crt, key = make_tls(d)
    policy = d / "policy.yaml"
    policy.write_text(
        "apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: cluster}\n"
        "spec:\n  deploy:\n    allowedRepositories: ['127.0.0.1:*/admission/**']\n"
        f"    signatures: [{{key: {pub}}}]\n"
        f"    attestations: [{{type: slsaprovenance, key: {pub}, builderIds: [{BUILDER_ID}]}}]\n")
    log = d / "serve.log"
    with open(log, "wb") as errf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trustbuild", "admission", "serve", "--policy", str(policy),
             "--listen", "127.0.0.1:0", "--tls-cert", str(crt), "--tls-key", str(key),
             "--timeout", "5"],
            stdout=subprocess.DEVNULL, stderr=errf)
    port = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None and not port:
        m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)/", log.read_bytes())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.1)
    if not port:
        proc.kill()
        proc.wait()
        pytest.fail(f"admission serve did not start: {log.read_text()}")
    hook = Webhook(port, ca, proc, log, policy)
    try:
        yield hook
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FakeAPIServer:
    """The part of the Kubernetes API server that calls validating webhooks, driven by the
    ValidatingWebhookConfiguration that ``trustbuild policy render --format webhook`` wrote:
    rule matching, the namespace selector, ``clientConfig`` (CA bundle, Service name, path),
    ``timeoutSeconds`` and ``failurePolicy``. Only what these tests need; not a real one."""

    def __init__(self, config: dict[str, Any], webhook: Webhook) -> None:
        (self.hook,) = config["webhooks"]
        self.webhook = webhook

    def _matches(self, group: str, resource: str, operation: str, namespace: str) -> bool:
        sel = self.hook["namespaceSelector"]
        for expr in sel.get("matchExpressions", []):
            assert expr["key"] == "kubernetes.io/metadata.name" and expr["operator"] == "NotIn"
            if namespace in expr["values"]:
                return False
        for rule in self.hook["rules"]:
            if (group in rule["apiGroups"] and "v1" in rule["apiVersions"]
                    and operation in rule["operations"] and resource in rule["resources"]):
                return True
        return False

    def admit(self, obj: dict[str, Any], *, kind: str = "Pod", group: str = "",
              resource: str = "pods", operation: str = "CREATE", namespace: str = "apps",
              old: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The webhook's response (None when no rule sends the request to it)."""
        import base64
        import uuid

        if not self._matches(group, resource, operation, namespace):
            return None
        uid = str(uuid.uuid4())
        body = {"apiVersion": "admission.k8s.io/" + self.hook["admissionReviewVersions"][0],
                "kind": "AdmissionReview",
                "request": {
                    "uid": uid, "kind": {"group": group, "version": "v1", "kind": kind},
                    "resource": {"group": group, "version": "v1", "resource": resource},
                    "name": "x", "namespace": namespace, "operation": operation,
                    "userInfo": {"username": "alice"}, "object": obj, "oldObject": old,
                    "dryRun": False}}
        cc = self.hook["clientConfig"]
        conn = self.webhook.connection(cadata=base64.b64decode(cc["caBundle"]).decode())
        conn.sock.settimeout(self.hook["timeoutSeconds"])
        try:
            conn.request("POST", cc["service"]["path"], body=json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            assert self.hook["failurePolicy"] == "Fail"
            return {"uid": uid, "allowed": False,
                    "status": {"message": f"failed calling webhook: HTTP {resp.status}"}}
        out = json.loads(data)
        assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
        assert out["response"]["uid"] == uid
        return out["response"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def api_server(webhook: Webhook, tmp_path_factory: pytest.TempPathFactory) -> FakeAPIServer:
    """A fake API server configured by the rendered ValidatingWebhookConfiguration."""
    import yaml

    from trustbuild.cli.main import main

    d = tmp_path_factory.mktemp("rendered")
    assert main(["policy", "render", "--policy", str(webhook.policy), "--format", "webhook",
                 "--webhook-service", SERVICE, "--ca-bundle", str(webhook.ca),
                 "--output-dir", str(d)]) == 0
    config = yaml.safe_load((d / "90-validatingwebhookconfiguration.yaml").read_text())
    return FakeAPIServer(config, webhook)
