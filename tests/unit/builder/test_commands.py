"""The typed instruction model: each line's command, flag checks, and the one expansion step."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from trustbuild.builder.commands import (
    AddCmd,
    AnyCommand,
    ArgCmd,
    CmdCmd,
    CopyCmd,
    EntrypointCmd,
    EnvCmd,
    Expander,
    ExposeCmd,
    FromCmd,
    HealthcheckCmd,
    LabelCmd,
    MaintainerCmd,
    OnbuildCmd,
    RunCmd,
    ShellCmd,
    StopsignalCmd,
    UserCmd,
    VolumeCmd,
    WorkdirCmd,
    expand_command,
)
from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.builder.expand import ExpansionError, expand, expand_heredoc, expand_words
from trustbuild.builder.imageconfig import Healthcheck
from trustbuild.builder.mounts import MountSpec
from trustbuild.errors import DockerfileError


def cmd(text: str) -> AnyCommand:
    """The command of the one instruction after ``FROM scratch`` (line 2)."""
    stage = parse_dockerfile(f"FROM scratch\n{text}\n").stages[0]
    assert len(stage.commands) == 1
    return stage.commands[0]


def test_from() -> None:
    stage = parse_dockerfile("FROM --platform=$BUILDPLATFORM Alpine:3 AS Build\n").stages[0]
    assert stage.from_command == FromCmd(
        line=1, end_line=1, original="FROM --platform=$BUILDPLATFORM Alpine:3 AS Build",
        base="Alpine:3", stage_name="build", platform="$BUILDPLATFORM")


def test_run_flags_and_forms() -> None:
    run = cmd("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none "
              "make all")
    assert isinstance(run, RunCmd)
    assert (run.line, run.args, run.json_form) == (2, ("make all",), False)
    assert run.mount_values == ("type=cache,target=/c", "type=tmpfs,target=/t")
    assert run.mounts == ()  # parsed when expanded
    assert (run.network, run.security) == ("none", None)
    exe = cmd('RUN --security=insecure ["/bin/echo", "a b"]')
    assert isinstance(exe, RunCmd)
    assert (exe.args, exe.json_form, exe.security) == (("/bin/echo", "a b"), True, "insecure")
    doc = cmd("RUN <<EOF\necho hi\nEOF")
    assert isinstance(doc, RunCmd) and doc.heredocs[0].content == "echo hi\n"
    assert doc.end_line == 4
    with pytest.raises(AttributeError):
        doc.heredocs[0].content = "x"  # type: ignore[misc]  # commands are immutable values
    assert len({run, exe, doc}) == 3  # and hashable


def test_copy_and_add_flags() -> None:
    copy = cmd("COPY --from=build --chown=app:app --chmod=0755 --link --parents "
               "--exclude=*.md --exclude=*.txt a b /dst/")
    assert copy == CopyCmd(
        line=2, end_line=2, original=copy.original, sources=("a", "b"), dest="/dst/",
        from_="build", chown="app:app", chmod="0755", link=True, parents=True,
        exclude=("*.md", "*.txt"))
    add = cmd('ADD --checksum=sha256:abc --keep-git-dir=false --unpack=true ["x y", "/d"]')
    assert isinstance(add, AddCmd)
    assert (add.sources, add.dest, add.checksum) == (("x y",), "/d", "sha256:abc")
    assert (add.keep_git_dir, add.unpack, add.link) == (False, True, None)


def test_metadata_commands() -> None:
    assert cmd("ENV A=1 B=\"two words\"") == EnvCmd(
        line=2, end_line=2, original='ENV A=1 B="two words"',
        pairs=(("A", "1"), ("B", '"two words"')))
    label = cmd("LABEL k=v")
    assert isinstance(label, LabelCmd) and label.pairs == (("k", "v"),)
    arg = cmd("ARG A B=2")
    assert isinstance(arg, ArgCmd) and arg.pairs == (("A", None), ("B", "2"))
    expose = cmd("EXPOSE 80 443/udp")
    assert isinstance(expose, ExposeCmd) and expose.ports == ("80", "443/udp")
    user = cmd("USER app:staff")
    assert isinstance(user, UserCmd) and user.user == "app:staff"
    workdir = cmd("WORKDIR /my dir")
    assert isinstance(workdir, WorkdirCmd) and workdir.path == "/my dir"
    vol = cmd('VOLUME ["/a", "/b"]')
    assert isinstance(vol, VolumeCmd) and vol.paths == ("/a", "/b")
    sig = cmd("STOPSIGNAL SIGKILL")
    assert isinstance(sig, StopsignalCmd) and sig.signal == "SIGKILL"
    shell = cmd('SHELL ["/bin/bash", "-c"]')
    assert isinstance(shell, ShellCmd) and shell.shell == ("/bin/bash", "-c")
    ep = cmd("ENTRYPOINT exec app")
    assert isinstance(ep, EntrypointCmd) and (ep.args, ep.json_form) == (("exec app",), False)
    run_cmd = cmd('CMD ["app", "--serve"]')
    assert isinstance(run_cmd, CmdCmd) and run_cmd.json_form
    hc = cmd("HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x/")
    assert isinstance(hc, HealthcheckCmd)
    assert hc.health == Healthcheck(test=("CMD-SHELL", "curl -f http://x/"),
                                    interval=30_000_000_000, retries=3)
    none = cmd("HEALTHCHECK NONE")
    assert isinstance(none, HealthcheckCmd) and none.health.test == ("NONE",)
    onbuild = cmd("ONBUILD COPY --chown=1 a /b")
    assert isinstance(onbuild, OnbuildCmd) and onbuild.expression == "COPY --chown=1 a /b"
    maint = cmd("MAINTAINER Jane Doe <jane@example.com>")
    assert isinstance(maint, MaintainerCmd) and maint.maintainer == "Jane Doe <jane@example.com>"


def test_global_args_are_typed() -> None:
    df = parse_dockerfile("ARG BASE=alpine\nARG V\nFROM $BASE\n")
    assert [c.pairs for c in df.global_commands] == [(("BASE", "alpine"),), (("V", None),)]


@pytest.mark.parametrize(("text", "message"), [
    ("COPY --bogus=1 a /b", "Dockerfile:3 COPY: unknown flag: --bogus"),
    ("ADD --from=x a /b", "Dockerfile:3 ADD: unknown flag: --from"),
    ("RUN --network=bridge true", "Dockerfile:3 RUN: RUN --network=bridge: expected default, "
                                  "none or host"),
    ("RUN --security=root true", "Dockerfile:3 RUN: RUN --security=root: expected sandbox or "
                                 "insecure"),
    ("RUN --link true", "Dockerfile:3 RUN: unknown flag: --link"),
])
def test_bad_flags_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile(f"FROM scratch\nENV A=1\n{text}\n")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_bad_flag_in_a_stage_that_is_not_built_still_fails() -> None:
    # as BuildKit: every instruction is parsed (and its flags checked) before anything runs
    with pytest.raises(DockerfileError, match="Dockerfile:2 RUN"):
        parse_dockerfile("FROM scratch AS unused\nRUN --network=nope true\nFROM scratch\n")


class DictExpander:
    """An ``Expander`` over fixed variables (ARG values: the default, else unset)."""

    def __init__(self, env: Mapping[str, str], pending: Mapping[str, str | None] = {}) -> None:
        self.env = dict(env)
        self.env.update({k: v for k, v in pending.items() if v is not None})

    def word(self, text: str) -> str:
        return expand(text, self.env)

    def words(self, text: str) -> list[str]:
        return expand_words(text, self.env)

    def heredoc(self, text: str) -> str:
        return expand_heredoc(text, self.env)

    def with_args(self, args: Mapping[str, str | None]) -> Expander:
        return DictExpander(self.env, args)

    def arg_value(self, name: str, default: str | None) -> str | None:
        return default


def expanded(text: str, **env: str) -> AnyCommand:
    return expand_command(cmd(text), DictExpander(env))


def test_expansion_env_label_arg() -> None:
    env = expanded("ENV A=$X B=${A:-unset}", X="x", A="old")
    assert isinstance(env, EnvCmd) and env.pairs == (("A", "x"), ("B", "old"))  # values before
    label = expanded('LABEL "$K"="v $V"', K="key", V="1")
    assert isinstance(label, LabelCmd) and label.pairs == (("key", "v 1"),)
    arg = expanded("ARG ${P}_V=1 B=$x_V", P="x")
    assert isinstance(arg, ArgCmd)
    assert arg.pairs == (("x_V", "1"), ("B", "1"))  # each sees the ones before it (buildah)
    with pytest.raises(ExpansionError, match="expands to an empty name"):
        expanded("ARG ${NOPE}=1")


def test_expansion_copy_add() -> None:
    copy = expanded("COPY --from=$S --chown=$U --chmod=$M $SRC <<EOF $DST\nv=$V\nEOF",
                    S="build", U="app", M="0644", SRC="a", DST="/d/", V="1")
    assert isinstance(copy, CopyCmd)
    assert (copy.from_, copy.chown, copy.chmod) == ("build", "app", "0644")
    assert (copy.sources, copy.dest) == (("a", "<<EOF"), "/d/")  # heredoc words stay as written
    assert copy.heredocs[0].content == "v=1\n"
    with pytest.raises(ExpansionError, match="--from=\\$NOPE expands to an empty name"):
        expanded("COPY --from=$NOPE a /b")
    quoted = expanded("COPY <<'EOF' /f\nv=$V\nEOF", V="1")
    assert isinstance(quoted, CopyCmd) and quoted.heredocs[0].content == "v=$V\n"
    add = expanded("ADD --checksum=$SUM https://example.com/$F /f", SUM="sha256:ab", F="x")
    assert isinstance(add, AddCmd)
    assert (add.checksum, add.sources) == ("sha256:ab", ("https://example.com/x",))


def test_expansion_single_word_instructions_and_run() -> None:
    assert expanded("WORKDIR $D/sub", D="/app") == WorkdirCmd(
        line=2, end_line=2, original="WORKDIR $D/sub", path="/app/sub")
    user = expanded("USER ${U}:g", U="app")
    assert isinstance(user, UserCmd) and user.user == "app:g"
    sig = expanded("STOPSIGNAL $S", S="SIGTERM")
    assert isinstance(sig, StopsignalCmd) and sig.signal == "SIGTERM"
    vol = expanded("VOLUME $V /b", V="/a")
    assert isinstance(vol, VolumeCmd) and vol.paths == ("/a", "/b")
    expose = expanded("EXPOSE $P", P="80 443/udp")
    assert isinstance(expose, ExposeCmd) and expose.ports == ("80", "443/udp")
    run = expanded("RUN --mount=type=cache,target=$T,id=$I echo $HOME", T="/c", I="pip")
    assert isinstance(run, RunCmd)
    assert run.args == ("echo $HOME",)  # the shell expands the command, not the builder
    assert run.mounts == (MountSpec(type="cache", target="/c", id="pip", rw=True),)
    ep = expanded("ENTRYPOINT echo $X", X="1")
    assert isinstance(ep, EntrypointCmd) and ep.args == ("echo $X",)
    onbuild = expanded("ONBUILD RUN echo $X", X="1")
    assert isinstance(onbuild, OnbuildCmd) and onbuild.expression == "RUN echo $X"
