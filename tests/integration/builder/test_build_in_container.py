"""Container mode (Kaniko's way) for real: trustbuild runs inside a bubblewrap container without
CAP_SYS_ADMIN (tests/fixtures/containerbox.py), so ``--mode auto`` cannot start the RUN sandbox
and builds in "/" of that container. Images are pushed to the session registry and compared with
the same build in the normal (sandbox) mode on the host, fetched with ``skopeo``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.containerbox import ContainerBox, available
from fixtures.imagefs import compare_images, fetch_dir, flatten, read_dir_image
from test_conformance import CASE_DIRS, CASES, _build_args, _target

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.interop]


@pytest.fixture(scope="module")
def box() -> Iterator[ContainerBox]:
    why = available()
    if why:
        pytest.skip(f"container mode tests need bubblewrap and patchelf: {why}")
    with tempfile.TemporaryDirectory(prefix="tb-box-") as d:
        yield ContainerBox(Path(d))


def _in_box(box: ContainerBox, args: list[str], workspace: Path, **kw: object
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.argv(args, workspace=workspace, **kw),  # type: ignore[arg-type]
                          capture_output=True, text=True, timeout=600)


def _layer_names(image_dir: Path) -> list[str]:
    """Every entry name of every layer of a ``dir:`` image."""
    import tarfile

    manifest, _ = read_dir_image(image_dir)
    names = []
    for layer in manifest["layers"]:
        with tarfile.open(image_dir / layer["digest"].split(":", 1)[1], "r:*") as tf:
            names += [m.name.lstrip("./") for m in tf.getmembers()]
    return names


def test_run_sees_the_base_image_and_copied_files(box: ContainerBox, busybox_base: str,
                                                  registry: object, tmp_path: Path) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "hello.txt").write_text("copied just before\n")
    (ws / "ctx" / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\n"
        "RUN cat /etc/passwd > /seen-passwd && cat /hello.txt > /seen-hello "
        "&& ls -a / > /seen-root && echo changed > /tmp/new\n")
    dest = f"{host}/container-mode/basics:1"
    r = _in_box(box, ["build", "--context", "/workspace/ctx", "--destination", dest,
                      "--build-arg", f"BASE={busybox_base}", "--log-format", "json"], ws)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "building in / of this container" in r.stderr
    record = json.loads(r.stdout)["record"]
    assert (record["mode"], record["snapshot_mode"]) == ("container", "walk")
    image = fetch_dir(dest, tmp_path / "img")
    fs = flatten(image)
    base = flatten(fetch_dir(busybox_base, tmp_path / "base"))
    assert fs["/seen-passwd"].sha256 == base["/etc/passwd"].sha256
    assert fs["/seen-hello"].sha256 == fs["/hello.txt"].sha256
    # the executor's own files and mounts are in no layer
    names = _layer_names(image)
    own = ("kaniko", "workspace", "work", "root/.pyenv", "proc", "sys", "dev", "etc/mtab",
           str(box.prefix).lstrip("/"), str(box.site).lstrip("/"))
    leaked = [n for n in names if any(n == o or n.startswith(o + "/") for o in own)]
    assert not leaked, leaked
    assert set(fs) - set(base) == {"/hello.txt", "/seen-passwd", "/seen-hello", "/seen-root",
                                   "/tmp/new"}


def test_sbom_lists_the_image_not_the_executor(box: ContainerBox, busybox_base: str,
                                               registry: object, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from trustbuild.sign.keys import generate_key_pair

    host = registry.host  # type: ignore[attr-defined]
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    key, pub = generate_key_pair(str(ws / "cosign"), password=b"pw")
    (ws / "ctx" / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nRUN mkdir -p /usr/lib/python3/site-packages/app-1.0.dist-info "
        "&& printf 'Metadata-Version: 2.1\\nName: app\\nVersion: 1.0\\n' "
        "> /usr/lib/python3/site-packages/app-1.0.dist-info/METADATA\n")
    dest = f"{host}/container-mode/sbom:1"
    r = _in_box(box, ["build", "--context", "/workspace/ctx", "--destination", dest,
                      "--build-arg", f"BASE={busybox_base}", "--sign-key",
                      f"/workspace/{Path(key).name}", "--attest", "sbom"], ws,
                extra=["--setenv", "TRUSTBUILD_PASSWORD", "pw"])
    assert r.returncode == 0, r.stderr[-3000:]
    capsys.readouterr()
    assert main(["verify-attestation", dest, "--key", str(pub), "--type", "spdxjson"]) == 0
    sbom = capsys.readouterr().out
    assert '"app"' in sbom
    assert "cryptography" not in sbom and "pytest" not in sbom  # the executor's own packages


def test_a_tar_context_is_unpacked_under_the_kaniko_dir(box: ContainerBox, busybox_base: str,
                                                        registry: object, tmp_path: Path) -> None:
    import tarfile

    host = registry.host  # type: ignore[attr-defined]
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nCOPY Dockerfile /df\nRUN ls -a /tmp > /tmp-listing\n")
    with tarfile.open(ws / "ctx.tar", "w") as tf:
        tf.add(ws / "ctx" / "Dockerfile", "Dockerfile")
    dest = f"{host}/container-mode/tar-context:1"
    # the container has a /tmp of its own, where temp files go by default
    r = _in_box(box, ["build", "--context", "tar:///workspace/ctx.tar", "--destination", dest,
                      "--build-arg", f"BASE={busybox_base}"], ws,
                extra=["--perms", "1777", "--dir", "/tmp"])
    assert r.returncode == 0, r.stderr[-3000:]
    image = fetch_dir(dest, tmp_path / "img")
    import hashlib

    assert flatten(image)["/tmp-listing"].sha256 == hashlib.sha256(b".\n..\n").hexdigest()


def test_copy_never_writes_onto_the_ignore_list(box: ContainerBox, busybox_base: str,
                                               tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "x").write_text("planted\n")
    (ws / "ctx" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nCOPY x /kaniko/x\n")
    r = _in_box(box, ["build", "--context", "/workspace/ctx", "--no-push", "--tar-path",
                      "/workspace/out.tar", "--build-arg", f"BASE={busybox_base}"], ws)
    assert r.returncode == 1
    assert "Dockerfile:3 COPY" in r.stderr and "ignore list" in r.stderr, r.stderr


def test_refused_outside_a_container(box: ContainerBox, busybox_base: str,
                                     tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN touch /x\n")
    marker = ws / "kept"
    marker.write_text("must survive\n")
    r = _in_box(box, ["build", "--context", "/workspace/ctx", "--no-push", "--tar-path",
                      "/workspace/out.tar", "--mode", "container",
                      "--build-arg", f"BASE={busybox_base}"], ws, container_env=False)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not look like a container" in lines[0], r.stderr
    # auto leaves / alone there: the RUN step fails with the sandbox's error
    r = _in_box(box, ["build", "--context", "/workspace/ctx", "--no-push", "--tar-path",
                      "/workspace/out.tar", "--build-arg", f"BASE={busybox_base}"], ws,
                container_env=False)
    assert r.returncode == 1, r.stderr
    assert "/ is left alone" in r.stderr
    assert "Dockerfile:3 RUN" in r.stderr and "cannot create namespaces" in r.stderr
    assert marker.read_text() == "must survive\n"
    assert not (ws / "out.tar").exists()


@pytest.mark.parametrize("case", CASES)
def test_conformance_case_matches_sandbox_mode(case: str, box: ContainerBox, busybox_base: str,
                                               registry: object, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ours = f"{host}/container-mode/sandbox-{case}:1"
    theirs = f"{host}/container-mode/container-{case}:1"
    extra: list[str] = []
    for a in _build_args(case, busybox_base):
        extra += ["--build-arg", a]
    if _target(case):
        extra += ["--target", str(_target(case))]
    rc = main(["build", "--mode", "chroot", "--context", str(CASE_DIRS[case]),
               "--destination", ours, *extra])
    assert rc == 0, capsys.readouterr().err[-2000:]
    ws = tmp_path / "ws"
    ws.mkdir()
    # the context stays where it is (a read-only bind at its path, like a volume)
    r = _in_box(box, ["build", "--mode", "container", "--context", str(CASE_DIRS[case]),
                      "--destination", theirs, *extra], ws,
                extra=["--ro-bind", str(CASE_DIRS[case]), str(CASE_DIRS[case])])
    assert r.returncode == 0, r.stderr[-3000:]
    diffs = compare_images(fetch_dir(ours, tmp_path / "sandbox"),
                           fetch_dir(theirs, tmp_path / "container"))
    assert not diffs, f"{case}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])


def test_cache_in_container_mode(box: ContainerBox, busybox_base: str, registry: object,
                                 tmp_path: Path) -> None:
    """--cache and the layer store work in "/" too: the rebuild takes every step from the
    cache, and the store (on the ignore list) survives the wipe and stays out of the image."""
    host = registry.host  # type: ignore[attr-defined]
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "a.txt").write_text("a\n")
    (ws / "ctx" / "Dockerfile").write_text(
        "ARG BASE\nFROM ${BASE}\nWORKDIR /app\nCOPY a.txt .\nRUN cat a.txt a.txt > b.txt\n")
    argv = ["build", "--context", "/workspace/ctx", "--build-arg", f"BASE={busybox_base}",
            "--cache", "--cache-dir", "/workspace/store", "--log-format", "json"]
    for tag, want in (("1", [False] * 3), ("2", [True] * 3)):
        dest = f"{host}/container-mode/cached:{tag}"
        r = _in_box(box, [*argv, "--destination", dest], ws)
        assert r.returncode == 0, r.stderr[-3000:]
        steps = json.loads(r.stdout)["record"]["steps"]
        assert [s["cached"] for s in steps if s["instruction"] != "FROM"] == want, r.stderr
    assert any((ws / "store" / "blobs" / "sha256").iterdir())
    names = _layer_names(fetch_dir(dest, tmp_path / "img"))
    assert "app/b.txt" in names and not [n for n in names if "store" in n]
