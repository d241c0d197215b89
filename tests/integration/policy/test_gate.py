"""The policy gate against the real registry: signatures on bases, the executor, re-pointed tags.

A RUN step in every build here contacts a loopback listener: it must never be reached when the
gate denies, and must be when it allows.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trustbuild.builder.api import prepare
from trustbuild.builder.options import BuildOptions
from trustbuild.cli.main import main
from trustbuild.errors import PolicyViolation
from trustbuild.oci.reference import Reference
from trustbuild.pipeline import SupplyChainOptions, run
from trustbuild.policy.gate import gate_plan
from trustbuild.policy.model import load_policy
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.store import RegistryStore
from trustbuild.sign.keys import generate_key_pair, load_signing_key
from trustbuild.sign.sign import sign_image

pytestmark = [pytest.mark.slow, pytest.mark.privileged]
PASSWORD = b"gate-test"


class Listener:
    """Counts HTTP requests on a loopback port (the RUN step's canary)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *a: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.server.shutdown()
    lst.server.server_close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("trusted", "untrusted", "executor"):
        key, pub = generate_key_pair(str(d / name), password=PASSWORD)
        out[name], out[name + ".pub"] = key, pub
    return out


def _copy(src: str, dst: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    "--dest-tls-verify=false", f"docker://{src}", f"docker://{dst}"],
                   check=True, capture_output=True, timeout=120)


def _digest(ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                          f"docker://{ref}"],
                         check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def _sign(ref: str, key: Path) -> None:
    r = Reference.parse(ref)
    store = RegistryStore(r.registry, r.repository, StoreOptions())
    sign_image(store, r.tag, load_signing_key(key, password=PASSWORD), docker_reference=r.name)


def _policy(tmp: Path, body: str) -> Path:
    p = tmp / "policy.yaml"
    p.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\n"
                 "metadata: {name: test}\nspec:\n"
                 + body)
    return p


def _context(tmp: Path, base: str, port: int) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {base}\nRUN wget -q -O /ran http://127.0.0.1:{port}/ran\nUSER 1000\n")
    return ctx


def _build(ctx: Path, policy: Path, dest: str, **kw: Any) -> Any:
    """The whole pipeline (gate, build, push) under ``policy``; the built image."""
    opts = BuildOptions(context=str(ctx), destinations=[dest])
    return run(opts, SupplyChainOptions(policy=str(policy), **kw)).built


SIGNED_BASE = ("  baseImages:\n    allowedRepositories: ['127.0.0.1:*/**']\n"
               "    signatures: [{key: %s}]\n")


def test_unsigned_base_is_denied_before_any_run(registry: Any, busybox_base: str, keys: dict,
                                                listener: Listener, tmp_path: Path) -> None:
    base = f"{registry.host}/gate/unsigned:1"
    _copy(busybox_base, base)
    policy = _policy(tmp_path, SIGNED_BASE % keys["trusted.pub"])
    dest = f"{registry.host}/gate/out-unsigned:1"
    with pytest.raises(PolicyViolation, match="base-signature"):
        _build(_context(tmp_path, base, listener.port), policy, dest)
    assert listener.hits == []
    probe = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
                           capture_output=True, timeout=60)
    assert probe.returncode != 0, "a denied build must push nothing"


def test_untrusted_key_is_denied_and_trusted_key_allowed(registry: Any, busybox_base: str,
                                                         keys: dict, listener: Listener,
                                                         tmp_path: Path) -> None:
    base = f"{registry.host}/gate/signed:1"
    _copy(busybox_base, base)
    _sign(base, keys["untrusted"])
    policy = _policy(tmp_path, SIGNED_BASE % keys["trusted.pub"])
    ctx = _context(tmp_path, base, listener.port)
    with pytest.raises(PolicyViolation, match="no signature by a trusted signer"):
        _build(ctx, policy, f"{registry.host}/gate/out:1")
    assert listener.hits == []
    _sign(base, keys["trusted"])
    with _build(ctx, policy, f"{registry.host}/gate/out:1") as result:
        assert result.record.policy_decision == "allow"
        assert any(c["id"] == "base-signature" and c["status"] == "pass"
                   for c in result.record.policy_report)
    assert listener.hits == ["/ran"]


def test_executor_unknown_or_unsigned_is_denied(registry: Any, busybox_base: str, keys: dict,
                                               listener: Listener, tmp_path: Path) -> None:
    executor_repo = f"{registry.host}/trustbuild/executor"
    _copy(busybox_base, f"{executor_repo}:v1")
    ex_digest = _digest(f"{executor_repo}:v1")
    policy = _policy(tmp_path, f"  executor:\n    image: {executor_repo}\n"
                               f"    signatures: [{{key: {keys['executor.pub']}}}]\n")
    ctx = _context(tmp_path, busybox_base, listener.port)
    dest = f"{registry.host}/gate/ex:1"
    with pytest.raises(PolicyViolation, match="executor image is unknown"):
        _build(ctx, policy, dest)
    with pytest.raises(PolicyViolation, match="executor-signature"):
        _build(ctx, policy, dest, executor_image=f"{executor_repo}@{ex_digest}")
    with pytest.raises(PolicyViolation, match="not given by digest"):
        _build(ctx, policy, dest, executor_image=f"{executor_repo}:v1")
    assert listener.hits == []
    _sign(f"{executor_repo}:v1", keys["executor"])
    with _build(ctx, policy, dest, executor_image=f"{executor_repo}@{ex_digest}") as result:
        assert result.record.executor_image == f"{executor_repo}@{ex_digest}"
    assert listener.hits == ["/ran"]


def test_repointed_tag_after_the_gate_changes_nothing(registry: Any, busybox_base: str,
                                                      keys: dict, listener: Listener,
                                                      pushed_image: tuple[str, str],
                                                      tmp_path: Path) -> None:
    base = f"{registry.host}/gate/moving:1"
    _copy(busybox_base, base)
    _sign(base, keys["trusted"])
    gated = _digest(base)
    policy = _policy(tmp_path, SIGNED_BASE % keys["trusted.pub"])
    opts = BuildOptions(context=str(_context(tmp_path, base, listener.port)),
                        destinations=[f"{registry.host}/gate/moved:1"])
    with prepare(opts) as plan:
        verdict = gate_plan(load_policy(policy), plan, executor_image=None)
        assert verdict.report.decision == "allow"
        assert [r.decision for r in verdict.per_platform] == ["allow"]
        assert plan.record.policy_decision is None  # the gate writes nothing; the pipeline does
        _copy(pushed_image[0], base)  # an attacker re-points the tag after the gate
        built = plan.run()
    with built:
        assert [i.digest for i in built.record.images if i.role == "base"] == [gated]
        assert (built.rootfs / "bin/busybox").exists()
    assert _digest(base) != gated
    assert listener.hits == ["/ran"]


def test_rule_violations_reported_with_lines(registry: Any, busybox_base: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nARG DB_PASSWORD=x\nRUN true\n")
    policy = _policy(tmp_path, "  dockerfile:\n    rules: {final-user-root: deny}\n")
    rc = main(["policy", "check", "--policy", str(policy), "--context", str(ctx),
               "--output", "json"])
    out = capsys.readouterr().out
    assert rc == 1
    assert '"where": "Dockerfile:2"' in out and '"secret-in-arg-env"' in out
    assert '"final-user-root"' in out and '"decision": "deny"' in out


def test_shipped_baseline_policy_builds_signs_and_attests(registry: Any, busybox_base: str,
                                                          keys: dict, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[3]
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN echo hi > /hi\nUSER 1000\n")
    dest = f"{registry.host}/gate/baseline:1"
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD.decode())
    assert main(["build", "--context", str(ctx), "--destination", dest,
                 "--policy", str(repo / "policies/baseline.yaml")]) == 1  # output.sign needs a key
    assert main(["build", "--context", str(ctx), "--destination", dest, "--policy",
                 str(repo / "policies/baseline.yaml"), "--sign-key", str(keys["trusted"])]) == 0
    assert main(["verify", dest, "--key", str(keys["trusted.pub"])]) == 0
    for kind in ("slsaprovenance", "spdxjson"):
        assert main(["verify-attestation", dest, "--key", str(keys["trusted.pub"]),
                     "--type", kind]) == 0


def test_shipped_restricted_policy_denies_unpinned_unsigned(
        registry: Any, busybox_base: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(__file__).resolve().parents[3]
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_base}\nRUN true\n")
    rc = main(["policy", "check", "--policy", str(repo / "policies/restricted.yaml"),
               "--context", str(ctx)])
    out = capsys.readouterr().out
    assert rc == 1
    for rid in ("base-signature", "executor", "base-image-not-pinned", "final-user-root"):
        assert f"DENY  {rid}" in out, rid


def test_verify_with_policy_applies_the_deploy_section(registry: Any, busybox_base: str,
                                                      keys: dict, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    image = f"{registry.host}/deploy/app:1"
    _copy(busybox_base, image)
    policy = _policy(tmp_path, f"  deploy:\n    allowedRepositories: ['{registry.host}/deploy/*']\n"
                               f"    signatures: [{{key: {keys['trusted.pub']}}}]\n"
                               "    attestations: [{type: slsaprovenance, "
                               f"key: {keys['trusted.pub']}}}]\n")
    assert main(["verify", image, "--policy", str(policy)]) == 1
    out = capsys.readouterr().out
    assert "DENY  signature" in out and "DENY  attestation:slsaprovenance" in out
    _sign(image, keys["trusted"])
    pred = tmp_path / "prov.json"
    pred.write_text('{"buildDefinition": {"buildType": "x", "externalParameters": {}}, '
                    '"runDetails": {"builder": {"id": "https://example.com/b"}}}')
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD.decode())
    assert main(["attest", "--key", str(keys["trusted"]), "--predicate", str(pred),
                 "--type", "slsaprovenance", image]) == 0
    capsys.readouterr()
    assert main(["verify", image, "--policy", str(policy)]) == 0
    assert "policy test: allow" in capsys.readouterr().out
    other = f"{registry.host}/elsewhere/app:1"
    _copy(image, other)
    assert main(["verify", other, "--policy", str(policy)]) == 1
    assert "DENY  allowed-repository" in capsys.readouterr().out



def test_gate_applies_signed_identity_to_the_base_reference(registry: Any, busybox_base: str,
                                                            keys: dict, listener: Listener,
                                                            tmp_path: Path) -> None:
    """containers/image's matchRepoDigestOrExact: a base signed as repo:1 passes as repo:1 and
    as repo@digest, not as repo:2 (same digest, another tag)."""
    base1, base2 = f"{registry.host}/gate/ident:1", f"{registry.host}/gate/ident:2"
    _copy(busybox_base, base1)
    _copy(busybox_base, base2)
    r = Reference.parse(base1)
    store = RegistryStore(r.registry, r.repository, StoreOptions())
    sign_image(store, "1", load_signing_key(keys["trusted"], password=PASSWORD),
               docker_reference=base1)  # the tag is signed, as containers/image signs
    policy = _policy(tmp_path, "  baseImages:\n    signatures:\n"
                     f"      - key: {keys['trusted.pub']}\n"
                     "        signedIdentity: {type: matchRepoDigestOrExact}\n")
    with pytest.raises(PolicyViolation, match="does not match"):
        _build(_context(tmp_path, base2, listener.port), policy, f"{registry.host}/gate/id:2")
    assert listener.hits == []
    for i, base in enumerate((base1, f"{r.name}@{_digest(base1)}")):
        ctx = tmp_path / f"c{i}"
        ctx.mkdir()
        with _build(_context(ctx, base, listener.port), policy,
                    f"{registry.host}/gate/id:{i}") as result:
            assert result.record.policy_decision == "allow"


# --- the phases: policy check is prepare + gate; a denied gate writes nothing ---------------
ALLOW_LOOPBACK = "  baseImages:\n    allowedRepositories: ['127.0.0.1:*/**']\n"
DENY_ALL = "  baseImages:\n    allowedRepositories: ['registry.example/nothing/**']\n"


def _layer_digests(ref: str) -> list[str]:
    import json

    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [layer["digest"] for layer in json.loads(out)["layers"]]


@pytest.mark.parametrize("body, rc", [(ALLOW_LOOPBACK, 0), (DENY_ALL, 1)])
def test_policy_check_runs_nothing_and_pulls_no_layer(registry_proxy: Any, busybox_base: str,
                                                      listener: Listener, tmp_path: Path,
                                                      body: str, rc: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # the base is read through the proxy, which logs every request
    _copy(busybox_base, f"{registry_proxy.upstream.host}/phases/base:1")
    base = f"{registry_proxy.host}/phases/base:1"
    layers = _layer_digests(f"{registry_proxy.upstream.host}/phases/base:1")
    ctx = _context(tmp_path, base, listener.port)
    assert main(["policy", "check", "--policy", str(_policy(tmp_path, body)),
                 "--context", str(ctx), "--output", "json"]) == rc
    out = capsys.readouterr().out
    assert f'"decision": "{"allow" if rc == 0 else "deny"}"' in out
    assert listener.hits == []  # the RUN never ran
    fetched = [p for m, p, _ in registry_proxy.log if m == "GET" and "/blobs/" in p]
    assert not [p for p in fetched if any(p.endswith(d) for d in layers)], fetched
    assert not [r for r in registry_proxy.log if r[0] in ("PUT", "POST", "PATCH", "DELETE")]


def test_denied_build_pushes_nothing(registry_proxy: Any, busybox_base: str,
                                     listener: Listener, tmp_path: Path, keys: dict,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD.decode())
    dest = f"{registry_proxy.host}/phases/denied:1"
    layout = tmp_path / "layout"
    rc = main(["build", "--context", str(_context(tmp_path, busybox_base, listener.port)),
               "--destination", dest, "--oci-layout-path", str(layout),
               "--digest-file", str(tmp_path / "digest"), "--sign-key", str(keys["trusted"]),
               "--policy", str(_policy(tmp_path, DENY_ALL))])
    assert rc == 1
    assert listener.hits == []
    # only the push permission check (an upload started and cancelled) reached the registry
    writes = [(m, p) for m, p, _ in registry_proxy.log if m in ("PUT", "POST", "PATCH", "DELETE")]
    assert [m for m, _ in writes] == ["POST", "DELETE"], writes
    assert not layout.exists() and not (tmp_path / "digest").exists()


def test_every_platform_is_gated_before_any_run(registry: Any, listener: Listener,
                                                tmp_path: Path) -> None:
    """A multi-platform build whose second platform's base is denied runs no RUN at all (the
    gate used to run per platform, after the first platform was built)."""
    from fixtures.images import ARM64_BUSYBOX, write_busybox_index

    from trustbuild.oci.descriptor import Platform

    if Platform.host().architecture != "amd64" or not Path(ARM64_BUSYBOX).exists():
        pytest.skip("needs an amd64 host and busybox-static:arm64 (.ci/setup.sh)")
    d = tmp_path / "index"
    write_busybox_index(d, tag="1")
    for arch in ("amd64", "arm64"):
        subprocess.run(["skopeo", "copy", "--quiet", "--all", "--dest-tls-verify=false",
                        f"oci:{d}:1", f"docker://{registry.host}/phases-{arch}/busybox:1"],
                       check=True, capture_output=True, timeout=120)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {registry.host}/phases-$TARGETARCH/busybox:1\n"
        f"RUN wget -q -O /ran http://127.0.0.1:{listener.port}/ran\n")
    policy = _policy(tmp_path, "  baseImages:\n    allowedRepositories: "
                               "['127.0.0.1:*/phases-amd64/**']\n")
    dest = f"{registry.host}/phases/multi:1"
    assert main(["build", "--context", str(ctx), "--destination", dest, "--policy", str(policy),
                 "--custom-platform", "linux/amd64,linux/arm64"]) == 1
    assert listener.hits == []
    probe = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
                           capture_output=True, timeout=60)
    assert probe.returncode != 0, "a denied build must push nothing"


def test_policy_check_takes_the_build_secret_flags_without_reading_them(
        registry: Any, busybox_base: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``policy check`` accepts --secret / --ssh as build does: a required secret or agent that
    is given passes; nothing is read (a key file that is no key is not loaded into an agent)."""
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\n"
        "RUN --mount=type=secret,id=tok,required=true true\n"
        "RUN --mount=type=ssh,id=deploy,required=true true\n")
    (tmp_path / "tok").write_text("s3cret")
    (tmp_path / "key").write_text("not a key: ssh-add would refuse it\n")
    check = ["policy", "check", "--policy", str(_policy(tmp_path, ALLOW_LOOPBACK)),
             "--context", str(ctx), "--output", "json"]
    ssh = ["--ssh", f"deploy={tmp_path / 'key'}"]
    assert main([*check, *ssh]) != 0
    assert "secret 'tok' is required but was not given" in capsys.readouterr().err
    assert main([*check, "--secret", f"id=tok,src={tmp_path / 'missing'}", *ssh]) == 2
    assert "--secret id=tok: cannot read" in capsys.readouterr().err
    assert main([*check, "--secret", f"id=tok,src={tmp_path / 'tok'}", *ssh]) == 0
    captured = capsys.readouterr()
    assert '"decision": "allow"' in captured.out
    assert "s3cret" not in captured.out + captured.err


def test_policy_check_expands_from_with_the_platform_args(
        registry: Any, busybox_base: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The rules see the FROM image the build pulls: ``$TARGETARCH`` is the platform's."""
    from trustbuild.oci.descriptor import Platform

    arch = Platform.host().architecture
    _copy(busybox_base, f"{registry.host}/gate/{arch}/busybox:1")
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/gate/$TARGETARCH/busybox:1\n"
                                    "USER 1000\n")
    policy = _policy(tmp_path, "  dockerfile:\n    rules: {base-image-not-pinned: deny}\n")
    assert main(["policy", "check", "--policy", str(policy), "--context", str(ctx),
                 "--output", "json"]) == 1
    out = capsys.readouterr().out
    assert f"FROM {registry.host}/gate/{arch}/busybox:1 is not pinned by digest" in out
