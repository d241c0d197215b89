"""The CI templates in examples/ci parse, and every trustbuild command line in them is accepted
by the real CLI parser (and turned into BuildOptions); the Kubernetes Job matches the API models."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from trustbuild._internal.secrets import is_secret_name
from trustbuild.cli.cmd_build import options_from_args
from trustbuild.cli.main import build_parser

REPO = Path(__file__).parents[3]
CI = REPO / "examples" / "ci"
# executor/Dockerfile's ENTRYPOINT without the program
EXECUTOR_ENTRYPOINT = json.loads(next(
    line.split(None, 1)[1] for line in (REPO / "executor" / "Dockerfile").read_text().splitlines()
    if line.startswith("ENTRYPOINT ")))[1:]
_VARS = re.compile(r"\$\{\{[^}]*\}\}|\$\([^)]*\)|\$\{[A-Za-z_][A-Za-z0-9_]*\}"
                   r"|\$[A-Za-z_][A-Za-z0-9_]*")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    return []


def _shell_commands(doc: Any) -> list[list[str]]:
    """``trustbuild ...`` command lines in every string of ``doc`` (scripts, run: blocks)."""
    out = []
    for text in _strings(doc):
        for line in text.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("trustbuild "):
                out.append(shlex.split(_VARS.sub("example", line))[1:])
    return out


def _docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _accepts(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)  # SystemExit(2) on any parse error
    if argv[0] == "build":
        options_from_args(args)


@pytest.fixture(autouse=True)
def _no_kaniko_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KANIKO_DIR", "KANIKO_NO_PUSH", "KANIKO_REGISTRY_MIRROR", "KANIKO_REGISTRY_MAP"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", ["gitlab/.gitlab-ci.yml", "github/build.yml",
                                  "circleci/config.yml"])
def test_ci_scripts_run_trustbuild_with_valid_flags(name: str) -> None:
    (doc,) = _docs(CI / name)
    commands = _shell_commands(doc)
    assert commands, f"no trustbuild command in {name}"
    for argv in commands:
        _accepts(argv)
        build_args = [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]
        assert not [b for b in build_args if is_secret_name(b.split("=", 1)[0])
                    or b.startswith("AWS_")], "credentials must not be build args"
    text = (CI / name).read_text()
    assert re.search(r"executor@sha256:[0-9a-f]{64}", text), "executor not pinned by digest"


def _build_commands(name: str) -> list[list[str]]:
    (doc,) = _docs(CI / name)
    return [a for a in _shell_commands(doc) if a[0] == "build"]


def _flag(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _check_signed_as_the_policy_requires(argv: list[str]) -> None:
    """What the build checks before it starts: the named policy exists in the executor (a
    shipped name: no file of the checkout is in the image), and a policy that requires a signed
    output, or --attest, comes with --sign-key or --keyless."""
    from trustbuild.policy.model import load_policy

    signs = "--keyless" in argv or _flag(argv, "--sign-key") is not None
    policy = _flag(argv, "--policy")
    if policy is not None and not policy.startswith("/trustbuild/policy/"):  # mounted: the Job
        assert "/" not in policy, f"--policy {policy}: not in the executor image; name a " \
                                  "shipped policy (baseline, restricted) or mount a file"
        if load_policy(policy).output.sign:
            assert signs, f"policy {policy} requires a signed image: {argv}"
    if _flag(argv, "--attest") is not None:
        assert signs, f"--attest needs --sign-key or --keyless: {argv}"


@pytest.mark.parametrize("name", ["gitlab/.gitlab-ci.yml", "github/build.yml",
                                  "circleci/config.yml"])
def test_ci_builds_sign_as_their_policy_requires(name: str) -> None:
    commands = _build_commands(name)
    assert commands
    for argv in commands:
        _check_signed_as_the_policy_requires(argv)


def test_github_signs_keyless_with_the_job_token() -> None:
    (doc,) = _docs(CI / "github/build.yml")
    assert doc["permissions"]["id-token"] == "write"
    assert all("--keyless" in argv for argv in _build_commands("github/build.yml"))
    # the job runs in the executor container: the runner hands it the token request variables
    assert doc["jobs"]["build"]["container"]["image"].startswith(
        "registry.example.com/trustbuild/executor@sha256:")


def test_gitlab_signs_keyless_with_an_id_token_for_sigstore() -> None:
    (doc,) = _docs(CI / "gitlab/.gitlab-ci.yml")
    job = doc["build-image"]
    # the variable and audience sigstore-python's ambient detection reads on GitLab
    assert job["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert all("--keyless" in argv for argv in _build_commands("gitlab/.gitlab-ci.yml"))


def test_circleci_ecr_uses_the_credential_helper_not_build_args() -> None:
    text = (CI / "circleci/config.yml").read_text()
    assert '"credHelpers"' in text and "ecr-login" in text
    for argv in _shell_commands(_docs(CI / "circleci/config.yml")[0]):
        assert not any("AWS_" in a for a in argv), argv


def test_tekton_task_args_parse() -> None:
    (task,) = _docs(CI / "tekton/task.yaml")
    assert task["apiVersion"] == "tekton.dev/v1" and task["kind"] == "Task"
    params = {p["name"]: p for p in task["spec"]["params"]}
    assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", params["EXECUTOR"]["default"])
    (step,) = task["spec"]["steps"]
    assert step["image"] == "$(params.EXECUTOR)" and "command" not in step
    args = [a for a in step["args"] if a != "$(params.EXTRA_ARGS)"]  # [] by default
    _accepts([*EXECUTOR_ENTRYPOINT, *(_VARS.sub("example", a) for a in args)])
    _check_signed_as_the_policy_requires([*EXECUTOR_ENTRYPOINT, *args])
    key = next(a.split("=", 1)[1] for a in args if a.startswith("--sign-key="))
    workspaces = {w["name"]: w for w in task["spec"]["workspaces"]}
    assert key.startswith(workspaces["signing"]["mountPath"] + "/")
    env = {e["name"]: e for e in step["env"]}
    assert env["COSIGN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == \
        "$(params.SIGNING_SECRET)"
    declared = {r["name"] for r in task["spec"]["results"]}
    used = set(re.findall(r"\$\(results\.([A-Z_]+)\.path\)", " ".join(step["args"])))
    assert used <= declared


def _render_helpers() -> Any:
    spec = importlib.util.spec_from_file_location(
        "_render_tests", REPO / "tests/unit/policy/test_render.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kubernetes_job_matches_the_api_and_parses() -> None:
    from kubernetes.client import ApiClient

    k8s_errors = _render_helpers()._k8s_errors
    docs = _docs(CI / "kubernetes/executor-job.yaml")
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "ConfigMap", "Job"]
    client = ApiClient()
    for d in docs:
        assert k8s_errors(d, "V1" + d["kind"], d["kind"]) == []
        client._ApiClient__deserialize(d, "V1" + d["kind"])  # required fields present
    job = docs[2]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.fullmatch(r".+@sha256:[0-9a-f]{64}", container["image"])
    assert pod["securityContext"]["seccompProfile"]["type"] == "Localhost"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["docker-config"]["secret"]["items"] == [
        {"key": ".dockerconfigjson", "path": "config.json"}]
    assert volumes["registry-ca"]["configMap"]["name"] == "registry-ca"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DOCKER_CONFIG"] == mounts["docker-config"]
    args = container["args"]
    cert = args[args.index("--registry-certificate") + 1]
    assert cert.split("=", 1)[1].startswith(mounts["registry-ca"] + "/")
    _accepts([*EXECUTOR_ENTRYPOINT, *args])
