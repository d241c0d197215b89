"""Dockerfile rules: ids, severities, line numbers and remedies."""

from __future__ import annotations

from trustbuild.builder.dockerfile import parse_dockerfile
from trustbuild.policy.report import DENY, PASS, WARN
from trustbuild.policy.rules import RULES, run_rules

_DIGEST_A = "sha256:" + "a" * 64
_DIGEST_B = "sha256:" + "b" * 64
DOCKERFILE = f"""\
ARG BASE=127.0.0.1:5000/busybox
FROM ${{BASE}} AS build
ARG API_TOKEN
RUN curl -fsSL https://example.com/install.sh | sh
FROM 127.0.0.1:5000/busybox:1.36@{_DIGEST_A}
ADD https://example.com/tool.tgz /opt/
ADD --checksum={_DIGEST_B} https://example.com/ok.tgz /opt/
ENV AWS_ACCESS=AKIAABCDEFGHIJKLMNOP
EXPOSE 8080 22/tcp
USER root
"""


def _checks(severities: dict[str, str] | None = None, require_digest: bool = False,
            build_args: dict[str, str] | None = None):
    df = parse_dockerfile(DOCKERFILE)
    return run_rules(df, df.stages[-1], build_args=build_args or {}, severities=severities or {},
                     require_digest=require_digest)


def _by_id(checks, rid):
    return [c for c in checks if c.id == rid]


def test_each_rule_reports_the_line_and_a_remedy() -> None:
    checks = _checks()
    want = {
        "remote-add-without-checksum": ["Dockerfile:6"],
        "secret-in-arg-env": ["Dockerfile:3", "Dockerfile:8"],
        "pipe-to-shell": ["Dockerfile:4"],
        "base-image-latest": ["Dockerfile:2"],
        "base-image-not-pinned": ["Dockerfile:2"],
        "ssh-port-exposed": ["Dockerfile:9"],
        "final-user-root": ["Dockerfile:10"],
    }
    for rid, lines in want.items():
        found = _by_id(checks, rid)
        assert [c.where for c in found] == lines, rid
        assert all(c.status == RULES[rid].severity and c.remedy for c in found), rid


def test_severities_can_be_changed_or_turned_off() -> None:
    checks = _checks({"pipe-to-shell": "deny", "final-user-root": "off"})
    assert [c.status for c in _by_id(checks, "pipe-to-shell")] == [DENY]
    assert not _by_id(checks, "final-user-root")


def test_require_digest_makes_unpinned_bases_deny() -> None:
    assert [c.status for c in _by_id(_checks(), "base-image-not-pinned")] == [WARN]
    pinned = _by_id(_checks(require_digest=True), "base-image-not-pinned")
    assert [c.status for c in pinned] == [DENY]


def test_secret_build_arg_and_clean_dockerfile() -> None:
    checks = _checks(build_args={"NPM_AUTH": "x"})
    assert any(c.where == "--build-arg" for c in _by_id(checks, "secret-in-arg-env"))
    clean = parse_dockerfile("FROM 127.0.0.1:5000/b:1@sha256:" + "c" * 64 + "\nUSER 1000\n")
    res = run_rules(clean, clean.stages[-1], build_args={}, severities={}, require_digest=True)
    assert {c.status for c in res} == {PASS}


_AMD64 = {"TARGETPLATFORM": "linux/amd64", "TARGETOS": "linux", "TARGETARCH": "amd64",
          "TARGETVARIANT": "", "BUILDPLATFORM": "linux/arm64", "BUILDOS": "linux",
          "BUILDARCH": "arm64", "BUILDVARIANT": ""}


def _from_findings(text: str, rid: str, **kw) -> list[str]:
    df = parse_dockerfile(text)
    checks = run_rules(df, df.stages[-1], build_args=kw.pop("build_args", {}), severities={},
                       platform_args=_AMD64)
    return [c.message for c in _by_id(checks, rid) if c.status != PASS]


def test_from_is_expanded_with_the_automatic_platform_args() -> None:
    """As BuildKit: FROM sees TARGETARCH, BUILDPLATFORM... (a bare ARG keeps the automatic
    value), so the rules show and check the image the build pulls."""
    assert _from_findings("FROM reg.example/$TARGETARCH/busybox:1\nUSER 1\n",
                          "base-image-not-pinned") == [
        "FROM reg.example/amd64/busybox:1 is not pinned by digest"]
    assert _from_findings("ARG TARGETARCH\nARG BASE=reg.example/b:${BUILDARCH}\n"
                          "FROM ${BASE}-$TARGETARCH\n", "base-image-not-pinned") == [
        "FROM reg.example/b:arm64-amd64 is not pinned by digest"]
    # the per-architecture stage pattern: base-$TARGETARCH names a stage, not an image
    stages = (f"FROM reg.example/b:1@{_DIGEST_A} AS base-amd64\n"
              f"FROM reg.example/c:1@{_DIGEST_B} AS base-arm64\n"
              "FROM base-$TARGETARCH\nUSER 1\n")
    assert _from_findings(stages, "base-image-not-pinned") == []
    assert _from_findings(stages, "base-image-latest") == []
    # only a declared ARG takes a --build-arg in FROM
    assert _from_findings("FROM reg.example/b:${TAG}x\n", "base-image-not-pinned",
                          build_args={"TAG": "1"}) == [
        "FROM reg.example/b:x is not pinned by digest"]
