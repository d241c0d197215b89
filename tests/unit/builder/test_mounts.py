"""Parsing ``RUN --mount`` values (BuildKit's CSV syntax, defaults and refusals)."""

from __future__ import annotations

import pytest

from trustbuild.builder.mounts import mount_from_refs, number_ssh_targets, parse_mount
from trustbuild.errors import BuildError


def test_defaults_per_type() -> None:
    bind = parse_mount("target=/src")
    assert (bind.type, bind.target, bind.source, bind.rw) == ("bind", "/src", "", False)
    cache = parse_mount("type=cache,dst=/root/.cache")
    assert (cache.rw, cache.id, cache.sharing, cache.mode, cache.uid) == (True, "", "shared",
                                                                          0o755, 0)
    tmp = parse_mount("type=tmpfs,destination=/t,size=2m")
    assert tmp.size == 2 << 20


def test_options_and_aliases() -> None:
    m = parse_mount('type=bind,src=a,"target=/x,y",from=build,rw')
    assert (m.source, m.target, m.from_, m.rw) == ("a", "/x,y", "build", True)
    c = parse_mount("type=cache,target=/c,id=pip,sharing=locked,uid=10,gid=20,mode=0700,ro")
    assert (c.id, c.sharing, c.uid, c.gid, c.mode, c.rw) == ("pip", "locked", 10, 20, 0o700,
                                                             False)
    assert mount_from_refs(["target=/a,from=one", "type=cache,target=/c", "from=two,target=/b"],
                           lambda s: s) == ["one", "two"]


def test_secret_and_ssh_defaults_as_buildkit() -> None:
    s = parse_mount("type=secret,id=npmrc")
    assert (s.target, s.mode, s.uid, s.gid, s.required, s.env) == ("/run/secrets/npmrc", 0o400,
                                                                    0, 0, False, "")
    # the id defaults to the target's basename; an env-only secret has no file
    assert parse_mount("type=secret,target=/root/.npmrc").id == ".npmrc"
    env_only = parse_mount("type=secret,id=tok,env=TOKEN,required")
    assert (env_only.target, env_only.env, env_only.required) == ("", "TOKEN", True)
    both = parse_mount("type=secret,id=tok,env=TOKEN,target=/t,mode=0440,uid=1,gid=2")
    assert (both.target, both.mode, both.uid, both.gid) == ("/t", 0o440, 1, 2)
    ssh = number_ssh_targets([parse_mount("type=ssh"), parse_mount("type=ssh,id=gh,mode=0666"),
                              parse_mount("type=ssh,id=x,target=/agent")])
    assert [(m.id, m.target, m.mode) for m in ssh] == [
        ("default", "/run/buildkit/ssh_agent.0", 0o600), ("gh", "/run/buildkit/ssh_agent.1",
                                                          0o666), ("x", "/agent", 0o600)]


@pytest.mark.parametrize("text,message", [
    ("type=secret", "id= \\(or target=\\) is required"),
    ("type=secret,id=a/b", "cannot contain '/'"),
    ("type=secret,id=x,env=1X", "env=1X"),
    ("type=secret,id=x,required=perhaps", "required=perhaps"),
    ("type=secret,id=x,size=1", "unknown option 'size'"),
    ("type=ssh,env=X", "unknown option 'env'"),
    ("type=volume,target=/v", "unknown mount type"),
    ("type=cache,id=x", "target= is required"),
    ("type=tmpfs,target=/t,from=x", "unknown option 'from'"),
    ("type=cache,target=/c,sharing=sometimes", "sharing=sometimes"),
    ("type=cache,target=/c,mode=rwx", "mode=rwx"),
    ("type=tmpfs,target=/t,size=big", "size=big"),
    ("target=/x,rw=maybe", "rw=maybe"),
])
def test_bad_values_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        parse_mount(text)
    assert "\n" not in str(info.value)
