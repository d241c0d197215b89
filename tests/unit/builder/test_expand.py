"""Variable expansion: buildkit shell/lex.go semantics (cases after buildkit's envVarTest)."""

from __future__ import annotations

import pytest

from trustbuild.builder.expand import EXPANDING_INSTRUCTIONS, ExpansionError, expand, expand_words

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# (source, expected) -- "error" means the word is rejected.
CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", "error"),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", "error"),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', "error"),
    ('"hello\\"', "error"),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", "error"),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ('"\'\'"', "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("\\${}aaa", "${}aaa"),
    ("he\\${}xx", "he${}xx"),
    ("${}", "error"),
    ("he${}xx", "error"),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", "error"),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", "error"),
    ("he${XXX?}", "error"),
    ("he${XXX:?}", "error"),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", "error"),
    ("he${NULL-x}", "he"),
    ("he${NULL:-x}", "hex"),
    ("he${NULL+x}", "hex"),
    ("he${NULL:+x}", "he"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ('"he\'$PWD\'"', "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("he${PWD", "error"),
    ("he${PWD:=000}xx", "error"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안녕$KOREAN", "안녕한국어"),
    ("안'녕'하세요", "안녕하세요"),
    ("a b  c", "a b  c"),
    ("$PWD/$SHELL", "/home/bash"),
]


@pytest.mark.parametrize(("source", "want"), CASES)
def test_expand_table(source: str, want: str) -> None:
    if want == "error":
        with pytest.raises(ExpansionError):
            expand(source, ENV)
    else:
        assert expand(source, ENV) == want


@pytest.mark.parametrize(("source", "env", "want"), [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%.*}", {"FOO": "a.b.c"}, "a.b"),
    ("${FOO%%.*}", {"FOO": "a.b.c"}, "a"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$N/$R} - ${FOO//$N/$R}", {"FOO": "/a/foo/b/c.txt", "N": "/?/", "R": "/"},
     "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("something-${V}.${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tar.gz",
     {"V": "v1", "OS": "linux", "ARCH": "arm", "VARIANT": "v7"},
     "something-v1.linux-arm-v7.tar.gz"),
])
def test_expand_modifiers(source: str, env: dict[str, str], want: str) -> None:
    assert expand(source, env) == want


@pytest.mark.parametrize("source", ["${FOO=aaa}", "${FOO//ww}", "${FOO//}", "${FOO#\\x}"])
def test_expand_modifier_errors(source: str) -> None:
    with pytest.raises(ExpansionError, match="failed to process"):
        expand(source, {"FOO": "xxyy"})


def test_required_variable_message() -> None:
    with pytest.raises(ExpansionError, match="VAR: message herex"):
        expand("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})
    assert expand("${VAR?message}", {"VAR": ""}) == ""


def test_backtick_escape() -> None:
    assert expand("C:\\path\\to `$HOME", {"HOME": "x"}, escape="`") == "C:\\path\\to $HOME"
    assert expand('"a`"b"', {}, escape="`") == 'a"b'


@pytest.mark.parametrize(("text", "env", "want"), [
    ("a b c", {}, ["a", "b", "c"]),
    ('a "b c" $X', {"X": "d e"}, ["a", "b c", "d", "e"]),
    ('"$X"', {"X": "d e"}, ["d e"]),
    ("'a  b'c d", {}, ["a  bc", "d"]),
    ('""', {}, []),
    ("  lead  trail  ", {}, ["lead", "trail"]),
    ("a\\ b", {}, ["a b"]),
    ("$EMPTY x", {}, ["x"]),
])
def test_expand_words(text: str, env: dict[str, str], want: list[str]) -> None:
    assert expand_words(text, env) == want


def test_expanding_instructions_match_docker_docs() -> None:
    for cmd in ("ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER",
                "VOLUME", "WORKDIR", "ARG"):
        assert cmd in EXPANDING_INSTRUCTIONS
    for cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "MAINTAINER"):
        assert cmd not in EXPANDING_INSTRUCTIONS


def test_expand_heredoc_keeps_quotes() -> None:
    from trustbuild.builder.expand import expand_heredoc

    body = 'echo "hello ${FOO}" \'$FOO\' \\$FOO\n'
    assert expand_heredoc(body, {"FOO": "bar"}) == "echo \"hello bar\" 'bar' \\$FOO\n"
