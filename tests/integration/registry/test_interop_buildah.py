"""Images pushed by buildah (independent tool) are read correctly from the real registry."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.registry import RegistryServer

from trustbuild.oci.manifest import Manifest, parse_manifest
from trustbuild.registry import RegistryStore
from trustbuild.registry.options import StoreOptions

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def buildah() -> Iterator[list[str]]:
    """buildah with a private vfs storage root in a temp dir (removed afterwards)."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah not installed")
    d = tempfile.mkdtemp(prefix="tb-buildah-reg-")
    flags = ["buildah", "--root", f"{d}/root", "--runroot", f"{d}/runroot",
             "--storage-driver", "vfs"]
    try:
        yield flags
    finally:
        subprocess.run([*flags, "rm", "--all"], capture_output=True, timeout=60)
        subprocess.run(["umount", "-R", f"{d}/root"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("fmt,media_type", [
    ("oci", "application/vnd.oci.image.manifest.v1+json"),
    ("docker", "application/vnd.docker.distribution.manifest.v2+json"),
])
def test_reads_image_pushed_by_buildah(buildah: list[str], registry: RegistryServer, tmp_path: Path,
                                       fmt: str, media_type: str) -> None:
    def run(*args: str) -> str:
        r = subprocess.run([*buildah, *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"buildah {args[0]} failed: {r.stderr[-1500:]}"
        return r.stdout.strip()

    payload = tmp_path / "payload.txt"
    payload.write_text(f"pushed by buildah as {fmt}\n")
    ctr = run("from", "scratch")
    run("copy", ctr, str(payload), "/payload.txt")
    run("config", "--cmd", "/payload.txt", "--os", "linux", "--arch", "amd64", ctr)
    image = f"localhost/tb-buildah-{fmt}:v1"
    run("commit", "--format", fmt, ctr, image)
    run("push", "--tls-verify=false", image, f"docker://{registry.host}/interop/buildah-{fmt}:v1")

    store = RegistryStore(registry.host, f"interop/buildah-{fmt}", StoreOptions(), credentials=None)
    raw, mt = store.get_manifest("v1")
    assert mt == media_type
    m = parse_manifest(raw, mt)
    assert isinstance(m, Manifest)
    store.fetch_blob(m.config, tmp_path / "config")
    config = json.loads((tmp_path / "config").read_bytes())
    assert config["config"]["Cmd"] == ["/payload.txt"]
    assert len(m.layers) == len(config["rootfs"]["diff_ids"]) == 1
    store.fetch_blob(m.layers[0], tmp_path / "layer")
    data = (tmp_path / "layer").read_bytes()
    tar = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    assert "sha256:" + hashlib.sha256(tar).hexdigest() == config["rootfs"]["diff_ids"][0]
    assert f"pushed by buildah as {fmt}".encode() in tar
