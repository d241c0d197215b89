"""``COPY --chown`` / ``ADD --chown`` ids, through the one USER resolver
(``trustbuild._internal.users``)."""

from __future__ import annotations

from pathlib import Path

from trustbuild._internal.users import resolve_user

__all__ = ["resolve_chown"]


def resolve_chown(rootfs: Path, spec: str) -> tuple[int, int]:
    """``--chown=user[:group]``: a bare uid gets gid = uid (as buildah), a name its primary
    group, ``user:group`` both as given or looked up."""
    user, sep, _ = spec.partition(":")
    if user.isdigit() and not sep:
        return int(user), int(user)
    ids = resolve_user(rootfs, spec, what="--chown")
    return ids.uid, ids.gid
