"""DSSE: PAE bytes, sign/verify, strict parsing, and securesystemslib as an independent verifier."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from trustbuild.attest.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, InvalidEnvelope, pae
from trustbuild.errors import VerificationError


def test_pae_matches_the_spec_example():
    # The DSSE spec's test vector: "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_pae_counts_bytes_not_characters():
    assert pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"


def test_sign_roundtrip_and_verify(ec_key):
    env = Envelope.sign(b'{"a":1}', IN_TOTO_PAYLOAD_TYPE, ec_key)
    again = Envelope.from_json(env.to_json())
    assert again == env
    assert again.verify([ec_key.public_key()]) == ec_key.public_key().keyid()


def test_verify_rejects_other_key_and_tampered_payload(ec_key):
    from cryptography.hazmat.primitives.asymmetric import ec

    from trustbuild.sign.keys import SigningKey

    other = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    env = Envelope.sign(b"payload", IN_TOTO_PAYLOAD_TYPE, ec_key)
    with pytest.raises(VerificationError):
        env.verify([other.public_key()])
    tampered = Envelope(env.payload_type, b"payloaD", env.signatures)
    with pytest.raises(VerificationError):
        tampered.verify([ec_key.public_key()])
    retyped = Envelope("application/json", env.payload, env.signatures)
    with pytest.raises(VerificationError):
        retyped.verify([ec_key.public_key()])


def test_securesystemslib_verifies_our_envelope(ec_key):
    env = Envelope.sign(b'{"_type":"x"}', IN_TOTO_PAYLOAD_TYPE, ec_key)
    pem = ec_key.public_key().public_pem()
    pub = serialization.load_pem_public_key(pem)
    keyid = env.signatures[0].keyid
    key = SSlibKey.from_crypto(pub, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    theirs = SslibEnvelope.from_dict(json.loads(env.to_json()))
    assert theirs.pae() == env.pae()
    assert keyid in theirs.verify([key], 1)


@pytest.mark.parametrize("doc, words", [
    (b"not json", "not valid JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"payload":"e30=","signatures":[]}', "payloadType"),
    (b'{"payloadType":"t","signatures":[]}', "missing payload"),
    (b'{"payloadType":"t","payload":"!!!","signatures":[]}', "payload is not valid base64"),
    (b'{"payloadType":"t","payload":"e30=","signatures":{}}', "signatures must be a list"),
    (b'{"payloadType":"t","payload":"e30=","signatures":[{"sig":"%%%"}]}',
     "sig is not valid base64"),
    (b'{"payloadType":"t","payload":"e30=","signatures":[{"keyid":5,"sig":"AA=="}]}', "keyid"),
])
def test_malformed_envelopes_are_clear_errors(doc, words):
    with pytest.raises(InvalidEnvelope, match=words):
        Envelope.from_json(doc)


def test_too_many_signatures_refused():
    sigs = [{"keyid": "", "sig": base64.b64encode(b"x").decode()}] * 17
    doc = json.dumps({"payloadType": "t", "payload": "e30=", "signatures": sigs}).encode()
    with pytest.raises(InvalidEnvelope, match="more than 16"):
        Envelope.from_json(doc)


def test_url_safe_unpadded_base64_accepted():
    payload = b"\xfb\xff hello"
    b64 = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    env = Envelope.from_dict({"payloadType": "t", "payload": b64, "signatures": []})
    assert env.payload == payload
    with pytest.raises(VerificationError, match="no signatures"):
        env.verify([])
