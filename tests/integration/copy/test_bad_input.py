"""Bad input to copy/inspect: one-line error, exit 1, nothing left at the destination."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fixtures.stores import write_plain_layout


def _one_line_error(r, *needles: str) -> None:  # noqa: ANN001
    assert r.code == 1, (r.out, r.err)
    lines = [x for x in r.err.splitlines() if x.startswith("trustbuild: error: ")]
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    for n in needles:
        assert n in lines[0], lines[0]
    assert r.out == ""


def _malformed_layout(path: Path) -> None:
    """A layout whose tagged manifest is not JSON (index.json entry matches its bytes)."""
    write_plain_layout(path, tag="bad")
    raw = b'{"schemaVersion": 2, "config": '
    hexd = hashlib.sha256(raw).hexdigest()
    (path / "blobs" / "sha256" / hexd).write_bytes(raw)
    idx = json.loads((path / "index.json").read_text())
    idx["manifests"][0].update(digest=f"sha256:{hexd}", size=len(raw))
    (path / "index.json").write_text(json.dumps(idx))


def _truncated_layout(path: Path) -> None:
    write_plain_layout(path, tag="bad", layers=2)
    idx = json.loads((path / "index.json").read_text())
    m = json.loads((path / "blobs" / "sha256" / idx["manifests"][0]["digest"][7:]).read_bytes())
    blob = path / "blobs" / "sha256" / m["layers"][1]["digest"][7:]
    blob.write_bytes(blob.read_bytes()[:-7])


@pytest.mark.parametrize(
    "make,needle", [(_malformed_layout, "not valid JSON"), (_truncated_layout, "truncated")]
)
@pytest.mark.parametrize("dest", ["oci", "docker-archive"])
def test_bad_layout_leaves_no_local_destination(
    tb,
    tmp_path: Path,
    make,
    needle: str,  # noqa: ANN001
    dest: str,
) -> None:
    make(tmp_path / "src")
    target = tmp_path / ("dst" if dest == "oci" else "dst.tar")
    r = tb("copy", f"oci:{tmp_path}/src:bad", f"{dest}:{target}")
    _one_line_error(r, f"{tmp_path}/src", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.interop
@pytest.mark.parametrize(
    "make,needle", [(_malformed_layout, "not valid JSON"), (_truncated_layout, "truncated")]
)
def test_bad_layout_pushes_no_tag(tb, registry, tmp_path: Path, make, needle: str) -> None:  # noqa: ANN001
    make(tmp_path / "src")
    repo = f"{registry.host}/bad/{make.__name__.strip('_').replace('_', '-')}"
    r = tb("copy", f"oci:{tmp_path}/src:bad", f"{repo}:v1")
    _one_line_error(r, needle)
    r = tb("inspect", f"{repo}:v1")
    _one_line_error(r, "not found")


def test_missing_tag_and_missing_archive(tb, tmp_path: Path) -> None:  # noqa: ANN001
    write_plain_layout(tmp_path / "src", tag="v1")
    r = tb("copy", f"oci:{tmp_path}/src:v9", f"oci:{tmp_path}/dst")
    _one_line_error(r, "no image tagged 'v9'", "tags: v1")
    r = tb("inspect", f"docker-archive:{tmp_path}/nope.tar")
    _one_line_error(r, f"docker-archive:{tmp_path}/nope.tar", "no such file")
    r = tb("copy", f"docker-archive:{tmp_path}/nope.tar", f"oci:{tmp_path}/dst")
    _one_line_error(r, "no such file")
    r = tb("copy", f"oci:{tmp_path}/nolayout", f"oci:{tmp_path}/dst")
    _one_line_error(r, "no OCI image layout")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_index_to_archive_and_bad_platform(tb, tmp_path: Path) -> None:  # noqa: ANN001
    write_plain_layout(tmp_path / "src", platforms=["linux/amd64", "linux/arm64"])
    r = tb("copy", "--all", f"oci:{tmp_path}/src", f"docker-archive:{tmp_path}/o.tar")
    _one_line_error(r, "drop --all")
    r = tb("copy", "--platform", "linux/mips64", f"oci:{tmp_path}/src", f"oci:{tmp_path}/dst")
    _one_line_error(r, "no image for platform linux/mips64")
    r = tb("copy", "--platform", "linux", f"oci:{tmp_path}/src", f"oci:{tmp_path}/dst")
    assert r.code == 2 and "invalid platform" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.interop
@pytest.mark.parametrize("fault", ["corrupt_blobs", "truncate_blobs"])
def test_registry_serving_bad_blob_fails_the_copy(
    tb,
    registry,
    registry_proxy,
    pushed_image,  # noqa: ANN001
    tmp_path: Path,
    fault: str,
) -> None:
    ref, _ = pushed_image
    setattr(registry_proxy, fault, True)
    src = ref.replace(registry.host, registry_proxy.host)
    for dst in (
        f"oci:{tmp_path}/dst:x",
        f"docker-archive:{tmp_path}/dst.tar",
        f"{registry.host}/bad/{fault.replace('_', '-')}:v1",
    ):
        r = tb("copy", src, dst)
        _one_line_error(r, "blob sha256:", "from docker://")
    assert list(tmp_path.iterdir()) == []
    setattr(registry_proxy, fault, False)
    r = tb("inspect", f"{registry.host}/bad/{fault.replace('_', '-')}:v1")
    _one_line_error(r, "not found")
