"""Bad input to ``trustbuild build``: one error naming Dockerfile:LINE and the instruction, exit 1,
and nothing pushed (the destination tag does not exist afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.imagefs import tag_exists

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow]


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return ctx


CASES = {
    "syntax": ("FROM $BASE\nCOPY\n", {}, [], "Dockerfile:2", "COPY"),
    "unknown-instruction": ("FROM $BASE\nFROBNICATE x\n", {}, [], "Dockerfile:2", "FROBNICATE"),
    "unknown-flag": ("FROM $BASE\nCOPY --bogus=1 a /a\n", {"a": "a"}, [], "Dockerfile:2",
                     "COPY"),
    "missing-file": ("FROM $BASE\nRUN true\nCOPY nothere.txt /x\n", {}, [], "Dockerfile:3",
                     "COPY"),
    "escaping-source": ("FROM $BASE\nCOPY ../outside.txt /x\n", {}, [], "Dockerfile:2", "COPY"),
    "unknown-from-index": ("FROM $BASE AS one\nFROM $BASE\nCOPY --from=7 /etc/passwd /p\n",
                           {}, [], "Dockerfile:3", "--from=7"),
    "later-from-stage": ("FROM $BASE\nCOPY --from=later /etc/passwd /p\nFROM $BASE AS later\n",
                         {}, ["--target", "0"], "Dockerfile:2", "later"),
    "unknown-target": ("FROM $BASE AS one\n", {}, ["--target", "two"], "Dockerfile", "two"),
    "failing-run": ("FROM $BASE\nRUN echo about to fail && exit 3\n", {}, [], "Dockerfile:2",
                    "exit code 3"),
    "unknown-user": ("FROM $BASE\nUSER nobody-here\nRUN true\n", {}, [], "Dockerfile:3", "RUN"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_cleanly(name: str, tmp_path: Path, busybox_base: str, registry: object,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    dockerfile, files, extra, where, what = CASES[name]
    dockerfile = "ARG BASE\n" + dockerfile
    ctx = _ctx(tmp_path, dockerfile, files)
    (tmp_path / "outside.txt").write_text("secret")
    host = registry.host  # type: ignore[attr-defined]
    rc = main(["build", "--context", str(ctx), "--build-arg", f"BASE={busybox_base}",
               "--destination", f"{host}/errors/{name}:1", *extra])
    err = capsys.readouterr().err
    assert rc == 1, err
    last = [line for line in err.splitlines() if line.startswith("trustbuild: error:")]
    assert len(last) == 1, err
    # the Dockerfile had "ARG BASE" prepended: line numbers are one more
    if where.startswith("Dockerfile:"):
        where = f"Dockerfile:{int(where.split(':')[1]) + 1}"
    assert where in last[0] and what in last[0], last[0]
    assert not tag_exists(host, f"errors/{name}", "1")


def test_unreachable_base(tmp_path: Path, registry: object,
                          capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _ctx(tmp_path, "FROM 127.0.0.1:9/nothing/here:1\nCOPY Dockerfile /\n")
    host = registry.host  # type: ignore[attr-defined]
    rc = main(["build", "--context", str(ctx), "--destination", f"{host}/errors/unreachable:1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Dockerfile:1 FROM" in err and "127.0.0.1:9/nothing/here" in err, err
    assert not tag_exists(host, "errors/unreachable", "1")


def test_unauthorised_base(tmp_path: Path, registry: object, token_registry: object,
                           capsys: pytest.CaptureFixture[str]) -> None:
    base = f"{token_registry.host}/private/base:1"  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, f"FROM {base}\n")
    host = registry.host  # type: ignore[attr-defined]
    rc = main(["build", "--context", str(ctx), "--destination", f"{host}/errors/unauth:1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Dockerfile:1 FROM" in err and "private/base" in err, err
    assert not tag_exists(host, "errors/unauth", "1")


def test_missing_base_tag(tmp_path: Path, registry: object,
                          capsys: pytest.CaptureFixture[str]) -> None:
    host = registry.host  # type: ignore[attr-defined]
    ctx = _ctx(tmp_path, f"FROM {host}/no/such:tag\n")
    rc = main(["build", "--context", str(ctx), "--destination", f"{host}/errors/nobase:1"])
    err = capsys.readouterr().err
    assert rc == 1 and "Dockerfile:1 FROM" in err and "no/such" in err, err
    assert not tag_exists(host, "errors/nobase", "1")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--context", "."]) == 2  # nothing to do
    assert main(["build", "--no-push", "--tar-path", "/tmp/x.tar", "--label", "novalue"]) == 2
    assert main(["build", "--no-push", "--oci-layout-path", "/tmp/x", "--attest", "bogus"]) == 2
    capsys.readouterr()
