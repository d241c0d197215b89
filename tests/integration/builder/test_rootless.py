"""Rootless builds (docs/rootless.md): an unprivileged user builds the shared conformance cases
and gets the image root gets.

Each case is copied into a directory the test user owns; root builds it in-process, the user
builds it with ``python -m trustbuild build`` under ``setpriv`` (tests/fixtures/rootless.py);
both push to the session registry and the two images, fetched with ``skopeo copy ... dir:``,
must have the same flattened filesystem (owners and modes included) and config
(tests/fixtures/imagefs.py). The user with a subordinate id range (newuidmap/newgidmap) builds
every case; the user without one (the single-id map) builds every case but those whose RUN
steps need another id (SINGLE_MAP_CANNOT), which must fail with the step's own error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.imagefs import compare_images, fetch_dir
from fixtures.workdirs import settled_entries

from trustbuild.cli.main import main

pytestmark = [pytest.mark.privileged, pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(os.geteuid() != 0, reason="makes users: needs root")]

CASES_DIR = Path(os.environ.get("TRUSTBUILD_CONFORMANCE_CASES",
                                "/work/shared/conformance/cases"))
CASES = sorted(p.name for p in CASES_DIR.iterdir()
               if (p / "Dockerfile").is_file()) if CASES_DIR.is_dir() else []
# With only uid 0 mapped a RUN step can neither chown to another id nor run as one.
SINGLE_MAP_CANNOT = {
    "user-workdir": "RUN chown 1500:1500 (another uid) and USER svc",
}


def _argv(ctx: Path, case: str, base: str, dest: str) -> list[str]:
    argv = ["build", "--context", str(ctx), "--destination", dest]
    if case != "scratch":
        argv += ["--build-arg", f"BASE={base}"]
    if (ctx / "build-args").is_file():
        for line in (ctx / "build-args").read_text().splitlines():
            if line.strip():
                argv += ["--build-arg", line.strip()]
    if (ctx / "target").is_file():
        argv += ["--target", (ctx / "target").read_text().strip()]
    return argv


def _context(user: object, case: str) -> Path:
    """The case copied (modes and symlinks kept) into a directory the user owns."""
    d = user.workdir(f"ctx-{case}-")  # type: ignore[attr-defined]
    ctx = d / case
    shutil.copytree(CASES_DIR / case, ctx, symlinks=True)
    user.own(d)  # type: ignore[attr-defined]
    return ctx


def _homes(user: object) -> tuple[Path, Path]:
    home = user.workdir("home-")  # type: ignore[attr-defined]
    tmp = user.workdir("tmp-")  # type: ignore[attr-defined]
    return home, tmp


def _root_image(ctx: Path, case: str, base: str, host: str, tmp_path: Path,
                capsys: pytest.CaptureFixture[str]) -> Path:
    dest = f"{host}/rootless/root-{case}:1"
    rc = main(_argv(ctx, case, base, dest))
    assert rc == 0, f"root build of {case} failed: {capsys.readouterr().err[-2000:]}"
    return fetch_dir(dest, tmp_path / "root")


@pytest.mark.skipif(not CASES, reason="no shared conformance cases on this machine")
@pytest.mark.parametrize("case", CASES)
def test_case_built_rootless_equals_root(case: str, rootless_users: dict[str, object],
                                         busybox_base: str, registry: object, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    host = registry.host  # type: ignore[attr-defined]
    root_dir = None
    for kind in ("subuid", "single"):
        user = rootless_users[kind]
        ctx = _context(user, case)
        if root_dir is None:
            root_dir = _root_image(ctx, case, busybox_base, host, tmp_path, capsys)
        home, tmp = _homes(user)
        dest = f"{host}/rootless/{kind}-{case}:1"
        res = user.run(_argv(ctx, case, busybox_base, dest), home=home,  # type: ignore[attr-defined]
                       tmp=tmp)
        if kind == "single" and case in SINGLE_MAP_CANNOT:
            assert res.returncode != 0, f"{case} built with a single-id map"
            assert "Invalid argument" in res.stderr or "setuid" in res.stderr, res.stderr[-2000:]
            assert res.stderr.strip().splitlines()[-1].startswith("trustbuild: error: ")
            continue
        assert res.returncode == 0, f"{kind} build of {case} failed: {res.stderr[-3000:]}"
        assert settled_entries(tmp) == [], f"{kind} build of {case} left {settled_entries(tmp)}"
        diffs = compare_images(fetch_dir(dest, tmp_path / kind), root_dir)
        assert not diffs, (f"{case}: the {kind} rootless image differs from root's:\n"
                           + "\n".join(diffs[:40]))


def _write_context(user: object, dockerfile: str) -> Path:
    d = user.workdir("ctx-")  # type: ignore[attr-defined]
    (d / "Dockerfile").write_text(dockerfile)
    (d / "f.txt").write_text("f\n")
    return user.own(d)  # type: ignore[attr-defined]


@pytest.mark.parametrize("snapshot_mode", ["auto", "overlay"])
@pytest.mark.parametrize("kind", ["subuid", "single"])
def test_rootless_build_to_oci_layout_keeps_in_image_owners(
        kind: str, snapshot_mode: str, rootless_users: dict[str, object], busybox_base: str,
        registry: object, tmp_path: Path) -> None:
    """COPY --chown to ids the namespace may not map, then a RUN that rewrites the file: the
    layers carry the in-image owners; the OCI layout belongs to the user. ``overlay``: the
    user-namespace overlay (userxattr) carries the owner record through the copy-up."""
    import json
    import tarfile

    user = rootless_users[kind]
    ctx = _write_context(user, f"FROM {busybox_base} AS src\n"
                               "COPY --chown=4000:4001 f.txt /o.txt\n"
                               f"FROM {busybox_base}\n"
                               "COPY --chown=1000:2000 f.txt /srv/f.txt\n"
                               "COPY --chown=70000:70000 f.txt /srv/far.txt\n"
                               "RUN echo more >> /srv/f.txt && chmod 0640 /srv/f.txt\n"
                               "COPY --from=src /o.txt /srv/from-stage.txt\n")
    out = user.workdir("out-")  # type: ignore[attr-defined]
    home, tmp = _homes(user)
    res = user.run(["build", "--context", str(ctx), "--no-push", "--destination",  # type: ignore[attr-defined]
                    "x/y:1", "--oci-layout-path", str(out / "layout"), "--snapshot-mode",
                    snapshot_mode], home=home, tmp=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    layout = out / "layout"
    assert os.stat(layout / "index.json").st_uid == user.uid  # type: ignore[attr-defined]
    index = json.loads((layout / "index.json").read_text())
    blob = layout / "blobs" / "sha256"
    manifest = json.loads((blob / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    owners = {}
    for layer in manifest["layers"][1:]:
        with tarfile.open(blob / layer["digest"].split(":")[1]) as tf:
            for info in tf:
                assert not any("trustbuild" in k for k in info.pax_headers), info.pax_headers
                owners[info.name] = (info.uid, info.gid, info.mode)
    assert owners["srv/f.txt"] == (1000, 2000, 0o640)
    assert owners["srv/far.txt"][:2] == (70000, 70000)
    assert owners["srv/from-stage.txt"][:2] == (4000, 4001)


def test_failed_rootless_build_leaves_no_temp_files(rootless_users: dict[str, object],
                                                    busybox_base: str) -> None:
    """A RUN that fails after writing files owned by subordinate ids: the build's temp dirs
    (removed inside the namespace, where those ids are mapped) are all gone."""
    user = rootless_users["subuid"]
    ctx = _write_context(user, f"FROM {busybox_base}\n"
                               "RUN mkdir -p /x && touch /x/a && chown -R 1234:1234 /x\n"
                               "RUN touch /y && chown 4321 /y && exit 3\n")
    home, tmp = _homes(user)
    res = user.run(["build", "--context", str(ctx), "--no-push"],  # type: ignore[attr-defined]
                   home=home, tmp=tmp)
    assert res.returncode != 0
    assert "exit code 3" in res.stderr.strip().splitlines()[-1]
    assert settled_entries(tmp) == []


def test_no_user_namespaces_is_one_clear_error(rootless_users: dict[str, object],
                                               busybox_base: str) -> None:
    """Inside bubblewrap's --disable-userns (user.max_user_namespaces=0 for everything in
    it) a rootless build cannot unshare: one line naming the cause, exit 1, nothing built."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is needed to disable user namespaces for one process")
    user = rootless_users["subuid"]
    wrap = ["bwrap", "--dev-bind", "/", "/", "--unshare-user", "--disable-userns", "--"]
    home, tmp = _homes(user)
    probe = subprocess.run(["setpriv", "--reuid", user.name, "--regid", user.name,  # type: ignore[attr-defined]
                            "--init-groups", *wrap, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"bwrap --disable-userns does not work here: {probe.stderr.strip()}")
    ctx = _write_context(user, f"FROM {busybox_base}\nRUN true\n")
    out = user.workdir("out-")  # type: ignore[attr-defined]
    res = user.run(["build", "--context", str(ctx), "--no-push", "--oci-layout-path",  # type: ignore[attr-defined]
                    str(out / "layout")], home=home, tmp=tmp, wrap=wrap)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("trustbuild: error: rootless build: cannot create a user "
                               "namespace")
    assert not (out / "layout").exists()
    assert settled_entries(tmp) == []


def test_rootless_auto_snapshots_keep_hardlinks_linked(rootless_users: dict[str, object],
                                                      busybox_base: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A RUN writing through one name of a file hard-linked in an earlier layer: root's build
    and the rootless one are the same image byte for byte (--reproducible). In a user namespace
    the kernel mounts overlayfs without the inodes index, which would copy up only the written
    name, so ``auto`` takes walk there."""
    import json

    dockerfile = (f"FROM {busybox_base}\n"
                  "RUN mkdir /t && echo a > /t/orig && ln /t/orig /t/link\n"
                  "RUN echo more >> /t/orig && chmod 0600 /t/link\n")
    user = rootless_users["subuid"]
    ctx = _write_context(user, dockerfile)
    out = user.workdir("out-")  # type: ignore[attr-defined]
    home, tmp = _homes(user)
    res = user.run(["build", "--context", str(ctx), "--no-push", "--reproducible",  # type: ignore[attr-defined]
                    "--destination", "x/y:1", "--oci-layout-path", str(out / "user")],
                   home=home, tmp=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    rc = main(["build", "--context", str(ctx), "--no-push", "--reproducible", "--destination",
               "x/y:1", "--oci-layout-path", str(tmp_path / "root")])
    assert rc == 0, capsys.readouterr().err[-2000:]

    def digest(layout: Path) -> str:
        return str(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])

    assert digest(out / "user") == digest(tmp_path / "root")


def test_sigterm_stops_a_rootless_build_and_cleans_up(rootless_users: dict[str, object],
                                                     busybox_base: str) -> None:
    """SIGTERM to the build (the process outside the namespace, as CI sends on cancel) reaches
    the build inside: exit 143, the step killed, every temp dir removed."""
    import signal

    user = rootless_users["subuid"]
    ctx = _write_context(user, f"FROM {busybox_base}\n"
                               "RUN mkdir /x && chown 1234 /x && echo started && sleep 600\n")
    home, tmp = _homes(user)
    cmd = ["setpriv", "--reuid", user.name, "--regid", user.name,  # type: ignore[attr-defined]
           "--init-groups", user.python, "-m", "trustbuild", "build",  # type: ignore[attr-defined]
           "--context", str(ctx), "--no-push"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=user.env(home, tmp), cwd=str(tmp))  # type: ignore[attr-defined]
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "| started" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, "".join(lines) + rest
    assert "trustbuild: terminated" in rest
    assert "sha256:" not in rest  # the build inside stopped, it did not finish after sleep
    assert settled_entries(tmp) == []


def test_unshare_runs_a_command_with_the_build_maps(rootless_users: dict[str, object]) -> None:
    """``trustbuild unshare CMD``: root of the namespace, 0 -> the caller, then the range;
    with no range, 0 only."""
    for kind, rows in (("subuid", 2), ("single", 1)):
        user = rootless_users[kind]
        home, tmp = _homes(user)
        res = user.run(["unshare", "--", "sh", "-c",  # type: ignore[attr-defined]
                        "id -u; cat /proc/self/uid_map; exit 7"], home=home, tmp=tmp)
        assert res.returncode == 7, res.stderr
        out = res.stdout.split("\n")
        assert out[0] == "0"
        maps = [line.split() for line in out[1:] if line.strip()]
        assert maps[0] == ["0", str(user.uid), "1"]  # type: ignore[attr-defined]
        assert len(maps) == rows


def test_single_map_cache_mount_owned_by_another_uid_is_one_clear_error(
        rootless_users: dict[str, object], busybox_base: str) -> None:
    """Only uid 0 is mapped: a cache mount for uid 1000 cannot be made; one line says so."""
    user = rootless_users["single"]
    ctx = _write_context(user, f"FROM {busybox_base}\n"
                               "RUN --mount=type=cache,target=/c,uid=1000 true\n")
    home, tmp = _homes(user)
    res = user.run(["build", "--context", str(ctx), "--no-push"],  # type: ignore[attr-defined]
                   home=home, tmp=tmp)
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("trustbuild: error: ") and "cache mount" in last, res.stderr
    assert "uid=1000" in last and "Traceback" not in res.stderr
    assert settled_entries(tmp) == []


def _run_step_view(layout: Path) -> dict[str, str]:
    """The files the probe's RUN step wrote (the last layer of the layout's image)."""
    import json
    import tarfile

    blob = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((blob / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    with tarfile.open(blob / manifest["layers"][-1]["digest"].split(":")[1]) as tf:
        return {i.name: tf.extractfile(i).read().decode()  # type: ignore[union-attr]
                for i in tf if i.isreg()}


def test_rootless_run_sandbox_has_the_profiles_of_root(rootless_users: dict[str, object],
                                                       busybox_base: str,
                                                       tmp_path: Path) -> None:
    """A RUN step's capabilities, no_new_privs, seccomp mode and network under ``baseline`` and
    ``restricted`` are the same built rootless (subordinate ids) as built by root."""
    user = rootless_users["subuid"]
    ctx = _write_context(user, f"FROM {busybox_base}\n"
                               "RUN grep -E '^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp):' "
                               "/proc/self/status > /status"
                               " && sed -n '3,$p' /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort"
                               " > /net\n")
    home, tmp = _homes(user)
    seen: dict[str, dict[str, str]] = {}
    for profile in ("baseline", "restricted"):
        out = user.workdir("out-")  # type: ignore[attr-defined]
        argv = ["build", "--context", str(ctx), "--no-push", "--security-profile", profile]
        res = user.run([*argv, "--oci-layout-path", str(out / "l")],  # type: ignore[attr-defined]
                       home=home, tmp=tmp)
        assert res.returncode == 0, res.stderr[-3000:]
        assert main([*argv, "--oci-layout-path", str(tmp_path / profile)]) == 0
        rootless, root = _run_step_view(out / "l"), _run_step_view(tmp_path / profile)
        assert rootless == root, f"{profile}: rootless {rootless} != root {root}"
        seen[profile] = dict(line.split(":\t") for line in root["status"].splitlines())
        seen[profile]["net"] = root["net"]
    for status in seen.values():
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2"), status  # filter mode
        assert status["CapEff"] == status["CapBnd"], status  # the step runs as root in the image
    # restricted: CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID SETFCAP and no network
    assert seen["restricted"]["CapBnd"] == "00000000800000db", seen["restricted"]
    assert seen["restricted"]["net"].split() == ["lo"], seen["restricted"]
    assert int(seen["baseline"]["CapBnd"], 16) > int(seen["restricted"]["CapBnd"], 16)
