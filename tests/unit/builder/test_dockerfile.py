"""Dockerfile parsing: directives, continuations, forms, flags, stages, errors."""

from __future__ import annotations

import pytest

from trustbuild.builder.dockerfile import Dockerfile, Instruction, parse_dockerfile
from trustbuild.errors import DockerfileError


def parse(text: str) -> Dockerfile:
    return parse_dockerfile(text, path="Dockerfile")


def insts(text: str) -> list[Instruction]:
    return parse("FROM scratch\n" + text).stages[0].instructions


def one(text: str) -> Instruction:
    (inst,) = insts(text)
    return inst


def test_stages_names_and_global_args() -> None:
    df = parse("ARG BASE=alpine\nARG V\nFROM $BASE AS Builder\nRUN make\n"
               "from --platform=$BUILDPLATFORM scratch\nCOPY --from=builder /a /b\n")
    assert [a.arg_defs for a in df.global_args] == [[("BASE", "alpine")], [("V", None)]]
    assert [(s.index, s.name, s.base, s.platform, s.line) for s in df.stages] == [
        (0, "builder", "$BASE", None, 3), (1, None, "scratch", "$BUILDPLATFORM", 5)]
    assert df.stages[1].from_instruction is not None
    assert df.stages[1].from_instruction.cmd == "FROM"
    assert df.stage_by_name_or_index("BUILDER") is df.stages[0]
    assert df.stage_by_name_or_index("1") is df.stages[1]
    assert df.stage_by_name_or_index("2") is None
    assert df.stage_by_name_or_index("nope") is None


def test_lowercase_keywords_and_line_numbers() -> None:
    df = parse("\n# comment\nfrom scratch\n\ncopy a \\\n  b\nenv A=1\n")
    a, b = df.stages[0].instructions
    assert (a.cmd, a.line, a.end_line, a.args) == ("COPY", 5, 6, ["a", "b"])
    assert (b.cmd, b.line) == ("ENV", 7)


def test_directives_escape_and_syntax() -> None:
    df = parse("# syntax=docker/dockerfile:1.7\n# escape=`\nFROM scratch\n"
               "COPY a `\n  b\nRUN dir c:\\\n")
    assert df.syntax == "docker/dockerfile:1.7"
    assert df.escape == "`"
    copy, run = df.stages[0].instructions
    assert copy.args == ["a", "b"]
    assert run.args == ["dir c:\\"]


def test_directive_only_at_top() -> None:
    df = parse("# a comment\n# escape=`\nFROM scratch\nRUN a \\\n  b\n")
    assert df.escape == "\\"
    assert df.stages[0].instructions[0].args == ["a   b"]
    df = parse("\n# escape=`\nFROM scratch\n")
    assert df.escape == "\\"


def test_directive_repeated_or_invalid() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: only one escape"):
        parse("# escape=`\n# escape=`\nFROM scratch\n")
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM scratch\n")


def test_comments_and_empty_lines_inside_continuation() -> None:
    inst = one("RUN echo a \\\n# a comment\n\n    && echo b \\\n  # indented comment\n  && c\n")
    assert inst.args == ["echo a     && echo b   && c"]
    assert (inst.line, inst.end_line) == (2, 7)


def test_escaped_escape_is_not_continuation() -> None:
    a, b = insts("RUN echo \\\\\nRUN x\n")
    assert a.args == ["echo \\\\"]
    assert b.args == ["x"]


def test_continuation_at_eof_and_crlf_and_bom() -> None:
    df = parse("\ufeffFROM scratch\r\nRUN a \\\r\n  b\r\nCMD x \\")
    run, cmd = df.stages[0].instructions
    assert run.args == ["a   b"]
    assert cmd.args == ["x"]


def test_json_and_shell_forms() -> None:
    run, cmd, ep, shell, bad = insts(
        'RUN ["echo", "a b"]\nCMD echo $HOME\nENTRYPOINT [ "/bin/sh" , "-c" ]\n'
        'SHELL ["/bin/bash", "-c"]\nCMD [not json]\n')
    assert (run.args, run.json_form) == (["echo", "a b"], True)
    assert (cmd.args, cmd.json_form) == (["echo $HOME"], False)
    assert ep.args == ["/bin/sh", "-c"] and ep.json_form
    assert shell.args == ["/bin/bash", "-c"]
    assert (bad.args, bad.json_form) == (["[not json]"], False)
    empty = one("CMD []")
    assert (empty.args, empty.json_form) == ([], True)


def test_json_non_string_rejected() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2 .*strings only"):
        one('CMD ["a", 1]')


def test_shell_requires_json() -> None:
    with pytest.raises(DockerfileError, match="SHELL requires the arguments to be in JSON"):
        one("SHELL /bin/sh -c")


@pytest.mark.parametrize(("text", "pairs"), [
    ('ENV A=1 B="2 3" C=\'x y\' D=', [("A", "1"), ("B", '"2 3"'), ("C", "'x y'"), ("D", "")]),
    ("ENV LEGACY legacy value  with spaces", [("LEGACY", "legacy value  with spaces")]),
    ("ENV A=a\\ b C=$A", [("A", "a\\ b"), ("C", "$A")]),
    ('LABEL "com.example.vendor"="ACME" version=1.0', [('"com.example.vendor"', '"ACME"'),
                                                      ("version", "1.0")]),
    ("LABEL single value", [("single", "value")]),
    ("ENV PATH=/usr/local/bin:$PATH", [("PATH", "/usr/local/bin:$PATH")]),
])
def test_env_label_pairs(text: str, pairs: list[tuple[str, str]]) -> None:
    assert one(text).pairs == pairs


@pytest.mark.parametrize(("text", "message"), [
    ("ENV A=1 B", "can't find = in 'B'"),
    ("ENV ONLYKEY", "ENV must have two arguments"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ENV =x", "ENV names can not be blank"),
])
def test_env_label_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        one(text)


def test_arg_forms() -> None:
    inst = one('ARG A B=2 C="x y" D=')
    assert inst.arg_defs == [("A", None), ("B", "2"), ('C', '"x y"'), ("D", "")]


def test_copy_add_words_and_flags() -> None:
    copy = one('COPY --from=build --chown=app:app --chmod=0755 --link a "b c" /dst/')
    assert copy.flags == {"from": "build", "chown": "app:app", "chmod": "0755", "link": "true"}
    assert copy.args == ["a", '"b c"', "/dst/"]
    assert copy.flag("from") == "build" and copy.bool_flag("link")
    assert copy.raw_args == 'a "b c" /dst/'
    add = one('ADD --checksum=sha256:abc --link=false ["x y", "/d"]')
    assert add.flags == {"checksum": "sha256:abc", "link": "false"}
    assert (add.args, add.json_form) == (["x y", "/d"], True)
    ex = one("COPY --exclude=*.md --exclude=*.txt . /")
    assert ex.flags == {"exclude": ["*.md", "*.txt"]}
    quoted = one('COPY --chown="app user" a b')
    assert quoted.flags == {"chown": "app user"}


@pytest.mark.parametrize(("text", "message"), [
    ("COPY --frm=x a b", "unknown flag: --frm"),
    ("RUN --chown=1 true", "unknown flag: --chown"),
    ("ENV --x=1 A=1", "unknown flag: --x"),
    ("COPY --from a b", "missing a value on flag: --from"),
    ("COPY --from=a --from=b a b", "duplicate flag specified: --from"),
    ("COPY --link=maybe a b", "expecting boolean value"),
    ("COPY onlyone", "COPY requires at least two arguments, but only one"),
    ("ADD", "ADD requires at least two arguments"),
    ("RUN", "RUN requires at least one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ('VOLUME ["/a", ""]', "VOLUME specified can not be an empty string"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed"),
    ("FOO bar", "unknown instruction: FOO"),
    ("foo bar", "unknown instruction: foo"),
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
    ("ENV", "ENV requires at least one argument"),
    ("HEALTHCHECK", "HEALTHCHECK requires an argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("COPY\t", "COPY requires at least two arguments"),
])
def test_instruction_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as info:
        one(text)
    assert str(info.value).startswith("Dockerfile:2")  # plus the keyword when it is one
    assert info.value.line == 2
    assert "\n" not in str(info.value)


def test_single_string_instructions() -> None:
    user, wd, sig, mnt = insts("USER app:group\nWORKDIR /my dir\nSTOPSIGNAL SIGKILL\n"
                               "MAINTAINER Jane Doe <jane@example.com>\n")
    assert user.args == ["app:group"]
    assert wd.args == ["/my dir"]
    assert sig.args == ["SIGKILL"]
    assert mnt.args == ["Jane Doe <jane@example.com>"]


def test_expose_volume() -> None:
    expose, vol, vol_json = insts('EXPOSE 80 443/tcp $P\nVOLUME /a /b\nVOLUME ["/c"]\n')
    assert expose.args == ["80", "443/tcp", "$P"]
    assert vol.args == ["/a", "/b"] and not vol.json_form
    assert vol_json.args == ["/c"] and vol_json.json_form


def test_onbuild_nested() -> None:
    inst = one("ONBUILD COPY --chown=1 a /b")
    assert inst.onbuild is not None
    assert (inst.onbuild.cmd, inst.onbuild.args, inst.onbuild.flags) == (
        "COPY", ["a", "/b"], {"chown": "1"})
    assert inst.args == ["COPY --chown=1 a /b"]
    assert inst.onbuild.original == "COPY --chown=1 a /b"


@pytest.mark.parametrize(("text", "config"), [
    ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
    ('HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/bin/true"]',
     {"Test": ["CMD", "/bin/true"], "Interval": 30_000_000_000, "Timeout": 5_000_000_000,
      "Retries": 3}),
    ("HEALTHCHECK --start-period=1m30s --start-interval=500ms CMD curl -f http://x/ || exit 1",
     {"Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"], "StartPeriod": 90_000_000_000,
      "StartInterval": 500_000_000}),
    ("healthcheck --interval=0s cmd true", {"Test": ["CMD-SHELL", "true"]}),
])
def test_healthcheck(text: str, config: dict[str, object]) -> None:
    assert one(text).healthcheck == config


@pytest.mark.parametrize(("text", "message"), [
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK WHAT x", "Unknown type 'WHAT' in HEALTHCHECK"),
    ("HEALTHCHECK --interval=10 CMD x", "invalid duration"),
    ("HEALTHCHECK --interval=1us CMD x", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
])
def test_healthcheck_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        one(text)


def test_heredoc_run() -> None:
    run, after = insts("RUN <<EOF\necho $HOME\n  indented\nEOF\nRUN next\n")
    assert run.args == ["<<EOF"]
    assert len(run.heredocs) == 1
    doc = run.heredocs[0]
    assert (doc.name, doc.content, doc.expand, doc.chomp) == (
        "EOF", "echo $HOME\n  indented\n", True, False)
    assert (run.line, run.end_line) == (2, 5)
    assert (after.line, after.args) == (6, ["next"])


def test_heredoc_chomp_quoted_and_multiple() -> None:
    run = one("RUN <<-EOT bash && cat <<'RAW' >/out\n\techo a\n\t\tb\n\tEOT\n$NOT expanded\nRAW\n")
    first, second = run.heredocs
    assert (first.name, first.content, first.chomp, first.expand) == ("EOT", "echo a\nb\n",
                                                                      True, True)
    assert (second.name, second.content, second.expand) == ("RAW", "$NOT expanded\n", False)
    dq = one('RUN <<"EOF"\nx\nEOF\n')
    assert not dq.heredocs[0].expand


def test_heredoc_copy_files() -> None:
    copy = one("COPY <<a.txt <<b.txt /dir/\nA\na.txt\nB1\nB2\nb.txt\n")
    assert copy.args == ["<<a.txt", "<<b.txt", "/dir/"]
    assert [(h.name, h.content) for h in copy.heredocs] == [("a.txt", "A\n"), ("b.txt", "B1\nB2\n")]
    assert copy.heredoc_for("<<b.txt") is copy.heredocs[1]
    assert copy.heredoc_for("plain") is None
    single = one("COPY <<EOF /etc/motd\nhello\nEOF\n")
    assert single.heredocs[0].content == "hello\n"


def test_heredoc_with_fd_and_onbuild() -> None:
    run = one("RUN 3<<EOF cat /dev/fd/3\nx\nEOF\n")
    assert run.heredocs[0].fd == 3
    onb = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert onb.onbuild is not None and onb.onbuild.heredocs[0].content == "echo hi\n"
    assert onb.end_line == 4
    assert onb.args == ["RUN <<EOF\necho hi\nEOF"]  # the trigger text Docker stores
    again = one(onb.args[0])  # and it parses back to the same trigger
    assert again.heredocs[0].content == "echo hi\n"


def test_heredoc_not_in_json_or_other_instructions() -> None:
    run, label = insts('RUN ["cat", "<<EOF"]\nLABEL a=<<EOF\n')
    assert run.heredocs == [] and label.heredocs == []


def test_heredoc_unterminated() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2 RUN: unterminated heredoc"):
        one("RUN <<EOF\necho\n")


def test_shift_operator_is_not_a_heredoc() -> None:
    run = one("RUN echo $((1 << 2))\n")
    assert run.heredocs == []


@pytest.mark.parametrize(("text", "message"), [
    ("", "file with no instructions"),
    ("# only a comment\n\n", "file with no instructions"),
    ("ARG A\n", "no FROM instruction"),
    ("RUN x\nFROM scratch\n", "Dockerfile:1 RUN: no build stage in current context"),
    ("FROM a b\n", "FROM requires either one argument, or three"),
    ("FROM a IS b\n", "FROM requires either one argument, or three"),
    ("FROM a AS 1st\n", "invalid name for build stage: '1st'"),
    ("FROM a AS b$c\n", "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS X\n", "duplicate stage name 'x'"),
    ("FROM --platform linux/amd64 a\n", "missing a value on flag: --platform"),
])
def test_file_level_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse(text)


def test_error_path_in_message() -> None:
    with pytest.raises(DockerfileError,
                       match=r"^sub/Dockerfile.dev:3: unknown instruction: BOGUS "):
        parse_dockerfile("FROM scratch\n\nBOGUS x\n", path="sub/Dockerfile.dev")


def test_original_text_kept() -> None:
    inst = one("COPY   --chown=1  a \\\n  b\n")
    assert inst.original == "COPY   --chown=1  a   b"


# (instruction with heredoc lines, [(name, content, expand, chomp)]) after buildkit's
# parser_heredoc_test.go
HEREDOC_CASES = [
    ("RUN <<EMPTY\nEMPTY\n", [("EMPTY", "", True, False)]),
    ('RUN "<<NOHEREDOC"\n', []),
    ("RUN '<<EOF'\n", []),
    ("RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n", [("INDENT", "\tfoo\n\tbar\n", True, False)]),
    ("RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n", [("UNINDENT2", "baz\nquux\n", True, True)]),
    ("RUN <<COMMENT\n# internal comment\necho hi # trailing\nCOMMENT\n",
     [("COMMENT", "# internal comment\necho hi # trailing\n", True, False)]),
    ("RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n",
     [("MOUNT", "echo hello\n", True, False)]),
    ("COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n", [("EOF", "\"foo\"\n'bar'\n", True, False)]),
    ("COPY <<X <<Y /dest\nY\nX\nX\nY\n", [("X", "Y\n", True, False), ("Y", "X\n", True, False)]),
    ("RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n",
     [("COMPLEX", "print('hello world')\n", True, False)]),
    ("RUN <<eo'f'\necho foo\neof\n", [("eof", "echo foo\n", False, False)]),
    ("RUN <<eo\\'f\necho foo\neo'f\n", [("eo'f", "echo foo\n", True, False)]),
    ("RUN <<'e'o\\'f\necho foo\neo'f\n", [("eo'f", "echo foo\n", False, False)]),
    ("RUN <<'one two'\necho bar\none two\n", [("one two", "echo bar\n", False, False)]),
    ("RUN <<$EOF\n$EOF\n", [("$EOF", "", True, False)]),
    ("RUN <<  EOF\nEOF\n", [("EOF", "", True, False)]),
    ("RUN <<  EOF  > foo\nEOF\n", [("EOF", "", True, False)]),
    ("RUN <<- EOF\n\tx\n\tEOF\n", [("EOF", "x\n", True, True)]),
    ("RUN 4<<EOF <<EOF2\na\nEOF\nb\nEOF2\n", [("EOF", "a\n", True, False),
                                             ("EOF2", "b\n", True, False)]),
]


@pytest.mark.parametrize(("text", "want"), HEREDOC_CASES)
def test_heredoc_parity_with_buildkit(text: str, want: list[tuple[str, str, bool, bool]]
                                      ) -> None:
    inst = one(text)
    assert [(h.name, h.content, h.expand, h.chomp) for h in inst.heredocs] == want


def test_tabs_and_legacy_forms_like_dockers_own_dockerfile() -> None:
    df = parse("# comment\n#\n\nFROM\tubuntu:14.04\n"
               "LABEL\tmaintainer\tTianon Gravi <admwiggin@gmail.com> (@tianon)\n"
               "RUN\tapt-get update && apt-get install -yq \\\n\tapt-utils \\\n\tcurl \\\n"
               "\t--no-install-recommends\n"
               "ENV\tPATH\t/usr/local/go/bin:$PATH\n"
               "ENV\tX\t\\\n\tlinux/386 linux/arm \\\n\tdarwin/amd64\n"
               "# (comment between)\nENV\tGOARM\t5\nVOLUME\t/var/lib/docker\n"
               "ENTRYPOINT\t[\"hack/dind\"]\nCOPY\t.\t/go/src\n")
    stage = df.stages[0]
    assert stage.base == "ubuntu:14.04"
    got = [(i.cmd, i.pairs or i.args) for i in stage.instructions]
    assert got == [
        ("LABEL", [("maintainer", "Tianon Gravi <admwiggin@gmail.com> (@tianon)")]),
        ("RUN", ["apt-get update && apt-get install -yq \tapt-utils \tcurl "
                 "\t--no-install-recommends"]),
        ("ENV", [("PATH", "/usr/local/go/bin:$PATH")]),
        ("ENV", [("X", "linux/386 linux/arm \tdarwin/amd64")]),
        ("ENV", [("GOARM", "5")]),
        ("VOLUME", ["/var/lib/docker"]),
        ("ENTRYPOINT", ["hack/dind"]),
        ("COPY", [".", "/go/src"]),
    ]


def test_warnings_for_deprecated_forms() -> None:
    df = parse("FROM scratch\nENV A b\nENV C=d\nLABEL x y\nMAINTAINER me\nRUN a \\\n\n  b\n")
    assert df.warnings == [
        "Dockerfile:2: legacy 'ENV key value' format; use 'ENV key=value'",
        "Dockerfile:4: legacy 'LABEL key value' format; use 'LABEL key=value'",
        "Dockerfile:5: MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=...",
        "Dockerfile:7: empty continuation line (Docker will reject these in a future release)",
    ]


def test_copy_heredoc_quoted_names_map_back_to_arguments() -> None:
    copy = one("COPY <<'a b' <<\"c\" <<d'e' /dst/\n1\na b\n2\nc\n3\nde\n")
    assert copy.args == ["<<'a b'", '<<"c"', "<<d'e'", "/dst/"]
    found = [copy.heredoc_for(w) for w in copy.args]
    assert [(d.name, d.content, d.expand) if d else None for d in found] == [
        ("a b", "1\n", False), ("c", "2\n", False), ("de", "3\n", False), None]


@pytest.mark.parametrize(("text", "json_form", "args"), [
    # BuildKit's parseJSON: json.Unmarshal of the whole rest (moby/buildkit#5107, BuildKit
    # 0.15): trailing text makes the shell form, trailing blanks do not
    ('ENTRYPOINT ["x"] # comment', False, ['["x"] # comment']),
    ('CMD ["a"]  ', True, ["a"]),
    ('CMD ["a"]\t', True, ["a"]),
    ('RUN ["ls"]random symbols', False, ['["ls"]random symbols']),
    ("ENTRYPOINT []<-this is JSON array", False, ["[]<-this is JSON array"]),
    ('COPY ["a", "b"] # c', False, ['["a",', '"b"]', "#", "c"]),
    # what Go's encoding/json does not accept is not JSON: shell form, not an error
    ("CMD [NaN]", False, ["[NaN]"]),
    ('CMD ["a", -Infinity]', False, ['["a", -Infinity]']),
    ('HEALTHCHECK CMD ["probe", Infinity]', False, ["CMD", '["probe", Infinity]']),
    # an escaped lone surrogate is U+FFFD, as Go decodes it
    ('CMD ["\\ud800x"]', True, ["\ufffdx"]),
])
def test_json_form_matches_buildkit(text: str, json_form: bool, args: list[str]) -> None:
    inst = one(text)
    assert (inst.json_form, inst.args) == (json_form, args)
