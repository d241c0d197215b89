"""The Rekor entry checks: one parser of cosign's bundle annotation (used by the key-based and
the keyless verifiers alike) and the logged signer compared as DER, not as PEM text."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trustbuild.errors import VerificationError
from trustbuild.sign.keyless_verify import TlogEntry
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.rekor import (
    CosignBundle,
    canonical_json,
    check_dsse_body,
    check_hashedrekord_body,
    verify_rekor_bundle,
)
from trustbuild.sign.trust import TrustRoots

PAYLOAD = b'{"critical":{}}'
SIG = base64.b64encode(b"signature bytes").decode()


def _cert(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _rewrapped(pem: bytes, width: int) -> bytes:
    """The same certificate as PEM with other line lengths and CRLF line ends."""
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    body = "\r\n".join(textwrap.wrap(base64.b64encode(der).decode(), width))
    return (f"-----BEGIN CERTIFICATE-----\r\n{body}\r\n-----END CERTIFICATE-----\r\n").encode()


def _hashedrekord(logged_pem: bytes) -> bytes:
    return json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()}},
        "signature": {"content": SIG,
                      "publicKey": {"content": base64.b64encode(logged_pem).decode()}}}}).encode()


def test_a_rewrapped_pem_of_the_signer_certificate_matches() -> None:
    pem = _cert("signer")
    rewrapped = _rewrapped(pem, 76)
    assert rewrapped.strip() != pem.strip()
    check_hashedrekord_body(_hashedrekord(rewrapped), PAYLOAD, SIG, pem)
    check_hashedrekord_body(_hashedrekord(pem), PAYLOAD, SIG, rewrapped)


def test_another_certificate_never_matches() -> None:
    pem, other = _cert("signer"), _cert("signer")
    with pytest.raises(VerificationError, match="another certificate or key"):
        check_hashedrekord_body(_hashedrekord(_rewrapped(other, 64)), PAYLOAD, SIG, pem)
    with pytest.raises(VerificationError, match="another certificate or key"):
        check_hashedrekord_body(_hashedrekord(other), PAYLOAD, SIG, pem)


def test_public_keys_compare_as_der_too() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    one_line = (b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der)
                + b"\n-----END PUBLIC KEY-----\n")
    check_hashedrekord_body(_hashedrekord(one_line), PAYLOAD, SIG, pem)
    with pytest.raises(VerificationError, match="another certificate or key"):
        check_hashedrekord_body(_hashedrekord(_cert("x")), PAYLOAD, SIG, pem)


def test_dsse_entry_signer_compared_as_der() -> None:
    pem = _cert("signer")
    body = json.dumps({"kind": "dsse", "spec": {
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()},
        "signatures": [{"signature": SIG,
                        "verifier": base64.b64encode(_rewrapped(pem, 48)).decode()}]}}).encode()
    check_dsse_body(body, payload=PAYLOAD, signature_b64=SIG, signer_pem=pem)
    with pytest.raises(VerificationError, match="another signature or certificate"):
        check_dsse_body(body, payload=PAYLOAD, signature_b64=SIG, signer_pem=_cert("signer"))


def _annotation(body: bytes, rekor: SigningKey, **payload_changes: object) -> str:
    log_id = TrustRoots.log_id(rekor.public_key())
    body_b64 = base64.b64encode(body).decode()
    p: dict[str, object] = {"body": body_b64, "integratedTime": 1_700_000_000,
                            "logIndex": 7, "logID": log_id}
    set_ = rekor.sign(canonical_json(p))
    p.update(payload_changes)
    return json.dumps({"SignedEntryTimestamp": base64.b64encode(set_).decode(), "Payload": p})


def test_one_bundle_annotation_parser_for_both_verifiers() -> None:
    rekor = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    keys = {TrustRoots.log_id(rekor.public_key()): rekor.public_key()}
    pem = _cert("signer")
    good = _annotation(_hashedrekord(_rewrapped(pem, 64)), rekor)
    entry = verify_rekor_bundle(good, keys, payload=PAYLOAD, signature_b64=SIG, signer_pem=pem)
    tlog = TlogEntry.from_cosign_annotation(good)
    parsed = CosignBundle.parse(good)
    assert (entry.log_index, tlog.log_index, parsed.log_index) == (7, 7, 7)
    assert tlog.integrated_time == parsed.integrated_time == 1_700_000_000
    assert tlog.log_id.hex() == parsed.log_id == entry.log_id
    # The same defects are the same errors on both paths.
    for bad, message in [
            (_annotation(b"{}", rekor, integratedTime=True), "unexpected types"),
            (_annotation(b"{}", rekor, logIndex="7"), "unexpected types"),
            (json.dumps({"SignedEntryTimestamp": "x"}), "no Payload object"),
            ("[" * 5000 + "]" * 5000, "nested too deeply"),
            ("x" * 70_000, "larger than")]:
        with pytest.raises(VerificationError, match=message):
            verify_rekor_bundle(bad, keys, payload=PAYLOAD, signature_b64=SIG, signer_pem=pem)
        with pytest.raises(VerificationError, match=message):
            TlogEntry.from_cosign_annotation(bad)
