"""Hostile input: any text gives a parse result or a one-line DockerfileError, never a trace."""

from __future__ import annotations

import random

import pytest

from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.builder.dockerignore import IgnoreMatcher
from trustbuild.builder.expand import ExpansionError, expand, expand_words
from trustbuild.errors import DockerfileError

WORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK", "CMD",
         "SHELL", "VOLUME", "EXPOSE", "USER", "WORKDIR", "x", "AS", "--from=a", "--chmod",
         "--link", "--", "<<EOF", "<<-'E'", "EOF", "E", "[", "]", '["a"', '"', "'", "\\", "`",
         "$", "${", "}", ":-", "=", "#", "# escape=`", "\t", " ", "\n", "\r\n", "NONE",
         "--interval=1", "{", "3<<X", "X", "ü", "\x00", "\ufeff"]


def _random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(WORDS) + rng.choice(["", " ", "\n"])
                    for _ in range(rng.randint(1, 40))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(8))
def test_random_dockerfiles_fail_cleanly(seed: int) -> None:
    for text in _random_texts(seed, 250):
        try:
            parse_dockerfile(text)
        except DockerfileError as exc:
            assert str(exc).startswith("Dockerfile")
            assert "\n" not in str(exc).split(": ", 1)[0]


@pytest.mark.parametrize("seed", range(4))
def test_random_words_expand_or_raise_expansion_error(seed: int) -> None:
    env = {"A": "a b", "EMPTY": ""}
    for text in _random_texts(seed + 100, 250):
        for escape in ("\\", "`"):
            try:
                expand(text, env, escape=escape)
                expand_words(text, env, escape=escape)
            except ExpansionError as exc:
                assert str(exc).startswith("failed to process")


@pytest.mark.parametrize("seed", range(4))
def test_random_ignore_files(seed: int) -> None:
    rng = random.Random(seed)
    chars = list("ab*?[]!/.\\^$-# \n")
    for _ in range(300):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(1, 30)))
        try:
            m = IgnoreMatcher.from_text(text)
        except DockerfileError:
            continue
        for path in ("a", "a/b", "b/a/c", ".a", "a.b"):
            m.excluded(path)
            m.dir_may_have_included(path)


CANARY = "s3cr3t-canary"
LONG = "x" * 60


@pytest.mark.parametrize("text", [
    f"TB_SIGNING_PASSWORD={CANARY}\0CI_TOKEN=abc",  # /proc/self/environ read as a Dockerfile
    f"{LONG}{CANARY}",
    f"FROM scratch\nCOPY --frm=x a {CANARY}",
    f"FROM scratch\nCOPY --{LONG}{CANARY}=1 a b",
    f"FROM scratch\nCOPY --link={LONG}{CANARY} a b",
    f"FROM scratch\nENV a=1 b {CANARY}",
    f"FROM scratch\nENV a=1 {LONG}{CANARY}",
    f"FROM scratch\nHEALTHCHECK --interval=zz CMD {CANARY}",
    f"FROM scratch\nHEALTHCHECK {LONG}{CANARY} x",
    f"FROM img-{CANARY} AS 1bad",
    f"FROM img-{CANARY} AS a\nFROM img AS a",
    f"# escape={LONG}{CANARY}\nFROM scratch",
    f"FROM scratch\nRUN <<{LONG}{CANARY}\nbody",
    f"FROM scratch\nUSER {CANARY}\nNOTANINSTRUCTION {CANARY}",
])
def test_parse_errors_echo_only_the_offending_token(text: str) -> None:
    """A Dockerfile may be any file (a secret): errors name at most a bounded token."""
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    message = str(info.value)
    assert CANARY not in message
    assert "\n" not in message and "\0" not in message


def test_expansion_and_ignore_errors_echo_a_bounded_token() -> None:
    with pytest.raises(ExpansionError) as info:
        expand("${x" + LONG + CANARY, {})
    assert CANARY not in str(info.value) and "missing '}'" in str(info.value)
    with pytest.raises(DockerfileError) as info2:
        IgnoreMatcher.from_text(f"ok\n[{LONG}{CANARY}\n")
    assert CANARY not in str(info2.value) and ".dockerignore:2" in str(info2.value)
