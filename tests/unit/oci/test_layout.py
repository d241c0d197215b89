"""OCI image layout store: format, tags, digests, referrers, atomicity and bad input."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from fixtures.stores import write_plain_layout

from trustbuild.errors import (
    DigestMismatch,
    InvalidManifest,
    InvalidReference,
    NotFound,
    StoreError,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.layout import REF_NAME, LayoutStore
from trustbuild.oci.manifest import dump_json
from trustbuild.oci.mediatype import MediaType


def _src(data: bytes):  # noqa: ANN202
    return lambda: io.BytesIO(data)


def _artifact(
    store: LayoutStore,
    subject: Descriptor | None,
    *,
    artifact_type: str = "application/x.test",
    payload: bytes = b"sig",
) -> tuple[bytes, Descriptor]:
    """Write an artifact manifest (empty config, one blob, optional subject) and its blobs."""
    empty = Descriptor.for_bytes(MediaType.OCI_EMPTY, b"{}")
    blob = Descriptor.for_bytes("application/octet-stream", payload)
    store.put_blob(empty, _src(b"{}"))
    store.put_blob(blob, _src(payload))
    m: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.to_json(),
        "layers": [blob.to_json()],
        "annotations": {"kind": payload.decode()},
    }
    if subject:
        m["subject"] = subject.to_json()
    raw = dump_json(m)
    return raw, Descriptor.for_bytes(MediaType.OCI_MANIFEST, raw)


def test_reads_plain_layout_by_tag_digest_and_default(tmp_path: Path) -> None:
    info = write_plain_layout(tmp_path / "l", tag="v1")
    store = LayoutStore(tmp_path / "l")
    raw, mt = store.get_manifest("v1")
    assert str(Digest.of(raw)) == info["top"] and mt == MediaType.OCI_MANIFEST
    assert store.get_manifest(info["top"])[0] == raw
    assert store.get_manifest("")[0] == raw  # the only image, as skopeo does
    assert store.list_tags() == ["v1"]
    with pytest.raises(NotFound, match="no image tagged 'v2'.*tags: v1"):
        store.get_manifest("v2")


def test_write_creates_spec_layout_and_moves_tags(tmp_path: Path) -> None:
    root = tmp_path / "new" / "layout"
    store = LayoutStore(root)
    assert not root.exists()
    raw1, d1 = _artifact(store, None, payload=b"one")
    raw2, d2 = _artifact(store, None, payload=b"two")
    store.put_manifest(raw1, MediaType.OCI_MANIFEST, tags=["latest"])
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert (root / "blobs" / "sha256" / d1.digest.hex).read_bytes() == raw1
    store.put_manifest(raw2, MediaType.OCI_MANIFEST, tags=["latest", "v2"])
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == MediaType.OCI_INDEX
    names = {m["annotations"][REF_NAME]: m["digest"] for m in index["manifests"]}
    assert names == {"latest": str(d2.digest), "v2": str(d2.digest)}  # the tag moved
    assert LayoutStore(root).get_manifest("latest")[0] == raw2
    assert not list(root.rglob(".tmp-*"))
    store.delete_tag("v2")
    assert store.list_tags() == ["latest"]


def test_two_images_without_tag_is_an_error_naming_tags(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path)
    for p in (b"a", b"b"):
        raw, _ = _artifact(store, None, payload=p)
        store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=[p.decode()])
    with pytest.raises(NotFound, match="holds 2 images.*tags: a, b"):
        store.get_manifest("")


def test_referrers_found_through_subject_of_untagged_entries(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path)
    raw, subject = _artifact(store, None, payload=b"image")
    store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["app"])
    sig_raw, sig = _artifact(
        store,
        subject,
        artifact_type="application/vnd.dev.sigstore.bundle.v0.3+json",
        payload=b"bundle",
    )
    att_raw, att = _artifact(
        store, subject, artifact_type="application/vnd.in-toto+json", payload=b"att"
    )
    store.put_manifest(sig_raw, MediaType.OCI_MANIFEST)
    store.put_manifest(att_raw, MediaType.OCI_MANIFEST)
    # a cosign-style signature tag lives next to them as an ordinary tag
    store.put_manifest(sig_raw, MediaType.OCI_MANIFEST, tags=[f"{subject.digest.tag_form}.sig"])
    refs = store.referrers(subject.digest)
    assert {r.digest for r in refs} == {sig.digest, att.digest}
    only = store.referrers(subject.digest, artifact_type="application/vnd.in-toto+json")
    assert [(r.digest, r.artifact_type, r.annotations) for r in only] == [
        (att.digest, "application/vnd.in-toto+json", {"kind": "att"})
    ]
    assert store.referrers(sig.digest) == []
    assert f"{subject.digest.tag_form}.sig" in store.list_tags()


def test_index_replaces_untagged_children_entries(tmp_path: Path) -> None:
    src = write_plain_layout(
        tmp_path / "src", tag="multi", platforms=["linux/amd64", "linux/arm64"]
    )
    s = LayoutStore(tmp_path / "src")
    d = LayoutStore(tmp_path / "dst")
    idx_raw, idx_mt = s.get_manifest("multi")
    for dg in src["manifests"].values():
        raw, mt = s.get_manifest(dg)
        m = json.loads(raw)
        for b in [m["config"], *m["layers"]]:
            desc = Descriptor.from_json(b)
            d.put_blob(desc, lambda desc=desc: s.open_blob(desc))
        d.put_manifest(raw, mt)
    assert len(d.index_entries()) == 2
    d.put_manifest(idx_raw, idx_mt, tags=["multi"])
    entries = d.index_entries()
    assert [str(e.digest) for e in entries] == [src["top"]]
    assert d.get_manifest(src["manifests"]["linux/arm64"])[0]  # children still readable by digest


def test_put_blob_verifies_and_leaves_nothing_on_mismatch(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path)
    desc = Descriptor.for_bytes("application/octet-stream", b"expected")
    with pytest.raises(DigestMismatch):
        store.put_blob(desc, _src(b"tampered"))
    assert not store.has_blob(desc.digest)
    assert [p.name for p in (tmp_path / "blobs" / "sha256").iterdir()] == []


def test_manifest_needs_its_blobs(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path)
    cfg = Descriptor.for_bytes(MediaType.OCI_CONFIG, b"{}")
    raw = dump_json(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "config": cfg.to_json(),
            "layers": [],
        }
    )
    with pytest.raises(StoreError, match=f"blob {cfg.digest} is not in the layout"):
        store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["x"])
    assert store.list_tags() == []


def test_bad_tag_rejected(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path)
    raw, _ = _artifact(store, None)
    with pytest.raises(InvalidReference, match="invalid OCI layout tag"):
        store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["bad tag"])


def test_truncated_and_corrupted_blobs_are_detected(tmp_path: Path) -> None:
    info = write_plain_layout(tmp_path, tag="v1")
    store = LayoutStore(tmp_path)
    raw, _ = store.get_manifest("v1")
    layer = Descriptor.from_json(json.loads(raw)["layers"][0])
    path = store.blob_path(layer.digest)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DigestMismatch, match="truncated"):
        with store.open_blob(layer) as f:
            while f.read(1 << 16):
                pass
    mpath = store.blob_path(Digest.parse(info["top"]))
    mpath.write_bytes(raw.replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(DigestMismatch, match=info["top"]):
        store.get_manifest("v1")


def test_malformed_index_and_missing_layout(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no OCI image layout"):
        LayoutStore(tmp_path / "nope").get_manifest("latest")
    write_plain_layout(tmp_path / "l")
    (tmp_path / "l" / "index.json").write_text("{not json")
    with pytest.raises(InvalidManifest, match="index.json: not valid JSON"):
        LayoutStore(tmp_path / "l").get_manifest("latest")


def test_abort_removes_only_a_layout_it_created(tmp_path: Path) -> None:
    fresh = LayoutStore(tmp_path / "fresh")
    _artifact(fresh, None)
    fresh.abort()
    assert not (tmp_path / "fresh").exists()
    write_plain_layout(tmp_path / "old")
    old = LayoutStore(tmp_path / "old")
    _artifact(old, None)
    old.abort()
    assert LayoutStore(tmp_path / "old").get_manifest("latest")


def test_abort_keeps_user_files_and_removes_created_parents(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    store = LayoutStore(tmp_path / "mine")
    _artifact(store, None)
    store.abort()
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    deep = LayoutStore(tmp_path / "a" / "b" / "c")
    _artifact(deep, None)
    deep.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_layout_files_are_readable_like_skopeo_writes_them(tmp_path: Path) -> None:
    """Blobs, index.json and oci-layout get 0644 under umask 022 (not mkstemp's 0600), so
    another user or tool can read a layout that root wrote."""
    old = os.umask(0o022)
    try:
        store = LayoutStore(tmp_path / "l")
        raw, _ = _artifact(store, None, payload=b"one")
        store.put_manifest(raw, MediaType.OCI_MANIFEST, tags=["latest"])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "l").rglob("*")
             if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes
