"""Keyless Sigstore bundles (cosign 3 image signatures) verified offline against a test PKI:
a self-made Fulcio-like CA, a code-signing leaf with the OIDC issuer extension, and a Rekor key
that signs the entry's SET. Nothing is mocked: every signature is real."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sign_memstore import MemoryStore

from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.sign.attach import attach_bundle_referrer
from trustbuild.sign.bundle import IN_TOTO_PAYLOAD_TYPE, SIGN_PREDICATE_TYPE, image_statement, pae
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.rekor import canonical_json
from trustbuild.sign.sign import bundle_manifest_annotations
from trustbuild.sign.verify import KeylessPolicy, TrustRoots, verify_image

REPO = "registry.example/app"
EMAIL = "dev@example.com"
ISSUER = "https://issuer.example"
SIGNED_AT = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return bytes([0x0C, len(raw)]) + raw


class FakeSigstore:
    """A CA, a Rekor key and a way to make keyless bundles over a Statement."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio")])
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(self.ca_key.public_key()).serial_number(1)
                   .not_valid_before(SIGNED_AT - dt.timedelta(days=365))
                   .not_valid_after(SIGNED_AT + dt.timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.ca_key, hashes.SHA384()))
        self.rekor = SigningKey(ec.generate_private_key(ec.SECP256R1()))

    def trust(self) -> TrustRoots:
        k = self.rekor.public_key()
        return TrustRoots(ca_certs=[self.ca], rekor_keys={TrustRoots.log_id(k): k})

    def bundle(self, statement: bytes, *, email: str = EMAIL, with_set: bool = True,
               tamper_body: bool = False) -> bytes:
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([]))
                .issuer_name(self.ca.subject).public_key(leaf_key.public_key()).serial_number(2)
                .not_valid_before(SIGNED_AT - dt.timedelta(minutes=1))
                .not_valid_after(SIGNED_AT + dt.timedelta(minutes=9))
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                               critical=False)
                .add_extension(x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), _der_utf8(ISSUER)),
                    critical=False)
                .sign(self.ca_key, hashes.SHA384()))
        sig = leaf_key.sign(pae(IN_TOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
        sig_b64 = base64.b64encode(sig).decode()
        pem = leaf.public_bytes(serialization.Encoding.PEM)
        payload_hash = hashlib.sha256(b"tampered" if tamper_body else statement).hexdigest()
        body = base64.b64encode(json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "payloadHash": {"algorithm": "sha256", "value": payload_hash},
            "signatures": [{"signature": sig_b64,
                            "verifier": base64.b64encode(pem).decode()}]}}).encode()).decode()
        log_id = TrustRoots.log_id(self.rekor.public_key())
        itime = int(SIGNED_AT.timestamp())
        entry: dict[str, Any] = {
            "logIndex": "7", "logId": {"keyId": base64.b64encode(bytes.fromhex(log_id)).decode()},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(itime),
            "canonicalizedBody": body}
        if with_set:
            set_ = self.rekor.sign(canonical_json({"body": body, "integratedTime": itime,
                                                   "logID": log_id, "logIndex": 7}))
            entry["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(set_).decode()}
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": base64.b64encode(
                    leaf.public_bytes(serialization.Encoding.DER)).decode()},
                "tlogEntries": [entry]},
            "dsseEnvelope": {"payload": base64.b64encode(statement).decode(),
                             "payloadType": IN_TOTO_PAYLOAD_TYPE,
                             "signatures": [{"sig": sig_b64, "keyid": ""}]},
        }).encode()


@pytest.fixture(scope="module")
def pki() -> FakeSigstore:
    return FakeSigstore()


def _image(store: MemoryStore) -> Descriptor:
    cfg = b"{}"
    d = Descriptor.for_bytes(MediaType.OCI_EMPTY, cfg)
    store.put_blob(d, lambda: io.BytesIO(cfg))
    raw = dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                     "config": d.to_json(), "layers": []})
    return store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["v1"])


POLICY = KeylessPolicy(identity=EMAIL, issuer=ISSUER)


@pytest.mark.parametrize("kwargs,policy,reason", [
    ({}, POLICY, None),
    ({}, KeylessPolicy(identity_regexp=r"@example\.com$", issuer_regexp=r"^https://issuer\."),
     None),
    ({"email": "mallory@example.org"}, POLICY, "does not match"),
    ({}, KeylessPolicy(identity=EMAIL, issuer="https://other.example"), "issuer"),
    ({"with_set": False}, POLICY, "neither a SignedEntryTimestamp nor an inclusion proof"),
    ({"tamper_body": True}, POLICY, "another payload"),
])
def test_keyless_bundle_verdicts(pki: FakeSigstore, kwargs: dict[str, Any], policy: KeylessPolicy,
                                 reason: str | None) -> None:
    store = MemoryStore()
    img = _image(store)
    raw = pki.bundle(image_statement(REPO, img.digest), **kwargs)
    attach_bundle_referrer(store, img, raw,
                           annotations=bundle_manifest_annotations(SIGN_PREDICATE_TYPE))
    r = verify_image(store, "v1", keyless=policy, trusted_root=pki.trust(), docker_reference=REPO)
    (v,) = r.signatures
    if reason is None:
        assert r.ok and v.tlog and EMAIL in (v.signer or ""), v.reason
    else:
        assert not r.ok and reason in v.reason, v.reason


def test_keyless_bundle_for_other_digest_or_untrusted_ca(pki: FakeSigstore) -> None:
    store = MemoryStore()
    img = _image(store)
    raw = pki.bundle(image_statement(REPO, "sha256:" + "e" * 64))
    attach_bundle_referrer(store, img, raw)
    r = verify_image(store, "v1", keyless=POLICY, trusted_root=pki.trust(), docker_reference=REPO)
    assert not r.ok and "not the image digest" in r.signatures[0].reason
    other = FakeSigstore()
    raw = pki.bundle(image_statement(REPO, img.digest))
    store2 = MemoryStore()
    img2 = _image(store2)
    attach_bundle_referrer(store2, img2, raw)
    trust = TrustRoots(ca_certs=[other.ca], rekor_keys=pki.trust().rekor_keys)
    r = verify_image(store2, "v1", keyless=POLICY, trusted_root=trust, docker_reference=REPO)
    assert not r.ok and "does not chain" in r.signatures[0].reason
    r = verify_image(store2, "v1", keys=[SigningKey(ec.generate_private_key(
        ec.SECP256R1())).public_key()], docker_reference=REPO)
    assert not r.ok and "keyless" in r.signatures[0].reason
