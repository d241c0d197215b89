"""The webhook's decision (``AdmissionController``, what ``trustbuild admission serve`` answers)
honours every signer mode of the policy, including what the Kyverno and policy-controller
bundles cannot express (containers/image ``signedIdentity``, checked against the image as the
pod names it) and the ``pki`` mode, on real signatures in the registry."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixtures.registry import push_test_image

from trustbuild.admission.controller import AdmissionController
from trustbuild.cli.main import main
from trustbuild.policy.model import parse_policy
from trustbuild.registry.options import StoreOptions

PASSWORD = "modes"
NOW = dt.datetime.now(dt.UTC)


def _cert(cn: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool,
          sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    def name(n: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n)])

    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = (b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                            critical=False))
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _review(image: str) -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1",
                                                       "kind": "Pod"},
                    "name": "x", "namespace": "apps", "operation": "CREATE",
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                               "spec": {"containers": [{"name": "c", "image": image}]}}},
    }).encode()


@pytest.fixture(scope="module")
def signed(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Images signed three ways: a containers/image identity (repo:tag), a mirror whose
    signature names the production repository, and a PKI certificate."""
    d = tmp_path_factory.mktemp("modes")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    try:
        assert main(["generate-key-pair", "--output-key-prefix", str(d / "k")]) == 0
        host = registry.host
        app, digest = push_test_image(host, "modes/app", "1", content=b"modes app\n")
        push_test_image(host, "modes/app", "2", content=b"modes app\n")  # same digest
        mirror, _ = push_test_image(host, "modes/mirror", "1", content=b"modes mirror\n")
        push_test_image(host, "modes/mirror", "2", content=b"modes mirror\n")
        pki_ref, _ = push_test_image(host, "modes/pki", "1", content=b"modes pki\n")
        assert main(["sign", "--key", str(d / "k.key"), "--sign-identity", app, app]) == 0
        # the mirror carries a signature made for the production name (skopeo copy does that)
        assert main(["sign", "--key", str(d / "k.key"), "--sign-identity",
                     f"{host}/modes/prod:1", mirror]) == 0
        root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP256R1())
                                       for _ in range(3))
        root = _cert("corp root", root_key, "corp root", root_key, ca=True)
        inter = _cert("corp int", int_key, "corp root", root_key, ca=True)
        leaf = _cert("release", leaf_key, "corp int", int_key, ca=False,
                     sans=[x509.RFC822Name("release@example.com"),
                           x509.DNSName("build.example.com")])
        (d / "root.pem").write_bytes(_pem(root))
        (d / "leaf.pem").write_bytes(_pem(leaf))
        (d / "chain.pem").write_bytes(_pem(inter, root))
        (d / "leaf.key").write_bytes(leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        assert main(["sign", "--key", str(d / "leaf.key"), "--certificate", str(d / "leaf.pem"),
                     "--certificate-chain", str(d / "chain.pem"), pki_ref]) == 0
    finally:
        mp.undo()
    return {"dir": d, "host": host, "app": app, "digest": digest, "mirror": mirror,
            "pki": pki_ref}


def _decide(s: dict[str, Any], signer: str, image: str) -> tuple[bool, str]:
    d: Path = s["dir"]
    policy = parse_policy(
        ("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: modes}\n"
         "spec:\n  deploy:\n    allowedRepositories: ['127.0.0.1:*/modes/**']\n"
         f"    signatures:\n      - {signer}\n").encode(), path=str(d / "policy.yaml"))
    ctl = AdmissionController(policy, StoreOptions())
    try:
        resp: Any = ctl.review(_review(image))["response"]
    finally:
        ctl.close()
    return bool(resp["allowed"]), str((resp.get("status") or {}).get("message", ""))


def test_webhook_honours_signed_identity_modes(signed: dict[str, Any]) -> None:
    s, host = signed, signed["host"]
    key = f"key: {s['dir'] / 'k.pub'}"
    app1, app2, by_digest = s["app"], f"{host}/modes/app:2", f"{host}/modes/app@{s['digest']}"
    mirror1, mirror2 = s["mirror"], f"{host}/modes/mirror:2"

    def ident(obj: str) -> str:
        return f"{{{key}, signedIdentity: {obj}}}"

    cases = [
        # the default, cosign's matchRepository: the signed repository is the pod's
        (f"{{{key}}}", app2, True), (f"{{{key}}}", mirror1, False),
        ("{" + key + ", signedIdentity: {type: matchRepository}}", app1, True),
        # containers/image's default: by tag the exact repo:tag, by digest the repository
        (ident("{type: matchRepoDigestOrExact}"), app1, True),
        (ident("{type: matchRepoDigestOrExact}"), by_digest, True),
        (ident("{type: matchRepoDigestOrExact}"), app2, False),
        (ident("{type: matchExact}"), app1, True),
        (ident("{type: matchExact}"), by_digest, False),
        (ident(f"{{type: exactReference, dockerReference: '{host}/modes/prod:1'}}"),
         mirror2, True),
        (ident(f"{{type: exactReference, dockerReference: '{host}/modes/prod:2'}}"),
         mirror1, False),
        (ident(f"{{type: exactRepository, dockerRepository: '{host}/modes/prod'}}"),
         mirror1, True),
        (ident(f"{{type: exactRepository, dockerRepository: '{host}/modes/other'}}"),
         mirror1, False),
        (ident(f"{{type: remapIdentity, prefix: '{host}/modes/mirror', "
               f"signedPrefix: '{host}/modes/prod'}}"), mirror1, True),
        (ident(f"{{type: remapIdentity, prefix: '{host}/modes/mirror', "
               f"signedPrefix: '{host}/modes/prod'}}"), mirror2, False),
    ]
    got = [(signer, image, _decide(s, signer, image)) for signer, image, _ in cases]
    assert [ok for _, _, (ok, _) in got] == [want for _, _, want in cases], got
    _, msg = _decide(s, ident("{type: matchRepoDigestOrExact}"), app2)
    assert "signature: no signature by a trusted signer" in msg and "does not match" in msg


def test_webhook_honours_the_pki_mode(signed: dict[str, Any]) -> None:
    s = signed
    root = s["dir"] / "root.pem"
    assert _decide(s, f"pki: {{caRoots: {root}, subjectEmail: release@example.com}}",
                   s["pki"]) == (True, "")
    assert _decide(s, f"pki: {{caRoots: {root}, subjectHostname: build.example.com, "
                      "subjectEmail: release@example.com}", s["pki"])[0] is True
    ok, msg = _decide(s, f"pki: {{caRoots: {root}, subjectEmail: other@example.com}}", s["pki"])
    assert not ok and "required certificate email 'other@example.com' not found" in msg
    ok, msg = _decide(s, f"pki: {{caRoots: {root}, subjectHostname: evil.example.com}}",
                      s["pki"])
    assert not ok and "not valid for the hostname" in msg
    # a key signature is not a PKI signature
    assert _decide(s, f"pki: {{caRoots: {root}, subjectEmail: release@example.com}}",
                   s["app"])[0] is False
