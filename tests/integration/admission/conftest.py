"""Fixtures for the admission webhook: signed/unsigned images in the real registry, a TLS
certificate made here, and ``trustbuild admission serve`` running as a real process."""

from __future__ import annotations

import datetime as _dt
import http.client
import ipaddress
import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trustbuild.oci.reference import Reference
from trustbuild.registry.store import RegistryStore
from trustbuild.sign.keys import generate_key_pair, load_signing_key
from trustbuild.sign.sign import sign_image
from trustbuild.store.base import StoreOptions

PASSWORD = b"admission-test"


def _skopeo_copy(src: str, dst: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    "--dest-tls-verify=false", f"docker://{src}", f"docker://{dst}"],
                   check=True, capture_output=True, timeout=120)


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
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = dirpath / "ca.pem", dirpath / "tls.crt", dirpath / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class Images:
    """References in the session registry: signed, unsigned, and signed-but-elsewhere."""

    signed: str
    signed_digest: str
    unsigned: str
    other_repo: str


@pytest.fixture(scope="module")
def admission_images(registry: Any, busybox_base: str,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[Images, Path]:
    keys = tmp_path_factory.mktemp("admission-keys")
    key, pub = generate_key_pair(str(keys / "release"), password=PASSWORD)
    imgs = Images(signed=f"{registry.host}/admission/app:1", signed_digest="",
                  unsigned=f"{registry.host}/admission/unsigned:1",
                  other_repo=f"{registry.host}/elsewhere/app:1")
    for ref in (imgs.signed, imgs.unsigned, imgs.other_repo):
        _skopeo_copy(busybox_base, ref)
    imgs.signed_digest = _sign(imgs.signed, key)
    _sign(imgs.other_repo, key)
    return imgs, Path(pub)


@dataclass
class Webhook:
    """A running ``trustbuild admission serve``; ``post`` talks to it as the API server would."""

    port: int
    ca: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def connection(self) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60)

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
        f"    signatures: [{{key: {pub}}}]\n")
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
    hook = Webhook(port, ca, proc, log)
    try:
        yield hook
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
