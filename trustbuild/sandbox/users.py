"""USER resolution for RUN: uid, gid and supplementary groups from the image's /etc files.

Docker semantics: ``""`` is root; ``name`` or ``uid`` takes the primary gid from /etc/passwd
(gid 0 for a numeric uid not in it) and the supplementary groups from /etc/group;
``user:group`` sets the gid explicitly (and then no supplementary groups are added, as Docker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustbuild._internal.etcfiles import read_rows
from trustbuild._internal.inroot import resolve_in_root
from trustbuild.errors import SandboxError

__all__ = ["StepUser", "resolve_user"]

@dataclass(frozen=True)
class StepUser:
    """The credentials a step runs with."""

    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


def _rows(rootfs: Path, name: str) -> list[list[str]]:
    return read_rows(resolve_in_root(rootfs, f"/etc/{name}"))


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() and len(s) < 11 and int(s) < 2**32 - 1 else None


def resolve_user(rootfs: Path, spec: str) -> StepUser:
    """Resolve a USER value against ``rootfs``; unknown names raise SandboxError."""
    spec = spec.strip()
    if not spec:
        spec = "0"
    user, _, group = spec.partition(":")
    if not user:
        raise SandboxError(f"USER {spec!r}: empty user name")
    passwd = _rows(rootfs, "passwd")
    entry = None
    uid = _int(user)
    for row in passwd:
        if len(row) < 4:
            continue
        if (uid is None and row[0] == user) or (uid is not None and _int(row[2]) == uid):
            entry = row
            break
    if uid is None:
        if entry is None or _int(entry[2]) is None:
            raise SandboxError(
                f"USER {spec!r}: no user {user!r} in the image's /etc/passwd; "
                "create it in an earlier step or use a numeric uid"
            )
        uid = int(entry[2])
    name = entry[0] if entry else ""
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    groups_db = _rows(rootfs, "group")
    if group:
        gid = _int(group)
        if gid is None:
            for row in groups_db:
                if len(row) >= 3 and row[0] == group and _int(row[2]) is not None:
                    gid = int(row[2])
                    break
            else:
                raise SandboxError(
                    f"USER {spec!r}: no group {group!r} in the image's /etc/group; "
                    "create it in an earlier step or use a numeric gid"
                )
        return StepUser(uid=uid, gid=gid, groups=[gid], home=home, name=name)
    gid = _int(entry[3]) if entry else 0
    if gid is None:
        gid = 0
    groups = [gid]
    if name:
        for row in groups_db:
            if len(row) >= 4 and name in row[3].split(","):
                g = _int(row[2])
                if g is not None and g not in groups:
                    groups.append(g)
    return StepUser(uid=uid, gid=gid, groups=groups, home=home, name=name)
