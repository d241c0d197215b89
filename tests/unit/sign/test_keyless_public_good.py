"""The keyless engine against real recorded Sigstore data, offline, with shipped trust roots.

- ``npm-sigstore-3.1.0.sigstore.json``: the public-good SLSA provenance bundle of the npm package
  ``sigstore@3.1.0`` (GitHub Actions identity): real SCT, Rekor SET, inclusion proof and signed
  checkpoint, checked against the public-good trusted root sigstore-python ships.
- the cosign vector ``fulcio-rekor-valid``: a real public-good keyless image signature (SCT in
  the certificate, Rekor SET in the annotation), verified with that default root too.
- ``staging-tsa.*``: a real sigstage bundle with RFC 3161 timestamps (sigstore-python's test
  TSA) and the matching trusted root, given as an override.

Tampering with any of them is refused with one line. Nothing is mocked or fetched.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sign_memstore import MemoryStore, load_vector

from trustbuild.errors import VerificationError
from trustbuild.sign.bundle import verify_keyless_dsse_bundle
from trustbuild.sign.keyless_verify import (
    KeylessEvidence,
    certificates_from_bundle,
    timestamps_from_bundle,
    tlog_entries_from_bundle,
    verify_keyless,
)
from trustbuild.sign.rekor import check_hashedrekord_body
from trustbuild.sign.trust import KeylessPolicy, TrustRoots, public_good_root_path
from trustbuild.sign.verify import verify_image

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "sign" / "public-good"
NPM = json.loads((ASSETS / "npm-sigstore-3.1.0.sigstore.json").read_text())
NPM_POLICY = KeylessPolicy(
    identity="https://github.com/sigstore/sigstore-js/.github/workflows/release.yml"
             "@refs/heads/main",
    issuer="https://token.actions.githubusercontent.com")


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.fixture(scope="module")
def public_good() -> TrustRoots:
    return TrustRoots.public_good()


def test_public_good_bundle_verifies_offline_with_every_check(public_good: TrustRoots) -> None:
    vb = verify_keyless_dsse_bundle(_raw(NPM), NPM_POLICY, public_good)
    assert {"SCT", "inclusion proof", "checkpoint", "Rekor SET", "certificate chain"} <= \
        set(vb.checks)
    assert vb.signer.startswith("https://github.com/sigstore/sigstore-js/")
    assert "sigstore-python" in public_good.source and "offline" in public_good.source


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return entry


def _tamper_proof_hash(doc: dict[str, Any]) -> None:
    proof = _entry(doc)["inclusionProof"]
    proof["hashes"][3] = _flip_b64(proof["hashes"][3])


def _tamper_proof_index(doc: dict[str, Any]) -> None:
    proof = _entry(doc)["inclusionProof"]
    proof["logIndex"] = str(int(proof["logIndex"]) + 1)


def _tamper_checkpoint_signature(doc: dict[str, Any]) -> None:
    cp = _entry(doc)["inclusionProof"]["checkpoint"]
    head, sep, sig = cp["envelope"].rstrip("\n").rpartition(" ")
    raw = base64.b64decode(sig)
    cp["envelope"] = head + sep + base64.b64encode(raw[:4] + _flip(raw[4:])).decode() + "\n"


def _flip(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[10] ^= 0x01
    return bytes(b)


def _tamper_checkpoint_size(doc: dict[str, Any]) -> None:
    cp = _entry(doc)["inclusionProof"]["checkpoint"]
    lines = cp["envelope"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    cp["envelope"] = "\n".join(lines)


def _tamper_set(doc: dict[str, Any]) -> None:
    promise = _entry(doc)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip_b64(promise["signedEntryTimestamp"])


@pytest.mark.parametrize(("tamper", "reason"), [
    (_tamper_proof_hash, "Rekor inclusion proof does not verify"),
    (_tamper_proof_index, "Rekor inclusion proof does not verify"),
    (_tamper_checkpoint_signature, "Rekor checkpoint does not verify"),
    (_tamper_checkpoint_size, "Rekor checkpoint does not verify"),
    (_tamper_set, "Rekor SignedEntryTimestamp does not verify"),
])
def test_tampered_log_evidence_is_refused(public_good: TrustRoots, tamper: Any,
                                          reason: str) -> None:
    doc = copy.deepcopy(NPM)
    tamper(doc)
    with pytest.raises(VerificationError, match=reason) as exc:
        verify_keyless_dsse_bundle(_raw(doc), NPM_POLICY, public_good)
    assert "\n" not in str(exc.value)


def _root_with_other_ct_key(tmp_path: Path) -> Path:
    doc = json.loads(public_good_root_path().read_text())
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for log in doc["ctlogs"]:
        log["publicKey"]["rawBytes"] = base64.b64encode(other).decode()
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(doc))
    return path


def test_sct_is_checked_against_the_trusted_ct_logs(tmp_path: Path) -> None:
    """The override replaces the default; a CT log key that did not sign the SCT refuses it."""
    trust = TrustRoots.from_trusted_root(_root_with_other_ct_key(tmp_path))
    with pytest.raises(VerificationError, match="certificate SCT does not verify") as exc:
        verify_keyless_dsse_bundle(_raw(NPM), NPM_POLICY, trust)
    assert "\n" not in str(exc.value)


def test_wrong_identity_is_refused(public_good: TrustRoots) -> None:
    policy = KeylessPolicy(identity="https://github.com/someone/else/.github/workflows/x.yml"
                                    "@refs/heads/main",
                           issuer="https://token.actions.githubusercontent.com")
    with pytest.raises(VerificationError, match="does not match"):
        verify_keyless_dsse_bundle(_raw(NPM), policy, public_good)


def test_cosign_keyless_image_signature_with_the_default_root(memstore: MemoryStore) -> None:
    """cosign's simple-signing layer (certificate with SCT + Rekor SET) from public-good."""
    case = load_vector(memstore, "fulcio-rekor-valid")
    policy = KeylessPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth")
    r = verify_image(memstore, "latest", keyless=policy,
                     docker_reference=case["docker_reference"])
    (v,) = r.signatures
    assert r.ok, v.reason
    assert {"SCT", "Rekor SET", "certificate chain"} <= set(v.checks)


def test_cosign_signature_sct_refused_with_other_ct_key(memstore: MemoryStore,
                                                         tmp_path: Path) -> None:
    case = load_vector(memstore, "fulcio-rekor-valid")
    policy = KeylessPolicy(identity="mitr@redhat.com", issuer="https://github.com/login/oauth")
    trust = TrustRoots.from_trusted_root(_root_with_other_ct_key(tmp_path))
    r = verify_image(memstore, "latest", keyless=policy, trusted_root=trust,
                     docker_reference=case["docker_reference"])
    assert not r.ok and "certificate SCT does not verify" in r.signatures[0].reason


def _staging(*, drop_set: bool, tamper_timestamps: bool = False) -> Any:
    doc = json.loads((ASSETS / "staging-tsa.txt.sigstore.json").read_text())
    vm = doc["verificationMaterial"]
    if drop_set:
        del vm["tlogEntries"][0]["inclusionPromise"]
    if tamper_timestamps:
        for ts in vm["timestampVerificationData"]["rfc3161Timestamps"]:
            ts["signedTimestamp"] = _flip_b64(ts["signedTimestamp"])
    certs = certificates_from_bundle(vm)
    sig_b64 = doc["messageSignature"]["signature"]
    pem = certs[0].public_bytes(serialization.Encoding.PEM)
    ev = KeylessEvidence(certs[0], certs[1:], base64.b64decode(sig_b64),
                         tlog_entries_from_bundle(vm), timestamps_from_bundle(vm))
    policy = KeylessPolicy(identity="alexis.challande@trailofbits.com",
                           issuer="https://accounts.google.com")
    trust = TrustRoots.from_trusted_root(ASSETS / "staging-tsa.trusted_root.json")
    artifact = (ASSETS / "staging-tsa.txt").read_bytes()

    def body_check(body: bytes) -> None:
        check_hashedrekord_body(body, artifact, sig_b64, pem)
    return verify_keyless(ev, policy, trust, body_check=body_check)


def test_rfc3161_timestamp_alone_establishes_the_signing_time() -> None:
    done = _staging(drop_set=True)
    assert "Rekor SET" not in done.checks
    assert any(c.startswith("RFC 3161 timestamp") for c in done.checks)
    assert {"inclusion proof", "checkpoint", "SCT"} <= set(done.checks)


def test_tampered_rfc3161_timestamps_give_no_signing_time() -> None:
    with pytest.raises(VerificationError, match="no verified signing time") as exc:
        _staging(drop_set=True, tamper_timestamps=True)
    assert "\n" not in str(exc.value)



def test_attestation_verification_uses_the_same_engine(memstore: MemoryStore) -> None:
    """verify-attestation's keyless path: the real bundle passes every keyless check, and is
    then refused only because its subject is the npm tarball, not this image."""
    import io

    from trustbuild.attest.verify import verify_attestations
    from trustbuild.oci.descriptor import Descriptor
    from trustbuild.oci.manifest import dump_json
    from trustbuild.oci.mediatype import MediaType
    from trustbuild.sign.attach import attach_bundle_referrer
    from trustbuild.sign.sign import bundle_manifest_annotations

    cfg = b"{}"
    d = Descriptor.for_bytes(MediaType.OCI_EMPTY, cfg)
    memstore.put_blob(d, lambda: io.BytesIO(cfg))
    img = memstore.put_manifest(dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                                           "config": d.to_json(), "layers": []}),
                                MediaType.OCI_MANIFEST, tags=["v1"])
    attach_bundle_referrer(memstore, img, _raw(NPM), annotations=bundle_manifest_annotations(
        "https://slsa.dev/provenance/v1"))
    r = verify_attestations(memstore, "v1", keyless=NPM_POLICY)
    (check,) = r.checks
    assert not r.ok and check.reason.startswith("signed, but for another image"), check.reason
    assert check.signer and check.signer.startswith("https://github.com/sigstore/sigstore-js/")
    doc = copy.deepcopy(NPM)
    _tamper_checkpoint_signature(doc)
    other = MemoryStore()
    other.put_blob(d, lambda: io.BytesIO(cfg))
    img2 = other.put_manifest(dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                                         "config": d.to_json(), "layers": []}),
                              MediaType.OCI_MANIFEST, tags=["v1"])
    attach_bundle_referrer(other, img2, _raw(doc), annotations=bundle_manifest_annotations(
        "https://slsa.dev/provenance/v1"))
    (bad,) = verify_attestations(other, "v1", keyless=NPM_POLICY).checks
    assert bad.reason.startswith("keyless: Rekor checkpoint does not verify"), bad.reason
