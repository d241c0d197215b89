"""Seccomp argument conditions rewritten for the kernel's 32-bit view of ``int`` arguments.

libseccomp compares the whole 64-bit register, but the kernel reads an ``int`` argument
(socket family, personality, clone flags, ...) from its low 32 bits only. A profile rule
``socket: ALLOW if arg0 != 40`` thus lets ``socket((1 << 32) | 40, ...)`` through, and the
kernel creates an AF_VSOCK socket. The filter cannot know an argument's C type, so every
condition is rewritten to be safe under both readings (the full register, and its low 32 bits):

- a permissive rule (ALLOW, LOG) matches only when the condition holds under *both* readings;
- any other rule (ERRNO, KILL, TRAP, TRACE) matches when it holds under *either* reading.

So high bits can neither slip a call through an allow rule's ``!=``/``>``/``>=`` nor past a deny
rule's ``==``/``<``/``<=``. The low-32-bit comparisons become ``SCMP_CMP_MASKED_EQ`` terms
(mask within 0xffffffff) because libseccomp has no masked ``!=`` or ``<``, and one rule can hold
only one comparison per argument: a condition becomes a list of alternatives, each one rule.
A value above 32 bits marks a 64-bit argument and is compared as written.
"""

from __future__ import annotations

from itertools import product
from typing import Required, TypedDict

from trustbuild.errors import SandboxError

__all__ = ["OPS", "PERMISSIVE_ACTIONS", "alternatives", "rule_groups", "ArgCondition",
           "RuleFilter", "SyscallRule", "ArchMapEntry", "ProfileData"]


# The profile's JSON, as ``seccomp.load_profile`` checked it.
class ArgCondition(TypedDict, total=False):
    """``syscalls[].args[]``: a condition on one argument register."""

    index: Required[int]
    op: Required[str]
    value: int
    valueTwo: int


class RuleFilter(TypedDict, total=False):
    """``syscalls[].includes`` / ``excludes``."""

    arches: list[str]
    caps: list[str]
    minKernel: str


class SyscallRule(TypedDict, total=False):
    """One ``syscalls[]`` entry (``names``, or the older single ``name``)."""

    names: list[str]
    name: str
    action: Required[str]
    errnoRet: int | None
    args: list[ArgCondition] | None
    includes: RuleFilter | None
    excludes: RuleFilter | None


class ArchMapEntry(TypedDict, total=False):
    """One ``archMap[]`` entry."""

    architecture: Required[str]
    subArchitectures: list[str] | None


class ProfileData(TypedDict, total=False):
    """A Moby/OCI seccomp profile."""

    defaultAction: Required[str]
    defaultErrnoRet: int | None
    architectures: list[str] | None
    archMap: list[ArchMapEntry] | None
    syscalls: list[SyscallRule] | None

OPS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
PERMISSIVE_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"})
_NE, _LT, _LE, _EQ, _GE, _GT, _MASKED = 1, 2, 3, 4, 5, 6, 7
_LOW = 0xFFFFFFFF
_MAX_RULES = 4096  # libseccomp rules one profile rule may expand to

Cmp = tuple[int, int, int, int]  # (index, op, datum_a, datum_b), as pyseccomp.Arg takes them
Term = Cmp | None  # None: no comparison needed (always true)


def _from_bit(i: int) -> int:
    """Mask of bits i..31."""
    return (_LOW >> i) << i if i < 32 else 0


def _ge32(index: int, v: int) -> list[Term]:
    """low32(x) >= v: agree with v above bit i, have bit i set where v has it clear."""
    k = (v & -v).bit_length() - 1 if v else 32  # trailing zero bits of v
    if k == 32:
        return [None]
    out: list[Term] = [(index, _MASKED, _from_bit(k), v)]
    for i in range(k, 32):
        if not v >> i & 1:
            out.append((index, _MASKED, _from_bit(i), (v & _from_bit(i + 1)) | 1 << i))
    return out


def _lt32(index: int, v: int) -> list[Term]:
    """low32(x) < v: agree with v above bit i, have bit i clear where v has it set."""
    return [(index, _MASKED, _from_bit(i), v & _from_bit(i + 1))
            for i in range(32) if v >> i & 1]


def _ne32(index: int, v: int) -> list[Term]:
    """low32(x) != v: some bit of the low 32 differs."""
    return [(index, _MASKED, 1 << i, ~v & 1 << i) for i in range(32)]


def alternatives(index: int, op: int, a: int, b: int, *, permissive: bool) -> list[Term]:
    """The condition as alternatives of single comparisons ([]: never, [None]: always)."""
    if op == _MASKED:
        if permissive or a <= _LOW or b > _LOW:
            return [(index, op, a, b)]
        return [(index, op, a, b), (index, op, a & _LOW, b)]
    if a > _LOW:
        return [(index, op, a, b)]
    if permissive:
        if op == _NE:
            return _ne32(index, a)
        if op == _GT:
            return _ge32(index, a + 1) if a < _LOW else []
        if op == _GE:
            return _ge32(index, a)
        return [(index, op, a, b)]  # EQ, LT, LE: the 64-bit test implies the 32-bit one
    if op == _EQ:
        return [(index, _MASKED, _LOW, a)]
    if op == _LT:
        return _lt32(index, a)
    if op == _LE:
        return _lt32(index, a + 1) if a < _LOW else [None]
    return [(index, op, a, b)]  # NE, GT, GE: the 64-bit test already covers the 32-bit one


def rule_groups(rule: SyscallRule, *, permissive: bool, where: str) -> list[list[Cmp]]:
    """The libseccomp rules (lists of comparisons, ANDed) one profile rule becomes.

    As in runc, several conditions on the same argument are alternatives; conditions on
    distinct arguments are ANDed. Raises SandboxError when the expansion is too large.
    """
    args = rule.get("args") or []
    conds = [alternatives(c["index"], OPS[c["op"]], c.get("value", 0), c.get("valueTwo", 0),
                          permissive=permissive) for c in args]
    indexes = [c["index"] for c in args]
    if len(set(indexes)) < len(indexes):
        choices = [[t] for alts in conds for t in alts]
    else:
        total = 1
        for alts in conds:
            total *= len(alts)
        if total > _MAX_RULES:
            raise SandboxError(f"{where}.args: these conditions expand to {total} libseccomp "
                               f"rules (more than {_MAX_RULES}); use fewer range conditions")
        choices = [list(combo) for combo in product(*conds)]
    out: list[list[Cmp]] = []
    for combo in choices:
        group = [t for t in combo if t is not None]
        if group not in out:
            out.append(group)
    return out
