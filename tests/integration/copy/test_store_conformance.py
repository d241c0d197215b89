"""One behaviour, every writable transport: the Store contract on an OCI layout and a registry."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trustbuild.errors import DigestMismatch, NotFound, RegistryError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.registry.options import StoreOptions
from trustbuild.store.location import parse_location
from trustbuild.store.open import open_store

_n = itertools.count()


@pytest.fixture(params=["oci", "docker"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty writable store of each transport."""
    if request.param == "oci":
        loc = f"oci:{tmp_path}/layout"
    else:
        reg = request.getfixturevalue("registry")
        loc = f"docker://{reg.host}/conformance/repo{next(_n)}"
    s, _ = open_store(parse_location(loc), StoreOptions(), for_write=True)
    yield s
    s.close()


def _put(store: Store, data: bytes, mt: str = "application/octet-stream") -> Descriptor:
    d = Descriptor.for_bytes(mt, data)
    store.put_blob(d, lambda: io.BytesIO(data))
    return d


def _manifest(
    store: Store, payload: bytes, subject: Descriptor | None = None
) -> tuple[bytes, Descriptor]:
    cfg = _put(store, b"{}", MediaType.OCI_EMPTY)
    layer = _put(store, payload)
    m: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "artifactType": "application/x.conformance",
        "config": cfg.to_json(),
        "layers": [layer.to_json()],
    }
    if subject is not None:
        m["subject"] = subject.to_json()
    raw = dump_json(m)
    return raw, Descriptor.for_bytes(MediaType.OCI_MANIFEST, raw)


def test_blobs_manifests_tags(store: Store, tmp_path: Path) -> None:
    raw, desc = _manifest(store, b"payload-1")
    got = store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["v1"])
    assert got.digest == desc.digest
    assert store.get_manifest("v1") == (raw, MediaType.OCI_MANIFEST)
    assert store.get_manifest(str(desc.digest))[0] == raw
    assert "v1" in store.list_tags()
    blob = Descriptor.for_bytes("application/octet-stream", b"payload-1")
    assert store.has_blob(blob.digest)
    store.fetch_blob(blob, tmp_path / "out" / "blob")
    assert (tmp_path / "out" / "blob").read_bytes() == b"payload-1"
    wrong = Descriptor(blob.media_type, Descriptor.for_bytes("x", b"other").digest, blob.size)
    with pytest.raises((NotFound, DigestMismatch)):
        store.fetch_blob(wrong, tmp_path / "out" / "wrong")
    assert not (tmp_path / "out" / "wrong").exists()
    raw2, desc2 = _manifest(store, b"payload-2")
    store.put_manifest(raw2, MediaType.OCI_MANIFEST, tags=["v1"])
    assert store.get_manifest("v1")[0] == raw2  # the tag moved
    store.delete_tag("v1")
    with pytest.raises(NotFound):
        store.get_manifest("v1")


def test_put_blob_rejects_wrong_content(store: Store) -> None:
    d = Descriptor.for_bytes("application/octet-stream", b"expected")
    # a layout checks it itself; a registry refuses the upload (digest_invalid)
    with pytest.raises((DigestMismatch, RegistryError)):
        store.put_blob(d, lambda: io.BytesIO(b"tampered"))
    assert not store.has_blob(d.digest)


def test_referrers(store: Store) -> None:
    raw, subject = _manifest(store, b"the-image")
    store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["img"])
    ref_raw, ref = _manifest(store, b"a-signature", subject)
    store.put_manifest(ref_raw, MediaType.OCI_MANIFEST)
    found = store.referrers(subject.digest)
    assert [(d.digest, d.artifact_type) for d in found] == [
        (ref.digest, "application/x.conformance")
    ]
    assert store.referrers(subject.digest, artifact_type="application/x.other") == []
