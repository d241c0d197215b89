"""docker-archive reader and writer: manifest synthesis, verification, decompression, atomicity."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import zstandard
from fixtures.stores import write_plain_layout

from trustbuild.errors import DigestMismatch, InvalidManifest, NotFound, StoreError
from trustbuild.oci.archive import DOCKER_LAYER_TAR, ArchiveReader, ArchiveWriter
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.layout import LayoutStore
from trustbuild.oci.manifest import Manifest, parse_manifest
from trustbuild.oci.mediatype import MediaType


def _read_all(store, desc: Descriptor) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    with store.open_blob(desc) as f:
        while chunk := f.read(1 << 16):
            out.write(chunk)
    return out.getvalue()


def test_reader_presents_docker_schema2_with_uncompressed_layers(busybox_archive) -> None:  # noqa: ANN001
    path, info = busybox_archive
    r = ArchiveReader(path)
    raw, mt = r.get_manifest("")
    m = parse_manifest(raw, mt)
    assert isinstance(m, Manifest) and mt == MediaType.DOCKER_MANIFEST
    assert str(m.config.digest) == info["config"]
    assert [str(d.digest) for d in m.layers] == [info["diff_id"]]
    assert m.layers[0].media_type == DOCKER_LAYER_TAR
    assert r.get_manifest("busybox:latest")[0] == raw
    assert r.get_manifest("docker.io/library/busybox")[0] == raw
    assert r.get_manifest(str(m.digest))[0] == raw
    layer = _read_all(r, m.layers[0])
    assert str(Digest.of(layer)) == info["diff_id"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tf:
        assert {"bin/busybox", "bin/sh", "etc/passwd", "tmp"} <= set(tf.getnames())
        assert tf.getmember("tmp").mode == 0o1777
    with pytest.raises(NotFound, match="no image tagged 'other:1'.*busybox:latest"):
        r.get_manifest("other:1")
    r.close()


def test_reader_errors(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    with pytest.raises(NotFound, match="no such file"):
        ArchiveReader(tmp_path / "missing.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StoreError, match="not a readable tar"):
        ArchiveReader(tmp_path / "junk.tar")
    path, _ = busybox_archive
    broken = tmp_path / "broken.tar"
    with tarfile.open(path) as src, tarfile.open(broken, "w") as dst:
        for m in src.getmembers():
            if m.name == "manifest.json":
                data = b'[{"Config": "nope.json", "Layers": []}]'
                m.size = len(data)
                dst.addfile(m, io.BytesIO(data))
            else:
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    with pytest.raises(InvalidManifest, match="names 'nope.json', which is not in the archive"):
        ArchiveReader(broken).get_manifest("")


def test_reader_detects_layer_not_matching_diff_id(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    path, info = busybox_archive
    bad = tmp_path / "bad.tar"
    with tarfile.open(path) as src, tarfile.open(bad, "w") as dst:
        for m in src.getmembers():
            f = src.extractfile(m) if m.isfile() else None
            if m.name.endswith("layer.tar"):
                data = bytearray(f.read())  # type: ignore[union-attr]
                data[-2000] ^= 0xFF
                f = io.BytesIO(bytes(data))
            dst.addfile(m, f)
    r = ArchiveReader(bad)
    m = parse_manifest(*r.get_manifest(""))
    assert isinstance(m, Manifest)
    with pytest.raises(DigestMismatch, match=info["diff_id"]):
        _read_all(r, m.layers[0])


def test_reader_accepts_gzip_compressed_archive(tmp_path: Path, busybox_archive) -> None:  # noqa: ANN001
    path, info = busybox_archive
    gz = tmp_path / "bb.tar.gz"
    with open(path, "rb") as f, gzip.open(gz, "wb") as out:
        shutil.copyfileobj(f, out)
    r = ArchiveReader(gz)
    m = parse_manifest(*r.get_manifest(""))
    assert isinstance(m, Manifest) and str(m.config.digest) == info["config"]
    r.close()


def _put_image(w: ArchiveWriter, layout: LayoutStore, ref: str) -> Manifest:
    m = parse_manifest(*layout.get_manifest(ref))
    assert isinstance(m, Manifest)
    for d in (m.config, *m.layers):
        w.put_blob(d, lambda d=d: layout.open_blob(d))
    w.put_manifest(m.raw, m.media_type, tags=["example.com/app:v1"])
    return m


def test_writer_decompresses_layers_and_writes_atomically(tmp_path: Path) -> None:
    info = write_plain_layout(tmp_path / "l", layers=2)
    layout = LayoutStore(tmp_path / "l")
    out = tmp_path / "out.tar"
    w = ArchiveWriter(out)
    m = _put_image(w, layout, "latest")
    assert not out.exists()  # nothing visible before close()
    expected = w.descriptor()
    w.close()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with tarfile.open(out) as tf:
        index = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert index[0]["RepoTags"] == ["example.com/app:v1"]
        assert index[0]["Config"] == f"{m.config.digest.hex}.json"
        for name, diff_id in zip(index[0]["Layers"], info["diff_ids"]["linux/amd64"], strict=True):
            assert str(Digest.of(tf.extractfile(name).read())) == diff_id  # type: ignore[union-attr]
    r = ArchiveReader(out)
    raw, _ = r.get_manifest("example.com/app:v1")
    assert Digest.of(raw) == expected.digest


def test_writer_decompresses_zstd(tmp_path: Path) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        ti = tarfile.TarInfo("a.txt")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"hi"))
    tar_bytes = tar.getvalue()
    z = zstandard.ZstdCompressor().compress(tar_bytes)
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(tar_bytes))]},
        }
    ).encode()
    cd = Descriptor.for_bytes(MediaType.OCI_CONFIG, cfg)
    ld = Descriptor.for_bytes(MediaType.OCI_LAYER_ZSTD, z)
    w = ArchiveWriter(tmp_path / "z.tar")
    w.put_blob(cd, lambda: io.BytesIO(cfg))
    w.put_blob(ld, lambda: io.BytesIO(z))
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "config": cd.to_json(),
            "layers": [ld.to_json()],
        }
    ).encode()
    w.put_manifest(raw, MediaType.OCI_MANIFEST)
    w.close()
    r = ArchiveReader(tmp_path / "z.tar")
    m = parse_manifest(*r.get_manifest(""))
    assert isinstance(m, Manifest) and _read_all(r, m.layers[0]) == tar_bytes


def test_writer_rejects_index_wrong_diff_ids_and_leaves_nothing(tmp_path: Path) -> None:
    write_plain_layout(tmp_path / "multi", platforms=["linux/amd64", "linux/arm64"])
    layout = LayoutStore(tmp_path / "multi")
    w = ArchiveWriter(tmp_path / "out.tar")
    with pytest.raises(StoreError, match="holds one image, not an index"):
        w.put_manifest(*layout.get_manifest("latest"))
    w.abort()
    # a config whose diff_ids do not match the layers
    write_plain_layout(tmp_path / "l")
    l2 = LayoutStore(tmp_path / "l")
    m = parse_manifest(*l2.get_manifest("latest"))
    assert isinstance(m, Manifest)
    cfg_path = l2.blob_path(m.config.digest)
    cfg = json.loads(cfg_path.read_bytes())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    new_cfg = json.dumps(cfg).encode()
    nd = Descriptor.for_bytes(MediaType.OCI_CONFIG, new_cfg)
    w = ArchiveWriter(tmp_path / "out.tar")
    w.put_blob(nd, lambda: io.BytesIO(new_cfg))
    w.put_blob(m.layers[0], lambda: l2.open_blob(m.layers[0]))
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "config": nd.to_json(),
            "layers": [m.layers[0].to_json()],
        }
    ).encode()
    with pytest.raises(DigestMismatch, match="diff_ids do not match"):
        w.put_manifest(raw, MediaType.OCI_MANIFEST)
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l", "multi"]


def test_compressed_archive_temp_copy_is_removed(
    tmp_path: Path, busybox_archive, monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    path, _ = busybox_archive
    gz = tmp_path / "bb.tar.gz"
    with open(path, "rb") as f, gzip.open(gz, "wb") as out:
        shutil.copyfileobj(f, out)
    r = ArchiveReader(gz)
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    r.close()
    assert list((tmp_path / "tmp").iterdir()) == []
    del r
    r2 = ArchiveReader(gz)
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    del r2  # never closed: the finalizer removes the copy
    import gc

    gc.collect()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_writer_names_corrupted_compressed_layer_as_digest_mismatch(tmp_path: Path) -> None:
    write_plain_layout(tmp_path / "l")
    layout = LayoutStore(tmp_path / "l")
    m = parse_manifest(*layout.get_manifest("latest"))
    assert isinstance(m, Manifest)
    good = layout.blob_path(m.layers[0].digest).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    w = ArchiveWriter(tmp_path / "out.tar")
    with pytest.raises(DigestMismatch, match=str(m.layers[0].digest)):
        w.put_blob(m.layers[0], lambda: io.BytesIO(bytes(bad)))
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l"]
