"""WWW-Authenticate parsing and scope merging."""

from __future__ import annotations

from trustbuild.registry.challenge import merge_scopes, parse_challenge, repository_scope


def test_bearer_challenge_with_quoted_params_and_scope_list() -> None:
    ch = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                         'scope="repository:library/alpine:pull repository:x/y:pull,push"')
    assert ch is not None and ch.scheme == "bearer"
    assert ch.realm == "https://auth.docker.io/token"
    assert ch.service == "registry.docker.io"
    assert ch.scopes == ("repository:library/alpine:pull", "repository:x/y:pull,push")


def test_basic_and_unquoted_and_escaped_values() -> None:
    ch = parse_challenge('Basic realm="a \\"quoted\\" realm", charset=UTF-8')
    assert ch is not None and ch.scheme == "basic"
    assert ch.realm == 'a "quoted" realm' and ch.params["charset"] == "UTF-8"
    err = parse_challenge('bearer realm="r",error="insufficient_scope"')
    assert err is not None and err.error == "insufficient_scope"


def test_unparseable_headers() -> None:
    assert parse_challenge(None) is None
    assert parse_challenge("   ") is None
    assert parse_challenge('"notascheme" x=1') is None


def test_scopes_merge_actions_per_repository() -> None:
    assert repository_scope("a/b", "pull") == "repository:a/b:pull"
    merged = merge_scopes(("repository:a:push", "repository:b:pull"), ["repository:a:pull"])
    assert merged == ("repository:a:pull,push", "repository:b:pull")
    assert merge_scopes(("registry:catalog:*",)) == ("registry:catalog:*",)
