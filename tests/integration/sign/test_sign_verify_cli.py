"""End to end: generate-key-pair, sign and verify against the real registry and OCI layouts.

Independent readers: skopeo reads the signature manifest trustbuild wrote; sigstore-js
(@sigstore/verify) verifies the Sigstore bundle trustbuild attached, offline, with the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image, write_test_oci_layout

from trustbuild.cli.main import main
from trustbuild.oci.descriptor import Descriptor
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.store import RegistryStore
from trustbuild.sign.attach import read_blob_bounded
from trustbuild.sign.simplesigning import build_payload

JS_DIR = Path(__file__).resolve().parents[2] / "js"
PASSWORD = "correct horse"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign")]) == 0
    return tmp_path / "cosign.key", tmp_path / "cosign.pub"


def _skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, timeout=60).stdout


def _verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["verify", "--output", "json", *args])
    return rc, json.loads(capsys.readouterr().out)


def test_sign_and_verify_on_registry(registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    ref, digest = push_test_image(registry.host, "sign/e2e", "v1")
    assert main(["sign", "--key", str(key), "-a", "build=42", "--bundle", ref]) == 0
    assert capsys.readouterr().out.strip() == digest

    # The signature manifest as an independent tool reads it: cosign's layout.
    hexd = digest.split(":")[1]
    sig = json.loads(_skopeo_raw(f"{registry.host}/sign/e2e:sha256-{hexd}.sig"))
    assert sig["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(sig["layers"]) == 1
    layer = sig["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert list(layer["annotations"]) == ["dev.cosignproject.cosign/signature"]
    store = RegistryStore(registry.host, "sign/e2e", StoreOptions())
    payload = read_blob_bounded(store, Descriptor.from_json(layer))
    assert payload == build_payload(f"{registry.host}/sign/e2e", digest, {"build": "42"})
    assert payload.startswith(b'{"critical":{"identity":{"docker-reference":"')
    config = json.loads(read_blob_bounded(store, Descriptor.from_json(sig["config"])))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
    rc, out = _verify_json(capsys, "--key", str(pub), ref)
    assert rc == 0 and out["verdict"] == "valid" and out["digest"] == digest
    kinds = sorted(s["kind"] for s in out["signatures"] if s["verdict"] == "valid")
    assert kinds == ["bundle", "simple-signing"]
    simple = next(s for s in out["signatures"] if s["kind"] == "simple-signing")
    assert simple["docker_reference"] == f"{registry.host}/sign/e2e"
    assert simple["annotations"] == {"build": "42"}

    # Wrong key: exit 1, a reason for each signature.
    other = tmp_path / "other"
    assert main(["generate-key-pair", "--output-key-prefix", str(other)]) == 0
    rc, out = _verify_json(capsys, "--key", f"{other}.pub", ref)
    assert rc == 1 and out["verdict"] == "invalid"
    assert all(s["reason"] for s in out["signatures"])

    # A second signature is appended, not replacing the first; either key now verifies.
    assert main(["sign", "--key", f"{other}.key", ref]) == 0
    sig = json.loads(_skopeo_raw(f"{registry.host}/sign/e2e:sha256-{hexd}.sig"))
    assert len(sig["layers"]) == 2
    rc, _ = _verify_json(capsys, "--key", f"{other}.pub", ref)
    assert rc == 0

    # Tag moved after signing: the new image has no signature; the signed digest still verifies.
    push_test_image(registry.host, "sign/e2e", "v1", content=b"something else\n")
    rc, out = _verify_json(capsys, "--key", str(pub), ref)
    assert rc == 1 and "no signatures found" in out["signatures"][0]["reason"]
    rc, _ = _verify_json(capsys, "--key", str(pub), f"{registry.host}/sign/e2e@{digest}")
    assert rc == 0

    # Signed for another repository: copied image, signature copied verbatim -> refused.
    rc, out = _verify_json(capsys, "--key", str(pub), "--docker-reference",
                           f"{registry.host}/other/repo", f"{registry.host}/sign/e2e@{digest}")
    assert rc == 1
    assert any("not the image's repository" in s["reason"] for s in out["signatures"])


@pytest.mark.interop
def test_sigstore_js_verifies_trustbuild_bundle(registry: Any, keypair: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    if shutil.which("node") is None or not (JS_DIR / "node_modules/@sigstore/verify").is_dir():
        pytest.skip("node or tests/js/node_modules missing (run .ci/setup.sh)")
    from trustbuild.oci.digest import Digest
    from trustbuild.sign.attach import read_bundle_referrers

    key, pub = keypair
    ref, digest = push_test_image(registry.host, "sign/js", "v1")
    assert main(["sign", "--key", str(key), "--bundle-only", ref]) == 0
    store = RegistryStore(registry.host, "sign/js", StoreOptions())
    found = read_bundle_referrers(store, Digest.parse(digest))
    assert len(found) == 1 and found[0].bundle is not None
    assert found[0].annotations["dev.sigstore.bundle.predicateType"] == \
        "https://sigstore.dev/cosign/sign/v1"
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_bytes(found[0].bundle)

    def js(pubkey: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", str(JS_DIR / "verify_bundle.js"), str(bundle_path),
                               str(pubkey)], capture_output=True, text=True, timeout=60)

    ok = js(pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    statement = json.loads(base64.b64decode(json.loads(ok.stdout)["payload"]))
    assert statement["subject"][0]["digest"] == {"sha256": digest.split(":")[1]}
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    other = tmp_path / "o"
    assert main(["generate-key-pair", "--output-key-prefix", str(other)]) == 0
    bad = js(Path(f"{other}.pub"))
    assert bad.returncode == 1 and "SIGNATURE_ERROR" in bad.stdout
    # Tampered payload: sigstore-js refuses it too.
    doc = json.loads(bundle_path.read_bytes())
    doc["dsseEnvelope"]["payload"] = base64.b64encode(
        json.dumps({**statement, "predicate": {"x": "y"}}).encode()).decode()
    bundle_path.write_text(json.dumps(doc))
    assert js(pub).returncode == 1


def test_sign_and_verify_oci_layout(tmp_path: Path, keypair: tuple[Path, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    layout = tmp_path / "layout"
    digest = write_test_oci_layout(layout, tag="v1")
    # An OCI layout has no repository: the payload's must be named (usage error, exit 2).
    assert main(["sign", "--key", str(key), f"oci:{layout}:v1"]) == 2
    assert main(["sign", "--key", str(key), "--bundle", "--docker-reference",
                 "registry.example/app", f"oci:{layout}:v1"]) == 0
    index = json.loads((layout / "index.json").read_text())
    names = [m.get("annotations", {}).get("org.opencontainers.image.ref.name")
             for m in index["manifests"]]
    assert f"sha256-{digest.split(':')[1]}.sig" in names
    assert len(index["manifests"]) == 3  # image, .sig tag, untagged bundle referrer
    rc, out = _verify_json(capsys, "--key", str(pub), "--docker-reference", "registry.example/app",
                           f"oci:{layout}:v1")
    assert rc == 0 and len([s for s in out["signatures"] if s["verdict"] == "valid"]) == 2
    rc, out = _verify_json(capsys, "--key", str(pub), "--docker-reference", "registry.example/x",
                           f"oci:{layout}:v1")
    assert rc == 1


def test_wrong_password_and_corrupt_key_are_one_line_errors(
        tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, _ = keypair
    layout = tmp_path / "l"
    write_test_oci_layout(layout, tag="v1")
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", "wrong")
    capsys.readouterr()
    assert main(["sign", "--key", str(key), "--docker-reference", "r.example/a",
                 f"oci:{layout}:v1"]) == 1
    err = capsys.readouterr().err
    assert "wrong password" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.key"
    text = key.read_text().splitlines()
    bad.write_text("\n".join([text[0], "!!" + text[1][2:], *text[2:]]) + "\n")
    assert main(["sign", "--key", str(bad), "--docker-reference", "r.example/a",
                 f"oci:{layout}:v1"]) == 1
    err = capsys.readouterr().err
    assert "invalid base64" in err and len(err.strip().splitlines()) == 1
    assert main(["verify", "--key", str(key), f"oci:{layout}:v1"]) == 1
    assert "no PUBLIC KEY" in capsys.readouterr().err


def test_keyless_sign_fails_cleanly_when_fulcio_is_unreachable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.registry import free_port

    vectors = Path(__file__).resolve().parents[2] / "assets" / "sign" / "cosign-vectors"
    port = free_port()  # nothing listens there: Fulcio "down" on loopback
    cfg = _trust_config(vectors, f"http://127.0.0.1:{port}")
    (tmp_path / "trust.json").write_text(json.dumps(cfg))
    layout = tmp_path / "l"
    write_test_oci_layout(layout, tag="v1")
    enc = lambda p: base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")  # noqa: E731
    token = ".".join(enc(p) for p in (
        {"alg": "RS256"}, {"iss": "https://issuer.example", "sub": "x", "aud": "sigstore",
                           "exp": 4102444800, "iat": 1700000000, "nbf": 1700000000,
                           "email": "a@b.example"})) + ".c2ln"
    capsys.readouterr()
    rc = main(["sign", "--keyless", "--identity-token", token, "--sigstore-trust-config",
               str(tmp_path / "trust.json"), "--docker-reference", "r.example/a",
               f"oci:{layout}:v1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and "keyless signing failed" in err
    assert "Connection refused" in err or "connect" in err.lower()
    index = json.loads((layout / "index.json").read_text())
    assert len(index["manifests"]) == 1  # nothing was written


def _trust_config(vectors: Path, url: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((vectors / "keys/fulcio_v1.crt.pem").read_bytes())
    rekor = serialization.load_pem_public_key((vectors / "keys/rekor.pub").read_bytes())
    der = rekor.public_bytes(serialization.Encoding.DER,
                             serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    valid = {"start": "2021-01-01T00:00:00Z"}
    log = {"baseUrl": url, "hashAlgorithm": "SHA2_256",
           "publicKey": {"rawBytes": b64(der), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                         "validFor": valid},
           "logId": {"keyId": b64(hashlib.sha256(der).digest())}}
    svc = {"url": url, "majorApiVersion": 1, "validFor": valid, "operator": "test"}
    return {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log], "ctlogs": [log], "timestampAuthorities": [],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": url, "validFor": valid,
                "certChain": {"certificates": [{"rawBytes": b64(cert.public_bytes(
                    serialization.Encoding.DER))}]}}],
        },
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [svc], "oidcUrls": [], "rekorTlogUrls": [svc], "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"}, "tsaConfig": {"selector": "ANY"},
        },
    }
