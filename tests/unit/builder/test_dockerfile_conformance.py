"""Every Dockerfile of the shared conformance cases parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild.builder.dockerfile import parse_dockerfile

CASES = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "cases"
DOCKERFILES = sorted(CASES.glob("*/Dockerfile"))


@pytest.mark.skipif(not DOCKERFILES, reason="shared conformance cases not present")
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_conformance_case_parses(path: Path) -> None:
    df = parse_dockerfile(path.read_text(), path=str(path))
    assert df.stages
    for stage in df.stages:
        for inst in stage.instructions:
            assert inst.line >= stage.line
