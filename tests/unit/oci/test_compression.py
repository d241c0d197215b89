"""Compression detection, streaming decompression and deterministic compressors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import subprocess

import pytest
import zstandard

from trustbuild.errors import UsageError
from trustbuild.oci.compression import (
    compression_of_media_type,
    detect,
    media_type_for,
    new_compressor,
    open_decompressed,
)

DATA = b"layer bytes " * 5000

COMPRESSED = {
    "gzip": gzip.compress(DATA),
    "zstd": zstandard.ZstdCompressor().compress(DATA),
    "bzip2": bz2.compress(DATA),
    "xz": lzma.compress(DATA),
    "none": DATA,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSED))
def test_detect_and_decompress_from_path_and_stream(tmp_path, kind):
    blob = COMPRESSED[kind]
    assert detect(blob[:6]) == kind
    p = tmp_path / "blob"
    p.write_bytes(blob)
    with open_decompressed(p) as f:
        assert f.read() == DATA
    with open_decompressed(io.BytesIO(blob)) as f:
        assert f.read() == DATA


def test_decompress_from_a_pipe(tmp_path):
    # A non-seekable stream, as a registry response body is.
    proc = subprocess.Popen(["zstd", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(DATA)
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(out)
    p.stdin.close()
    with open_decompressed(p.stdout) as f:
        assert f.read() == DATA
    p.stdout.close()
    p.wait()


def test_concatenated_gzip_members_are_read_fully():
    blob = gzip.compress(DATA[:100]) + gzip.compress(DATA[100:])
    with open_decompressed(io.BytesIO(blob)) as f:
        assert f.read() == DATA


def test_media_types():
    assert media_type_for("gzip") == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert media_type_for("zstd") == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert media_type_for("none") == "application/vnd.oci.image.layer.v1.tar"
    docker_gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert media_type_for("gzip", docker=True) == docker_gzip
    with pytest.raises(UsageError, match="bzip2"):
        media_type_for("bzip2")
    assert compression_of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert compression_of_media_type("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    assert compression_of_media_type("application/vnd.oci.image.layer.v1.tar") == "none"


def test_gzip_output_is_deterministic_and_valid(tmp_path):
    outs = []
    for _ in range(2):
        c = new_compressor("gzip")
        outs.append(c.compress(DATA) + c.flush())
    assert outs[0] == outs[1]
    blob = outs[0]
    # Fixed header: deflate, no flags (no file name), mtime 0, OS unknown (255) as Go writes.
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    (tmp_path / "x.gz").write_bytes(blob)
    got = subprocess.run(["gzip", "-dc", str(tmp_path / "x.gz")], check=True,
                         capture_output=True).stdout
    assert got == DATA


def test_bad_levels_are_usage_errors():
    with pytest.raises(UsageError, match="level"):
        new_compressor("gzip", 12)
    with pytest.raises(UsageError, match="level"):
        new_compressor("zstd", 0)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_parallel_gzip_output_does_not_depend_on_threads(workers):
    import os as _os
    data = _os.urandom(300_000) + DATA * 60 + b"tail"   # several 1 MiB blocks
    c = new_compressor("gzip", workers=workers)
    blob = b"".join(c.compress(data[i:i + 70_000]) for i in range(0, len(data), 70_000))
    blob += c.flush()
    assert gzip.decompress(blob) == data
    ref = new_compressor("gzip", workers=0)
    assert ref.compress(data) + ref.flush() == blob
