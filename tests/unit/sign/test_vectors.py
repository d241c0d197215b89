"""Ground truth: every cosign vector reaches its expected verdict (the keyless one offline)."""

from __future__ import annotations

import base64
import json

import pytest

from trustbuild.oci.digest import Digest
from trustbuild.sign.keys import load_verifying_key
from trustbuild.sign.simplesigning import build_payload, parse_payload
from trustbuild.sign.verify import KeylessPolicy, TrustRoots, verify_image

from sign_memstore import VECTORS, MemoryStore, load_vector

CASES = sorted(p.name for p in VECTORS.iterdir() if (p / "case.json").is_file())
KEYLESS = KeylessPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth")


def _trust() -> TrustRoots:
    return TrustRoots.from_pems(ca_roots=VECTORS / "keys" / "fulcio_v1.crt.pem",
                                rekor_keys=[VECTORS / "keys" / "rekor.pub"])


@pytest.mark.parametrize("name", CASES)
def test_vector_reaches_expected_verdict(name: str, memstore: MemoryStore) -> None:
    case = load_vector(memstore, name)
    keys = [load_verifying_key(VECTORS / "keys" / case["public_key"])] if case["public_key"] else None
    result = verify_image(memstore, "latest", keys=keys,
                          keyless=None if keys else KEYLESS, trusted_root=_trust(),
                          docker_reference=case["docker_reference"])
    assert result.ok == (case["expected"] == "valid"), [v.reason for v in result.signatures]
    if not result.ok:
        assert all(v.reason for v in result.signatures)


def test_modified_manifest_reason_names_digest(memstore: MemoryStore) -> None:
    case = load_vector(memstore, "modified-manifest")
    r = verify_image(memstore, "latest", keys=[load_verifying_key(VECTORS / "keys/cosign.pub")],
                     docker_reference=case["docker_reference"])
    assert "not the image digest" in r.signatures[0].reason


def test_unknown_key_reason(memstore: MemoryStore) -> None:
    case = load_vector(memstore, "unknown-key")
    r = verify_image(memstore, "latest", keys=[load_verifying_key(VECTORS / "keys/cosign.pub")],
                     docker_reference=case["docker_reference"])
    assert r.signatures[0].reason == "signature does not verify with any given key"


def test_valid_vector_wrong_repository_is_refused(memstore: MemoryStore) -> None:
    load_vector(memstore, "valid")
    r = verify_image(memstore, "latest", keys=[load_verifying_key(VECTORS / "keys/cosign.pub")],
                     docker_reference="192.168.64.2:5000/other-repo")
    assert not r.ok and "not the image's repository" in r.signatures[0].reason


def test_keyless_wrong_identity_or_issuer_or_roots(memstore: MemoryStore) -> None:
    case = load_vector(memstore, "fulcio-rekor-valid")
    ref = case["docker_reference"]
    for policy, trust, why in [
        (KeylessPolicy(identity="someone@else.com", issuer=KEYLESS.issuer), _trust(), "identity"),
        (KeylessPolicy(identity=KEYLESS.identity, issuer="https://accounts.google.com"), _trust(),
         "issuer"),
        (KEYLESS, TrustRoots.from_pems(rekor_keys=[VECTORS / "keys/rekor.pub"]), "Fulcio"),
        (KEYLESS, TrustRoots.from_pems(ca_roots=VECTORS / "keys/fulcio_v1.crt.pem"), "Rekor key"),
        (KeylessPolicy(identity_regexp=r"^mitr@redhat\.com$", issuer_regexp="github"), _trust(),
         None),
    ]:
        r = verify_image(memstore, "latest", keyless=policy, trusted_root=trust,
                         docker_reference=ref)
        if why is None:
            assert r.ok, r.signatures[0].reason
        else:
            assert not r.ok and why in r.signatures[0].reason, r.signatures[0].reason


def test_keyless_tampered_set_is_refused(memstore: MemoryStore) -> None:
    case = load_vector(memstore, "fulcio-rekor-valid")
    raw, _ = memstore.get_manifest("latest")
    tag = f"{Digest.of(raw).tag_form}.sig"
    sig_manifest = json.loads(memstore.get_manifest(tag)[0])
    ann = sig_manifest["layers"][0]["annotations"]
    bundle = json.loads(ann["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 1
    ann = dict(ann, **{"dev.sigstore.cosign/bundle": json.dumps(bundle)})
    store = MemoryStore()
    store.put_manifest(raw, "application/vnd.docker.distribution.manifest.v2+json", tags=["latest"])
    from trustbuild.sign.attach import append_cosign_layer
    from trustbuild.sign.sign import resolve_subject
    payload = memstore.blobs[Digest.parse(sig_manifest["layers"][0]["digest"])]
    append_cosign_layer(store, resolve_subject(store, "latest"), suffix="sig",
                        layer_bytes=payload, layer_media_type=sig_manifest["layers"][0]["mediaType"],
                        annotations=ann)
    r = verify_image(store, "latest", keyless=KEYLESS, trusted_root=_trust(),
                     docker_reference=case["docker_reference"])
    assert not r.ok and "SignedEntryTimestamp" in r.signatures[0].reason


def test_payload_serialisation_is_byte_for_byte_cosign() -> None:
    for case in CASES:
        for s in json.loads((VECTORS / case / "signatures.json").read_text()):
            raw = base64.b64decode(s["payload_b64"])
            p = parse_payload(raw)
            assert build_payload(p.docker_reference, p.manifest_digest, p.optional) == raw
