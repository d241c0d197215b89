"""Conformance cases with RUN steps give the same image in every snapshot mode.

The build conformance test compares trustbuild (default snapshot mode) with buildah; this one
builds each case that has RUN steps again with ``--snapshot-mode walk`` and ``full`` and
compares the flattened filesystems and configs with the overlay build. QA cases from
tests/assets/conformance that stress the snapshotters (QA_CASES) are built the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures.imagefs import compare_images, fetch_dir, read_dir_image

from trustbuild.cli.main import main

pytestmark = [pytest.mark.privileged, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

CASES_DIR = Path(os.environ.get("TRUSTBUILD_CONFORMANCE_CASES", "/work/shared/conformance/cases"))


def _has_run(d: Path) -> bool:
    df = d / "Dockerfile"
    return df.is_file() and any(line.lstrip().upper().startswith("RUN")
                                for line in df.read_text().splitlines())


CASES = sorted(p.name for p in CASES_DIR.glob("*") if _has_run(p)) if CASES_DIR.is_dir() else []
QA_DIR = Path(__file__).resolve().parents[2] / "assets" / "conformance"
# Writes through one name of a hardlink made in an earlier layer (overlay copy-up, index=on).
QA_CASES = ["hardlink-metadata"]


def _argv(d: Path, base: str, dest: str, mode: str, *extra: str) -> list[str]:
    argv = ["build", *extra, "--context", str(d), "--destination", dest, "--snapshot-mode", mode,
            "--build-arg", f"BASE={base}"]
    if (d / "build-args").is_file():
        for line in (d / "build-args").read_text().splitlines():
            if line.strip():
                argv += ["--build-arg", line.strip()]
    if (d / "target").is_file():
        argv += ["--target", (d / "target").read_text().strip()]
    return argv


def _same_in_every_mode(d: Path, case: str, base: str, host: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Path]:
    dirs = {}
    for mode in ("overlay", "walk", "full"):
        dest = f"{host}/snapmodes/{case}-{mode}:1"
        rc = main(_argv(d, base, dest, mode, *extra))
        assert rc == 0, f"{case} ({mode}) failed: {capsys.readouterr().err[-2000:]}"
        dirs[mode] = fetch_dir(dest, tmp_path / mode)
    for mode in ("walk", "full"):
        diffs = compare_images(dirs[mode], dirs["overlay"])
        assert not diffs, f"{case}: {mode} differs from overlay:\n" + "\n".join(diffs[:40])
    return dirs


@pytest.mark.skipif(not CASES, reason="no shared conformance cases on this machine")
@pytest.mark.parametrize("case", CASES)
def test_case_is_the_same_in_every_snapshot_mode(case: str, busybox_base: str, registry: object,
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _same_in_every_mode(CASES_DIR / case, case, busybox_base,
                        registry.host, tmp_path, capsys)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", QA_CASES)
def test_qa_case_is_the_same_in_every_snapshot_mode(case: str, busybox_base: str,
                                                    registry: object, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    dirs = _same_in_every_mode(QA_DIR / case, f"qa-{case}", busybox_base,
                               registry.host, tmp_path, capsys,  # type: ignore[attr-defined]
                               "--reproducible")
    diff_ids = {m: read_dir_image(d)[1]["rootfs"]["diff_ids"] for m, d in dirs.items()}
    assert diff_ids["walk"] == diff_ids["overlay"] == diff_ids["full"]  # byte for byte
