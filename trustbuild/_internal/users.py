"""The one USER resolver: uid, gid, supplementary groups and home from the image's /etc files.

Docker semantics: ``""`` is root; ``name`` or ``uid`` takes the primary gid from /etc/passwd
(gid 0 for a numeric uid not in it) and the supplementary groups naming the user in
/etc/group; ``user:group`` sets the gid explicitly (and then no supplementary groups are added,
as Docker). The files are read inside the rootfs (``trustbuild._internal.inroot``). The builder
resolves a step's USER once and hands the result to the sandbox in ``RunSpec.user``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustbuild._internal.etcfiles import read_rows
from trustbuild._internal.inroot import resolve_in_root
from trustbuild.errors import BuildError

__all__ = ["StepUser", "ROOT", "resolve_user"]


@dataclass(frozen=True)
class StepUser:
    """The credentials a step runs with (and COPY --chown's ids)."""

    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"
    name: str = ""


ROOT = StepUser(uid=0, gid=0, groups=[0], home="/root", name="root")


def _rows(rootfs: Path, name: str) -> list[list[str]]:
    return read_rows(resolve_in_root(rootfs, f"/etc/{name}", what="the image"))


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() and len(s) < 11 and int(s) < 2**32 - 1 else None


def resolve_user(rootfs: Path, spec: str, *, what: str = "USER") -> StepUser:
    """Resolve ``user[:group]`` (names or ids) against ``rootfs``.

    An unknown user or group name is a BuildError naming ``what`` (``USER``, ``--chown``).
    """
    spec = spec.strip()
    user, _, group = (spec or "0").partition(":")
    if not user:
        raise BuildError(f"{what} {spec!r}: empty user name")
    uid = _int(user)
    entry = None
    for row in _rows(rootfs, "passwd"):
        if len(row) < 4 or _int(row[2]) is None:
            continue
        if (uid is None and row[0] == user) or (uid is not None and _int(row[2]) == uid):
            entry = row
            break
    if uid is None:
        if entry is None:
            raise BuildError(
                f"{what} {spec!r}: no user {user!r} in the image's /etc/passwd; "
                "create it in an earlier step or use a numeric uid")
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
                raise BuildError(
                    f"{what} {spec!r}: no group {group!r} in the image's /etc/group; "
                    "create it in an earlier step or use a numeric gid")
        return StepUser(uid=uid, gid=gid, groups=[gid], home=home, name=name)
    gid = (_int(entry[3]) if entry else 0) or 0
    groups = [gid]
    if name:
        for row in groups_db:
            if len(row) >= 4 and name in row[3].split(","):
                g = _int(row[2])
                if g is not None and g not in groups:
                    groups.append(g)
    return StepUser(uid=uid, gid=gid, groups=groups, home=home, name=name)
