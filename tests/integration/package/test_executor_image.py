"""The executor image, built by trustbuild itself, and a build that runs inside it (issue 11).

The session fixture ``executor_image`` (tests/fixtures/executor.py) runs ``executor/build.py``
(what ``make executor`` runs): a debootstrapped Debian base (cached once per machine in
``$TRUSTBUILD_TEST_CACHE``, default ``/var/cache/trustbuild-test``), the trustbuild wheel and
its dependency wheels in the context, pushed to the test registry, signed, with provenance
and an SBOM.

The self-hosting test runs that image as a container with bubblewrap (podman's crun cannot run
on a host with hybrid cgroups, as here): the image's rootfs (unpacked by umoci) as ``/``, its
own mount/PID/IPC/UTS namespaces, the host's network namespace (the registry is on loopback),
the image's ENV, WORKDIR and ENTRYPOINT (read from its config). Inside, trustbuild builds a
FROM + COPY + RUN Dockerfile from ``tar://stdin`` under a policy whose ``spec.executor``
requires the executor's own signature. With all capabilities the entrypoint's ``--mode auto``
picks the normal RUN sandbox; a RUN step contacts a loopback canary, so "denied before any RUN"
is observable. With Docker's default capabilities (no CAP_SYS_ADMIN) on a writable copy of the
rootfs it builds Kaniko's way in ``/`` of the container, which deletes Debian's /usr and /lib:
only the self-contained runtime under /opt/trustbuild is left to run the build and the push.
"""

from __future__ import annotations

import http.server
import io
import json
import platform
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.executor import PASSWORD, context_tar, run_container, skopeo_layout
from fixtures.imagefs import fetch_dir, flatten, read_dir_image

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.privileged, pytest.mark.interop]


@pytest.fixture(scope="module")
def keys(executor_keys: Path) -> Path:
    return executor_keys


@pytest.fixture(scope="module")
def bundle(executor_bundle: Path) -> Path:
    return executor_bundle


_skopeo_layout = skopeo_layout


def test_executor_image_is_signed_attested_and_complete(executor_image: str, keys: Path,
                                                        tmp_path: Path) -> None:
    assert main(["verify", executor_image, "--key", str(keys / "executor.pub")]) == 0
    for kind in ("slsaprovenance", "spdxjson"):
        assert main(["verify-attestation", executor_image, "--key", str(keys / "executor.pub"),
                     "--type", kind]) == 0, kind
    assert main(["verify", executor_image, "--key", str(keys / "other.pub")]) != 0

    layout = tmp_path / "layout"
    _skopeo_layout(executor_image, layout)
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: (layout / "blobs" / "sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))["config"]
    assert config["Entrypoint"] == ["/opt/trustbuild/bin/trustbuild", "build", "--mode", "auto"]
    assert config["WorkingDir"] == "/workspace"
    assert any(e.startswith("PATH=/opt/trustbuild/bin:/opt/trustbuild/runtime/bin:")
               for e in config["Env"])
    assert "TRUSTBUILD_LIBSECCOMP=/opt/trustbuild/runtime/lib/libseccomp.so.2" in config["Env"]
    names: set[str] = set()
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as tf:
            names.update(m.name.removeprefix("./") for m in tf)
    assert "usr/bin/docker-credential-ecr-login" in names
    assert "usr/bin/git" in names
    runtime = "opt/trustbuild/runtime/"
    for name in ("bin/python3.11", "bin/git", "bin/docker-credential-ecr-login",
                 "libexec/git-core/git-remote-https", "lib/ld-linux-x86-64.so.2", "lib/libc.so.6",
                 "lib/libseccomp.so.2", "lib/libssl.so.3", "etc/ssl/certs/ca-certificates.crt"):
        if "ld-linux-x86-64" in name and platform.machine() != "x86_64":
            continue
        assert runtime + name in names, name
    assert not [n for n in names if n.startswith("tmp/wheels/")], "the wheels are in a layer"
    shipped = [n for n in names if n.endswith("/trustbuild/_data/seccomp/build-default.json")]
    assert shipped and all(n.startswith("opt/trustbuild/lib/") for n in shipped), shipped


# ------------------------------------------------------------------ running it (bubblewrap)


class Canary:
    """Counts HTTP requests on a loopback port: the RUN step's proof of running."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ran\n")

            def log_message(self, *a: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.server.shutdown()
    c.server.server_close()


def _context_tar(base: str, port: int) -> bytes:
    files = {
        "Dockerfile": (f"FROM {base}\nCOPY greeting.txt /greeting.txt\n"
                       f"RUN wget -q -O /ran http://127.0.0.1:{port}/ran"
                       " && cat /greeting.txt /ran > /result.txt\nUSER 1000\n").encode(),
        "greeting.txt": b"built inside the executor\n",
    }
    return context_tar(files)


def _policy(path: Path, executor_repo: str, executor_key: str) -> Path:
    path.write_text(f"""apiVersion: trustbuild.dev/v1alpha1
kind: Policy
metadata: {{name: self-hosted}}
spec:
  baseImages:
    allowedRepositories: ["127.0.0.1:*/**"]
  executor:
    image: {executor_repo}
    signatures: [{{key: {executor_key}}}]
  output:
    sign: true
    attestations: [provenance, sbom]
  deploy:
    allowedRepositories: ["127.0.0.1:*/**"]
    signatures: [{{key: release.pub}}]
    attestations: [{{type: slsaprovenance, key: release.pub}}]
""")
    return path


@pytest.mark.parametrize("signed_by", ["executor", "other"])
def test_build_inside_the_executor_container(signed_by: str, bundle: Path, executor_image: str,
                                             registry: Any, busybox_base: str, keys: Path,
                                             canary: Canary, tmp_path: Path) -> None:
    repo = executor_image.split("@")[0]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("release.key", "release.pub", f"{signed_by}.pub"):
        shutil.copy(keys / name, secrets / name)
    policy = _policy(secrets / "policy.yaml", repo, f"{signed_by}.pub")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "tmp").mkdir()
    dest = f"{registry.host}/selfhosted/app-{signed_by}:1"
    r = run_container(
        bundle,
        ["--context", "tar://stdin", "--destination", dest,
         "--policy", "/secrets/policy.yaml", "--sign-key", "/secrets/release.key",
         "--digest-file", "/out/digest"],
        stdin=_context_tar(busybox_base, canary.port),
        env={"TRUSTBUILD_EXECUTOR_IMAGE": executor_image, "TRUSTBUILD_PASSWORD": PASSWORD,
             "HOME": "/root"},
        binds={secrets: "/secrets", out: "/out"}, tmp=tmp_path / "tmp")
    log = (r.stdout + r.stderr).decode(errors="replace")

    if signed_by == "other":
        assert r.returncode != 0, log
        assert "executor-signature" in log, log
        assert canary.hits == [], "a RUN step ran although the gate denied the executor"
        assert not (out / "digest").exists()
        return

    assert r.returncode == 0, log
    assert canary.hits == ["/ran"], log
    assert "building in / of this container" not in log  # auto: the sandbox can start here
    assert "executor-signature" in log, log  # the gate checked the executor and passed
    digest = (out / "digest").read_text().strip()
    image = f"{registry.host}/selfhosted/app-{signed_by}@{digest}"
    assert main(["verify", image, "--policy", str(policy)]) == 0
    assert main(["verify-attestation", image, "--key", str(keys / "release.pub"),
                 "--type", "slsaprovenance"]) == 0
    pulled = tmp_path / "pulled"
    _skopeo_layout(image, pulled)
    index = json.loads((pulled / "index.json").read_text())
    blob = lambda d: (pulled / "blobs" / "sha256" / d.split(":")[1]).read_bytes()  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(blob(manifest["layers"][-1]["digest"]))) as tf:
        member = tf.extractfile("result.txt") or tf.extractfile("./result.txt")
        assert member is not None
        assert member.read() == b"built inside the executor\nran\n"


@pytest.mark.parametrize("context", ["tar", "git"])
def test_kaniko_way_without_cap_sys_admin(context: str, bundle: Path, registry: Any,
                                          busybox_base: str, tmp_path: Path) -> None:
    """``docker run EXECUTOR --context tar://stdin --destination ...`` in a container without
    CAP_SYS_ADMIN: auto mode builds in / of the container; the executor's Debian /usr and /lib
    are replaced by the base image, so the build and the push run on /opt/trustbuild alone.
    A git context is cloned by the relocated git (Debian's git is removed first)."""
    rootfs = tmp_path / "rootfs"  # the container's writable "/": the build replaces it
    subprocess.run(["cp", "-a", str(bundle / "rootfs"), str(rootfs)], check=True, timeout=600)
    out = tmp_path / "out"
    out.mkdir()
    files = {
        "Dockerfile": (b"ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\n"
                       b"RUN cat /etc/passwd > /seen-passwd && cat /hello.txt > /seen-hello"
                       b" && ls /opt > /seen-opt\n"),
        "hello.txt": b"copied just before\n",
    }
    binds = {out: "/out"}
    stdin = b""
    if context == "tar":
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tf:
            for name, data in files.items():
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
        stdin, ctx_flag = raw.getvalue(), "--context=tar://stdin"
    else:
        repo = tmp_path / "repo"
        repo.mkdir()
        for name, data in files.items():
            (repo / name).write_bytes(data)
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
        for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "ctx"]):
            subprocess.run([*git, *args], check=True, capture_output=True, timeout=60)
        binds[repo] = "/repo"
        ctx_flag = "--context=git+file:///repo#refs/heads/main"
        shutil.rmtree(rootfs / "usr" / "lib" / "git-core")
        (rootfs / "usr" / "bin" / "git").unlink()
    dest = f"{registry.host}/kaniko-way/app-{context}:1"
    r = run_container(
        bundle, ["--dockerfile=Dockerfile", ctx_flag, f"--destination={dest}",
                 f"--build-arg=BASE={busybox_base}", "--insecure", "--push-retry=1",
                 "--digest-file=/out/digest"],
        stdin=stdin, env={"container": "bwrap", "HOME": "/root"},
        binds=binds, tmp=None, rootfs=rootfs, privileged=False)
    log = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, log[-4000:]
    assert "building in / of this container" in log, log[-4000:]
    assert not (rootfs / "usr" / "bin" / "python3.11").exists()  # Debian's / is gone
    digest = (out / "digest").read_text().strip()

    image = fetch_dir(f"{registry.host}/kaniko-way/app-{context}@{digest}", tmp_path / "img")
    fs = flatten(image)
    base = flatten(fetch_dir(busybox_base, tmp_path / "base"))
    assert fs["/seen-passwd"].sha256 == base["/etc/passwd"].sha256
    assert fs["/seen-hello"].sha256 == fs["/hello.txt"].sha256
    manifest, _ = read_dir_image(image)
    names: list[str] = []
    for layer in manifest["layers"]:
        with tarfile.open(image / layer["digest"].split(":", 1)[1], "r:*") as tf:
            names += [m.name.removeprefix("./") for m in tf]
    own = ("opt/trustbuild", "kaniko", "workspace", "out", "repo", "proc", "sys", "dev")
    leaked = [n for n in names if any(n == o or n.startswith(o + "/") for o in own)]
    assert not leaked, leaked
    assert set(fs) - set(base) == {"/hello.txt", "/seen-passwd", "/seen-hello", "/seen-opt"}
