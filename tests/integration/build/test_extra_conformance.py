"""QA conformance cases (tests/assets/conformance/*) built by trustbuild and by buildah.

Each case is compared exactly as ``test_conformance.py`` compares the shared cases: both images
pushed to the session registry, fetched unchanged with ``skopeo copy docker://.. dir:..`` and
compared with :func:`fixtures.imagefs.compare_images` (flattened filesystem + config fields).
buildah's private storage comes from that module's ``buildah_root`` fixture.

Adapter for what a static case directory cannot say (documented in the assets README):

- ``@BASE@`` in a Dockerfile is replaced by the busybox base reference (buildah 1.28 does not
  expand ARGs in ``COPY --from``, so an external image must be written literally);
- a ``parent/`` sub-directory is a build context built first by buildah and pushed; its
  reference is passed to both builds as ``--build-arg PARENT=<ref>`` (ONBUILD in a child build);
- ``Dockerfile.buildah`` is what buildah builds instead of ``Dockerfile`` when buildah 1.28 lacks
  the syntax (heredocs); it must describe the same filesystem by Docker's documented rules.

Cases that currently differ are ``xfail(strict=True)`` with the difference in the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.imagefs import compare_images, fetch_dir
from integration.build.test_conformance import buildah_root  # noqa: F401  (fixture)

from trustbuild.cli.main import main

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "conformance"
CASES = sorted(p.name for p in ASSETS.iterdir() if (p / "Dockerfile").is_file())

# case -> what trustbuild does differently from buildah (remove once fixed)
XFAIL: dict[str, str] = {
    "workdir-user": "RUN under USER <name> gets no supplementary groups from /etc/group "
                    "(handlers/run.py passes uid:gid to the sandbox)",
    "workdir-numeric-user": "WORKDIR made under USER <uid> without passwd entry is owned "
                            "uid:0, buildah uid:uid (as --chown)",
    "hardlink-metadata": "overlay snapshot: chmod/chown/append through one name of a hardlink made "
                         "in an earlier layer leaves the other names unchanged (walk/full agree "
                         "with buildah)",
    "shell-form-with-shell": "buildah 1.28 ignores SHELL for shell-form CMD (writes /bin/sh -c); "
                             "trustbuild follows Docker's docs",
}

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def _params() -> list[object]:
    out = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[case])] if case in XFAIL else []
        out.append(pytest.param(case, marks=marks, id=case))
    return out


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _prepare(case: str, base: str, work: Path) -> Path:
    """A copy of the case context with ``@BASE@`` substituted (see the module docstring)."""
    ctx = work / case
    shutil.copytree(ASSETS / case, ctx, symlinks=True)
    for name in ("Dockerfile", "Dockerfile.buildah"):
        f = ctx / name
        if f.is_file():
            f.write_text(f.read_text().replace("@BASE@", base))
    return ctx


def _buildah(flags: list[str], ctx: Path, args: list[str], target: str | None, tag: str,
             dest: str, dockerfile: Path | None = None) -> None:
    cmd = [*flags, "bud", "--format", "docker", "--isolation", "chroot", "--tls-verify=false",
           "-t", tag]
    for a in args:
        cmd += ["--build-arg", a]
    if target:
        cmd += ["--target", target]
    if dockerfile is not None:
        cmd += ["-f", str(dockerfile)]
    r = subprocess.run([*cmd, str(ctx)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"buildah bud failed for {ctx.name}: {r.stderr[-2000:]}"
    r = subprocess.run([*flags, "push", "--tls-verify=false", tag, f"docker://{dest}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"buildah push failed for {ctx.name}: {r.stderr[-2000:]}"


@pytest.mark.parametrize("case", _params())
def test_extra_case_matches_buildah(case: str, busybox_base: str, registry: object,
                                    buildah_root: list[str],  # noqa: F811
                                    tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = _prepare(case, busybox_base, tmp_path / "ctx")
    args = [f"BASE={busybox_base}", *_lines(ctx / "build-args")]
    target = (_lines(ctx / "target") or [None])[0]
    if (ctx / "parent").is_dir():
        parent = f"{host}/conformance-extra/{case}-parent:1"
        _buildah(buildah_root, ctx / "parent", [f"BASE={busybox_base}"], None,
                 f"localhost/extra-{case}-parent:1", parent)
        args.append(f"PARENT={parent}")
    ours = f"{host}/conformance-extra/tb-{case}:1"
    theirs = f"{host}/conformance-extra/bh-{case}:1"
    argv = ["build", "--context", str(ctx), "--destination", ours]
    for a in args:
        argv += ["--build-arg", a]
    if target:
        argv += ["--target", target]
    rc = main(argv)
    assert rc == 0, f"trustbuild build failed for {case}: {capsys.readouterr().err[-2000:]}"
    alt = ctx / "Dockerfile.buildah"
    _buildah(buildah_root, ctx, args, target, f"localhost/extra-{case}:1", theirs,
             alt if alt.is_file() else None)
    diffs = compare_images(fetch_dir(ours, tmp_path / "tb"), fetch_dir(theirs, tmp_path / "bh"))
    assert not diffs, f"{case}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])
