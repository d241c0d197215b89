"""docs/api.md's example runs as written, and ``import trustbuild`` offers the public API."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import trustbuild

ROOT = Path(__file__).resolve().parents[3]


def test_the_public_api_is_importable_from_the_package() -> None:
    for name in ("build", "sign", "verify", "attest", "verify_attestation", "BuildResult"):
        assert callable(getattr(trustbuild, name))
    with pytest.raises(AttributeError):
        trustbuild.no_such_thing  # noqa: B018


def test_build_takes_build_options_fields_as_keywords(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_field'"):
        trustbuild.build(tmp_path, oci_layout_path=str(tmp_path / "out"), no_such_field=1)
    assert not (tmp_path / "out").exists()  # refused before anything ran


@pytest.mark.privileged
@pytest.mark.slow
def test_the_documented_example_builds_signs_and_verifies(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("needs Debian's busybox-static")
    text = (ROOT / "docs" / "api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", "example-password")
    exec(compile(code, "docs/api.md", "exec"),
         {"EXAMPLES": ROOT / "examples", "POLICIES": ROOT / "policies"})
    # what the example wrote is a real, signed OCI layout
    index = (tmp_path / "layout" / "index.json").read_text()
    assert "sha256:" in index
    assert shutil.which("skopeo") is None or (tmp_path / "layout" / "oci-layout").is_file()
