"""The BuildRecord (and so the provenance) names the snapshot mode that actually ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild.builder.api import build
from trustbuild.builder.options import BuildOptions

pytestmark = pytest.mark.privileged


def test_record_names_the_snapshot_mode_that_ran(busybox_base: str, tmp_path: Path) -> None:
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN touch /x\n")
    for mode in ("walk", "auto"):
        with build(BuildOptions(context=str(ctx), no_push=True, snapshot_mode=mode,
                                oci_layout_path=str(tmp_path / mode))) as r:
            assert r.record.snapshot_mode in ("overlay", "walk", "full")
            if mode == "walk":
                assert r.record.snapshot_mode == "walk"
