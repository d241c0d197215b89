"""Seccomp profile compiler: Moby/OCI JSON profiles to a libseccomp filter.

Unstable internal module. The binding is ``pyseccomp`` (a ctypes wrapper over the system's
``libseccomp.so.2``, API-compatible with libseccomp's own Python bindings): pure Python, so it
installs from PyPI with no compiler and no Cython, and uses the same libseccomp that runc and
crun use to build their filters (see docs/seccomp.md for the comparison with the alternatives).

The accepted format is what Docker, Podman and the OCI runtime spec use::

    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
     "architectures": ["SCMP_ARCH_X86_64"],
     "archMap": [{"architecture": ..., "subArchitectures": [...]}],
     "syscalls": [{"names": [...], "action": "SCMP_ACT_ALLOW", "errnoRet": 1,
                   "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}],
                   "includes": {"arches": [...], "caps": [...], "minKernel": "4.8"},
                   "excludes": {...}}]}

``load_profile`` parses and checks a file (every problem is a one-line ``SandboxError`` naming
the field); ``compile_filter`` turns it into a ``pyseccomp.SyscallFilter`` ready to ``load()``.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Protocol, cast

from trustbuild._internal.data import data_dirs, find_data, shipped_names
from trustbuild._internal.seccomp_args import OPS as _OPS
from trustbuild._internal.seccomp_args import PERMISSIVE_ACTIONS as _PERMISSIVE
from trustbuild._internal.seccomp_args import ProfileData, RuleFilter, SyscallRule, rule_groups
from trustbuild.errors import SandboxError

__all__ = ["SeccompProfile", "load_profile", "compile_filter", "compile_bpf", "profile_dirs",
           "find_profile", "CompileReport"]

_ACTIONS = {
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
}
# Profile architecture names -> pyseccomp.Arch attribute names.
_ARCHES = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS",
    "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
    "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64",
    "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X",
    "SCMP_ARCH_PARISC": "PARISC", "SCMP_ARCH_PARISC64": "PARISC64",
    "SCMP_ARCH_RISCV64": "RISCV64",
}
# uname -m -> (profile name of the native arch, Go arch name used by includes/excludes.arches)
_NATIVE = {
    "x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
    "s390x": ("SCMP_ARCH_S390X", "s390x"), "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
    "riscv64": ("SCMP_ARCH_RISCV64", "riscv64"), "armv7l": ("SCMP_ARCH_ARM", "arm"),
    "i686": ("SCMP_ARCH_X86", "386"),
}
_MAX_PROFILE = 1024 * 1024


@dataclass(frozen=True)
class SeccompProfile:
    """A parsed, checked profile: where it came from, the digest of its bytes, its JSON."""

    path: str
    digest: str  # "sha256:<hex>" of the file bytes, recorded in the BuildRecord
    data: ProfileData = field(repr=False, hash=False, compare=False)


def profile_dirs() -> list[Path]:
    """Directories searched for named profiles (``build-default`` -> ``build-default.json``)."""
    return data_dirs("seccomp")


def find_profile(name_or_path: str) -> Path:
    """Map a profile name (``build-default``) or a path to an existing file."""
    looks_like_path = "/" in name_or_path or name_or_path.endswith(".json")
    if looks_like_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise SandboxError(f"seccomp profile {name_or_path}: no such file")
        return path
    found = find_data("seccomp", f"{name_or_path}.json")
    if found is not None:
        return found
    shipped = ", ".join(shipped_names("seccomp", ".json")) or "none found"
    raise SandboxError(
        f"seccomp profile {name_or_path!r}: not a file and not a profile name in "
        f"{', '.join(str(d) for d in profile_dirs())} (shipped: {shipped}); "
        "pass a path or 'unconfined'"
    )


def _fail(path: str, where: str, msg: str) -> SandboxError:
    return SandboxError(f"seccomp profile {path}: {where}: {msg}")


def load_profile(name_or_path: str | Path) -> SeccompProfile:
    """Read, parse and check a profile; raise SandboxError naming the bad field."""
    path = find_profile(str(name_or_path))
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_PROFILE + 1)
    except OSError as exc:
        raise SandboxError(f"seccomp profile {path}: cannot read: {exc.strerror}") from exc
    if len(raw) > _MAX_PROFILE:
        raise SandboxError(f"seccomp profile {path}: larger than {_MAX_PROFILE} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SandboxError(f"seccomp profile {path}: not valid JSON: {exc}") from exc
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    return SeccompProfile(path=str(path), digest=digest, data=_check(str(path), data))


def _check_action(path: str, where: str, action: object) -> None:
    if action not in _ACTIONS:
        raise _fail(path, where,
                    f"unknown action {action!r} (one of {', '.join(sorted(_ACTIONS))})")


def _check(path: str, data: object) -> ProfileData:
    """``data`` checked field by field against the profile format."""
    if not isinstance(data, dict):
        raise _fail(path, "top level", "expected a JSON object")
    _check_action(path, "defaultAction", data.get("defaultAction"))
    for key in ("defaultErrnoRet",):
        if key in data and data[key] is not None and not _is_uint(data[key]):
            raise _fail(path, key, "expected a non-negative integer")
    arches = data.get("architectures") or []
    if not isinstance(arches, list):
        raise _fail(path, "architectures", "expected a list")
    for i, a in enumerate(arches):
        if a not in _ARCHES:
            raise _fail(path, f"architectures[{i}]", f"unknown architecture {a!r}")
    arch_map = data.get("archMap") or []
    if not isinstance(arch_map, list):
        raise _fail(path, "archMap", "expected a list")
    for i, entry in enumerate(arch_map):
        if not isinstance(entry, dict) or entry.get("architecture") not in _ARCHES:
            raise _fail(path, f"archMap[{i}].architecture", "unknown or missing architecture")
        for j, sub in enumerate(entry.get("subArchitectures") or []):
            if sub not in _ARCHES:
                raise _fail(path, f"archMap[{i}].subArchitectures[{j}]", f"unknown {sub!r}")
    rules = data.get("syscalls") or []
    if not isinstance(rules, list):
        raise _fail(path, "syscalls", "expected a list")
    for i, rule in enumerate(rules):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise _fail(path, where, "expected an object")
        names = rule.get("names") if "names" in rule else [rule.get("name")]
        if not isinstance(names, list) or not names or not all(
            isinstance(n, str) and n for n in names
        ):
            raise _fail(path, f"{where}.names", "expected a non-empty list of syscall names")
        _check_action(path, f"{where}.action", rule.get("action"))
        if rule.get("errnoRet") is not None and not _is_uint(rule["errnoRet"]):
            raise _fail(path, f"{where}.errnoRet", "expected a non-negative integer")
        args = rule.get("args") or []
        if not isinstance(args, list) or len(args) > 64:
            raise _fail(path, f"{where}.args", "expected a list of conditions")
        for j, arg in enumerate(args):
            aw = f"{where}.args[{j}]"
            if not isinstance(arg, dict):
                raise _fail(path, aw, "expected an object")
            if not _is_uint(arg.get("index")) or arg["index"] > 5:
                raise _fail(path, f"{aw}.index", "expected 0..5")
            if arg.get("op") not in _OPS:
                raise _fail(path, f"{aw}.op", f"unknown operator {arg.get('op')!r}")
            for key in ("value", "valueTwo"):
                if key in arg and not _is_uint(arg[key]):
                    raise _fail(path, f"{aw}.{key}", "expected a non-negative integer")
        indexes = [a["index"] for a in args]
        if len(set(indexes)) == len(indexes) and len(args) > 6:
            raise _fail(path, f"{where}.args", "at most 6 conditions on distinct arguments")
        for key in ("includes", "excludes"):
            if key in rule and rule[key] is not None:
                _check_filter(path, f"{where}.{key}", rule[key])
    return cast(ProfileData, data)


def _check_filter(path: str, where: str, value: object) -> None:
    if not isinstance(value, dict):
        raise _fail(path, where, "expected an object")
    for key in ("arches", "caps"):
        items = value.get(key)
        if items is not None and not (isinstance(items, list)
                                      and all(isinstance(i, str) for i in items)):
            raise _fail(path, f"{where}.{key}", "expected a list of strings")
    kernel = value.get("minKernel")
    if kernel is not None and not isinstance(kernel, str):
        raise _fail(path, f"{where}.minKernel", "expected a string such as \"4.8\"")


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


def _native() -> tuple[str, str]:
    machine = os.uname().machine  # what platform.machine() answers, without importing it
    if machine not in _NATIVE:
        raise SandboxError(f"seccomp: unsupported machine {machine!r}")
    return _NATIVE[machine]


def _kernel_at_least(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in p if ch.isdigit())
            out.append(int(digits or 0))
        return tuple(out)

    return parts(os.uname().release) >= parts(version)


def _applies(rule: SyscallRule, goarch: str, caps: set[str]) -> bool:
    inc: RuleFilter = rule.get("includes") or {}
    exc: RuleFilter = rule.get("excludes") or {}
    if inc.get("arches") and goarch not in inc.get("arches", []):
        return False
    if inc.get("caps") and not any(c in caps for c in inc.get("caps", [])):
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc.get("minKernel", "")):
        return False
    if exc.get("arches") and goarch in exc.get("arches", []):
        return False
    return not (exc.get("caps") and any(c in caps for c in exc.get("caps", [])))


def _action(sc: ModuleType, name: str, errno_ret: int | None, default_errno: int) -> int:
    if name == "SCMP_ACT_ERRNO":
        return int(sc.ERRNO(errno_ret if errno_ret is not None else default_errno))
    if name == "SCMP_ACT_TRACE":
        return int(sc.TRACE(errno_ret if errno_ret is not None else 0))
    return int({
        "SCMP_ACT_KILL": sc.KILL_THREAD, "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS, "SCMP_ACT_TRAP": sc.TRAP,
        "SCMP_ACT_ALLOW": sc.ALLOW, "SCMP_ACT_LOG": sc.LOG,
    }[name])


@dataclass
class CompileReport:
    """What compile_filter did with names this kernel/libseccomp does not know."""

    unknown_syscalls: list[str] = field(default_factory=list)


class SyscallFilter(Protocol):
    """What trustbuild uses of a ``pyseccomp.SyscallFilter``."""

    def export_bpf(self, file: IO[bytes]) -> None:
        """Write the filter as raw BPF."""
        ...

    def load(self) -> None:
        """Install the filter in this process."""
        ...


def _pyseccomp() -> ModuleType:
    """Import ``pyseccomp``; ``$TRUSTBUILD_LIBSECCOMP`` names the ``libseccomp.so.2`` to open.

    pyseccomp finds the library with ``ctypes.util.find_library`` (``ldconfig -p``), which a
    relocated executor cannot use: in container mode "/" holds the image being built, not the
    executor's libraries (the executor image sets the variable to its own copy)."""
    lib = os.environ.get("TRUSTBUILD_LIBSECCOMP")
    if not lib or "pyseccomp" in sys.modules:
        return importlib.import_module("pyseccomp")
    if not os.path.isfile(lib):
        raise SandboxError(f"TRUSTBUILD_LIBSECCOMP={lib}: no such file; point it at "
                           "libseccomp.so.2 or unset it")
    import ctypes.util  # only here: the profile checks of every build need no ctypes

    find = ctypes.util.find_library
    ctypes.util.find_library = lambda name: lib if name == "seccomp" else find(name)
    try:
        return importlib.import_module("pyseccomp")
    finally:
        ctypes.util.find_library = find


def compile_filter(
    profile: SeccompProfile,
    *,
    capabilities: Iterable[str] = (),
    no_new_privs: bool = True,
    report: CompileReport | None = None,
) -> SyscallFilter:
    """Build the ``pyseccomp.SyscallFilter`` for this machine (not loaded).

    ``capabilities`` (``CAP_*`` names) drive ``includes.caps``/``excludes.caps`` as Docker does.
    Syscall names unknown to libseccomp are skipped (as runc does) and listed in ``report``.
    """
    sc = _pyseccomp()
    data = profile.data
    path = profile.path
    caps = {c if c.startswith("CAP_") else f"CAP_{c}" for c in capabilities}
    native_name, goarch = _native()
    default_errno = int(data.get("defaultErrnoRet") or errno.EPERM)
    default = _action(sc, data["defaultAction"], data.get("defaultErrnoRet"), errno.EPERM)
    try:
        filt = sc.SyscallFilter(default)  # pyseccomp is untyped: its calls stay unchecked
        filt.set_attr(sc.Attr.CTL_NNP, 1 if no_new_privs else 0)
    except OSError as exc:
        raise SandboxError(f"seccomp profile {path}: libseccomp refused it: {exc}") from exc
    extra: list[str] = [a for a in data.get("architectures") or []]
    for entry in data.get("archMap") or []:
        if entry["architecture"] == native_name:
            extra.extend(entry.get("subArchitectures") or [])
    for arch_name in extra:
        if arch_name == native_name:
            continue
        arch = getattr(sc.Arch, _ARCHES[arch_name], None)
        if arch is None:
            continue
        try:
            filt.add_arch(arch)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.EINVAL):
                raise SandboxError(
                    f"seccomp profile {path}: architecture {arch_name}: {exc}") from exc
    for i, rule in enumerate(data.get("syscalls") or []):
        if not _applies(rule, goarch, caps):
            continue
        action = _action(sc, rule["action"], rule.get("errnoRet"), default_errno)
        if action == default:
            continue
        groups = [[sc.Arg(*c) for c in group]
                  for group in rule_groups(rule, permissive=rule["action"] in _PERMISSIVE,
                                           where=f"seccomp profile {path}: syscalls[{i}]")]
        names = rule["names"] if "names" in rule else [rule["name"]]
        for name in names:
            nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
            if nr == -1:
                if report is not None:
                    report.unknown_syscalls.append(name)
                continue
            for group in groups:
                try:
                    filt.add_rule(action, nr, *group)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        continue
                    if exc.errno == errno.EDOM or nr < 0:
                        # A pseudo-syscall that does not exist on this architecture.
                        if report is not None:
                            report.unknown_syscalls.append(name)
                        continue
                    raise SandboxError(
                        f"seccomp profile {path}: syscalls[{i}] {name}: libseccomp refused the "
                        f"rule: {exc.strerror}"
                    ) from exc
    return cast(SyscallFilter, filt)


_BPF_CACHE: dict[tuple[str, tuple[str, ...], bool], bytes] = {}


def compile_bpf(profile: SeccompProfile, *, capabilities: Iterable[str] = (),
                no_new_privs: bool = True) -> bytes:
    """The filter as raw BPF (``struct sock_filter[]``), cached per profile digest and caps.

    The sandbox helper loads these bytes with ``prctl(PR_SET_SECCOMP)`` and so needs neither
    libseccomp nor a compile per step.
    """
    import tempfile

    caps = tuple(sorted(capabilities))
    key = (profile.digest or profile.path, caps, no_new_privs)
    if profile.digest and key in _BPF_CACHE:
        return _BPF_CACHE[key]
    filt = compile_filter(profile, capabilities=caps, no_new_privs=no_new_privs)
    with tempfile.TemporaryFile() as f:
        try:
            filt.export_bpf(f)
        except OSError as exc:
            raise SandboxError(f"seccomp profile {profile.path}: cannot export: {exc}") from exc
        f.seek(0)
        data = f.read()
    if not data or len(data) % 8:
        raise SandboxError(f"seccomp profile {profile.path}: libseccomp produced no filter")
    if profile.digest:
        _BPF_CACHE[key] = data
    return data
