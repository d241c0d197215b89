"""The seccomp profile compiler: parsing, checking and compiling Moby/OCI JSON profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustbuild._internal.seccomp import CompileReport, compile_filter, load_profile
from trustbuild.errors import SandboxError

DENIED = ["mount", "umount2", "pivot_root", "unshare", "setns", "kexec_load", "kexec_file_load",
          "init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl",
          "add_key", "request_key", "reboot", "swapon", "swapoff", "open_by_handle_at",
          "userfaultfd", "acct", "quotactl"]


def _pfc(filt: object, tmp_path: Path) -> str:
    out = tmp_path / "filter.pfc"
    with open(out, "w") as f:
        filt.export_pfc(f)  # type: ignore[attr-defined]
    return out.read_text()


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "profile.json"
    p.write_text(json.dumps(data))
    return p


def test_build_default_loads_by_name_with_a_stable_digest() -> None:
    a = load_profile("build-default")
    b = load_profile(a.path)
    assert a.path.endswith("seccomp/build-default.json")
    assert a.digest == b.digest and a.digest.startswith("sha256:")


def test_build_default_denies_the_documented_syscalls_with_eperm(tmp_path: Path) -> None:
    import pyseccomp as sc

    prof = load_profile("build-default")
    names = {n for rule in prof.data["syscalls"] for n in rule["names"]
             if rule["action"] == "SCMP_ACT_ERRNO" and rule.get("errnoRet") == 1}
    assert set(DENIED) <= names
    pfc = _pfc(compile_filter(prof), tmp_path)
    for name in ("mount", "unshare", "keyctl", "bpf", "kexec_load", "init_module"):
        nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
        assert f"if ($syscall == {nr})\n    action ERRNO(1);" in pfc, name
    # Everything unlisted gets ENOSYS (38), so libc falls back instead of failing.
    assert "action ERRNO(38);" in pfc


def test_allowlist_and_deny_list_do_not_overlap() -> None:
    prof = load_profile("build-default")
    allowed = {n for r in prof.data["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and
               not r.get("args") for n in r["names"]}
    denied = {n for r in prof.data["syscalls"] if r["action"] == "SCMP_ACT_ERRNO"
              for n in r["names"]}
    assert not allowed & denied


def test_unknown_syscall_names_are_skipped_and_reported(tmp_path: Path) -> None:
    p = _write(tmp_path, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_syscall_xyz", "mount"], "action": "SCMP_ACT_ERRNO"}]})
    report = CompileReport()
    pfc = _pfc(compile_filter(load_profile(p), report=report), tmp_path)
    assert report.unknown_syscalls == ["no_such_syscall_xyz"]
    assert "ERRNO(1)" in pfc


def test_masked_eq_arguments_and_caps_includes(tmp_path: Path) -> None:
    p = _write(tmp_path, {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
    ]})
    prof = load_profile(p)
    without = _pfc(compile_filter(prof, capabilities=["CHOWN"]), tmp_path)
    with_boot = _pfc(compile_filter(prof, capabilities=["SYS_BOOT"]), tmp_path)
    assert "& 0x7e020000" in without.lower()
    assert with_boot.count("ALLOW") > without.count("ALLOW")


@pytest.mark.parametrize(("data", "field"), [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
     "syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "x"}]},
     "syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]},
     "syscalls[0].args[0].op"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "architectures[0]"),
    ([1, 2], "top level"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ERRNO", "includes": {"caps": "CAP_SYS_ADMIN"}}]},
     "syscalls[0].includes.caps"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
      "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": 4.8}}]},
     "syscalls[0].excludes.minKernel"),
])
def test_invalid_profiles_name_the_field(tmp_path: Path, data: object, field: str) -> None:
    with pytest.raises(SandboxError) as exc:
        load_profile(_write(tmp_path, data))
    assert field in str(exc.value)
    assert "\n" not in str(exc.value)


def test_not_json_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(SandboxError, match="not valid JSON"):
        load_profile(bad)
    with pytest.raises(SandboxError, match="no such file"):
        load_profile(tmp_path / "missing.json")
    with pytest.raises(SandboxError, match="not a profile name"):
        load_profile("no-such-profile")
