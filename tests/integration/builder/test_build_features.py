"""Build semantics through the API: heredocs, ADD URLs, ONBUILD triggers, the gate, the record."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures.imagefs import fetch_dir, flatten, read_dir_image, tag_exists

from trustbuild.builder.api import build, prepare
from trustbuild.builder.options import BuildOptions
from trustbuild.errors import DockerfileError

pytestmark = [pytest.mark.slow]


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback http.server serving ``tmp_path/www``; yields (base URL, directory)."""
    www = tmp_path / "www"
    www.mkdir()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(www), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=5)


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).write_text(text)
    return ctx


def _opts(ctx: Path, base: str, dest: str, **kw: object) -> BuildOptions:
    return BuildOptions(context=str(ctx), destinations=[dest], output=io.StringIO(),
                        build_args={"BASE": base, **kw.pop("build_args", {})},  # type: ignore[dict-item]
                        **kw)  # type: ignore[arg-type]


def test_heredoc_add_url_and_record(tmp_path: Path, busybox_base: str, registry: object,
                                    http_files: tuple[str, Path]) -> None:
    url, www = http_files
    (www / "payload.bin").write_bytes(b"payload\n")
    good = "sha256:" + hashlib.sha256(b"payload\n").hexdigest()
    host = registry.host  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, f"""\
ARG BASE
FROM ${{BASE}}
ARG API_TOKEN
ARG GREETING=hello
COPY <<EOF /greeting.txt
${{GREETING}} from a heredoc
EOF
COPY <<'EOF' /literal.txt
${{GREETING}}
EOF
ADD --checksum={good} {url}/payload.bin /downloads/
ADD {url}/payload.bin /renamed.bin
""")
    opts = _opts(ctx, busybox_base, f"{host}/features/heredoc:1",
                 build_args={"API_TOKEN": "s3cr3t-value"})
    with build(opts) as result:
        rec = result.record
        assert rec.build_args["API_TOKEN"] == "<redacted>"
        assert rec.build_args["BASE"] == busybox_base
        assert rec.dockerfile_digest.startswith("sha256:") and rec.context_digest
        assert [i.role for i in rec.images] == ["base"]
        assert rec.images[0].digest.startswith("sha256:")
        assert [s.instruction for s in rec.steps][:1] == ["FROM"]
        assert all(s.finished >= s.started > 0 for s in rec.steps)
        assert "s3cr3t-value" not in str(rec.to_json())
        assert result.digest == rec.result_digest
        assert (result.rootfs / "greeting.txt").read_text() == "hello from a heredoc\n"
    fs = flatten(fetch_dir(f"{host}/features/heredoc:1", tmp_path / "img"))
    assert fs["/literal.txt"].sha256 == hashlib.sha256(b"${GREETING}\n").hexdigest()
    assert fs["/downloads/payload.bin"].mode == 0o600
    assert fs["/renamed.bin"].size == 8


def test_add_url_checksum_mismatch_pushes_nothing(tmp_path: Path, busybox_base: str,
                                                  registry: object,
                                                  http_files: tuple[str, Path]) -> None:
    url, www = http_files
    (www / "payload.bin").write_bytes(b"tampered\n")
    bad = "sha256:" + hashlib.sha256(b"payload\n").hexdigest()
    host = registry.host  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, f"ARG BASE\nFROM $BASE\nADD --checksum={bad} {url}/payload.bin /p\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:3 ADD.*digest"):
        build(_opts(ctx, busybox_base, f"{host}/features/badsum:1"))
    assert not tag_exists(host, "features/badsum", "1")


def test_add_url_failures_are_one_line_without_the_query(tmp_path: Path, busybox_base: str,
                                                        registry: object,
                                                        http_files: tuple[str, Path]) -> None:
    url, _www = http_files
    host = registry.host  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, f"ARG BASE\nFROM $BASE\nADD {url}/missing.bin?sig=s3cr3t /p\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:3 ADD .*/missing.bin\?sig=<redacted>: "
                       r"HTTP 404") as err:
        build(_opts(ctx, busybox_base, f"{host}/features/missing:1"))
    # the query appears once: in the instruction as written, which prefixes every step error
    assert str(err.value).count("s3cr3t") == 1 and "\n" not in str(err.value)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (tmp_path / "b").mkdir()
    ctx = _ctx(tmp_path / "b", f"ARG BASE\nFROM $BASE\nADD http://127.0.0.1:{closed}/x /p\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:3 ADD .* /p: ADD http://127.0.0.1:"
                       r"\d+/x: cannot download \(\[Errno 111\] Connection refused\)"):
        build(_opts(ctx, busybox_base, f"{host}/features/missing:1"))
    assert not tag_exists(host, "features/missing", "1")


def test_onbuild_triggers_run_in_child_build(tmp_path: Path, busybox_base: str,
                                             registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    parent = tmp_path / "parent"
    parent.mkdir()
    _ctx(parent, "ARG BASE\nFROM $BASE\nONBUILD COPY trigger.txt /from-trigger.txt\n"
         "ONBUILD ENV TRIGGERED=yes\n")
    with build(_opts(parent / "ctx", busybox_base, f"{host}/features/parent:1")):
        pass
    child = _ctx(tmp_path, f"FROM {host}/features/parent:1\nLABEL child=1\n",
                 {"trigger.txt": "child context\n"})
    opts = BuildOptions(context=str(child), destinations=[f"{host}/features/child:1"],
                        output=io.StringIO())
    with build(opts):
        pass
    d = fetch_dir(f"{host}/features/child:1", tmp_path / "child-img")
    _, cfg = read_dir_image(d)
    assert "TRIGGERED=yes" in cfg["config"]["Env"]
    assert not cfg["config"].get("OnBuild")
    assert flatten(d)["/from-trigger.txt"].size == len("child context\n")


def test_prepare_pins_every_image_before_anything_runs(tmp_path: Path, busybox_base: str,
                                                        registry: object) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, "ARG BASE\nFROM $BASE AS one\nFROM $BASE\n"
               "COPY --from=one /etc/passwd /p\n")
    opts = _opts(ctx, busybox_base, f"{host}/features/gated:1")
    with prepare(opts) as plan:  # a gate looks here, then runs the plan or closes it
        seen = [(i.role, i.digest) for i in plan.record.images]
        assert not plan.record.steps
        work = plan.work
    assert seen and all(d.startswith("sha256:") for _, d in seen)
    assert not work.exists()
    assert not tag_exists(host, "features/gated", "1")
