"""``--secret`` and ``--ssh`` values (buildx syntax): parsing, reading, one-line errors."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from trustbuild.builder.buildsecrets import (
    load_secrets,
    parse_secret_flag,
    parse_ssh_flags,
    secret_ids,
)
from trustbuild.errors import UsageError


def test_secret_sources_as_buildx(tmp_path: Path) -> None:
    env = {"API_TOKEN": "from-env", "tok": "env-named-like-id"}
    assert parse_secret_flag("id=a,src=/f", environ=env) == ("a", "file", "/f")
    assert parse_secret_flag("id=a,source=/f,type=file", environ=env) == ("a", "file", "/f")
    assert parse_secret_flag("id=a,env=API_TOKEN", environ=env) == ("a", "env", "API_TOKEN")
    assert parse_secret_flag("type=env,id=a,src=API_TOKEN", environ=env) == ("a", "env",
                                                                             "API_TOKEN")
    # neither src nor env: the variable named like the id if set, else the file
    assert parse_secret_flag("id=tok", environ=env) == ("tok", "env", "tok")
    assert parse_secret_flag("id=other", environ=env) == ("other", "file", "other")
    f = tmp_path / "s"
    f.write_bytes(b"file-value\n")
    got = load_secrets([f"id=a,src={f}", "id=b,env=API_TOKEN", "id=a,env=tok"], environ=env)
    assert got == {"a": b"env-named-like-id", "b": b"from-env"}  # last wins


@pytest.mark.parametrize("item,message", [
    ("src=/etc/hostname", "id= is required"),
    ("id=a,src=/nonexistent/x", "cannot read /nonexistent/x"),
    ("id=a,env=NOPE_NOT_SET", "NOPE_NOT_SET is not set"),
    ("id=a,type=vault", "unsupported type"),
    ("id=a,colour=blue", "unexpected key 'colour'"),
    ("id=a,src", "must be a key=value pair"),
    ("id=a,src=/dev/null", "not a regular file"),
])
@pytest.mark.parametrize("check", [load_secrets, secret_ids])
def test_bad_secret_flags(item: str, message: str, check: Any) -> None:
    with pytest.raises(UsageError, match=message) as info:
        check([item], environ={})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("check", [load_secrets, secret_ids])
def test_secret_size_limit(tmp_path: Path, check: Any) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (500 * 1024 + 1))
    with pytest.raises(UsageError, match="larger than 500 KiB"):
        check([f"id=big,src={big}"], environ={})


def test_secret_ids_checks_the_sources_without_reading_them(tmp_path: Path) -> None:
    f = tmp_path / "s"
    f.write_bytes(b"file-value\n")
    f.chmod(0)  # root could still read it; the ids come from stat alone
    assert secret_ids([f"id=a,src={f}", "id=b,env=API_TOKEN", "id=a,env=tok"],
                      environ={"API_TOKEN": "v", "tok": "w"}) == {"a", "b"}


def test_ssh_flags(tmp_path: Path) -> None:
    sock_path = tmp_path / "agent.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(sock_path))
    key1, key2 = tmp_path / "k1", tmp_path / "k2"
    key1.write_text("k")
    key2.write_text("k")
    try:
        env = {"SSH_AUTH_SOCK": str(sock_path)}
        got = parse_ssh_flags(["default", f"sock={sock_path}", f"keys={key1},{key2}"],
                              environ=env)
        assert got == {"default": [str(sock_path)], "sock": [str(sock_path)],
                       "keys": [str(key1), str(key2)]}
        with pytest.raises(UsageError, match="SSH_AUTH_SOCK is not set"):
            parse_ssh_flags(["default"], environ={})
        with pytest.raises(UsageError, match="No such file"):
            parse_ssh_flags([f"x={tmp_path}/missing"], environ={})
        with pytest.raises(UsageError, match="not both"):
            parse_ssh_flags([f"x={sock_path},{key1}"], environ={})
        with pytest.raises(UsageError, match="neither an agent socket nor a key file"):
            parse_ssh_flags([f"x={tmp_path}"], environ={})
    finally:
        srv.close()
