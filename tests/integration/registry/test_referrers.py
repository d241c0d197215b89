"""Referrers on distribution 2.8 (no referrers API): the tag-schema fallback index."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from fixtures.registry import RegistryServer

from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, dump_json, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.registry import RegistryStore, referrers_tag
from trustbuild.registry.options import StoreOptions

EMPTY = b"{}"


def _opener(data: bytes):  # type: ignore[no-untyped-def]
    @contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)
    return opener


def _artifact(store: RegistryStore, subject: Descriptor, artifact_type: str, payload: bytes,
              note: str) -> Descriptor:
    cfg = Descriptor.for_bytes(MediaType.OCI_EMPTY, EMPTY)
    layer = Descriptor.for_bytes("application/vnd.test.payload", payload)
    store.put_blob(cfg, _opener(EMPTY))
    store.put_blob(layer, _opener(payload))
    raw = dump_json({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
                     "artifactType": artifact_type, "config": cfg.to_json(),
                     "layers": [layer.to_json()], "subject": subject.to_json(),
                     "annotations": {"note": note}})
    return store.put_manifest(raw, MediaType.OCI_MANIFEST)


def test_referrers_fallback_tag_is_written_and_read(registry: RegistryServer,
                                                    pushed_image: tuple[str, str]) -> None:
    src = RegistryStore(registry.host, "fixtures/hello", StoreOptions(), credentials=None)
    raw, mt = src.get_manifest("v1")
    store = RegistryStore(registry.host, "ref/app", StoreOptions(), credentials=None)
    store.set_mount_source("fixtures/hello")
    m = parse_manifest(raw, mt)
    for d in (m.config, *m.layers):  # type: ignore[union-attr]
        store.put_blob(d, lambda d=d: src.open_blob(d))  # type: ignore[misc]
    subject = store.put_manifest(raw, mt, tags=["v1"])
    assert store.referrers(subject.digest) == []

    sig = _artifact(store, subject, "application/vnd.test.signature", b"sig", "first")
    sbom = _artifact(store, subject, "application/vnd.test.sbom", b"sbom", "second")
    found = store.referrers(subject.digest)
    assert [d.digest for d in found] == [sig.digest, sbom.digest]
    assert found[0].artifact_type == "application/vnd.test.signature"
    assert found[0].annotations == {"note": "first"}
    only = store.referrers(subject.digest, artifact_type="application/vnd.test.sbom")
    assert [d.digest for d in only] == [sbom.digest]

    # the fallback index is an ordinary OCI index under the sha256-<hex> tag
    tag = referrers_tag(subject.digest)
    assert tag == f"sha256-{subject.digest.hex}" and tag in store.list_tags()
    idx = parse_manifest(*store.get_manifest(tag))
    assert isinstance(idx, Index) and idx.media_type == MediaType.OCI_INDEX
    # pushing the same referrer again does not duplicate it
    _artifact(store, subject, "application/vnd.test.signature", b"sig", "first")
    assert len(store.referrers(subject.digest)) == 2
    assert store.referrers(Digest.of(b"unrelated")) == []
