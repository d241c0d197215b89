"""This wave's features inside the executor image, run as a container (tests/fixtures/executor.py:
built once per session by trustbuild, run with bubblewrap as ``podman run --network host``).

- ``--keyless`` with the CI's ambient OIDC token, as the CI templates run it: GitLab's
  ``id_tokens`` (``SIGSTORE_ID_TOKEN`` + ``GITLAB_CI``) and GitHub Actions' token endpoint
  (``ACTIONS_ID_TOKEN_REQUEST_URL``/``_TOKEN``, what ``permissions: id-token: write`` gives),
  against the fake Sigstore; the host verifies the result with the fake's trusted root.
- ``--secret`` from a mounted file and from the container's environment.
- ``--custom-platform linux/amd64,linux/arm64`` in a privileged container: the arm64 RUN runs
  under the host's qemu-user-static binfmt handler (binfmt_misc is global to the kernel; the
  container mounts it to check the handler).
- Rootless inside the container: the executor run as uid 1000 with no capabilities (a pod with
  ``runAsNonRoot``); the image has no ``newuidmap``, so the build uses the single-id map.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.executor import context_tar, run_container
from fixtures.fake_sigstore import FakeSigstore, identity_token
from fixtures.imagefs import fetch_dir, read_dir_image
from fixtures.images import ARM64_BUSYBOX, write_busybox_index
from fixtures.workdirs import settled_entries

from trustbuild.cli.main import main
from trustbuild.oci.descriptor import Platform

pytestmark = [pytest.mark.slow, pytest.mark.privileged, pytest.mark.interop]
EMAIL = "executor-ci@fake.test"
ISSUER = "https://issuer.fake.test"


def _image_files(ref: str, dest: Path) -> dict[str, tuple[bytes, int]]:
    """{path: (content, uid)} of the regular files in every layer but the base's."""
    d = fetch_dir(ref, dest)
    out: dict[str, tuple[bytes, int]] = {}
    for layer in read_dir_image(d)[0]["layers"][1:]:
        with tarfile.open(d / layer["digest"].split(":", 1)[1], "r:*") as tf:
            for ti in tf:
                f = tf.extractfile(ti) if ti.isfile() else None
                if f is not None:
                    out[ti.name.removeprefix("./")] = (f.read(), ti.uid)
    return out


def _log(r: subprocess.CompletedProcess[bytes]) -> str:
    return (r.stdout + r.stderr).decode(errors="replace")


@pytest.fixture
def sigstore(tmp_path: Path) -> Iterator[tuple[FakeSigstore, Path]]:
    """The fake Sigstore and a directory with its ``trust_config.json`` / ``trusted_root.json``."""
    d = tmp_path / "sigstore"
    d.mkdir()
    with FakeSigstore() as fake:
        fake.write_trust_files(d)
        yield fake, d


@pytest.mark.parametrize("ci", ["gitlab", "github"])
def test_keyless_with_the_ambient_ci_token(ci: str, executor_bundle: Path, registry: Any,
                                           busybox_base: str, tmp_path: Path,
                                           sigstore: tuple[FakeSigstore, Path]) -> None:
    fake, trust = sigstore
    token = identity_token(EMAIL, ISSUER)
    if ci == "gitlab":  # id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore
        env = {"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": token}
    else:  # permissions: id-token: write
        fake.github_token, fake.github_request_token = token, "gh-request-token"
        env = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-request-token",
               "ACTIONS_ID_TOKEN_REQUEST_URL": f"{fake.url}/github-oidc?api-version=2.0"}
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "tmp").mkdir()
    image = f"{registry.host}/executor-keyless/{ci}:1"
    r = run_container(
        executor_bundle,
        ["--context", "tar://stdin", "--destination", image, "--keyless",
         "--sigstore-trust-config", "/sigstore/trust_config.json", "--attest", "provenance",
         "--digest-file", "/out/digest"],
        stdin=context_tar({"Dockerfile": f"FROM {busybox_base}\nCOPY app.txt /app.txt\n".encode(),
                    "app.txt": b"signed keyless in the executor\n"}),
        env={"HOME": "/root", **env}, binds={trust: "/sigstore", out: "/out"},
        tmp=tmp_path / "tmp")
    log = _log(r)
    assert r.returncode == 0, log[-4000:]
    assert token.split(".")[1] not in log
    assert len(fake.issued) == 2  # the signature's certificate and the provenance's
    if ci == "github":
        assert fake.github_audiences and set(fake.github_audiences) == {"sigstore"}
    digest = (out / "digest").read_text().strip()
    flags = ["--certificate-identity", EMAIL, "--certificate-oidc-issuer", ISSUER,
             "--trusted-root", str(trust / "trusted_root.json")]
    ref = f"{registry.host}/executor-keyless/{ci}@{digest}"
    assert main(["verify", *flags, ref]) == 0
    assert main(["verify-attestation", "--type", "slsaprovenance", *flags, ref]) == 0


def test_keyless_without_a_token_fails_before_building(executor_bundle: Path, registry: Any,
                                                        busybox_base: str,
                                                        tmp_path: Path) -> None:
    """GitLab without ``id_tokens``: one line naming the missing variable, nothing pushed."""
    (tmp_path / "tmp").mkdir()
    r = run_container(
        executor_bundle,
        ["--context", "tar://stdin", "--destination",
         f"{registry.host}/executor-keyless/no-token:1", "--keyless"],
        stdin=context_tar({"Dockerfile": f"FROM {busybox_base}\n".encode()}),
        env={"HOME": "/root", "GITLAB_CI": "true"}, binds={}, tmp=tmp_path / "tmp")
    err = r.stderr.decode(errors="replace").strip().splitlines()
    assert r.returncode != 0 and len(err) == 1, err
    assert err[0].startswith("trustbuild: error: ") and "SIGSTORE_ID_TOKEN" in err[0], err
    assert not [x for x in r.stderr.decode().splitlines() if x.startswith("[1/")]


def test_secrets_from_a_file_and_the_environment(executor_bundle: Path, registry: Any,
                                                 busybox_base: str, tmp_path: Path) -> None:
    file_secret, env_secret = "npm-token-5d1e", "api-key-93ab"
    sums = [hashlib.sha256(s.encode()).hexdigest() for s in (file_secret, env_secret)]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "npmrc").write_text(file_secret)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "tmp").mkdir()
    dockerfile = (f"FROM {busybox_base}\n"
                  "RUN --mount=type=secret,id=npmrc,required=true "
                  "--mount=type=secret,id=api,env=API_KEY "
                  f'test "$(sha256sum < /run/secrets/npmrc | cut -c1-64)" = "{sums[0]}" '
                  f'&& test "$(printf %s "$API_KEY" | sha256sum | cut -c1-64)" = "{sums[1]}" '
                  "&& ls /run/secrets > /seen\n")
    image = f"{registry.host}/executor-secrets/app:1"
    r = run_container(
        executor_bundle,
        ["--context", "tar://stdin", "--destination", image, "--digest-file", "/out/digest",
         "--secret", "id=npmrc,src=/secrets/npmrc", "--secret", "id=api,env=TB_API_KEY"],
        stdin=context_tar({"Dockerfile": dockerfile.encode()}),
        env={"HOME": "/root", "TB_API_KEY": env_secret},
        binds={secrets: "/secrets", out: "/out"}, tmp=tmp_path / "tmp")
    log = _log(r)
    assert r.returncode == 0, log[-4000:]
    assert file_secret not in log and env_secret not in log
    digest = (out / "digest").read_text().strip()
    files = _image_files(f"{registry.host}/executor-secrets/app@{digest}", tmp_path / "img")
    assert files["seen"][0] == b"npmrc\n"  # the mount was there during the step only
    blob = b"".join(c for c, _ in files.values())
    assert file_secret.encode() not in blob and env_secret.encode() not in blob
    assert not [n for n in files if n.startswith("run/secrets")]


MULTI = """\
ARG BASE
FROM ${BASE}
ARG TARGETPLATFORM
RUN uname -m > /arch && echo "$TARGETPLATFORM" > /platform
"""


def test_multi_platform_build_emulates_arm64(executor_bundle: Path, registry: Any,
                                             tmp_path: Path) -> None:
    if Platform.host().architecture != "amd64" or not Path(ARM64_BUSYBOX).exists():
        pytest.skip("needs an amd64 host and busybox-static:arm64 (.ci/setup.sh)")
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    flags = [ln for ln in (handler.read_text().splitlines() if handler.exists() else [])
             if ln.startswith("flags:")]
    if not flags or "F" not in flags[0].split(":", 1)[1]:
        pytest.skip("no qemu-aarch64 binfmt handler with the F flag on this host")
    d = tmp_path / "bbindex"
    write_busybox_index(d, tag="1")
    base = f"{registry.host}/executor-multi/busybox:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                    f"oci:{d}:1", f"docker://{base}"], check=True, capture_output=True,
                   timeout=120)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "tmp").mkdir()
    image = f"{registry.host}/executor-multi/app:1"
    r = run_container(
        executor_bundle,
        ["--context", "tar://stdin", "--destination", image, "--build-arg", f"BASE={base}",
         "--custom-platform", "linux/amd64,linux/arm64", "--digest-file", "/out/digest"],
        stdin=context_tar({"Dockerfile": MULTI.encode()}), env={"HOME": "/root"},
        binds={out: "/out"}, tmp=tmp_path / "tmp")
    log = _log(r)
    assert r.returncode == 0, log[-4000:]
    digest = (out / "digest").read_text().strip()
    raw = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{registry.host}/executor-multi/app@{digest}"],
        check=True, capture_output=True, text=True, timeout=60).stdout)
    plats = {m["platform"]["architecture"]: m["digest"] for m in raw["manifests"]}
    assert set(plats) == {"amd64", "arm64"}
    for arch, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
        files = _image_files(f"{registry.host}/executor-multi/app@{plats[arch]}",
                             tmp_path / arch)
        assert files["arch"][0] == f"{machine}\n".encode()  # arm64: ran under qemu
        assert files["platform"][0] == f"linux/{arch}\n".encode()


@pytest.mark.parametrize("proc", ["masked", "unmasked"])
def test_rootless_inside_the_container(proc: str, executor_bundle: Path, registry: Any,
                                       busybox_base: str, tmp_path: Path) -> None:
    """The executor as uid 1000 with no capabilities and a read-only ``/`` (a pod with
    ``runAsNonRoot``): the build re-execs itself in a user namespace; the image has no
    ``newuidmap``, so it gets the single-id map. ``masked``: /proc has paths covered, as every
    container runtime does by default (bwrap's ``--proc`` covers /proc/sys and others), and
    the kernel refuses a fresh proc mount in a user namespace there: RUN cannot start, with a
    warning pointing at docs/rootless.md and one error line. ``unmasked``: a fresh /proc on
    top (Kubernetes ``procMount: Unmasked``, ``--security-opt systempaths=unconfined``): the
    build works and keeps in-image owners."""
    out = tmp_path / "out"
    tmp = tmp_path / "tmp"
    for d in (out, tmp):
        d.mkdir()
        os.chown(d, 1000, 1000)
    image = f"{registry.host}/executor-rootless/app-{proc}:1"
    config = json.loads((executor_bundle / "image-config.json").read_text())["config"]
    drop = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--", *config["Entrypoint"]]
    if proc == "unmasked":  # the runtime (root, before the process starts) mounts /proc whole
        entrypoint = ["/bin/sh", "-c", 'mount -t proc proc /proc && exec "$@"', "sh", *drop]
    else:
        entrypoint = drop
    r = run_container(
        executor_bundle,
        ["--context", "tar://stdin", "--destination", image, "--digest-file", "/out/digest"],
        stdin=context_tar({"Dockerfile": (f"FROM {busybox_base}\n"
                                   "COPY --chown=1000:1000 app.txt /srv/app.txt\n"
                                   "RUN id -u > /srv/uid && cat /proc/self/uid_map > /srv/map\n"
                                   "USER 1000\n").encode(),
                    "app.txt": b"rootless in the executor\n"}),
        env={"HOME": "/tmp/home", "TMPDIR": "/tmp"}, binds={out: "/out"}, tmp=tmp,
        privileged=proc == "unmasked", entrypoint=entrypoint, read_only=True)
    log = _log(r)
    if proc == "masked":
        assert r.returncode == 1, log[-4000:]
        warning = [x for x in log.splitlines() if x.startswith("[warning] the RUN sandbox")]
        assert warning and "docs/rootless.md" in warning[0], log
        assert "procMount: Unmasked" in warning[0] and "mount /proc" in warning[0], log
        errors = [x for x in r.stderr.decode().splitlines() if x.startswith("trustbuild: ")]
        assert len(errors) == 1 and "Dockerfile:3 RUN" in errors[0], log[-4000:]
        assert "mount /proc" in errors[0] and "Traceback" not in log, errors
        assert not (out / "digest").exists()
        return
    assert r.returncode == 0, log[-4000:]
    digest = (out / "digest").read_text().strip()
    files = _image_files(f"{registry.host}/executor-rootless/app-{proc}@{digest}",
                         tmp_path / "img")
    assert files["srv/app.txt"] == (b"rootless in the executor\n", 1000)
    assert files["srv/uid"][0] == b"0\n"
    assert files["srv/map"][0].split() == [b"0", b"1000", b"1"]  # the single-id map
    assert set(settled_entries(tmp)) <= {"home"}  # the build's temp dirs are gone


# ------------------------------------------------------------ the CI templates, run as CI runs them

CI = Path(__file__).resolve().parents[3] / "examples" / "ci"
SHA = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def _github_expr(text: str, values: dict[str, str]) -> str:
    """GitHub's ``${{ expr }}`` substitution (done before the shell sees the script)."""
    return re.sub(r"\$\{\{\s*([^}]*?)\s*\}\}", lambda m: values[m.group(1)], text)


@pytest.mark.parametrize("ci", ["gitlab", "github"])
def test_ci_template_runs_in_the_executor(ci: str, executor_bundle: Path, executor_image: str,
                                          registry: Any, busybox_base: str, tmp_path: Path,
                                          sigstore: tuple[FakeSigstore, Path]) -> None:
    """The template's own script lines, run by ``sh`` in the executor container with the
    variables the CI sets: the registry credentials step, then the build (policy, keyless
    signature, provenance and SBOM). The only change: registry and Sigstore are the local ones
    (``trustbuild`` is wrapped to add ``--sigstore-trust-config`` for the fake)."""
    import yaml

    fake, trust = sigstore
    token = identity_token(EMAIL, ISSUER)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Dockerfile").write_text(f"FROM {busybox_base}\nCOPY app.txt /app.txt\n"
                                        "RUN wc -c /app.txt > /size\nUSER 1000\n")
    (project / "app.txt").write_text("built by the CI template\n")
    work = tmp_path / "runner"
    work.mkdir()
    binds = {trust: "/sigstore", work: "/runner"}
    if ci == "gitlab":
        doc = yaml.safe_load((CI / "gitlab/.gitlab-ci.yml").read_text())
        job = doc["build-image"]
        assert job["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"] == "sigstore"
        lines = [*job["before_script"], *job["script"]]
        image = f"{registry.host}/ci/gitlab"
        env = {**doc["variables"], **job["variables"], "TRUSTBUILD_EXECUTOR": executor_image,
               "GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": token,
               "CI_PROJECT_DIR": "/builds/app", "CI_REGISTRY": registry.host,
               "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "job-token",
               "CI_REGISTRY_IMAGE": image, "CI_COMMIT_SHA": SHA,
               "CI_COMMIT_SHORT_SHA": SHA[:8], "CI_COMMIT_REF_SLUG": "main",
               "CI_PROJECT_URL": "https://gitlab.example.com/group/app"}
        binds[project] = "/builds/app"
        digest_file, tag = project / "image-digest", f"{image}:{SHA[:8]}"
    else:
        doc = yaml.safe_load((CI / "github/build.yml").read_text())
        job = doc["jobs"]["build"]
        assert doc["permissions"]["id-token"] == "write"
        values = {"github.sha": SHA, "github.actor": "octocat",
                  "github.repository": "octocat/app", "secrets.GITHUB_TOKEN": "ghs_job_token"}
        lines = []
        step_env: dict[str, str] = {}
        for step in job["steps"]:
            if "run" in step:
                lines.append(_github_expr(step["run"], values))
                step_env.update({k: _github_expr(v, values)
                                 for k, v in step.get("env", {}).items()})
        job_env = {k: _github_expr(v, values).replace("ghcr.io", registry.host)
                   for k, v in job["env"].items()}
        lines = [ln.replace("ghcr.io", registry.host) for ln in lines]
        fake.github_token, fake.github_request_token = token, "gh-request-token"
        env = {**job_env, **step_env, "GITHUB_ACTIONS": "true",
               "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-request-token",
               "ACTIONS_ID_TOKEN_REQUEST_URL": f"{fake.url}/github-oidc",
               "GITHUB_WORKSPACE": "/__w/app/app", "RUNNER_TEMP": "/runner",
               "GITHUB_OUTPUT": "/runner/output"}
        binds[project] = "/__w/app/app"
        image = job_env["IMAGE"]
        digest_file, tag = work / "digest", f"{image}:{SHA}"
    wrapper = ('trustbuild() { /opt/trustbuild/bin/trustbuild "$@" '
               "--sigstore-trust-config /sigstore/trust_config.json; }\n")
    (tmp_path / "tmp").mkdir()
    r = run_container(executor_bundle, ["-c", "set -e\n" + wrapper + "\n".join(lines)],
                      stdin=b"", env={"HOME": "/root", **env}, binds=binds,
                      tmp=tmp_path / "tmp", entrypoint=["/bin/sh"])
    log = _log(r)
    assert r.returncode == 0, log[-4000:]
    assert token.split(".")[1] not in log
    digest = digest_file.read_text().strip()
    assert digest.startswith("sha256:"), log[-2000:]
    if ci == "github":
        assert r.stdout.decode().rstrip().endswith(digest)  # the last step prints it
        # ... and hands it to the verify job with shell builtins only
        assert (work / "output").read_text() == f"digest={digest}\n"
        assert job["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
        assert doc["jobs"]["verify"]["needs"] == "build"
    repo = image
    flags = ["--certificate-identity", EMAIL, "--certificate-oidc-issuer", ISSUER,
             "--trusted-root", str(trust / "trusted_root.json")]
    assert main(["verify", *flags, tag]) == 0
    for kind in ("slsaprovenance", "spdxjson"):
        assert main(["verify-attestation", "--type", kind, *flags, f"{repo}@{digest}"]) == 0
    files = _image_files(f"{repo}@{digest}", tmp_path / "img")
    assert files["app.txt"][0] == b"built by the CI template\n"
