#!/usr/bin/env python3
"""Write a docker-archive (``docker save`` format) of a busybox image, with plain Python only.

The image has one layer: ``/bin/busybox`` (from the busybox-static package) with symlinks for a
few applets, ``/etc/passwd`` and ``/etc/group`` with root, ``/root`` and ``/tmp`` (mode 1777).
Everything is deterministic (mtime ``SOURCE_DATE_EPOCH`` or 0, uid/gid 0), so the same busybox
binary always gives the same digests.

Usage: make_busybox_archive.py OUT.tar [--tag busybox:latest] [--busybox /bin/busybox]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
from pathlib import Path

APPLETS = (
    "sh",
    "ls",
    "cat",
    "echo",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "true",
    "false",
    "env",
    "id",
    "sleep",
    "test",
    "grep",
    "sed",
    "wc",
    "touch",
    "chmod",
    "uname",
    "whoami",
)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def _info(
    name: str,
    *,
    kind: bytes = tarfile.REGTYPE,
    mode: int = 0o644,
    size: int = 0,
    link: str = "",
    mtime: int = 0,
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname, ti.mtime = kind, mode, size, link, mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def write_layer(out: Path, *, busybox: str = "/bin/busybox", mtime: int = 0) -> tuple[str, int]:
    """Write the rootfs layer tar to ``out``; returns (``sha256:<hex>`` diff_id, size)."""
    files = {"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "etc/group": b"root:x:0:\n"}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            tf.addfile(_info(f"{d}/", kind=tarfile.DIRTYPE, mode=mode, mtime=mtime))
        with open(busybox, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            tf.addfile(_info("bin/busybox", mode=0o755, size=size, mtime=mtime), f)
        for a in APPLETS:
            tf.addfile(
                _info(f"bin/{a}", kind=tarfile.SYMTYPE, mode=0o777, link="busybox", mtime=mtime)
            )
        for name, data in files.items():
            tf.addfile(_info(name, size=len(data), mtime=mtime), io.BytesIO(data))
    h = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}", out.stat().st_size


def make_config(diff_id: str, *, arch: str | None = None, mtime: int = 0) -> bytes:
    """The image config JSON (Docker/OCI compatible) for the one layer ``diff_id``."""
    import datetime as dt

    created = dt.datetime.fromtimestamp(mtime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = platform.machine()
    cfg = {
        "architecture": arch or _ARCH.get(machine, machine),
        "os": "linux",
        "created": created,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "examples/make_busybox_archive.py"}],
    }
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()


def write_archive(
    out: Path,
    *,
    tag: str | None = "busybox:latest",
    busybox: str = "/bin/busybox",
    arch: str | None = None,
) -> dict[str, str]:
    """Write the docker-archive to ``out``; returns {"config": digest, "diff_id": digest}."""
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="busybox-archive-") as tmp:
        layer = Path(tmp) / "layer.tar"
        diff_id, _ = write_layer(layer, busybox=busybox, mtime=mtime)
        config = make_config(diff_id, arch=arch, mtime=mtime)
        cfg_hex = hashlib.sha256(config).hexdigest()
        layer_name = f"{diff_id.split(':', 1)[1]}/layer.tar"
        manifest = [
            {"Config": f"{cfg_hex}.json", "RepoTags": [tag] if tag else [], "Layers": [layer_name]}
        ]
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
            tf.addfile(_info(f"{cfg_hex}.json", size=len(config), mtime=mtime), io.BytesIO(config))
            tf.addfile(
                _info(f"{diff_id.split(':', 1)[1]}/", kind=tarfile.DIRTYPE, mode=0o755, mtime=mtime)
            )
            with open(layer, "rb") as f:
                tf.addfile(_info(layer_name, size=layer.stat().st_size, mtime=mtime), f)
            data = json.dumps(manifest).encode()
            tf.addfile(_info("manifest.json", size=len(data), mtime=mtime), io.BytesIO(data))
    return {"config": f"sha256:{cfg_hex}", "diff_id": diff_id}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--tag", default="busybox:latest")
    p.add_argument("--busybox", default="/bin/busybox")
    p.add_argument("--arch", default=None, help="architecture recorded in the config")
    a = p.parse_args(argv)
    if not Path(a.busybox).is_file():
        print(
            f"make_busybox_archive: {a.busybox} not found (apt-get install busybox-static)",
            file=sys.stderr,
        )
        return 1
    info = write_archive(Path(a.out), tag=a.tag, busybox=a.busybox, arch=a.arch)
    print(f"wrote {a.out}: config {info['config']}, layer {info['diff_id']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
