"""USER and ``--chown`` resolution against the image's ``/etc/passwd`` and ``/etc/group``.

Names are looked up inside the stage's rootfs (symlinks resolved inside it); numeric ids need no
lookup. ``resolve_user(rootfs, "app")`` gives the uid and the user's primary gid, as Docker does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trustbuild._internal.etcfiles import read_rows
from trustbuild.builder.rootfs import secure_join
from trustbuild.errors import BuildError

__all__ = ["UserIds", "resolve_user", "resolve_chown", "lookup_passwd", "lookup_group"]

@dataclass(frozen=True)
class UserIds:
    """A resolved uid/gid pair (and the user's home directory when known)."""

    uid: int
    gid: int
    home: str = "/"


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    return read_rows(secure_join(rootfs, f"/etc/{name}"))


def lookup_passwd(rootfs: Path, user: str) -> tuple[int, int, str] | None:
    """(uid, gid, home) of ``user`` (a name or a numeric id) in the rootfs passwd, or None."""
    for row in _read_db(rootfs, "passwd"):
        if len(row) >= 4 and (row[0] == user or (user.isdigit() and row[2] == user)):
            try:
                return int(row[2]), int(row[3]), row[5] if len(row) > 5 else "/"
            except ValueError:
                continue
    return None


def lookup_group(rootfs: Path, group: str) -> int | None:
    """gid of ``group`` (a name) in the rootfs group file, or None."""
    for row in _read_db(rootfs, "group"):
        if len(row) >= 3 and row[0] == group:
            try:
                return int(row[2])
            except ValueError:
                continue
    return None


def resolve_user(rootfs: Path, spec: str, *, what: str = "USER") -> UserIds:
    """``user[:group]`` (names or ids) to ids; an unknown named user or group is an error.

    A bare numeric uid without an /etc/passwd entry gets gid 0 (Docker's behaviour).
    """
    user, _, group = spec.partition(":")
    if not user:
        raise BuildError(f"{what} {spec!r}: empty user name")
    entry = lookup_passwd(rootfs, user)
    if user.isdigit():
        uid = int(user)
        gid = entry[1] if entry else 0
        home = entry[2] if entry else "/"
    elif entry is None:
        raise BuildError(f"{what} {spec!r}: no user {user!r} in the image's /etc/passwd")
    else:
        uid, gid, home = entry
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = lookup_group(rootfs, group)
            if found is None:
                raise BuildError(f"{what} {spec!r}: no group {group!r} in the image's /etc/group")
            gid = found
    return UserIds(uid, gid, home or "/")


def resolve_chown(rootfs: Path, spec: str) -> tuple[int, int]:
    """``--chown=user[:group]``: a user without group gets gid = uid for ids, the primary group
    for names (Docker's rules)."""
    user, sep, group = spec.partition(":")
    if user.isdigit() and not sep:
        return int(user), int(user)
    ids = resolve_user(rootfs, spec, what="--chown")
    if not sep and not user.isdigit():
        return ids.uid, ids.gid
    return ids.uid, ids.gid
