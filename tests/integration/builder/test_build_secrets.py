"""Build secrets end to end: ``--secret`` / ``--ssh`` with ``RUN --mount=type=secret|ssh``.

The secret values are random; after a build that pushes to the real registry (signed, with
provenance and SBOM attestations, with the layer cache on) and writes an OCI layout, a docker
archive and digest files, every byte the build produced is searched for them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.imagefs import fetch_dir, flatten, read_dir_image
from fixtures.procs import children_of

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.privileged]

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && test -s /run/secrets/tok \
 && sha256sum /run/secrets/tok | cut -c1-64 > /hash && ! touch /run/secrets/tok 2>/dev/null
RUN --mount=type=secret,id=envtok,env=ENVTOK,target=/etc/envtok,mode=0440,uid=1,gid=2,required \
 test "$(stat -c %a:%u:%g /etc/envtok)" = 440:1:2 \
 && printf %s "$ENVTOK" | sha256sum | cut -c1-64 > /envhash
RUN --mount=type=secret,id=tok grep " /run/secrets/tok " /proc/self/mountinfo > /secret-mount
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent
RUN --mount=type=secret,id=tok echo "sees $(cat /run/secrets/tok)"
RUN test ! -e /run/secrets/tok && test -z "$ENVTOK" && echo gone > /gone
RUN --mount=type=ssh test -S /run/buildkit/ssh_agent.0 \
 && test "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 \
 && stat -c %a:%u /run/buildkit/ssh_agent.0 > /sshstat
RUN --mount=type=ssh,id=deploy,target=/agent,mode=0666 test -S /agent && stat -c %a /agent > /ssh2
RUN --mount=type=ssh,id=sock,uid=1,gid=2,mode=0640 test -S /run/buildkit/ssh_agent.0 \
 && stat -c %a:%u:%g /run/buildkit/ssh_agent.0 > /ssh3
"""


def _ssh_keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, timeout=60)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent on a socket of its own."""
    if shutil.which("ssh-agent") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-client is needed")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        subprocess.run(["sh", "-c", f"while [ ! -S {sock} ]; do sleep 0.05; done"],
                       check=True, timeout=30)
        yield sock
    finally:
        proc.terminate()
        proc.wait()


def _decoded(data: bytes) -> Iterator[bytes]:
    """``data`` and what it decodes to: gzip/zstd, tar members, DSSE payloads."""
    yield data
    if data[:2] == b"\x1f\x8b":
        try:
            yield from _decoded(gzip.decompress(data))
        except (OSError, EOFError):  # another test's truncated blob: the raw bytes were searched
            pass
    elif data[:4] == b"\x28\xb5\x2f\xfd" and shutil.which("zstd"):
        out = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=False)
        yield from _decoded(out.stdout)
    if len(data) > 512 and data[257:262] == b"ustar":
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                members = [tf.extractfile(i).read()  # type: ignore[union-attr]
                           for i in tf if i.isreg()]
        except tarfile.TarError:
            members = []
        for member in members:
            yield from _decoded(member)
    if data[:1] in (b"{", b"["):
        try:
            doc = json.loads(data)
        except ValueError:
            return
        for payload in _payloads(doc):
            yield from _decoded(base64.b64decode(payload))


def _payloads(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "payload" and isinstance(v, str):
                yield v
            else:
                yield from _payloads(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _payloads(v)


def _leaks(values: list[bytes], where: dict[str, bytes]) -> list[str]:
    forms = [f for v in values for f in (v, base64.b64encode(v))]
    out = []
    for name, data in where.items():
        for piece in _decoded(data):
            if any(f in piece for f in forms):
                out.append(name)
                break
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _key_secrets(key: Path) -> list[bytes]:
    """What of an OpenSSH private key file must not leak: each line of its PEM body, the key
    blob the body decodes to, and the ed25519 private seed inside that blob."""
    body = [line for line in key.read_bytes().splitlines()
            if line and not line.startswith(b"-----")]
    blob = base64.b64decode(b"".join(body))
    magic = b"openssh-key-v1\0"
    assert blob.startswith(magic), blob[:20]

    def strings(data: bytes, at: int, count: int) -> tuple[list[bytes], int]:
        out = []
        for _ in range(count):
            n = int.from_bytes(data[at:at + 4], "big")
            out.append(data[at + 4:at + 4 + n])
            at += 4 + n
        return out, at

    # cipher, kdf, kdf options (none: not encrypted), key count, public key, private section
    _, at = strings(blob, len(magic), 3)
    (_, private), _ = strings(blob, at + 4, 2)
    # two check words, key type, public key, private key (seed + public key)
    (kind, _, priv), _ = strings(private, 8, 3)
    assert kind == b"ssh-ed25519" and len(priv) == 64, kind
    return [*body, blob, priv[:32]]


def _provenance(storage: Path, digest: str) -> list[dict[str, Any]]:
    found = []
    for data in _tree(storage).values():
        for piece in _decoded(data):
            if b"slsa.dev/provenance" in piece and piece[:1] == b"{" and digest.split(":")[1] \
                    .encode() in piece:
                try:
                    doc = json.loads(piece)
                except ValueError:
                    continue
                if "predicate" in doc:
                    found.append(doc)
    return found


@pytest.mark.parametrize("mode", ["overlay", "walk"])
def test_secrets_never_leave_the_step(mode: str, tmp_path: Path, busybox_base: str,
                                      registry: Any, agent: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    file_secret = b"tb-file-" + secrets.token_hex(24).encode()
    env_secret = "tb-env-" + secrets.token_hex(24)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    secret_file = tmp_path / "tok.txt"  # outside the context
    secret_file.write_bytes(file_secret)
    key = tmp_path / "deploy_key"
    _ssh_keygen(key)
    monkeypatch.setenv("TB_TEST_ENVTOK", env_secret)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", "pw")
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "cosign")]) == 0
    host = registry.host
    ref = f"{host}/secrets/{mode}:1"
    out = tmp_path / "out"
    out.mkdir()
    common = ["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
              "--secret", f"id=tok,src={secret_file}", "--secret", "id=envtok,env=TB_TEST_ENVTOK",
              "--ssh", "default", "--ssh", f"deploy={key}", "--ssh", f"sock={agent}",
              "--snapshot-mode", mode,
              "--cache", "--cache-repo", f"{host}/secrets-cache/{mode}",
              "--cache-dir", str(tmp_path / "store")]
    capsys.readouterr()
    rc = main([*common, "--destination", ref, "--oci-layout-path", str(out / "layout"),
               "--tar-path", str(out / "image.tar"), "--digest-file", str(out / "digest"),
               "--image-name-with-digest-file", str(out / "names"),
               "--sign-key", str(tmp_path / "cosign.key"), "--attest", "provenance,sbom",
               "--log-format", "json"])
    log = capsys.readouterr()
    assert rc == 0, log.err[-3000:]
    digest = (out / "digest").read_text().strip()
    assert _build_agents() == []  # the ssh-agent holding the deploy key stopped with the build

    pushed = fetch_dir(ref, tmp_path / "pushed")
    files = flatten(pushed)
    hexd = lambda b: (hashlib.sha256(b).hexdigest() + "\n").encode()  # noqa: E731
    _, cfg = read_dir_image(pushed)
    layer_files = _image_files(out / "layout", digest)
    assert layer_files["/hash"] == hexd(file_secret)  # the step could read the secret
    assert layer_files["/envhash"] == hexd(env_secret.encode())
    # on a tmpfs of its own, read-only, nosuid, nodev, noexec
    mountinfo = layer_files["/secret-mount"].decode().split()
    assert set(mountinfo[5].split(",")) >= {"ro", "nosuid", "nodev", "noexec"}, mountinfo
    assert mountinfo[mountinfo.index("-") + 1] == "tmpfs", mountinfo
    assert layer_files["/absent"] == b"skipped\n"  # an optional secret not given: not mounted
    assert layer_files["/gone"] == b"gone\n"
    assert layer_files["/sshstat"] == b"600:0\n"
    assert layer_files["/ssh2"] == b"666\n"
    assert layer_files["/ssh3"] == b"640:1:2\n"  # --ssh ID=SOCKET; the mount's uid/gid/mode
    for target in ("/run/secrets/tok", "/etc/envtok", "/run/secrets/absent", "/agent",
                   "/run/buildkit/ssh_agent.0"):
        assert target not in files, target
    assert "sees <redacted>" in log.err  # a step printing the value is masked in the log

    history = [h.get("created_by", "") for h in cfg["history"]]
    assert any("cat /run/secrets/tok" in h for h in history)
    record = json.loads(log.out)["record"]
    assert record["secrets"] == [{"id": "tok", "optional": True},
                                 {"id": "envtok", "optional": False},
                                 {"id": "absent", "optional": True}]
    assert record["ssh"] == [{"id": "default", "optional": True},
                             {"id": "deploy", "optional": True},
                             {"id": "sock", "optional": True}]
    provs = _provenance(registry.storage, digest)
    assert provs, "no provenance attestation found in the registry"
    ext = provs[0]["predicate"]["buildDefinition"]["externalParameters"]
    assert [s["id"] for s in ext["secrets"]] == ["tok", "envtok", "absent"]

    store = _tree(tmp_path / "store")  # the local layer store --cache keeps
    assert any(hexd(file_secret) in piece for data in store.values() for piece in _decoded(data)),\
        "the RUN layers are not in the local layer store"
    everything = {"stdout": log.out.encode(), "stderr": log.err.encode(),
                  **_tree(out), **_tree(registry.storage), **_tree(pushed), **store}
    assert _leaks([file_secret, env_secret.encode(), *_key_secrets(key)], everything) == []

    # the cache key holds ids, not values: other values reuse every cached RUN layer
    secret_file.write_bytes(b"tb-other-" + secrets.token_hex(8).encode())
    monkeypatch.setenv("TB_TEST_ENVTOK", "tb-other-env")
    capsys.readouterr()
    assert main([*common, "--no-push", "--oci-layout-path", str(tmp_path / "again")]) == 0
    err = capsys.readouterr().err
    assert err.count("RUN: cache hit") == 9, err[-3000:]
    assert _image_files(tmp_path / "again")["/hash"] == hexd(file_secret)


def _build_agents() -> list[int]:
    """ssh-agents this process started for --ssh key files and that still run."""
    return children_of(os.getpid(), lambda argv: argv[0].endswith(b"ssh-agent")
                       and any(b"/ssh-agent-" in c for c in argv))


def _image_files(layout: Path, digest: str = "") -> dict[str, bytes]:
    """Regular files of the image (``digest``, else the layout's first manifest) in an OCI
    layout, after applying every layer."""
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(digest or index["manifests"][0]["digest"]).read_bytes())
    out: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"]), mode="r:*") as tf:
            for info in tf:
                name = "/" + info.name.lstrip("./")
                if info.isreg():
                    out[name] = tf.extractfile(info).read()  # type: ignore[union-attr]
                else:
                    out.pop(name, None)
    return out


MISSING = {
    "secret": ("RUN --mount=type=secret,id=npmrc,required=true cat /run/secrets/npmrc\n",
               "secret 'npmrc' is required but was not given: pass --secret id=npmrc"),
    "ssh": ("RUN --mount=type=ssh,id=gh,required true\n",
            "ssh agent 'gh' is required but was not given: pass --ssh gh"),
}


@pytest.mark.parametrize("kind", sorted(MISSING))
def test_missing_required_secret_fails_before_any_run(kind: str, tmp_path: Path,
                                                      busybox_base: str, registry: Any,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    line, message = MISSING[kind]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"ARG BASE\nFROM ${{BASE}}\nRUN echo first-step-ran\n{line}")
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "--destination", f"{registry.host}/secrets-missing/{kind}:1"])
    err = capsys.readouterr().err
    assert rc == 1, err
    errors = [x for x in err.splitlines() if x.startswith("trustbuild: error:")]
    assert len(errors) == 1 and message in errors[0] and "Dockerfile:4" in errors[0], err
    assert "first-step-ran" not in err


def test_container_mode_refuses_secret_mounts(busybox_base: str, registry: Any,
                                              tmp_path: Path) -> None:
    """Inside a container without CAP_SYS_ADMIN (a bubblewrap box, never this machine's "/")
    ``--mode auto`` builds Kaniko's way; a secret mount is refused before any RUN."""
    from fixtures.containerbox import ContainerBox, available

    why = available()
    if why:
        pytest.skip(f"container mode tests need bubblewrap and patchelf: {why}")
    ws = tmp_path / "ws"
    (ws / "ctx").mkdir(parents=True)
    (ws / "ctx" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN echo first-step-ran\n"
                                           "RUN --mount=type=secret,id=s cat /run/secrets/s\n")
    (ws / "s").write_text("value")
    with tempfile.TemporaryDirectory(prefix="tb-box-") as d:
        box = ContainerBox(Path(d))
        r = subprocess.run(box.argv(["build", "--context", "/workspace/ctx", "--build-arg",
                                     f"BASE={busybox_base}", "--secret", "id=s,src=/workspace/s",
                                     "--destination",
                                     f"{registry.host}/secrets-container/refused:1"],
                                    workspace=ws),
                           capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [x for x in r.stderr.splitlines() if x.startswith("trustbuild: error:")]
    assert len(errors) == 1 and "needs the RUN sandbox" in errors[0], r.stderr[-3000:]
    assert "Dockerfile:4" in errors[0] and "first-step-ran" not in r.stderr


def test_secret_flag_errors_are_usage_errors(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["build", "--no-push", "--oci-layout-path", str(tmp_path / "l"),
               "--secret", f"id=x,src={tmp_path / 'missing'}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "--secret id=x: cannot read" in err and len(err.strip().splitlines()) == 1, err

