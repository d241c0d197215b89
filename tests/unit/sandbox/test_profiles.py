"""Security profiles: capabilities, seccomp, network and no_new_privs per profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustbuild.errors import SandboxError
from trustbuild.sandbox import resolve_profile
from trustbuild.sandbox.profiles import DOCKER_DEFAULT_CAPS


def test_baseline_is_docker_default_caps_build_default_seccomp_and_nnp() -> None:
    p = resolve_profile("baseline", network="none")
    assert sorted(p.capabilities) == sorted(DOCKER_DEFAULT_CAPS) and len(p.capabilities) == 14
    assert p.network == "none"
    # With the host's network, NET_RAW would reach the host's interfaces: it is dropped.
    p = resolve_profile("baseline")
    assert set(p.capabilities) == set(DOCKER_DEFAULT_CAPS) - {"NET_RAW"}
    assert p.seccomp_path and p.seccomp_path.endswith("build-default.json")
    assert p.seccomp_digest.startswith("sha256:")
    assert p.network == "host" and p.no_new_privs


def test_restricted_keeps_only_file_management_caps_and_no_network() -> None:
    p = resolve_profile("restricted")
    assert set(p.capabilities) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID",
                                   "SETGID", "SETFCAP"}
    assert p.network == "none" and p.no_new_privs and p.seccomp_path
    assert resolve_profile("restricted", network="host").network == "host"


def test_privileged_is_unconfined_with_all_caps() -> None:
    p = resolve_profile("privileged")
    assert p.seccomp_path is None and p.seccomp_digest == "" and p.seccomp_name == "unconfined"
    assert {"SYS_ADMIN", "NET_ADMIN", "SYS_MODULE"} <= set(p.capabilities)
    assert not p.no_new_privs


def test_seccomp_override_unconfined_or_path(tmp_path: Path) -> None:
    assert resolve_profile("baseline", seccomp="unconfined").seccomp_path is None
    custom = tmp_path / "mine.json"
    custom.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    p = resolve_profile("baseline", seccomp=str(custom))
    assert p.seccomp_path == str(custom) and p.seccomp_digest.startswith("sha256:")


@pytest.mark.parametrize(("kw", "msg"), [
    ({"name": "root"}, "unknown security profile 'root'"),
    ({"name": "baseline", "network": "bridge"}, "unknown network mode"),
    ({"name": "baseline", "seccomp": "/nonexistent/p.json"}, "no such file"),
])
def test_bad_input_is_a_one_line_sandbox_error(kw: dict[str, str], msg: str) -> None:
    with pytest.raises(SandboxError, match=msg):
        resolve_profile(**kw)
