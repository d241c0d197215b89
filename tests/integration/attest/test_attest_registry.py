"""End to end against the real registry: attest, fetch with skopeo, verify independently."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from tests.integration.attest.conftest import att_manifest, registry_blob, skopeo_raw
from trustbuild.cli.main import main

pytestmark = [pytest.mark.interop]

JS = Path(__file__).resolve().parents[2] / "js"


def _push(registry, repo, content=b"hello\n"):
    from tests.fixtures.registry import push_test_image

    _ref, digest = push_test_image(registry.host, repo, "1", content=content)
    return f"docker://{registry.host}/{repo}:1", digest


def _predicate(tmp_path, obj, name="pred.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(p)


def _sslib_verify(envelope_bytes: bytes, pub_path: Path) -> dict:
    env = json.loads(envelope_bytes)
    pub = serialization.load_pem_public_key(pub_path.read_bytes())
    key = SSlibKey.from_crypto(pub, keyid=env["signatures"][0]["keyid"],
                               scheme="ecdsa-sha2-nistp256")
    theirs = SslibEnvelope.from_dict(json.loads(envelope_bytes))
    theirs.verify([key], 1)  # raises if the signature does not verify
    assert theirs.payload_type == "application/vnd.in-toto+json"
    return json.loads(theirs.payload)


def test_attest_then_skopeo_securesystemslib_and_verify(registry, tmp_path, keypair, capsys):
    key, pub = keypair
    image, digest = _push(registry, "attest/e2e")
    pred = {"buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
            "runDetails": {"builder": {"id": "https://example.com/b"}}}
    assert main(["attest", "--key", str(key), "--predicate", _predicate(tmp_path, pred),
                 "--type", "slsaprovenance", image]) == 0
    man = att_manifest(registry.host, "attest/e2e", digest)
    [layer] = man["layers"]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"]["predicateType"] == "https://slsa.dev/provenance/v1"
    stmt = _sslib_verify(registry_blob(registry.host, "attest/e2e", layer["digest"]), pub)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"] == [{"name": f"{registry.host}/attest/e2e",
                                "digest": {"sha256": digest.split(":")[1]}}]
    assert stmt["predicate"] == pred
    capsys.readouterr()
    assert main(["verify-attestation", "--key", str(pub), "--type", "slsaprovenance",
                 "--output", "json", image]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is True and out["digest"] == digest
    assert out["attestations"][0]["statement"]["predicate"] == pred


def test_custom_predicate_wrapped_and_replace(registry, tmp_path, keypair, capsys):
    key, pub = keypair
    image, digest = _push(registry, "attest/replace", content=b"replace\n")
    for text in ("first", "second"):
        assert main(["attest", "--key", str(key), "--predicate", _predicate(tmp_path, text),
                     "--type", "custom", image]) == 0
    assert len(att_manifest(registry.host, "attest/replace", digest)["layers"]) == 2
    assert main(["attest", "--key", str(key), "--predicate", _predicate(tmp_path, {"a": 1}),
                 "--type", "https://example.com/other/v1", image]) == 0
    assert main(["attest", "--key", str(key), "--predicate", _predicate(tmp_path, "third"),
                 "--type", "custom", "--replace", image]) == 0
    layers = att_manifest(registry.host, "attest/replace", digest)["layers"]
    types = sorted(lay["annotations"]["predicateType"] for lay in layers)
    assert types == ["https://cosign.sigstore.dev/attestation/v1", "https://example.com/other/v1"]
    capsys.readouterr()
    assert main(["verify-attestation", "--key", str(pub), "--type", "custom", "--output", "json",
                 image]) == 0
    out = json.loads(capsys.readouterr().out)
    [check] = out["attestations"]
    assert check["statement"]["predicate"]["Data"] == "third"
    assert check["statement"]["predicate"]["Timestamp"].endswith("Z")


def test_bundle_referrer_verifies_with_sigstore_js(registry, tmp_path, keypair, capsys):
    key, pub = keypair
    image, digest = _push(registry, "attest/bundle", content=b"bundle\n")
    assert main(["attest", "--key", str(key), "--predicate", _predicate(tmp_path, {"x": 1}),
                 "--type", "https://example.com/b/v1", "--bundle", image]) == 0
    try:
        with urllib.request.urlopen(
                f"http://{registry.host}/v2/attest/bundle/referrers/{digest}", timeout=30) as r:
            idx = json.loads(r.read())
    except urllib.error.HTTPError:
        idx = {}
    if not idx.get("manifests"):  # registry without the referrers API: tag schema
        idx = json.loads(skopeo_raw(f"docker://{registry.host}/attest/bundle:"
                                    + digest.replace(":", "-")))
    [ref] = [m for m in idx["manifests"]
             if m.get("artifactType") == "application/vnd.dev.sigstore.bundle.v0.3+json"]
    man = json.loads(skopeo_raw(f"docker://{registry.host}/attest/bundle@{ref['digest']}"))
    assert man["subject"]["digest"] == digest
    bundle = registry_blob(registry.host, "attest/bundle", man["layers"][0]["digest"])
    doc = json.loads(bundle)
    stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    assert stmt["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
    if shutil.which("node") and (JS / "node_modules" / "@sigstore" / "verify").is_dir():
        bpath = tmp_path / "bundle.json"
        bpath.write_bytes(bundle)
        res = subprocess.run(["node", str(JS / "verify_bundle.js"), str(bpath), str(pub)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(res.stdout)["payloadType"] == "application/vnd.in-toto+json"
    else:
        pytest.fail("sigstore-js is not installed in tests/js (run .ci/setup.sh)")
    # the layer form and the bundle form both verify; a cosign image-signature bundle is ignored
    capsys.readouterr()
    assert main(["verify-attestation", "--key", str(pub), "--output", "json", image]) == 0
    sources = [a["source"] for a in json.loads(capsys.readouterr().out)["attestations"]]
    assert any(s.startswith("bundle referrer") for s in sources)
    assert any(".att layer" in s for s in sources)
