"""Secret-looking names and their values."""

from __future__ import annotations

import pytest

from trustbuild.attest.redact import (
    REDACTED,
    is_secret_name,
    redact_env_list,
    redact_mapping,
    redact_text,
)


@pytest.mark.parametrize("name", ["MY_TOKEN", "token", "Db_Password", "passwd", "API_KEY",
                                  "aws_secret_access_key", "GIT_CREDENTIALS", "AuthHeader"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["VERSION", "HTTP_PROXY", "PATH", "DEBIAN_FRONTEND"])
def test_plain_names(name):
    assert not is_secret_name(name)


def test_redact_mapping_keeps_plain_values_and_none():
    assert redact_mapping({"MY_TOKEN": "s3cr3t", "V": "1", "API_KEY": None}) == \
        {"MY_TOKEN": REDACTED, "V": "1", "API_KEY": None}


def test_redact_env_list():
    assert redact_env_list(["PATH=/bin", "DB_PASSWORD=hunter2", "NOVALUE"]) == \
        ["PATH=/bin", f"DB_PASSWORD={REDACTED}", "NOVALUE"]


@pytest.mark.parametrize("text, secret", [
    ("ARG MY_TOKEN=s3cr3t", "s3cr3t"),
    ('ENV API_KEY="a b c" OTHER=1', "a b c"),
    ("ENV DB_PASSWORD hunter2", "hunter2"),
    ("|2 MY_SECRET=zz VERSION=1 /bin/sh -c make", "zz"),
])
def test_redact_text(text, secret):
    out = redact_text(text)
    assert secret not in out and REDACTED in out


def test_redact_text_leaves_plain_assignments():
    assert redact_text("ENV VERSION=1 PATH=/usr/bin") == "ENV VERSION=1 PATH=/usr/bin"
