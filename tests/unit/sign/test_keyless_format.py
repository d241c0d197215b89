"""Keyless storage format: the Rekor SET annotation written from a Sigstore bundle verifies."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustbuild.errors import SigningError, VerificationError
from trustbuild.sign.keyless import rekor_annotation_from_bundle
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.rekor import canonical_json, verify_rekor_bundle
from trustbuild.sign.trust import TrustRoots


def _signed_bundle(payload: bytes, signer: SigningKey, rekor: SigningKey) -> tuple[dict, str]:  # type: ignore[type-arg]
    sig = base64.b64encode(signer.sign(payload)).decode()
    pem = signer.public_key().public_pem()
    body = base64.b64encode(json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": sig, "publicKey": {"content": base64.b64encode(pem).decode()}},
    }}).encode()).decode()
    log_id = TrustRoots.log_id(rekor.public_key())
    set_ = rekor.sign(canonical_json({"body": body, "integratedTime": 1700000123,
                                      "logID": log_id, "logIndex": 42}))
    bundle = {"verificationMaterial": {"tlogEntries": [{
        "logIndex": "42", "logId": {"keyId": base64.b64encode(bytes.fromhex(log_id)).decode()},
        "integratedTime": "1700000123", "canonicalizedBody": body,
        "inclusionPromise": {"signedEntryTimestamp": base64.b64encode(set_).decode()}}]},
        "messageSignature": {"signature": sig}}
    return bundle, sig


def test_annotation_from_sigstore_bundle_verifies() -> None:
    signer, rekor = (SigningKey(ec.generate_private_key(ec.SECP256R1())) for _ in range(2))
    payload = b'{"critical":{}}'
    bundle, sig = _signed_bundle(payload, signer, rekor)
    ann = rekor_annotation_from_bundle(bundle)
    doc = json.loads(ann)
    assert list(doc) == ["SignedEntryTimestamp", "Payload"]
    assert list(doc["Payload"]) == ["body", "integratedTime", "logIndex", "logID"]
    keys = {TrustRoots.log_id(rekor.public_key()): rekor.public_key()}
    entry = verify_rekor_bundle(ann, keys, payload=payload, signature_b64=sig,
                                signer_pem=signer.public_key().public_pem())
    assert entry.log_index == 42 and entry.integrated_time.timestamp() == 1700000123
    with pytest.raises(VerificationError, match="another payload"):
        verify_rekor_bundle(ann, keys, payload=b"other", signature_b64=sig, signer_pem=None)
    with pytest.raises(VerificationError, match="another signature"):
        verify_rekor_bundle(ann, keys, payload=payload, signature_b64="QQ==", signer_pem=None)
    with pytest.raises(VerificationError, match="another certificate or key"):
        verify_rekor_bundle(ann, keys, payload=payload, signature_b64=sig,
                            signer_pem=rekor.public_key().public_pem())


def test_bundle_without_tlog_entry_is_a_signing_error() -> None:
    with pytest.raises(SigningError, match="no usable entry"):
        rekor_annotation_from_bundle({"verificationMaterial": {"tlogEntries": []}})
