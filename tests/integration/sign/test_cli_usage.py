"""CLI usage errors exit 2 with one line; containers/image-style payloads verify."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.registry import write_test_oci_layout

from trustbuild.cli.main import main
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.mediatype import MediaType
from trustbuild.sign.attach import append_cosign_layer
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.sign import SIGNATURE_ANNOTATION, resolve_subject


@pytest.mark.parametrize("args,message", [
    (["verify", "oci:/nonexistent:v1"], "pass --key"),
    (["verify", "--certificate-identity", "a@b.c", "oci:/x:v1"], "--certificate-oidc-issuer"),
    (["verify", "--certificate-oidc-issuer", "https://i", "oci:/x:v1"], "--certificate-identity"),
    (["verify", "--key", "k.pub", "--trusted-root", "t.json", "--ca-roots", "c.pem", "oci:/x:v1"],
     "excludes"),
    (["sign", "oci:/x:v1"], "--key KEY or --keyless"),
    (["sign", "--key", "k", "--keyless", "oci:/x:v1"], "mutually exclusive"),
    (["sign", "--key", "k", "-a", "novalue", "oci:/x:v1"], "KEY=VALUE"),
])
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_containers_image_style_signature_verifies(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """skopeo --sign-by-sigstore-private-key names the tagged reference and fills optional."""
    layout = tmp_path / "l"
    write_test_oci_layout(layout, tag="v1")
    store = LayoutStore(layout)
    subject = resolve_subject(store, "v1")
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
    payload = (b'{"critical":{"identity":{"docker-reference":"r.example/team/app:v1"},"image":'
               b'{"docker-manifest-digest":"' + str(subject.digest).encode() + b'"},"type":'
               b'"cosign container image signature"},"optional":{"creator":"containers/image '
               b'5.29.2","timestamp":1700000000}}')
    append_cosign_layer(store, subject, suffix="sig", layer_bytes=payload,
                        layer_media_type=MediaType.COSIGN_SIMPLESIGNING,
                        annotations={SIGNATURE_ANNOTATION: base64.b64encode(
                            key.sign(payload)).decode()})
    (tmp_path / "k.pub").write_bytes(key.public_key().public_pem())
    loc = f"oci:{layout}:v1"
    assert main(["verify", "--key", str(tmp_path / "k.pub"), "--docker-reference",
                 "r.example/team/app", loc]) == 0
    assert main(["verify", "--key", str(tmp_path / "k.pub"), "--docker-reference",
                 "r.example/team/other", loc]) == 1
