"""Memory does not grow with layer size: a 256 MB layer is copied with a small, bounded RSS."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SIZE = 256 * 1024 * 1024
# VmHWM (peak RSS of this process image) rather than getrusage's ru_maxrss, which Linux carries
# over exec from the forking parent (pytest itself may be larger than the copy).
_RUN = (
    "import sys\n"
    "from trustbuild.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print('maxrss-kb', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # noqa: ANN001
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _big_layout(root: Path) -> None:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tmp = root / "layer.tmp"
    h = hashlib.sha256()

    class Tee(io.RawIOBase):
        def __init__(self, f: io.BufferedWriter) -> None:
            self.f = f

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # noqa: ANN001
            h.update(b)
            return self.f.write(b)

    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=1) as gz,
    ):
        with tarfile.open(fileobj=Tee(gz), mode="w|") as tf:  # type: ignore[arg-type]
            ti = tarfile.TarInfo("big.bin")
            ti.size = SIZE
            tf.addfile(ti, io.BufferedReader(_Zeros(SIZE)))
    diff_id = "sha256:" + h.hexdigest()
    data = tmp.read_bytes()
    ldig = hashlib.sha256(data).hexdigest()
    tmp.rename(blobs / ldig)
    cfg = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    (blobs / hashlib.sha256(cfg).hexdigest()).write_bytes(cfg)
    m = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{ldig}",
                    "size": len(data),
                }
            ],
        }
    ).encode()
    mdig = hashlib.sha256(m).hexdigest()
    (blobs / mdig).write_bytes(m)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{mdig}",
                        "size": len(m),
                        "annotations": {"org.opencontainers.image.ref.name": "big"},
                    }
                ],
            }
        )
    )


def _copy_rss_mb(*args: str) -> float:
    p = subprocess.run(
        [sys.executable, "-c", _RUN, "copy", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    kb = [int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("maxrss-kb")][0]
    return kb / 1024


@pytest.mark.slow
def test_big_layer_is_streamed_through_archive_and_back(tmp_path: Path) -> None:
    _big_layout(tmp_path / "src")
    # oci (gzip) -> docker-archive: decompressed to a 256 MB tar, streamed into the archive
    assert _copy_rss_mb(f"oci:{tmp_path}/src:big", f"docker-archive:{tmp_path}/big.tar:big:1") < 100
    assert (tmp_path / "big.tar").stat().st_size > SIZE
    # docker-archive -> oci: the 256 MB tar is gzip-compressed in one streaming pass
    assert _copy_rss_mb(f"docker-archive:{tmp_path}/big.tar", f"oci:{tmp_path}/back:big") < 100
