"""The build record: its seccomp digest (always the profile in force, never silently missing)
and its invocation id."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from trustbuild.builder import plan
from trustbuild.builder.options import BuildOptions
from trustbuild.builder.record import BuildRecord
from trustbuild.errors import SandboxError
from trustbuild.sandbox.profiles import SecurityProfile

SHIPPED = Path(__file__).resolve().parents[3] / "seccomp" / "build-default.json"


def _record(options: BuildOptions) -> BuildRecord:
    record = plan._new_record(options)
    plan._seccomp_digest(options, record)
    return record


def test_the_default_profile_is_recorded_by_name_and_digest() -> None:
    record = _record(BuildOptions())
    assert record.seccomp_profile == "build-default"
    assert record.seccomp_profile_digest == (
        "sha256:" + hashlib.sha256(SHIPPED.read_bytes()).hexdigest())


def test_unconfined_records_no_digest() -> None:
    record = _record(BuildOptions(security_profile="privileged"))
    assert (record.seccomp_profile, record.seccomp_profile_digest) == ("unconfined", "")


def test_an_unreadable_profile_fails_before_the_build(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SandboxError, match="bad.json: not valid JSON"):
        _record(BuildOptions(seccomp_profile=str(bad)))


def test_a_profile_in_force_without_a_digest_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_digest(name: str, *, seccomp: str | None = None,
                  compile_check: bool = True) -> SecurityProfile:
        return SecurityProfile(name=name, capabilities=[], seccomp_path="/p/custom.json",
                               seccomp_digest="")

    monkeypatch.setattr(plan, "resolve_profile", no_digest)
    with pytest.raises(SandboxError, match="no digest to record in the provenance"):
        _record(BuildOptions(seccomp_profile="/p/custom.json"))


def test_libseccomp_compiles_the_profile_at_the_first_run_step_not_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preparing a build reads and digests the profile; compiling it (20-50 ms, which a fully
    cached rebuild never needs) is the runner's, before its first step."""
    import trustbuild._internal.seccomp as seccomp
    from trustbuild.sandbox.profiles import resolve_profile

    custom = tmp_path / "custom.json"  # not compiled before in this process
    custom.write_bytes(SHIPPED.read_bytes() + b"\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise SandboxError(f"seccomp profile {custom}: libseccomp refused it")

    monkeypatch.setattr(seccomp, "compile_filter", refuse)
    record = _record(BuildOptions(seccomp_profile=str(custom)))
    assert record.seccomp_profile_digest.startswith("sha256:")
    with pytest.raises(SandboxError, match="libseccomp refused it"):
        resolve_profile("baseline", seccomp=str(custom))  # what the runner calls per step


def test_the_builder_does_not_run_without_the_sandbox() -> None:
    """No silent fallback: a builder whose sandbox cannot be imported does not import."""
    code = ("import sys; sys.modules['trustbuild.sandbox.profiles'] = None\n"
            "try:\n    import trustbuild.builder.plan\n"
            "except ImportError:\n    print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "refused"


def test_each_record_gets_a_fresh_version_4_uuid() -> None:
    import uuid

    ids = [plan._new_record(BuildOptions()).invocation_id for _ in range(200)]
    assert len(set(ids)) == 200
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
