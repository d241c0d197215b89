"""Seccomp argument conditions against the kernel's 32-bit view of int arguments.

Each test loads a compiled filter in a forked child and issues raw syscalls with chosen
64-bit argument registers, so it checks what the kernel really lets through.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import socket
import struct
from pathlib import Path

import pytest

from trustbuild._internal.seccomp import compile_bpf, load_profile
from trustbuild.errors import SandboxError

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall numbers")

SYS_SOCKET, SYS_GETPPID, SYS_PERSONALITY = 41, 110, 135
HI = 1 << 32
LOW = 0xFFFFFFFF
PR_SET_NO_NEW_PRIVS = 38


def _results(bpf: bytes, calls: list[tuple[int, ...]]) -> list[int]:
    """Load ``bpf`` in a child, run each raw syscall, return 0 (it worked) or its errno."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            from trustbuild.sandbox import _linux as L

            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            out = (ctypes.c_int * len(calls))()
            L.prctl(PR_SET_NO_NEW_PRIVS, 1)
            L.load_seccomp_bpf(bpf)
            for i, (nr, *args) in enumerate(calls):
                ctypes.set_errno(0)
                res = libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args))
                out[i] = ctypes.get_errno() if res < 0 else 0
                if res >= 0 and nr == SYS_SOCKET:
                    os.close(res)
            os.write(w, bytes(out))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    assert len(data) == 4 * len(calls), "the filtered child died"
    return list(struct.unpack(f"{len(calls)}i", data))


def _bpf(tmp_path: Path, data: dict[str, object]) -> bytes:
    p = tmp_path / f"p{len(list(tmp_path.iterdir()))}.json"
    p.write_text(json.dumps(data))
    return compile_bpf(load_profile(p))


def test_build_default_denies_af_vsock_whatever_the_high_bits() -> None:
    bpf = compile_bpf(load_profile("build-default"))
    res = _results(bpf, [
        (SYS_SOCKET, 40, socket.SOCK_STREAM, 0),
        (SYS_SOCKET, HI | 40, socket.SOCK_STREAM, 0),
        (SYS_SOCKET, (0xDEAD << 32) | 40, socket.SOCK_STREAM, 0),
        (SYS_SOCKET, socket.AF_INET, socket.SOCK_STREAM, 0),
        (SYS_SOCKET, socket.AF_UNIX, socket.SOCK_STREAM, 0),
    ])
    assert res[:3] == [errno.EAFNOSUPPORT] * 3
    assert res[3:] == [0, 0]


def test_build_default_personality_cannot_be_smuggled_with_high_bits() -> None:
    bpf = compile_bpf(load_profile("build-default"))
    read_implies_exec = 0x0400000
    res = _results(bpf, [
        (SYS_PERSONALITY, LOW),  # query
        (SYS_PERSONALITY, HI | read_implies_exec),
        (SYS_PERSONALITY, read_implies_exec),
    ])
    assert res[0] == 0
    assert res[1] != 0 and res[2] != 0


def _cmp(op: str, x: int, v: int) -> bool:
    return {"SCMP_CMP_EQ": x == v, "SCMP_CMP_NE": x != v, "SCMP_CMP_LT": x < v,
            "SCMP_CMP_LE": x <= v, "SCMP_CMP_GT": x > v, "SCMP_CMP_GE": x >= v}[op]


OPS = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE"]
VALUES = [0, 40, 0x80000000, LOW]


def _probes(v: int) -> list[int]:
    xs = {0, 1, LOW, HI, HI | LOW, 1 << 63}
    for d in (-1, 0, 1):
        y = (v + d) & LOW
        xs.update({y, HI | y, (0xFFFF << 32) | y})
    return sorted(xs)


@pytest.mark.parametrize("op", OPS)
def test_a_deny_rule_matches_when_either_reading_matches(tmp_path: Path, op: str) -> None:
    """ERRNO rule: denied when the full register OR its low 32 bits satisfy the condition."""
    for v in VALUES:
        bpf = _bpf(tmp_path, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
             "args": [{"index": 0, "value": v, "op": op}]}]})
        xs = _probes(v)
        got = _results(bpf, [(SYS_GETPPID, x) for x in xs])
        want = [99 if _cmp(op, x, v) or _cmp(op, x & LOW, v) else 0 for x in xs]
        assert got == want, (op, hex(v))


@pytest.mark.parametrize("op", OPS)
def test_an_allow_rule_matches_only_when_both_readings_match(tmp_path: Path, op: str) -> None:
    """ALLOW rule over a denying default: allowed only when both readings satisfy it."""
    base = load_profile("build-default").data
    rules = [dict(r, names=[n for n in r["names"] if n != "getppid"]) for r in base["syscalls"]]
    rules = [r for r in rules if r["names"]]
    for v in VALUES:
        bpf = _bpf(tmp_path, dict(base, syscalls=rules + [
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": v, "op": op}]}]))
        xs = _probes(v)
        got = _results(bpf, [(SYS_GETPPID, x) for x in xs])
        want = [0 if _cmp(op, x, v) and _cmp(op, x & LOW, v) else errno.ENOSYS for x in xs]
        assert got == want, (op, hex(v))


def test_masked_eq_deny_rule_with_a_wide_mask_also_checks_the_low_half(tmp_path: Path) -> None:
    mask = (0xF << 32) | 0xFF
    bpf = _bpf(tmp_path, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
         "args": [{"index": 0, "value": mask, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}]}]})
    assert _results(bpf, [(SYS_GETPPID, 7), (SYS_GETPPID, HI | 7), (SYS_GETPPID, 8)]) == [
        99, 99, 0]


def test_a_value_above_32_bits_is_a_64_bit_comparison(tmp_path: Path) -> None:
    bpf = _bpf(tmp_path, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
         "args": [{"index": 0, "value": HI | 5, "op": "SCMP_CMP_EQ"}]}]})
    assert _results(bpf, [(SYS_GETPPID, HI | 5), (SYS_GETPPID, 5)]) == [99, 0]


def test_an_expansion_too_large_is_a_one_line_error(tmp_path: Path) -> None:
    args = [{"index": i, "value": 40, "op": "SCMP_CMP_NE"} for i in range(3)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": args}]}))
    with pytest.raises(SandboxError, match=r"syscalls\[0\]\.args: .*expand") as exc:
        compile_bpf(load_profile(p))
    assert "\n" not in str(exc.value)
