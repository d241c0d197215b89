"""Ground truth: every cosign vector reaches its expected verdict (the keyless one offline)."""

from __future__ import annotations

import base64
import json

import pytest
from sign_memstore import VECTORS, MemoryStore, load_vector

from trustbuild.oci.digest import Digest
from trustbuild.sign.keys import load_verifying_key
from trustbuild.sign.simplesigning import build_payload, parse_payload
from trustbuild.sign.verify import KeylessPolicy, TrustRoots, verify_image

CASES = sorted(p.name for p in VECTORS.iterdir() if (p / "case.json").is_file())
KEYLESS = KeylessPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth")


def _trust() -> TrustRoots:
    return TrustRoots.from_pems(ca_roots=VECTORS / "keys" / "fulcio_v1.crt.pem",
                                rekor_keys=[VECTORS / "keys" / "rekor.pub"])


@pytest.mark.parametrize("name", CASES)
def test_vector_reaches_expected_verdict(name: str, memstore: MemoryStore) -> None:
    case = load_vector(memstore, name)
    pub = case["public_key"]
    keys = [load_verifying_key(VECTORS / "keys" / pub)] if pub else None
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
                        layer_bytes=payload,
                        layer_media_type=sig_manifest["layers"][0]["mediaType"],
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


def test_key_signature_with_rekor_bundle(memstore: MemoryStore) -> None:
    """A key-based signature logged in Rekor: the SET is checked when a Rekor key is given,
    noted as unchecked otherwise, and a must with --require-tlog."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ec

    from trustbuild.sign.attach import append_cosign_layer
    from trustbuild.sign.keys import SigningKey
    from trustbuild.sign.rekor import canonical_json
    from trustbuild.sign.sign import resolve_subject

    case = load_vector(memstore, "valid")
    subject = resolve_subject(memstore, "latest")
    key, rekor = (SigningKey(ec.generate_private_key(ec.SECP256R1())) for _ in range(2))
    payload = build_payload(case["docker_reference"], subject.digest)
    sig = base64.b64encode(key.sign(payload)).decode()
    body = base64.b64encode(json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": sig, "publicKey": {"content": base64.b64encode(
            key.public_key().public_pem()).decode()}}}}).encode()).decode()
    log_id = TrustRoots.log_id(rekor.public_key())
    entry = {"body": body, "integratedTime": 1700000000, "logID": log_id, "logIndex": 7}
    set_ = base64.b64encode(rekor.sign(canonical_json(entry))).decode()
    store = MemoryStore()
    store.put_manifest(memstore.get_manifest("latest")[0], subject.media_type, tags=["latest"])
    append_cosign_layer(store, subject, suffix="sig", layer_bytes=payload,
                        layer_media_type="application/vnd.dev.cosign.simplesigning.v1+json",
                        annotations={"dev.cosignproject.cosign/signature": sig,
                                     "dev.sigstore.cosign/bundle": json.dumps(
                                         {"SignedEntryTimestamp": set_, "Payload": entry})})
    keys = [key.public_key()]
    ref = case["docker_reference"]
    with_rekor = TrustRoots(rekor_keys={log_id: rekor.public_key()})
    r = verify_image(store, "latest", keys=keys, trusted_root=with_rekor, docker_reference=ref,
                     require_tlog=True)
    assert r.ok and r.signatures[0].tlog, r.signatures[0].reason
    r = verify_image(store, "latest", keys=keys, docker_reference=ref)
    assert r.ok and "Rekor bundle not checked" in r.signatures[0].reason
    r = verify_image(store, "latest", keys=keys, docker_reference=ref, require_tlog=True)
    assert not r.ok and "no Rekor key" in r.signatures[0].reason
    wrong = TrustRoots(rekor_keys={log_id: key.public_key()})
    r = verify_image(store, "latest", keys=keys, trusted_root=wrong, docker_reference=ref)
    assert not r.ok and "SignedEntryTimestamp does not verify" in r.signatures[0].reason


def test_keyless_untrusted_root_is_refused(memstore: MemoryStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The chain annotation carries its own root; only --ca-roots decides what is trusted."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigstore")])
    now = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    other_root = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                  .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                  .not_valid_after(now + dt.timedelta(days=5000))
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                  .sign(key, hashes.SHA384()))
    (tmp_path / "other.pem").write_bytes(other_root.public_bytes(serialization.Encoding.PEM))
    case = load_vector(memstore, "fulcio-rekor-valid")
    trust = TrustRoots.from_pems(ca_roots=tmp_path / "other.pem",
                                 rekor_keys=[VECTORS / "keys/rekor.pub"])
    r = verify_image(memstore, "latest", keyless=KEYLESS, trusted_root=trust,
                     docker_reference=case["docker_reference"])
    assert not r.ok and "does not chain to a trusted Fulcio root" in r.signatures[0].reason


def test_cosign_vector_under_containers_image_signed_identities(memstore: MemoryStore) -> None:
    """cosign names the repository only: matchRepoDigestOrExact refuses it, as containers/image
    does; matchRepository, exactRepository and a remap to the signed repository accept it."""
    from trustbuild.sign.identity import SignedIdentity

    case = load_vector(memstore, "valid")
    repo = case["docker_reference"]
    keys = [load_verifying_key(VECTORS / "keys/cosign.pub")]

    def ok(spec: str, image: str) -> bool:
        return verify_image(memstore, "latest", keys=keys, docker_reference=repo,
                            identity=SignedIdentity.parse(spec), image_reference=image).ok

    assert ok("matchRepository", f"{repo}:latest")
    assert not ok("matchRepoDigestOrExact", f"{repo}:latest")
    assert not ok("matchRepoDigestOrExact", f"{repo}@{case['signed_digest']}")
    assert ok(f"exactRepository:{repo}", "mirror.example/x:1")
    assert ok("remapIdentity:mirror.example/x=192.168.64.2:5000/cosign-signed-single-sample",
              "mirror.example/x:1") is False  # remap then exact: still no tag in the signature
    assert not ok("matchRepository", "mirror.example/x:1")
