"""Every key type trustbuild loads makes signatures the other side accepts.

containers/image verifies sigstore signatures with a hard-coded SHA-256 and sigstore-js verifies
DSSE (and SHA-256 message signatures) with SHA-256, whatever the ECDSA curve. Each key type signs
an image in the real registry (simple signing and a bundle) and attests it; sigstore-js checks
the DSSE bundles, and the simple-signing signature wrapped into a ``messageSignature`` bundle
(SHA2_256 digest of the payload, as containers/image hashes it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fixtures.registry import push_test_image

from trustbuild.cli.main import main
from trustbuild.oci.digest import Digest
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.store import RegistryStore
from trustbuild.sign.attach import read_bundle_referrers, read_cosign_layers

pytestmark = [pytest.mark.interop]

JS_DIR = Path(__file__).resolve().parents[2] / "js"

KEYS: dict[str, Callable[[], Any]] = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
}


@pytest.fixture(autouse=True)
def _need_sigstore_js() -> None:
    if shutil.which("node") is None or not (JS_DIR / "node_modules/@sigstore/verify").is_dir():
        pytest.fail("node or tests/js/node_modules missing (run .ci/setup.sh)")


def _write_key(tmp_path: Path, name: str) -> tuple[Path, Path]:
    priv = KEYS[name]()
    key, pub = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
    key.write_bytes(priv.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


def sigstore_js(tmp_path: Path, bundle: bytes, pub: Path,
                artifact: bytes | None = None) -> dict[str, Any]:
    """Run tests/js/verify_bundle.js; its JSON verdict (``ok`` false on refusal)."""
    bpath = tmp_path / "bundle.json"
    bpath.write_bytes(bundle)
    args = ["node", str(JS_DIR / "verify_bundle.js"), str(bpath), str(pub)]
    if artifact is not None:
        (tmp_path / "artifact").write_bytes(artifact)
        args.append(str(tmp_path / "artifact"))
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out: dict[str, Any] = json.loads(res.stdout)
    assert (res.returncode == 0) == out["ok"], res.stderr
    return out


def message_bundle(payload: bytes, signature_b64: str, pub: Path) -> bytes:
    """A v0.3 messageSignature bundle around a simple-signing signature (SHA-256 digest)."""
    der = serialization.load_pem_public_key(pub.read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = base64.b64encode(hashlib.sha256(payload).digest()).decode()
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "publicKey": {"hint": base64.b64encode(hashlib.sha256(der).digest()).decode()},
            "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": digest},
            "signature": signature_b64},
    }).encode()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_signatures_of_every_key_type_verify_with_sigstore_js(
        registry: Any, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _write_key(tmp_path, name)
    repo = f"keytypes/{name}"
    ref, digest = push_test_image(registry.host, repo, "v1", content=name.encode())
    assert main(["sign", "--key", str(key), "--bundle", ref]) == 0
    pred = tmp_path / "pred.json"
    pred.write_text('{"k": "v"}')
    assert main(["attest", "--key", str(key), "--predicate", str(pred), "--type",
                 "https://example.com/p/v1", "--bundle", f"docker://{ref}"]) == 0

    store = RegistryStore(registry.host, repo, StoreOptions())
    bundles = [b.bundle for b in read_bundle_referrers(store, Digest.parse(digest))]
    assert len(bundles) == 2 and all(bundles)
    for raw in bundles:
        assert raw is not None
        out = sigstore_js(tmp_path, raw, pub)
        assert out["ok"], out
        subject = json.loads(base64.b64decode(out["payload"]))["subject"][0]
        assert subject["digest"] == {"sha256": digest.split(":")[1]}

    capsys.readouterr()
    assert main(["verify", "--key", str(pub), "--output", "json", ref]) == 0
    verdicts = json.loads(capsys.readouterr().out)["signatures"]
    assert sorted(v["kind"] for v in verdicts if v["verdict"] == "valid") == \
        ["bundle", "simple-signing"]

    _, [layer] = read_cosign_layers(store, Digest.parse(digest), "sig")
    assert layer.payload is not None
    sig_b64 = layer.annotations["dev.cosignproject.cosign/signature"]
    if name == "ed25519":
        # sigstore-js prehashes message signatures, which pure Ed25519 does not do (nor does
        # containers/image: its ED25519Verifier checks the payload itself); covered by the
        # DSSE bundles above, which are pure Ed25519 over the PAE.
        return
    out = sigstore_js(tmp_path, message_bundle(layer.payload, sig_b64, pub), pub, layer.payload)
    assert out["ok"], out
    # sigstore-js is not lenient: the same signature over other bytes is refused.
    bad = sigstore_js(tmp_path, message_bundle(layer.payload + b" ", sig_b64, pub), pub,
                      layer.payload + b" ")
    assert not bad["ok"] and "SIGNATURE" in bad["error"]
