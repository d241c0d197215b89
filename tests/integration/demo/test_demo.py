"""`make demo` keeps working: build, sign, attest and verify examples/hello into an OCI layout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.privileged
def test_demo_script_proves_signature_provenance_and_sbom(tmp_path: Path) -> None:
    env = dict(os.environ, DEMO_OUT=str(tmp_path / "demo"))
    p = subprocess.run(["bash", str(REPO / "examples/demo.sh")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = p.stdout[p.stdout.index("image "):]
    assert "signed       by" in summary and "verified" in summary
    assert "provenance   SLSA v1" in summary and "policy     allow" in summary
    assert "sbom         SPDX SPDX-2.3" in summary
    assert "hello from built by trustbuild, running as app" in p.stdout
