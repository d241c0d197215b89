"""Kaniko users' command lines against the real registry: the push permission check fails before
any step runs, progress and ``--log-format json`` events on stderr, Kaniko's registry flags."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fixtures.imagefs import tag_exists
from fixtures.registry import run_registry

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow]

DOCKERFILE = "ARG BASE\nFROM $BASE\nCOPY hello.txt /hello.txt\nRUN echo ran-the-step\n"


def _ctx(tmp_path: Path, dockerfile: str = DOCKERFILE) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


def _docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   auths: dict[str, tuple[str, str]]) -> None:
    d = tmp_path / "dockercfg"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"auths": {
        host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
        for host, (u, p) in auths.items()}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(d))


def _events(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_wrong_credentials_fail_before_any_step(tmp_path: Path, busybox_base: str,
                                                tls_registry: Any, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _docker_config(tmp_path, monkeypatch, {tls_registry.host: (tls_registry.username, "wrong")})
    dest = f"{tls_registry.host}/kaniko/denied:1"
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", dest, "--registry-certificate", f"{tls_registry.host}={tls_registry.ca_path}"])
    err = capsys.readouterr().err
    assert rc == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, and no step header: nothing was pulled or run
    assert lines[0].startswith("trustbuild: error: cannot push to "), err
    assert f"{tls_registry.host}/kaniko/denied" in lines[0] and "401" in lines[0], err
    assert "--skip-push-permission-check" in lines[0]


def test_read_only_destination_fails_before_any_step(tmp_path: Path, busybox_base: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _docker_config(tmp_path, monkeypatch, {})
    with run_registry(token=True, anonymous_pull=True) as ro:  # anyone may pull, nobody push
        dest = f"{ro.host}/kaniko/readonly:1"
        rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
                   "-d", dest, "--log-format", "json"])
        err = capsys.readouterr().err
        assert rc == 1, err
        events = _events(err)
        assert [e["event"] for e in events] == ["error"], err
        assert events[0]["type"] == "PushPermissionError"
        assert f"{ro.host}/kaniko/readonly" in events[0]["error"]
        scopes = ro.token_server.scopes()  # type: ignore[union-attr]
        assert "repository:kaniko/readonly:pull,push" in scopes


def test_refused_push_is_the_error_even_when_the_base_is_missing_too(
        tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The check runs while the base is resolved (on a thread); a refused push still wins over
    whatever else failed meanwhile, as when Kaniko checks first, and no work dir is left."""
    _docker_config(tmp_path, monkeypatch, {})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))  # where the build's work dir goes
    with run_registry(token=True, anonymous_pull=True) as ro:
        rc = main(["build", "-c", str(_ctx(tmp_path)),
                   "--build-arg", f"BASE={registry.host}/no/such-base:1",
                   "-d", f"{ro.host}/kaniko/readonly:1"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("trustbuild: error: cannot push to ") and len(err.splitlines()) == 1, err
    assert list(work.iterdir()) == []


def test_skip_push_permission_check_goes_on_to_build(tmp_path: Path, busybox_base: str,
                                                     registry: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    dest = f"{registry.host}/kaniko/skipcheck:1"
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", dest, "--skip-push-permission-check", "--log-format", "json"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "push_check" not in {e["event"] for e in _events(err)}
    assert tag_exists(registry.host, "kaniko/skipcheck", "1")


def test_json_events_for_a_build(tmp_path: Path, busybox_base: str, registry: Any,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    dest = f"{registry.host}/kaniko/json:1"
    names = tmp_path / "names"
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", dest, "--log-format=json", "--image-name-tag-with-digest-file", str(names),
               "--cleanup", "--use-new-run", "--snapshot-mode=redo", "-v", "info"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    events = _events(err)  # every stderr line is one JSON object
    kinds = [e["event"] for e in events]
    assert kinds[0] == "push_check"
    starts = [e for e in events if e["event"] == "step_start"]
    assert [(e["step"], e["total"]) for e in starts] == [(1, 3), (2, 3), (3, 3)]
    assert starts[0]["instruction"] == f"FROM {busybox_base}"
    assert starts[1]["instruction"] == "COPY hello.txt /hello.txt"
    assert starts[2]["instruction"] == "RUN echo ran-the-step"
    assert [e["step"] for e in events if e["event"] == "step_end"] == [1, 2, 3]
    # the RUN output arrives as message events between the RUN step's start and end
    run_start = events.index(starts[2])
    run_end = next(i for i, e in enumerate(events) if e["event"] == "step_end" and e["step"] == 3)
    assert any("ran-the-step" in e.get("msg", "") for e in events[run_start:run_end])
    pulls = [e for e in events if e["event"] == "blob" and e["direction"] == "pull"]
    pushes = [e for e in events if e["event"] == "blob" and e["direction"] == "push"]
    assert pulls and all(p["bytes"] == p["size"] > 0 for p in pulls)
    assert len(pushes) >= 2 and all(p["bytes"] >= p["size"] > 0 for p in pushes)
    assert all(p["where"] == f"docker://{registry.host}/kaniko/json" for p in pushes)
    # the base layer is on the same registry: mounted from its repository, not uploaded
    mounts = [e for e in events if e["event"] == "blob" and e["direction"] == "mount"]
    assert [m["source"] for m in mounts] == ["conformance/busybox"] * len(pulls)
    digest = json.loads(out)["digest"]
    assert names.read_text() == f"{registry.host}/kaniko/json:1@{digest}\n"


def test_json_error_object_on_a_failing_step(tmp_path: Path, busybox_base: str, registry: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _ctx(tmp_path, "ARG BASE\nFROM $BASE\nRUN echo before-failing && exit 3\n")
    rc = main(["build", "-c", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "-d", f"{registry.host}/kaniko/jsonfail:1", "--log-format", "json"])
    err = capsys.readouterr().err
    assert rc == 1
    events = _events(err)
    assert events[-1]["event"] == "error" and "exit code 3" in events[-1]["error"], err
    assert "Dockerfile:3" in events[-1]["error"]
    assert not tag_exists(registry.host, "kaniko/jsonfail", "1")


def test_text_progress_has_step_headers_and_blob_lines(tmp_path: Path, busybox_base: str,
                                                       registry: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", f"{registry.host}/kaniko/text:1", "--log-timestamp=false"])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = err.splitlines()
    assert f"[1/3] FROM {busybox_base}" in lines
    assert "[2/3] COPY hello.txt /hello.txt" in lines
    assert "[3/3] RUN echo ran-the-step" in lines
    assert any(line.startswith("pulled ") and "/s)" in line for line in lines), err
    assert any(line.startswith("pushed ") and f"docker://{registry.host}/kaniko/text" in line
               and "/s)" in line for line in lines), err


def test_log_timestamp_prefixes_text_lines(tmp_path: Path, busybox_base: str, registry: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", f"{registry.host}/kaniko/ts:1", "--log-timestamp"])
    err = capsys.readouterr().err
    assert rc == 0, err
    header = next(line for line in err.splitlines() if "[1/3] FROM" in line)
    stamp = header.split(" ", 1)[0]
    assert stamp.endswith("Z") and stamp[4] == "-" and "T" in stamp, header


def test_registry_map_pulls_through_the_mirror(tmp_path: Path, busybox_base: str, registry: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # the original registry (port 9) is not there: every read must go to the mirror
    repo_tag = busybox_base.split("/", 1)[1]
    ctx = _ctx(tmp_path)
    rc = main(["build", "-c", str(ctx), "--build-arg", f"BASE=127.0.0.1:9/{repo_tag}",
               "-d", f"{registry.host}/kaniko/mapped:1",
               "--registry-map", f"127.0.0.1:9={registry.host}",
               "--skip-default-registry-fallback"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert tag_exists(registry.host, "kaniko/mapped", "1")


def test_skip_tls_verify_registry_names_one_registry(tmp_path: Path, busybox_base: str,
                                                     tls_registry: Any,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _docker_config(tmp_path, monkeypatch,
                   {tls_registry.host: (tls_registry.username, tls_registry.password)})
    ctx = _ctx(tmp_path)
    dest = f"{tls_registry.host}/kaniko/selfsigned:1"
    base = ["build", "-c", str(ctx), "--build-arg", f"BASE={busybox_base}", "-d", dest]
    assert main(base) == 1  # the test CA is not trusted
    err = capsys.readouterr().err
    assert "cannot push to" in err and "certificate" in err.lower(), err
    assert main([*base, "--skip-tls-verify-registry", tls_registry.host]) == 0, \
        capsys.readouterr().err


def test_no_push_cache_reads_the_cache_but_never_writes_it(tmp_path: Path, busybox_base: str,
                                                           registry: Any,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    ctx = _ctx(tmp_path)
    cache = f"{registry.host}/kaniko/cache-ro"

    def run_cached(n: int, *extra: str) -> bool:
        rc = main(["build", "-c", str(ctx), "--build-arg", f"BASE={busybox_base}",
                   "-d", f"{registry.host}/kaniko/cached:{n}", "--cache=true", "--cache-repo",
                   cache, "--log-format", "json", *extra])
        err = capsys.readouterr().err
        assert rc == 0, err
        (run_end,) = [e for e in _events(err) if e["event"] == "step_end" and e["step"] == 3]
        return bool(run_end["cached"])

    assert run_cached(1, "--no-push-cache") is False
    assert run_cached(2) is False  # the first build stored nothing
    assert run_cached(3, "--no-push-cache") is True  # the second one did; the cache is read


POLICY = """apiVersion: trustbuild.dev/v1alpha1
kind: Policy
metadata: {name: json-events}
spec:
  baseImages: {allowedRepositories: [%s], requireDigest: false}
"""


@pytest.mark.parametrize("verdict", ["allow", "deny"])
def test_gate_verdict_is_an_event(verdict: str, tmp_path: Path, busybox_base: str, registry: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    allowed = '"127.0.0.1:*/**"' if verdict == "allow" else '"registry.example.com/**"'
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % allowed)
    rc = main(["build", "-c", str(_ctx(tmp_path)), "--build-arg", f"BASE={busybox_base}",
               "-d", f"{registry.host}/kaniko/gate-{verdict}:1", "--policy", str(policy),
               "--log-format", "json"])
    err = capsys.readouterr().err
    events = _events(err)
    (gate,) = [e for e in events if e["event"] == "gate"]
    assert gate["verdict"] == verdict, err
    if verdict == "allow":
        assert rc == 0 and gate["images"][0].startswith(busybox_base.rsplit(":", 1)[0])
    else:
        assert rc == 1 and events[-1]["event"] == "error"
        assert not [e for e in events if e["event"] == "step_start"]  # nothing ran


def test_registry_client_cert_for_mutual_tls(tmp_path: Path, busybox_base: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _docker_config(tmp_path, monkeypatch, {})
    with run_registry(tls=True, client_ca=True) as mtls:
        ctx = _ctx(tmp_path)
        base = ["build", "-c", str(ctx), "--build-arg", f"BASE={busybox_base}",
                "-d", f"{mtls.host}/kaniko/mtls:1",
                "--registry-certificate", f"{mtls.host}={mtls.ca_path}"]
        assert main(base) == 1  # no client certificate: the handshake fails before any step
        err = capsys.readouterr().err
        assert "cannot push to" in err and "[1/" not in err, err
        cert, key = mtls.extra["client_cert"], mtls.extra["client_key"]
        assert main([*base, "--registry-client-cert", f"{mtls.host}={cert},{key}"]) == 0, \
            capsys.readouterr().err
        from trustbuild.registry.options import StoreOptions
        from trustbuild.registry.store import RegistryStore

        store = RegistryStore(mtls.host, "kaniko/mtls", StoreOptions(
            registry_certificates={mtls.host: str(mtls.ca_path)},
            registry_client_certs={mtls.host: (str(cert), str(key))}))
        try:
            assert store.list_tags() == ["1"]
        finally:
            store.close()


def test_terminal_shows_bars_for_pulls_and_pushes(tmp_path: Path, busybox_base: str,
                                                  registry: Any) -> None:
    import io

    from trustbuild.builder.api import build
    from trustbuild.builder.events import BuildLog
    from trustbuild.builder.options import BuildOptions

    out = io.StringIO()
    opts = BuildOptions(context=str(_ctx(tmp_path)), build_args={"BASE": busybox_base},
                        destinations=[f"{registry.host}/kaniko/tty:1"], output=out,
                        log=BuildLog(out, tty=True))
    with build(opts):
        pass
    text = out.getvalue()
    assert "\r\x1b[Kpull " in text and "\r\x1b[Kpush " in text, text  # live bars
    assert "\r\x1b[Kpulled " in text and "\r\x1b[Kpushed " in text, text
