"""Gzip layers are inflated on a thread ahead of the reader: same bytes and the same refusals
as Python's gzip module (and Go's compress/gzip, which registries' layers come from)."""

from __future__ import annotations

import gzip
import io
import os
import threading
import zlib

import pytest

from trustbuild.oci import compression
from trustbuild.oci.compression import DECOMPRESS_ERRORS, open_decompressed

BIG = os.urandom(1 << 16) * 64 + b"tail"  # 4 MiB: several read-ahead pieces


def _read(blob: bytes, chunk: int = -1) -> bytes:
    out = bytearray()
    with open_decompressed(io.BytesIO(blob)) as f:
        while piece := f.read(chunk):
            out += piece
            if chunk < 0:
                break
    return bytes(out)


@pytest.mark.parametrize("chunk", [-1, 1, 10240, 1 << 20])
def test_output_equals_gzip_module(chunk: int) -> None:
    blob = gzip.compress(BIG, compresslevel=1)
    assert _read(blob, chunk) == gzip.decompress(blob) == BIG


def test_members_and_zero_padding_are_read_as_gzip_reads_them() -> None:
    blob = (gzip.compress(BIG[:1000]) + b"\0" * 7 + gzip.compress(BIG[1000:])
            + b"\0" * 512)  # a tar-style padded stream
    assert _read(blob) == gzip.decompress(blob) == BIG


def test_a_highly_compressible_member_comes_out_whole() -> None:
    zeros = b"\0" * (32 << 20)  # ~32 KiB compressed: output held back by zlib piece by piece
    assert _read(gzip.compress(zeros), 1 << 16) == zeros


@pytest.mark.parametrize("damage", ["truncated", "crc", "garbage-after", "bad-deflate"])
def test_damaged_streams_are_refused(damage: str) -> None:
    blob = bytearray(gzip.compress(BIG[:200000]))
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "crc":
        blob[-6] ^= 0xFF  # CRC-32 in the trailer
    elif damage == "garbage-after":
        blob += b"PK not gzip"
    else:
        blob[40] ^= 0xFF
    with pytest.raises(DECOMPRESS_ERRORS):
        gzip.decompress(bytes(blob))
    with pytest.raises(DECOMPRESS_ERRORS):
        _read(bytes(blob), 1 << 16)


def test_closing_early_stops_the_thread() -> None:
    before = {t.ident for t in threading.enumerate()}
    with open_decompressed(io.BytesIO(gzip.compress(BIG, compresslevel=1))) as f:
        assert f.read(10) == BIG[:10]  # the producer is now blocked on a full queue
    left = [t for t in threading.enumerate() if t.ident not in before and t.name == "gunzip"]
    assert left == []


def test_memory_ahead_of_the_reader_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, wbits: int) -> None:
            self._d = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            assert 0 < max_length <= compression._READ_AHEAD_OUT
            out = self._d.decompress(data, max_length)
            seen.append(len(out))
            return out

        def __getattr__(self, name: str) -> object:
            return getattr(self._d, name)

    monkeypatch.setattr(compression.zlib, "decompressobj", Counting)
    with open_decompressed(io.BytesIO(gzip.compress(b"\0" * (64 << 20)))) as f:
        f.read(1)
        threading.Event().wait(0.3)  # let the producer run as far ahead as it may
        ahead = sum(seen)
    assert ahead <= (compression._READ_AHEAD_DEPTH + 2) * compression._READ_AHEAD_OUT
