"""Bad attestations on an OCI layout: every one gets a clear verdict and exit 1."""

from __future__ import annotations

import json

import pytest

from trustbuild.attest.dsse import DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, Envelope
from trustbuild.attest.statement import Statement
from trustbuild.cli.main import main

OTHER = "sha256:" + "7" * 64
PTYPE = "https://example.com/pred/v1"


@pytest.fixture
def layout(tmp_path):
    """``(location, digest, store)`` of a one-image OCI layout (plain Python writer)."""
    from tests.fixtures.registry import write_test_oci_layout
    from trustbuild.registry.options import StoreOptions
    from trustbuild.store.location import parse_location
    from trustbuild.store.open import open_store

    path = tmp_path / "layout"
    digest = write_test_oci_layout(path, tag="v1")
    loc = f"oci:{path}:v1"
    store, _ref = open_store(parse_location(loc), StoreOptions())
    yield loc, digest, store
    store.close()


def _attach(store, digest, envelope_bytes, ptype=PTYPE):
    from trustbuild.attest.attach import resolve_subject
    from trustbuild.sign.attach import append_cosign_layer

    subject = resolve_subject(store, digest)
    append_cosign_layer(store, subject, suffix="att", layer_bytes=envelope_bytes,
                        layer_media_type=DSSE_MEDIA_TYPE, annotations={"predicateType": ptype})


def _signed(statement_bytes, key_path, payload_type=IN_TOTO_PAYLOAD_TYPE):
    from trustbuild.sign.keys import load_signing_key

    key = load_signing_key(key_path)
    return Envelope.sign(statement_bytes, payload_type, key).to_json()


def _verify(capsys, loc, pub, *extra):
    capsys.readouterr()
    rc = main(["verify-attestation", "--key", str(pub), "--output", "json", *extra, loc])
    return rc, json.loads(capsys.readouterr().out)


def test_layout_roundtrip_with_cli(layout, tmp_path, keypair, capsys):
    loc, digest, _store = layout
    key, pub = keypair
    (tmp_path / "p.json").write_text('{"k": "v"}')
    assert main(["attest", "--key", str(key), "--predicate", str(tmp_path / "p.json"),
                 "--type", PTYPE, loc]) == 0
    rc, out = _verify(capsys, loc, pub, "--type", PTYPE)
    assert rc == 0 and out["digest"] == digest
    assert out["attestations"][0]["statement"]["predicate"] == {"k": "v"}


def test_attestation_for_another_digest(layout, keypair, capsys):
    loc, digest, store = layout
    key, pub = keypair
    stmt = Statement.for_image("x", OTHER, PTYPE, {"a": 1}).to_json()
    _attach(store, digest, _signed(stmt, key))
    rc, out = _verify(capsys, loc, pub)
    assert rc == 1 and out["verified"] is False
    assert f"for another image ({OTHER}), not {digest}" in out["attestations"][0]["reason"]


def test_bad_dsse_signature(layout, keypair, other_keypair, capsys, monkeypatch):
    loc, digest, store = layout
    _key, pub = keypair
    other_key, _ = other_keypair
    stmt = Statement.for_image("x", digest, PTYPE, {"a": 1}).to_json()
    _attach(store, digest, _signed(stmt, other_key))
    rc, out = _verify(capsys, loc, pub)
    assert rc == 1
    assert "DSSE signature does not verify" in out["attestations"][0]["reason"]


def test_tampered_payload(layout, keypair, capsys):
    loc, digest, store = layout
    key, pub = keypair
    env = json.loads(_signed(Statement.for_image("x", digest, PTYPE, {"a": 1}).to_json(), key))
    import base64

    env["payload"] = base64.b64encode(
        Statement.for_image("x", digest, PTYPE, {"a": 2}).to_json()).decode()
    _attach(store, digest, json.dumps(env).encode())
    rc, out = _verify(capsys, loc, pub)
    assert rc == 1 and "does not verify" in out["reason"]


def test_wrong_payload_type(layout, keypair, capsys):
    loc, digest, store = layout
    key, pub = keypair
    stmt = Statement.for_image("x", digest, PTYPE, {"a": 1}).to_json()
    _attach(store, digest, _signed(stmt, key, payload_type="application/json"))
    rc, out = _verify(capsys, loc, pub)
    assert rc == 1
    assert "payloadType 'application/json' is not application/vnd.in-toto+json" in out["reason"]


def test_unparseable_statement_and_envelope(layout, keypair, capsys):
    loc, digest, store = layout
    key, pub = keypair
    _attach(store, digest, _signed(b"{not json", key))
    _attach(store, digest, b"this is not a DSSE envelope")
    rc, out = _verify(capsys, loc, pub)
    assert rc == 1
    reasons = [a["reason"] for a in out["attestations"]]
    assert any("signed, but statement: not valid JSON" in r for r in reasons)
    assert any("DSSE envelope: not valid JSON" in r for r in reasons)


def test_unparseable_predicate_file_is_refused(layout, tmp_path, keypair, capsys):
    loc, _digest, _store = layout
    key, _pub = keypair
    (tmp_path / "bad.json").write_text("{oops")
    capsys.readouterr()
    assert main(["attest", "--key", str(key), "--predicate", str(tmp_path / "bad.json"),
                 "--type", "slsaprovenance", loc]) == 1
    assert "predicate (type https://slsa.dev/provenance/v1): not valid JSON" in \
        capsys.readouterr().err


def test_no_attestation_of_the_asked_type(layout, tmp_path, keypair, capsys):
    loc, _digest, _store = layout
    key, pub = keypair
    rc, out = _verify(capsys, loc, pub, "--type", "spdxjson")
    assert rc == 1 and out["reason"].startswith("no attestations found")
    (tmp_path / "p.txt").write_text("hello")
    assert main(["attest", "--key", str(key), "--predicate", str(tmp_path / "p.txt"), loc]) == 0
    rc, out = _verify(capsys, loc, pub, "--type", "spdxjson")
    assert rc == 1
    assert "no attestation of type https://spdx.dev/Document" in out["reason"]
    assert "https://cosign.sigstore.dev/attestation/v1" in out["reason"]


def test_text_output_and_exit_code(layout, tmp_path, keypair, other_keypair, capsys):
    loc, _digest, _store = layout
    key, _pub = keypair
    _other_key, other_pub = other_keypair
    (tmp_path / "p.txt").write_text("hello")
    assert main(["attest", "--key", str(key), "--predicate", str(tmp_path / "p.txt"), loc]) == 0
    capsys.readouterr()
    assert main(["verify-attestation", "--key", str(other_pub), loc]) == 1
    err = capsys.readouterr().err
    assert "FAIL" in err and "verification failed" in err


def test_keyless_flags(layout, tmp_path, keypair, capsys):
    loc, _digest, _store = layout
    key, _pub = keypair
    (tmp_path / "p.txt").write_text("hello")
    pred = str(tmp_path / "p.txt")
    assert main(["attest", "--key", str(key), "--keyless", "--predicate", pred, loc]) == 2
    assert "mutually exclusive" in capsys.readouterr().err
    assert main(["attest", "--predicate", pred, loc]) == 2
    assert "give --key KEY" in capsys.readouterr().err
    # a malformed OIDC token is refused before any network access
    assert main(["attest", "--keyless", "--identity-token", "not-a-jwt", "--predicate", pred,
                 loc]) == 1
    assert "invalid identity token" in capsys.readouterr().err


def test_keyless_verification_refuses_a_key_signed_bundle(layout, tmp_path, keypair, capsys):
    """With only keyless flags, a key-signed bundle has no certificate: a clear verdict, exit 1."""
    loc, _digest, _store = layout
    key, _pub = keypair
    (tmp_path / "p.json").write_text('{"a": 1}')
    assert main(["attest", "--key", str(key), "--bundle", "--predicate", str(tmp_path / "p.json"),
                 "--type", PTYPE, loc]) == 0
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [], "certificateAuthorities": [], "ctlogs": [], "timestampAuthorities": []}))
    capsys.readouterr()
    rc = main(["verify-attestation", "--certificate-identity", "me@example.com",
               "--certificate-oidc-issuer", "https://issuer.example", "--trusted-root", str(root),
               "--output", "json", loc])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["verified"] is False
    by_source = {a["source"].split(" ")[0]: a["reason"] for a in out["attestations"]}
    assert by_source["bundle"].startswith("keyless: ")
    assert "keyless attestations are checked in their Sigstore bundle form" in \
        next(r for s, r in by_source.items() if s != "bundle")
    assert main(["verify-attestation", "--certificate-identity", "me@example.com", loc]) == 2
