"""The CLI's work dir is deleted after the command has returned (off the critical path), and
deleted all the same: nothing of it stays under $TMPDIR, nothing stays mounted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.workdirs import settled_entries

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_the_cli_leaves_its_work_dir_to_a_detached_rm(tmp_path: Path, busybox_base: str,
                                                       registry: Any) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN mkdir -p /many && cd /many && "
                                    "for i in $(seq 1 300); do echo $i > f$i; done\n")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [sys.executable, "-m", "trustbuild", "build", "--context", str(ctx),
         "--destination", f"{registry.host}/removal/app:1"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    # the command has returned; the work dir was renamed aside at once ...
    assert not [p.name for p in tmpdir.iterdir() if p.name.startswith("trustbuild-build-")]
    # ... and the rm it was handed to finishes on its own
    assert settled_entries(tmpdir) == []
    with open("/proc/self/mountinfo") as f:
        assert str(tmpdir) not in f.read()


def test_the_api_removes_its_work_dir_before_close_returns(tmp_path: Path, busybox_base: str,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import io
    import tempfile

    from trustbuild.builder.api import build
    from trustbuild.builder.options import BuildOptions

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN echo hi > /hi\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    opts = BuildOptions(context=str(ctx), no_push=True, output=io.StringIO(),
                        store_options=_insecure(busybox_base))
    with build(opts):
        assert any(work.iterdir())
    assert list(work.iterdir()) == []


def _insecure(ref: str) -> Any:
    from trustbuild.registry.options import StoreOptions

    return StoreOptions(insecure_registries=(ref.split("/")[0],))
