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
from integration.builder.test_conformance import (
    buildah_bud,
    buildah_root,  # noqa: F401  (fixture)
)

from trustbuild.cli.main import main

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "conformance"
CASES = sorted(p.name for p in ASSETS.iterdir() if (p / "Dockerfile").is_file())

# case -> what trustbuild does differently from buildah (remove once fixed)
XFAIL: dict[str, str] = {
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
    r = buildah_bud([*cmd, str(ctx)])
    assert r.returncode == 0, f"buildah bud failed for {ctx.name}: {r.stderr[-2000:]}"
    r = subprocess.run([*flags, "push", "--tls-verify=false", tag, f"docker://{dest}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"buildah push failed for {ctx.name}: {r.stderr[-2000:]}"


class _Case:
    """One case prepared for building: context copy, build args, target."""

    def __init__(self, case: str, base: str, host: str, work: Path) -> None:
        self.name, self.host = case, host
        self.ctx = _prepare(case, base, work)
        self.args = [f"BASE={base}", *_lines(self.ctx / "build-args")]
        self.target = (_lines(self.ctx / "target") or [None])[0]
        self.parent = f"{host}/conformance-extra/{case}-parent:1"

    def trustbuild(self, dest: str, *extra: str) -> int:
        argv = ["build", "--context", str(self.ctx), "--destination", dest, *extra]
        for a in self.args:
            argv += ["--build-arg", a]
        if self.target:
            argv += ["--target", self.target]
        return main(argv)


@pytest.fixture(scope="module")
def buildah_images(busybox_base: str, registry: object, buildah_root: list[str],  # noqa: F811
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[_Case, Path]]:
    """case -> (prepared case, buildah's image fetched as a skopeo dir), built on first use."""
    host = registry.host  # type: ignore[attr-defined]

    class _Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, case: str) -> tuple[_Case, Path]:
            work = tmp_path_factory.mktemp(f"case-{case}")
            c = _Case(case, busybox_base, host, work / "ctx")
            if (c.ctx / "parent").is_dir():
                _buildah(buildah_root, c.ctx / "parent", [f"BASE={busybox_base}"], None,
                         f"localhost/extra-{case}-parent:1", c.parent)
                c.args.append(f"PARENT={c.parent}")
            theirs = f"{host}/conformance-extra/bh-{case}:1"
            alt = c.ctx / "Dockerfile.buildah"
            _buildah(buildah_root, c.ctx, c.args, c.target, f"localhost/extra-{case}:1", theirs,
                     alt if alt.is_file() else None)
            self[case] = (c, fetch_dir(theirs, work / "bh"))
            return self[case]

    return _Lazy()


@pytest.mark.parametrize("case", _params())
def test_extra_case_matches_buildah(case: str, buildah_images: dict[str, tuple[_Case, Path]],
                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c, theirs = buildah_images[case]
    ours = f"{c.host}/conformance-extra/tb-{case}:1"
    rc = c.trustbuild(ours)
    assert rc == 0, f"trustbuild build failed for {case}: {capsys.readouterr().err[-2000:]}"
    diffs = compare_images(fetch_dir(ours, tmp_path / "tb"), theirs)
    assert not diffs, f"{case}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])


MODE_CASES = ("fs-changes", "hardlink-metadata", "long-names-big-ids", "replace-base-types",
              "snapshot-tricky")


@pytest.mark.parametrize("mode", ["walk", "full"])
@pytest.mark.parametrize("case", MODE_CASES)
def test_snapshot_modes_match_buildah(case: str, mode: str,
                                      buildah_images: dict[str, tuple[_Case, Path]],
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The non-default snapshotters give buildah's filesystem too (the default is above)."""
    c, theirs = buildah_images[case]
    ours = f"{c.host}/conformance-extra/tb-{case}-{mode}:1"
    rc = c.trustbuild(ours, "--snapshot-mode", mode)
    assert rc == 0, f"trustbuild build failed for {case}: {capsys.readouterr().err[-2000:]}"
    diffs = compare_images(fetch_dir(ours, tmp_path / "tb"), theirs)
    assert not diffs, f"{case} ({mode}): {len(diffs)} differences:\n" + "\n".join(diffs[:40])


@pytest.mark.parametrize("flags", [("--compression", "zstd"), ("--image-format", "docker"),
                                   ("--reproducible",)], ids=["zstd", "docker-format", "repro"])
@pytest.mark.parametrize("case", ["fs-changes", "meta-expand"])
def test_output_variants_match_buildah(case: str, flags: tuple[str, ...],
                                       buildah_images: dict[str, tuple[_Case, Path]],
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Layer compression, manifest format and --reproducible change nothing a user sees."""
    c, theirs = buildah_images[case]
    ours = f"{c.host}/conformance-extra/tb-{case}-{flags[-1]}:1"
    rc = c.trustbuild(ours, *flags)
    assert rc == 0, f"trustbuild build failed for {case}: {capsys.readouterr().err[-2000:]}"
    diffs = compare_images(fetch_dir(ours, tmp_path / "tb"), theirs)
    assert not diffs, f"{case} {flags}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])


# --- "How it will be checked": outputs read by other tools, reproducibility, failing RUN -------

OUTPUT_DOCKERFILE = """\
ARG BASE
FROM ${BASE} AS build
COPY tree /tree
RUN mkdir -p /gen/d && echo generated > /gen/d/f && ln -s d/f /gen/link && ln /gen/d/f /gen/hard
FROM ${BASE}
ADD bundle.tgz /opt/
COPY --from=build /gen /gen
COPY --chown=3000000:7 tree/ /owned/
RUN rm /bin/vi && rm -rf /etc/group && echo 'root:x:0:' > /etc/group && chmod 4755 /gen/d/f \
    && mkfifo /gen/fifo && date > /gen/timestamp-free-name && ln /etc/group /etc/group-hard
LABEL purpose=outputs
CMD ["/bin/sh"]
"""


def _output_ctx(root: Path, *, mtime: float) -> Path:
    """A context for output tests; every entry's mtime set to ``mtime``."""
    import gzip
    import io
    import os
    import tarfile

    ctx = root / "ctx"
    (ctx / "tree" / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(OUTPUT_DOCKERFILE.replace(
        "date > /gen/timestamp-free-name", "echo fixed > /gen/timestamp-free-name"))
    (ctx / "tree" / "a.txt").write_text("a\n")
    (ctx / "tree" / "sub" / "b.sh").write_text("#!/bin/sh\necho b\n")
    (ctx / "tree" / "sub" / "b.sh").chmod(0o755)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("pkg/readme")
        info.size, info.mtime = 7, int(mtime)
        tf.addfile(info, io.BytesIO(b"readme\n"))
    (ctx / "bundle.tgz").write_bytes(gzip.compress(raw.getvalue(), mtime=int(mtime)))
    for dirpath, dirnames, filenames in os.walk(ctx):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath) / name, (mtime, mtime))
    os.utime(ctx, (mtime, mtime))
    return ctx


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    exe = Path(sys.executable).with_name("trustbuild")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "trustbuild.cli.main"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _repro_digests(base: str, host: str, tmp: Path, name: str,
                   runs: list[tuple[float, str | None]]) -> list[str]:
    """Digests of ``--reproducible`` builds of the same context copied to a fresh work dir (and
    TMPDIR) per run, with every context mtime set to the run's value."""
    digests = []
    for i, (mtime, epoch) in enumerate(runs):
        root = tmp / f"{name}{i}"
        work = root / "tmp"
        work.mkdir(parents=True)
        ctx = _output_ctx(root, mtime=mtime)
        digest_file = root / "digest"
        env = {"TMPDIR": str(work)}
        if epoch:
            env["SOURCE_DATE_EPOCH"] = epoch
        r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={base}",
                     "--destination", f"{host}/extra-out/{name}:{i}", "--digest-file",
                     str(digest_file), "--reproducible", env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(digest_file.read_text().strip())
    assert all(d.startswith("sha256:") for d in digests)
    return digests


def test_reproducible_across_work_dirs_and_mtimes(busybox_base: str, registry: object,
                                                  tmp_path: Path) -> None:
    host = registry.host  # type: ignore[attr-defined]
    a, b = _repro_digests(busybox_base, host, tmp_path, "repro",
                          [(1_000_000_000, None), (1_600_000_000, None)])
    assert a == b, "context mtimes or the work dir changed a --reproducible digest"
    # SOURCE_DATE_EPOCH older than the context files (a fresh checkout): still one digest
    c, d = _repro_digests(busybox_base, host, tmp_path, "repro-sde",
                          [(1_710_000_000, "1700000000"), (1_720_000_000, "1700000000")])
    assert c == d, "same SOURCE_DATE_EPOCH, different digests"
    _, cfg = _config(host, "extra-out/repro-sde:0", tmp_path / "cfg")
    assert cfg["created"].startswith("2023-11-14T22:13:20")
    assert all(h.get("created", "").startswith("2023-11-14T22:13:20") for h in cfg["history"][1:])


def test_reproducible_source_date_epoch_ignores_older_mtimes(busybox_base: str, registry: object,
                                                             tmp_path: Path) -> None:
    host = registry.host  # type: ignore[attr-defined]
    a, b = _repro_digests(busybox_base, host, tmp_path, "repro-old",
                          [(1_300_000_000, "1700000000"), (1_400_000_000, "1700000000")])
    assert a == b, "--reproducible with SOURCE_DATE_EPOCH: context mtimes changed the digest"


def _hardlinks(d: Path) -> set[tuple[str, str]]:
    """(path, link target) of every hardlink entry still visible in the flattened image."""
    import tarfile

    from fixtures.imagefs import flatten, read_dir_image

    manifest, _ = read_dir_image(d)
    links: dict[str, str] = {}
    for layer in manifest["layers"]:
        with tarfile.open(d / layer["digest"].split(":", 1)[1], mode="r:*") as tf:
            for info in tf:
                name = "/" + info.name.lstrip("./").rstrip("/")
                links.pop(name, None)
                if info.islnk():
                    links[name] = "/" + info.linkname.lstrip("./")
    visible = flatten(d)
    return {(p, t) for p, t in links.items() if p in visible}


def test_copy_from_keeps_hardlinks(busybox_base: str, registry: object,
                                   buildah_root: list[str],  # noqa: F811
                                   tmp_path: Path) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE} AS build\n"
        "RUN mkdir -p /gen/d && echo g > /gen/d/f && chmod 4755 /gen/d/f && ln /gen/d/f /gen/hard\n"
        "FROM ${BASE}\nCOPY --from=build /gen /gen\n")
    ours, theirs = f"{host}/extra-hl/tb:1", f"{host}/extra-hl/bh:1"
    assert main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--destination", ours]) == 0
    _buildah(buildah_root, ctx, [f"BASE={busybox_base}"], None, "localhost/extra-hl:1", theirs)
    a, b = fetch_dir(ours, tmp_path / "tb"), fetch_dir(theirs, tmp_path / "bh")
    assert not compare_images(a, b)
    assert _hardlinks(b) == {("/gen/hard", "/gen/d/f")}  # the reference keeps the link
    assert _hardlinks(a) == _hardlinks(b)


def _config(host: str, ref: str, dest: Path) -> tuple[dict, dict]:
    from fixtures.imagefs import read_dir_image

    return read_dir_image(fetch_dir(f"{host}/{ref}", dest))


def test_tar_path_loads_in_skopeo_and_podman(busybox_base: str, registry: object,
                                             tmp_path: Path) -> None:
    import json

    from fixtures.imagefs import flatten

    host = registry.host  # type: ignore[attr-defined]
    ctx = _output_ctx(tmp_path, mtime=1_500_000_000)
    tar = tmp_path / "image.tar"
    ref = f"{host}/extra-out/archive:7"
    r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--destination", ref, "--tar-path", str(tar))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{tar}"], check=True,
                                    capture_output=True, text=True, timeout=60).stdout)
    assert got["Labels"]["purpose"] == "outputs"
    # the archive holds the same image as the registry: same layers, same flattened filesystem
    from_archive = tmp_path / "from-archive"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{tar}", f"dir:{from_archive}"],
                   check=True, capture_output=True, timeout=120)
    pushed = fetch_dir(ref, tmp_path / "pushed")
    assert not compare_images(from_archive, pushed)
    assert "/bin/vi" not in flatten(from_archive)
    if shutil.which("podman") is None:
        return
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="tbq-", dir="/tmp"))
    store = ["--root", str(short / "root"), "--runroot", str(short / "run"), "--storage-driver",
             "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    try:
        p = subprocess.run(["podman", *store, "load", "-i", str(tar)], capture_output=True,
                           text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        assert ref in p.stdout, p.stdout
        p = subprocess.run(["podman", *store, "image", "inspect", ref], capture_output=True,
                           text=True, timeout=60, check=True)
        img = json.loads(p.stdout)[0]
        _, cfg = _config(host, "extra-out/archive:7", tmp_path / "cfg")
        assert img["RootFS"]["Layers"] == cfg["rootfs"]["diff_ids"]
        assert img["Config"]["Labels"]["purpose"] == "outputs"
    finally:
        subprocess.run(["podman", *store, "rmi", "-a", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(short, ignore_errors=True)


def test_oci_layout_unpacks_with_umoci(busybox_base: str, registry: object,
                                       tmp_path: Path) -> None:
    import stat

    from fixtures.imagefs import flatten

    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    host = registry.host  # type: ignore[attr-defined]
    ctx = _output_ctx(tmp_path, mtime=1_500_000_000)
    layout = tmp_path / "layout"
    ref = f"{host}/extra-out/layout:v3"
    r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--destination", ref, "--oci-layout-path", str(layout))
    assert r.returncode == 0, r.stderr[-2000:]
    tags = subprocess.run(["umoci", "ls", "--layout", str(layout)], check=True,
                          capture_output=True, text=True, timeout=60).stdout.split()
    assert tags == ["v3"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:v3", str(bundle)], check=True,
                   capture_output=True, text=True, timeout=120)
    try:
        rootfs = bundle / "rootfs"
        expected = flatten(fetch_dir(ref, tmp_path / "pushed"))
        seen = {}
        for p in sorted(rootfs.rglob("*")):
            st = p.lstat()
            seen["/" + str(p.relative_to(rootfs))] = (stat.S_IFMT(st.st_mode),
                                                      stat.S_IMODE(st.st_mode), st.st_uid)
        kinds = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
                 "fifo": stat.S_IFIFO}
        want = {p: (kinds[e.type], e.mode, e.uid) for p, e in expected.items()}
        assert seen == want
        sym = rootfs / "gen" / "link"
        assert sym.is_symlink() and str(sym.readlink()) == "d/f"
        assert (rootfs / "etc" / "group").read_text() == "root:x:0:\n"
        etc = rootfs / "etc"
        assert (etc / "group").stat().st_ino == (etc / "group-hard").stat().st_ino
    finally:
        shutil.rmtree(bundle, ignore_errors=True)


def test_failing_run_exits_1_and_pushes_nothing(busybox_base: str, registry: object,
                                                tmp_path: Path) -> None:
    import urllib.request

    from fixtures.imagefs import tag_exists

    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE\nFROM $BASE AS first\nRUN echo ok > /ok\n"
        "FROM $BASE\nCOPY --from=first /ok /ok\n"
        "RUN echo first-line && echo to-stderr >&2 && \\\n    exit 42\nRUN echo never\n")
    r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--destination", f"{host}/extra-fail/a:1", "--destination",
                 f"{host}/extra-fail/b:1", "--tar-path", str(tmp_path / "out.tar"))
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, r.stderr
    assert "Dockerfile:6 RUN echo first-line" in errors[0] and "exit code 42" in errors[0]
    assert "to-stderr" in r.stderr
    assert not tag_exists(host, "extra-fail/a", "1") and not tag_exists(host, "extra-fail/b", "1")
    with urllib.request.urlopen(f"http://{host}/v2/_catalog", timeout=10) as resp:
        assert "extra-fail" not in resp.read().decode()
    assert not (tmp_path / "out.tar").exists()


MISSING_PROGRAM = {
    "no-shell-in-scratch": ("FROM scratch\nCOPY Dockerfile /\nRUN echo hi\n", 3, "/bin/sh"),
    "missing-exec-binary": ("ARG BASE\nFROM $BASE\nRUN [\"/nonexistent\", \"x\"]\n", 3,
                            "/nonexistent"),
    "missing-shell-from-shell": ("ARG BASE\nFROM $BASE\nSHELL [\"/bin/bash\", \"-c\"]\n"
                                 "RUN echo hi\n", 4, "/bin/bash"),
}


@pytest.mark.parametrize("name", sorted(MISSING_PROGRAM))
def test_missing_program_is_one_clear_error(name: str, busybox_base: str, registry: object,
                                            tmp_path: Path) -> None:
    from fixtures.imagefs import tag_exists

    host = registry.host  # type: ignore[attr-defined]
    dockerfile, line, program = MISSING_PROGRAM[name]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--destination", f"{host}/extra-missing/{name}:1")
    assert r.returncode == 1, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("trustbuild: error:")]
    assert len(errors) == 1, r.stderr
    assert f"Dockerfile:{line} RUN" in errors[0] and program in errors[0]
    assert errors[0].count(f"Dockerfile:{line}") == 1, errors[0]
    assert not tag_exists(host, f"extra-missing/{name}", "1")


def test_invalid_seccomp_profile_fails_before_anything_runs(busybox_base: str, registry: object,
                                                           tmp_path: Path) -> None:
    from fixtures.imagefs import tag_exists

    host = registry.host  # type: ignore[attr-defined]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nCOPY Dockerfile /d\n")
    r = _run_cli("build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
                 "--seccomp-profile", str(tmp_path / "missing.json"),
                 "--destination", f"{host}/extra-seccomp/a:1")
    assert r.returncode in (1, 2), r.stderr
    assert "missing.json" in r.stderr
    assert not tag_exists(host, "extra-seccomp/a", "1")
