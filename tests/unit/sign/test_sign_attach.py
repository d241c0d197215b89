"""Signing into a store: cosign's .sig layout, no duplicates, bundles as referrers, bad input."""

from __future__ import annotations

import base64
import io
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sign_memstore import MemoryStore

from trustbuild.errors import VerificationError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.sign.attach import (
    MAX_LAYER_BYTES,
    append_cosign_layer,
    read_bundle_referrers,
    read_cosign_layers,
)
from trustbuild.sign.keys import SigningKey
from trustbuild.sign.sign import SIGNATURE_ANNOTATION, resolve_subject, sign_image
from trustbuild.sign.simplesigning import parse_payload
from trustbuild.sign.verify import verify_image

REPO = "registry.example/team/app"


def _image(store: MemoryStore, tag: str = "v1", content: bytes = b"x") -> Descriptor:
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},' \
          b'"config":{},"x":"' + content + b'"}'
    d = Descriptor.for_bytes(MediaType.OCI_CONFIG, cfg)
    store.put_blob(d, lambda: io.BytesIO(cfg))
    raw = dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                     "config": d.to_json(), "layers": []})
    return store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=[tag])


def _key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def _sig_manifest(store: MemoryStore, digest: Digest) -> dict:  # type: ignore[type-arg]
    return json.loads(store.get_manifest(f"{digest.tag_form}.sig")[0])


def test_signature_manifest_is_cosigns_layout(memstore: MemoryStore) -> None:
    img = _image(memstore)
    key = _key()
    res = sign_image(memstore, "v1", key, docker_reference=REPO, annotations={"a": "b"})
    assert res.digest == img.digest
    m = _sig_manifest(memstore, img.digest)
    raw = memstore.get_manifest(f"{img.digest.tag_form}.sig")[0]
    assert raw.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1'
                          b'+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json"'
                          b',"size":')
    (layer,) = m["layers"]
    assert list(layer) == ["mediaType", "size", "digest", "annotations"]
    payload = memstore.blobs[Digest.parse(layer["digest"])]
    assert res.payload == payload
    p = parse_payload(payload)
    assert (p.docker_reference, p.manifest_digest, p.optional) == (REPO, img.digest, {"a": "b"})
    key.public_key().verify(base64.b64decode(layer["annotations"][SIGNATURE_ANNOTATION]), payload)
    cfg = json.loads(memstore.blobs[Digest.parse(m["config"]["digest"])])
    assert cfg == {"architecture": "", "created": "0001-01-01T00:00:00Z",
                   "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                   "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}, "config": {}}


def test_layers_are_appended_without_duplicates_and_replace(memstore: MemoryStore) -> None:
    img = _image(memstore)
    subj = resolve_subject(memstore, "v1")
    for _ in range(2):
        append_cosign_layer(memstore, subj, suffix="sig", layer_bytes=b"{}",
                            layer_media_type="x/y", annotations={"k": "1"})
    assert len(_sig_manifest(memstore, img.digest)["layers"]) == 1
    append_cosign_layer(memstore, subj, suffix="sig", layer_bytes=b"{}",
                        layer_media_type="x/y", annotations={"k": "2"})
    assert len(_sig_manifest(memstore, img.digest)["layers"]) == 2
    append_cosign_layer(memstore, subj, suffix="sig", layer_bytes=b"[]", layer_media_type="x/y",
                        annotations={"k": "3"},
                        replace=lambda d: (d.annotations or {}).get("k") == "1")
    m = _sig_manifest(memstore, img.digest)
    assert [la["annotations"]["k"] for la in m["layers"]] == ["2", "3"]
    cfg = json.loads(memstore.blobs[Digest.parse(m["config"]["digest"])])
    assert cfg["rootfs"]["diff_ids"] == [la["digest"] for la in m["layers"]]


def test_bundle_referrer_structure_and_verification(memstore: MemoryStore) -> None:
    img = _image(memstore)
    key = _key()
    res = sign_image(memstore, "v1", key, docker_reference=REPO, bundle=True, simple=False)
    assert res.signature_manifest is None and res.bundle_manifest is not None
    m = json.loads(memstore.get_manifest(str(res.bundle_manifest.digest))[0])
    assert m["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert m["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                           "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c0"
                                     "60f61caaff8a"}
    assert m["subject"]["digest"] == str(img.digest)
    assert m["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    title = m["layers"][0]["annotations"]["org.opencontainers.image.title"]
    assert title.endswith(".sigstore.json")
    (found,) = read_bundle_referrers(memstore, img.digest)
    assert found.bundle is not None and found.error is None
    r = verify_image(memstore, "v1", keys=[key.public_key()], docker_reference=REPO)
    assert r.ok and r.signatures[0].kind == "bundle"
    r = verify_image(memstore, "v1", keys=[_key().public_key()], docker_reference=REPO)
    assert not r.ok and "does not verify" in r.signatures[0].reason


def _tamper_sig_layer(store: MemoryStore, img: Descriptor, **changes: object) -> None:
    """Rewrite the .sig manifest's only layer with ``changes`` (payload/mediaType/annotations)."""
    tag = f"{img.digest.tag_form}.sig"
    m = json.loads(store.get_manifest(tag)[0])
    layer = m["layers"][0]
    if "payload" in changes:
        data = changes.pop("payload")
        assert isinstance(data, bytes)
        d = Descriptor.for_bytes(layer["mediaType"], data)
        store.put_blob(d, lambda: io.BytesIO(data))
        layer.update(digest=str(d.digest), size=d.size)
    layer.update(changes)
    store.put_manifest(dump_json(m), MediaType.OCI_MANIFEST, tags=[tag])


@pytest.mark.parametrize("changes,reason", [
    ({"mediaType": "application/octet-stream"}, "unexpected layer media type"),
    ({"annotations": {SIGNATURE_ANNOTATION: "%%%notbase64"}}, "not valid base64"),
    ({"annotations": {}}, "has no dev.cosignproject.cosign/signature"),
    ({"annotations": {SIGNATURE_ANNOTATION: "QQ==", "x": "y" * (300 * 1024)}}, "annotations are"),
    ({"payload": b"{" + b" " * (MAX_LAYER_BYTES + 1) + b"}"}, "more than the"),
    ({"payload": b"{" + b" " * (200 * 1024) + b"}"}, "more than the 131072 allowed"),
    ({"size": 3}, "expected 3"),
])
def test_bad_signature_layers_get_a_reason(memstore: MemoryStore, changes: dict,  # type: ignore[type-arg]
                                           reason: str) -> None:
    img = _image(memstore)
    key = _key()
    sign_image(memstore, "v1", key, docker_reference=REPO)
    _tamper_sig_layer(memstore, img, **changes)
    r = verify_image(memstore, "v1", keys=[key.public_key()], docker_reference=REPO)
    assert not r.ok and reason in r.signatures[0].reason, r.signatures[0].reason


def test_payload_signed_for_another_digest(memstore: MemoryStore) -> None:
    img = _image(memstore)
    other = _image(memstore, tag="v2", content=b"y")
    key = _key()
    sign_image(memstore, "v2", key, docker_reference=REPO)
    # Copy v2's signature layer under v1's .sig tag (a signature replayed onto another image).
    m = memstore.get_manifest(f"{other.digest.tag_form}.sig")[0]
    memstore.put_manifest(m, MediaType.OCI_MANIFEST, tags=[f"{img.digest.tag_form}.sig"])
    r = verify_image(memstore, "v1", keys=[key.public_key()], docker_reference=REPO)
    assert not r.ok and f"payload is for {other.digest}" in r.signatures[0].reason


def test_signature_manifest_with_unexpected_media_type(memstore: MemoryStore) -> None:
    img = _image(memstore)
    idx = dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX, "manifests": []})
    memstore.put_manifest(idx, MediaType.OCI_INDEX, tags=[f"{img.digest.tag_form}.sig"])
    with pytest.raises(VerificationError, match="unexpected media type"):
        read_cosign_layers(memstore, img.digest, "sig")
    r = verify_image(memstore, "v1", keys=[_key().public_key()], docker_reference=REPO)
    assert not r.ok and "unexpected media type" in r.signatures[0].reason


@pytest.mark.parametrize("payload,match", [
    (b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
     b'"sha256:' + b"0" * 64 + b'"},"type":"cosign container image signature"},"optional":null,'
     b'"extra":1}', "unexpected field"),
    (b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
     b'"sha256:' + b"0" * 64 + b'"},"type":"atomic container signature"},"optional":null}',
     "unrecognized signature type"),
    (b'{"critical":{"identity":{"docker-reference":"a"},"image":{"Docker-Manifest-Digest":'
     b'"sha256:' + b"0" * 64 + b'"},"type":"cosign container image signature"},"optional":null}',
     "critical.image"),
    (b'{"critical":{},"critical":{},"optional":null}', "duplicate key"),
    (b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
     b'"sha256:zz"},"type":"cosign container image signature"},"optional":null}', "digest"),
    (b"[1]", "expected a JSON object"),
    (b"{" * 10, "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
])
def test_strict_payload_parsing(payload: bytes, match: str) -> None:
    with pytest.raises(VerificationError, match=match):
        parse_payload(payload)


def test_containers_image_payload_is_accepted() -> None:
    raw = (b'{"critical":{"identity":{"docker-reference":"r.example/a:v1"},"image":'
           b'{"docker-manifest-digest":"sha256:' + b"1" * 64 + b'"},"type":"cosign container image '
           b'signature"},"optional":{"creator":"containers/image 5.29.0","timestamp":1700000000}}')
    p = parse_payload(raw)
    assert p.annotations["creator"].startswith("containers/image")


def test_go_json_escapes_like_cosign() -> None:
    from trustbuild.sign.simplesigning import build_payload

    raw = build_payload("r.example/a", "sha256:" + "2" * 64, {"z": "<a&b>", "a": "é"})
    assert b'"optional":{"a":"\xc3\xa9","z":"\\u003ca\\u0026b\\u003e"}' in raw
