"""Dockerfile rules: each has an id, a default severity and a remedy.

Policies may override the severity.
Rules read the parsed Dockerfile's typed commands (``trustbuild.builder.commands``) and never
execute anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trustbuild.attest.redact import is_secret_name
from trustbuild.builder.commands import (
    AddCmd,
    AnyCommand,
    ArgCmd,
    CopyCmd,
    EnvCmd,
    ExposeCmd,
    RunCmd,
    UserCmd,
)
from trustbuild.builder.expand import expand
from trustbuild.policy.report import DENY, PASS, WARN, Check

if TYPE_CHECKING:
    from trustbuild.builder.dockerfile import Dockerfile, Stage

__all__ = ["Rule", "RULES", "run_rules", "Finding"]


@dataclass(frozen=True)
class Finding:
    """A rule violation at one line."""

    line: int
    message: str


@dataclass(frozen=True)
class Rule:
    """A Dockerfile rule."""

    id: str
    severity: str  # default: deny | warn | off
    remedy: str
    ok: str  # what a pass means, for the report
    # (Dockerfile, target stage, --build-arg values, automatic platform args) -> findings
    check: Callable[[Dockerfile, Stage, Mapping[str, str], Mapping[str, str]],
                    Iterator[Finding]]


_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|"
    r"xox[baprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20})"
)
_PIPE_TO_SHELL = re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b")


def _all_instructions(df: Dockerfile) -> Iterator[AnyCommand]:
    yield from df.global_commands
    for st in df.stages:
        if st.from_command is not None:
            yield st.from_command
        yield from st.commands


def _remote_add(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for ins in _all_instructions(df):
        if isinstance(ins, AddCmd) and not ins.checksum:
            for src in ins.sources:
                if re.match(r"^(https?|git)://", src) or src.startswith("git@"):
                    yield Finding(ins.line, f"ADD {src} fetches remote content without --checksum")


def _final_root(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    users = [i for i in stage.commands if isinstance(i, UserCmd)]
    if not users:
        yield Finding(
            stage.line,
            "the final stage sets no USER: the image runs as its base's user, usually root",
        )
        return
    last = users[-1]
    name = last.user.split(":")[0]
    if name in ("root", "0", ""):
        yield Finding(last.line, f"the final stage runs as {name or 'root'}")


def _secrets(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for ins in _all_instructions(df):
        if isinstance(ins, ArgCmd | EnvCmd):
            for key, value in _pairs(ins):
                if is_secret_name(key):
                    yield Finding(
                        ins.line,
                        f"{ins.keyword} {key} has a secret-looking name: its value "
                        "ends up in the image config or history",
                    )
                elif value and _SECRET_VALUE.search(value):
                    yield Finding(
                        ins.line, f"{ins.keyword} {key} has a value that looks like a credential"
                    )
    for key in args:
        if is_secret_name(key):
            yield Finding(0, f"--build-arg {key} has a secret-looking name")


def _pairs(ins: ArgCmd | EnvCmd) -> list[tuple[str, str]]:
    return [(k, v or "") for k, v in ins.pairs]


def _base_images(df: Dockerfile, args: Mapping[str, str],
                 platform_args: Mapping[str, str]) -> Iterator[tuple[int, str]]:
    """(FROM line, expanded image) of every stage built on an image (not scratch or a stage):
    expanded as the builder does, with the automatic platform args (TARGETARCH, BUILDPLATFORM,
    ...) under the global ARGs."""
    env = dict(platform_args)
    for ins in df.global_commands:  # as builder.executor.Executor._global_args
        for name, default in ins.pairs:
            name = expand(name, env, escape=df.escape)
            if name in args:
                env[name] = args[name]
            elif default is not None:
                env[name] = expand(default, env, escape=df.escape)
            elif name in platform_args:  # a bare ARG TARGETARCH keeps the automatic value
                env[name] = platform_args[name]
            else:
                env.pop(name, None)
    names = {st.name.lower() for st in df.stages if st.name}
    for st in df.stages:
        base = expand(st.base, env, escape=df.escape)
        if base == "scratch" or base.lower() in names:
            continue
        yield st.line, base


def _latest(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for line, base in _base_images(df, args, platform_args):
        if "@" in base:
            continue
        last = base.rsplit("/", 1)[-1]
        if ":" not in last:
            yield Finding(line, f"FROM {base} has no tag (means :latest, which moves)")
        elif last.endswith(":latest"):
            yield Finding(line, f"FROM {base} uses the moving tag :latest")


def _unpinned(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for line, base in _base_images(df, args, platform_args):
        if "@sha256:" not in base:
            yield Finding(line, f"FROM {base} is not pinned by digest")
    for ins in _all_instructions(df):
        src = ins.from_ if isinstance(ins, CopyCmd) else ""
        if ("/" in src or ":" in src) and "@sha256:" not in src:
            yield Finding(ins.line, f"COPY --from={src} is not pinned by digest")


def _pipe_shell(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for ins in _all_instructions(df):
        if isinstance(ins, RunCmd):
            text = " ".join(ins.args) + "".join(h.content for h in ins.heredocs)
            m = _PIPE_TO_SHELL.search(text)
            if m:
                yield Finding(ins.line, f"RUN pipes a download into a shell ({m.group(0).strip()})")


def _ssh_port(df: Dockerfile, stage: Stage, args: Mapping[str, str],
        platform_args: Mapping[str, str]) -> Iterator[Finding]:
    for ins in stage.commands:
        if isinstance(ins, ExposeCmd) and any(a.split("/")[0] == "22" for a in ins.ports):
            yield Finding(ins.line, "EXPOSE 22: an SSH server in an application image")


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "remote-add-without-checksum",
            DENY,
            "add --checksum=sha256:<hex> to the ADD, or download in a verified step",
            "every remote ADD has --checksum",
            _remote_add,
        ),
        Rule(
            "final-user-root",
            WARN,
            "add USER <non-root uid> at the end of the final stage",
            "the final stage runs as a non-root user",
            _final_root,
        ),
        Rule(
            "secret-in-arg-env",
            DENY,
            "pass secrets with RUN --mount=type=secret or at run time, never as ARG/ENV",
            "no secret-looking ARG, ENV or --build-arg",
            _secrets,
        ),
        Rule(
            "base-image-latest",
            WARN,
            "use a specific version tag, ideally pinned by digest (image:tag@sha256:...)",
            "every base image has a version tag or digest",
            _latest,
        ),
        Rule(
            "base-image-not-pinned",
            WARN,
            "pin every FROM and COPY --from image as image:tag@sha256:<digest>",
            "every base image is pinned by digest",
            _unpinned,
        ),
        Rule(
            "pipe-to-shell",
            WARN,
            "download to a file, verify its checksum or signature, then run it",
            "no download is piped into a shell",
            _pipe_shell,
        ),
        Rule(
            "ssh-port-exposed",
            WARN,
            "do not run sshd in images; use kubectl exec or a debug container",
            "no SSH port exposed",
            _ssh_port,
        ),
    )
}


def run_rules(
    df: Dockerfile,
    stage: Stage,
    *,
    build_args: Mapping[str, str],
    severities: Mapping[str, str],
    require_digest: bool = False,
    path: str = "Dockerfile",
    platform_args: Mapping[str, str] | None = None,
) -> list[Check]:
    """Run every rule on the Dockerfile; ``stage`` is the target (final) stage;
    ``platform_args`` are the automatic platform args of the platform being built
    (``builder.executor.predefined_args``), which FROM lines may use."""
    checks = []
    for rule in RULES.values():
        sev = severities.get(rule.id, rule.severity)
        if rule.id == "base-image-not-pinned" and require_digest:
            sev = DENY
        if sev == "off":
            continue
        findings = list(rule.check(df, stage, build_args, platform_args or {}))
        if not findings:
            checks.append(Check(rule.id, PASS, rule.ok))
        for f in findings:
            where = f"{path}:{f.line}" if f.line else "--build-arg"
            checks.append(Check(rule.id, sev, f.message, where, rule.remedy))
    return checks
