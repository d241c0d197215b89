"""Conformance: every case in ../shared/conformance/cases built by trustbuild and by buildah must
give the same flattened filesystem and config fields (see the cases' README).

Both images are pushed to the session registry and fetched unchanged with ``skopeo copy
docker://... dir:...``; layers are flattened with plain ``tarfile`` (tests/fixtures/imagefs.py).
buildah runs with a private storage root (vfs driver, no mounts) in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.imagefs import compare_images, fetch_dir

from trustbuild.cli.main import main

CASES_DIR = Path(os.environ.get("TRUSTBUILD_CONFORMANCE_CASES",
                                Path(__file__).resolve().parents[4] / "shared" / "conformance"
                                / "cases"))
if not CASES_DIR.is_dir():
    CASES_DIR = Path("/work/shared/conformance/cases")
OWN_CASES_DIR = Path(__file__).resolve().parents[2] / "assets" / "build" / "conformance"
CASE_DIRS: dict[str, Path] = {}
for _root in (CASES_DIR, OWN_CASES_DIR):
    if _root.is_dir():
        for _p in sorted(_root.iterdir()):
            if (_p / "Dockerfile").is_file():
                CASE_DIRS.setdefault(_p.name, _p)
CASES = sorted(CASE_DIRS)

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def _has_step_runner() -> bool:
    try:
        import trustbuild.sandbox as sb
    except ImportError:
        return False
    return hasattr(sb, "StepRunner")


def _needs_run(case: str) -> bool:
    text = (CASE_DIRS[case] / "Dockerfile").read_text()
    return any(line.lstrip().upper().startswith(("RUN ", "RUN\t"))
               for line in text.splitlines())


def _case_params() -> list[object]:
    out = []
    for case in CASES:
        marks = []
        if _needs_run(case) and not _has_step_runner():
            marks.append(pytest.mark.xfail(reason="RUN needs trustbuild.sandbox.StepRunner",
                                           strict=False))
        out.append(pytest.param(case, marks=marks, id=case))
    return out


def _build_args(case: str, base: str) -> list[str]:
    args = [] if case == "scratch" else [f"BASE={base}"]
    f = CASE_DIRS[case] / "build-args"
    if f.is_file():
        args += [line.strip() for line in f.read_text().splitlines() if line.strip()]
    return args


def _target(case: str) -> str | None:
    f = CASE_DIRS[case] / "target"
    return f.read_text().strip() if f.is_file() else None


@pytest.fixture(scope="module")
def buildah_root() -> Iterator[list[str]]:
    """buildah global flags pointing at a private temp storage (removed afterwards)."""
    if shutil.which("buildah") is None or shutil.which("skopeo") is None:
        pytest.skip("buildah and skopeo are needed for conformance")
    d = tempfile.mkdtemp(prefix="tb-buildah-")
    flags = ["buildah", "--root", f"{d}/root", "--runroot", f"{d}/runroot",
             "--storage-driver", "vfs"]
    try:
        yield flags
    finally:
        subprocess.run([*flags, "rm", "-a"], capture_output=True, timeout=120)
        subprocess.run([*flags, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(d, ignore_errors=True)


def buildah_bud(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a ``buildah bud`` command line; once more when runc under it failed to clone its
    own binary ("sealing memfd copy: Device or resource busy"), a transient of the reference
    tool seen under CI load. Any other failure, or the same one twice, is returned as is."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "sealing memfd copy" in r.stderr:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return r


def _buildah(flags: list[str], case: str, base: str, dest: str) -> None:
    cmd = [*flags, "bud", "--format", "docker", "--isolation", "chroot", "--tls-verify=false",
           "-t", f"localhost/conformance-{case}:1"]
    for a in _build_args(case, base):
        cmd += ["--build-arg", a]
    if _target(case):
        cmd += ["--target", str(_target(case))]
    r = buildah_bud([*cmd, str(CASE_DIRS[case])])
    assert r.returncode == 0, f"buildah bud failed for {case}: {r.stderr[-2000:]}"
    r = subprocess.run([*flags, "push", "--tls-verify=false", f"localhost/conformance-{case}:1",
                        f"docker://{dest}"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"buildah push failed for {case}: {r.stderr[-2000:]}"


@pytest.mark.parametrize("case", _case_params())
def test_case_matches_buildah(case: str, busybox_base: str, registry: object,
                              buildah_root: list[str], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ours = f"{host}/conformance/tb-{case}:1"
    theirs = f"{host}/conformance/bh-{case}:1"
    argv = ["build", "--context", str(CASE_DIRS[case]), "--destination", ours]
    for a in _build_args(case, busybox_base):
        argv += ["--build-arg", a]
    if _target(case):
        argv += ["--target", str(_target(case))]
    rc = main(argv)
    assert rc == 0, f"trustbuild build failed for {case}: {capsys.readouterr().err[-2000:]}"
    _buildah(buildah_root, case, busybox_base, theirs)
    diffs = compare_images(fetch_dir(ours, tmp_path / "tb"), fetch_dir(theirs, tmp_path / "bh"))
    assert not diffs, f"{case}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])
