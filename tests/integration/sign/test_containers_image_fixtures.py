"""``trustbuild verify`` on containers/image's own recorded signature fixtures, with the verdicts
upstream's tests expect (``signature/policy_eval_sigstore_test.go``, ``pki_cert_test.go``).

The fixtures (``tests/assets/containers-image/``, see its README) are images in containers/image's
``dir:`` transport: ``manifest.json`` and ``signature-N`` files (``\\x00sigstore-json\\n`` + JSON
of mimeType, payload, annotations). :func:`load_dir_image` writes them as an OCI layout the way
trustbuild reads any image: the manifest under a tag, each signature a layer of the cosign
``sha256-<hex>.sig`` manifest with its annotations.

- ``dir-img-cosign-pki-valid``: PKI mode (containers/image ``sigstoreSigned`` ``pki``): a
  certificate for ``qiwan@redhat.com`` / ``myhost.example.com`` (no EKU extension) chained through
  an intermediate (in the signature's chain annotation and in ``pki_intermediate_crts.pem``) to
  ``pki_root_crts.pem``; payload identity ``localhost:5000/test``; no Rekor entry.
- ``dir-img-cosign-valid-with-tag``: signed with ``cosign.pub`` by containers/image for the
  identity ``192.168.64.2:5000/skopeo-signed:tag`` (a tag, not only a repository).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from trustbuild.cli.main import main
from trustbuild.errors import VerificationError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.manifest import parse_manifest
from trustbuild.sign.attach import append_cosign_layer
from trustbuild.sign.pki import PKIPolicy

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "containers-image"
PKI_IMAGE = ASSETS / "dir-img-cosign-pki-valid"
TAG_IMAGE = ASSETS / "dir-img-cosign-valid-with-tag"
ROOTS = ASSETS / "pki_root_crts.pem"
INTERMEDIATES = ASSETS / "pki_intermediate_crts.pem"
# a root that did not issue the PKI chain: the Fulcio root of containers/image's cosign fixtures
OTHER_ROOT = Path(__file__).resolve().parents[2] / "assets" / "sign" / "cosign-vectors" / "keys" \
    / "fulcio_v1.crt.pem"
EMAIL, HOST = "qiwan@redhat.com", "myhost.example.com"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
SIG_PREFIX = b"\x00sigstore-json\n"


def load_dir_image(src: Path, layout: Path, *, tag: str = "latest",
                   drop: tuple[str, ...] = ()) -> Digest:
    """Write containers/image's ``dir:`` image ``src`` as an OCI layout (``oci:layout:tag``).

    The manifest is stored as recorded (its config and layers are not in the fixture, and
    verification needs only the manifest's digest); every ``signature-N`` becomes a layer of the
    ``.sig`` manifest, minus the annotations named in ``drop``.
    """
    raw = (src / "manifest.json").read_bytes()
    digest = Digest.of(raw)
    media_type = parse_manifest(raw).media_type
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "blobs" / "sha256" / digest.hex).write_bytes(raw)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": str(media_type), "digest": str(digest), "size": len(raw),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    store = LayoutStore(layout)
    subject = Descriptor(str(media_type), digest, len(raw))
    sigs = sorted(src.glob("signature-*"), key=lambda p: int(p.name.split("-")[1]))
    assert sigs, src
    for path in sigs:
        data = path.read_bytes()
        assert data.startswith(SIG_PREFIX), path
        sig = json.loads(data[len(SIG_PREFIX):])
        annotations = {k: v for k, v in sig["annotations"].items() if k not in drop}
        append_cosign_layer(store, subject, suffix="sig",
                            layer_bytes=base64.b64decode(sig["payload"]),
                            layer_media_type=sig["mimeType"], annotations=annotations)
    return digest


def _verify(capsys: pytest.CaptureFixture[str], image: str, *flags: str
            ) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["verify", "--output", "json", *flags, image])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def _reasons(out: dict[str, Any]) -> list[str]:
    return [s["reason"] for s in out["signatures"]]


@pytest.fixture
def pki_image(tmp_path: Path) -> str:
    load_dir_image(PKI_IMAGE, tmp_path / "pki")
    return f"oci:{tmp_path / 'pki'}:latest"


def _pki(roots: Path = ROOTS, intermediates: Path | None = INTERMEDIATES,
         email: str | None = EMAIL, host: str | None = HOST,
         reference: str = "localhost:5000/test") -> list[str]:
    flags = ["--ca-roots", str(roots), "--docker-reference", reference]
    if intermediates is not None:
        flags += ["--ca-intermediates", str(intermediates)]
    if email is not None:
        flags += ["--certificate-email", email]
    if host is not None:
        flags += ["--certificate-hostname", host]
    return flags


# (flags, accepted?, words the reason must carry when refused)
PKI_CASES = {
    # policy_eval_sigstore_test.go "Successful PKI certificate use"
    "valid: roots, intermediates, email and hostname": (_pki(), True, ""),
    # pki_cert_test.go: the intermediate from the signature's chain only, or the config only
    "valid: intermediate from the signature's chain only": (_pki(intermediates=None), True, ""),
    "valid: email only": (_pki(host=None), True, ""),
    "valid: hostname only": (_pki(email=None), True, ""),
    "refused: another email": (_pki(email="someone@redhat.com"), False, "someone@redhat.com"),
    "refused: another hostname": (_pki(host="otherhost.example.com"), False,
                                  "otherhost.example.com"),
    # the chain annotation's own root is never trusted: only the configured roots are
    "refused: another root": (_pki(roots=OTHER_ROOT, intermediates=None), False,
                              "does not chain to a configured CA root"),
    # Go's x509.Verify: any configured root is an anchor, an intermediate too
    "valid: the intermediate configured as the root": (
        _pki(roots=INTERMEDIATES, intermediates=None), True, ""),
    "refused: another repository (matchRepository)": (
        _pki(reference="localhost:5000/other"), False, "is not the image's repository"),
}


@pytest.mark.parametrize("case", list(PKI_CASES))
def test_pki_fixture_verdicts(pki_image: str, capsys: pytest.CaptureFixture[str],
                              case: str) -> None:
    flags, accepted, why = PKI_CASES[case]
    rc, out = _verify(capsys, pki_image, *flags)
    assert len(out["signatures"]) == 1, out
    assert rc == (0 if accepted else 1), out
    assert (out["signatures"][0]["verdict"] == "valid") is accepted, out
    if accepted:
        assert "qiwan@redhat.com" in out["signatures"][0]["signer"] or \
            "myhost.example.com" in out["signatures"][0]["signer"], out
    else:
        assert why in out["signatures"][0]["reason"], _reasons(out)


@pytest.mark.parametrize("intermediates", [True, False])
def test_pki_fixture_without_chain_annotation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              intermediates: bool) -> None:
    """Upstream: with no chain annotation the signature verifies only when the configuration
    supplies the intermediate."""
    load_dir_image(PKI_IMAGE, tmp_path / "pki", drop=(CHAIN_ANNOTATION,))
    rc, out = _verify(capsys, f"oci:{tmp_path / 'pki'}:latest",
                      *_pki(intermediates=INTERMEDIATES if intermediates else None))
    assert rc == (0 if intermediates else 1), _reasons(out)
    assert (out["signatures"][0]["verdict"] == "valid") is intermediates
    if not intermediates:
        assert "does not chain to a configured CA root" in out["signatures"][0]["reason"]


def test_pki_fixture_without_certificate_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    load_dir_image(PKI_IMAGE, tmp_path / "pki", drop=(CERT_ANNOTATION,))
    rc, out = _verify(capsys, f"oci:{tmp_path / 'pki'}:latest", *_pki())
    assert rc == 1 and out["signatures"][0]["verdict"] == "invalid", _reasons(out)
    assert "no certificate" in out["signatures"][0]["reason"]


def test_pki_fixture_tampered_signature_is_refused(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The recorded signature is over the recorded payload: another manifest digest fails."""
    src = tmp_path / "src"
    src.mkdir()
    manifest = json.loads((PKI_IMAGE / "manifest.json").read_bytes())
    manifest["annotations"] = {**manifest.get("annotations", {}), "x": "tampered"}
    (src / "manifest.json").write_text(json.dumps(manifest))
    (src / "signature-1").write_bytes((PKI_IMAGE / "signature-1").read_bytes())
    load_dir_image(src, tmp_path / "pki")
    rc, out = _verify(capsys, f"oci:{tmp_path / 'pki'}:latest", *_pki())
    assert rc == 1 and "digest" in out["signatures"][0]["reason"], _reasons(out)


SIGNED = "192.168.64.2:5000/skopeo-signed"
# (image reference the user verifies, --signed-identity or None for the default, accepted?)
IDENTITY_CASES = [
    # policy_eval_sigstore_test.go: prmMatchExact with the signature's tag / another tag
    (f"{SIGNED}:tag", "matchExact", True),
    (f"{SIGNED}:othertag", "matchExact", False),
    # matchRepoDigestOrExact: a tag reference is matched exactly too
    (f"{SIGNED}:tag", "matchRepoDigestOrExact", True),
    (f"{SIGNED}:othertag", "matchRepoDigestOrExact", False),
    # matchRepository (cosign's rule, trustbuild's default): any tag of the repository
    (f"{SIGNED}:othertag", None, True),
    (f"{SIGNED}:othertag", "matchRepository", True),
    ("192.168.64.2:5000/other:tag", "matchRepository", False),
    # exactReference names the signed identity whatever the image is called
    (f"{SIGNED}:othertag", f"exactReference:{SIGNED}:tag", True),
    (f"{SIGNED}:tag", f"exactReference:{SIGNED}:othertag", False),
    (f"{SIGNED}:othertag", f"exactRepository:{SIGNED}", True),
    (f"{SIGNED}:tag", "exactRepository:192.168.64.2:5000/other", False),
    # remapIdentity: the image's prefix is rewritten before matchRepoDigestOrExact
    ("mirror.example.com/skopeo-signed:tag",
     "remapIdentity:mirror.example.com=192.168.64.2:5000", True),
    ("mirror.example.com/skopeo-signed:othertag",
     "remapIdentity:mirror.example.com=192.168.64.2:5000", False),
]


@pytest.mark.parametrize(("reference", "identity", "accepted"), IDENTITY_CASES)
def test_tag_identity_fixture_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       reference: str, identity: str | None,
                                       accepted: bool) -> None:
    load_dir_image(TAG_IMAGE, tmp_path / "img")
    flags = ["--key", str(ASSETS / "cosign.pub"), "--docker-reference", reference]
    if identity is not None:
        flags += ["--signed-identity", identity]
    rc, out = _verify(capsys, f"oci:{tmp_path / 'img'}:latest", *flags)
    assert rc == (0 if accepted else 1), _reasons(out)
    assert [s["verdict"] == "valid" for s in out["signatures"]] == [accepted], _reasons(out)


def test_pki_verify_on_upstream_cert_and_chain() -> None:
    """pki_cert_test.go ``TestPKIVerify`` on ``pki-cert`` / ``pki-chain``, through the verifier
    ``trustbuild verify`` uses (:class:`trustbuild.sign.pki.PKIPolicy`)."""
    cert = (ASSETS / "pki-cert").read_text()
    chain = (ASSETS / "pki-chain").read_text()
    full = PKIPolicy.from_files(ROOTS, ca_intermediates=INTERMEDIATES, subject_email=EMAIL,
                                subject_hostname=HOST)
    roots_only = PKIPolicy.from_files(ROOTS, subject_email=EMAIL)
    key, who = full.verify(cert, chain)
    leaf_key = x509.load_pem_x509_certificate(cert.encode()).public_key()
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_der() == leaf_key.public_bytes(*der)
    assert EMAIL in who and HOST in who
    assert roots_only.verify(cert, chain)  # the intermediate from the signature only
    assert full.verify(cert, None)  # the intermediate from the configuration only
    for bad_cert, bad_chain, policy in [(cert, "not a certificate", full),
                                        ("not a certificate", chain, full),
                                        (cert, None, roots_only)]:  # no intermediate anywhere
        with pytest.raises(VerificationError):
            policy.verify(bad_cert, bad_chain)
