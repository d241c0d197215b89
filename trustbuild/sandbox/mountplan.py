"""Mount points a RUN step needs (/proc, /dev, /sys, resolv.conf, hosts, extra binds).

The image may lack them. They are never created in the captured tree:
- overlay mode: the missing ones go into an extra top lower directory whose directories mirror
  the rootfs metadata, so the merged view looks unchanged and nothing reaches the upper;
- walk/full mode: they are created in the rootfs before the step, excluded from the snapshots,
  and removed afterwards (restoring the parent's mtime when the step did not touch it).

Extra mounts (``RUN --mount``) are ``(source, target)`` or ``(source, target, mode)`` with mode
"ro" (default), "rw" (bind read-write), "tmpfs" (source: "" or "size=BYTES") or "secret" (a
file the helper fills on a private tmpfs; source ""). Like buildah,
the missing *parent* directories of an extra mount's target stay in the layer (root, 0755);
the target itself and everything below it never do.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trustbuild.errors import SandboxError

__all__ = ["MountPoint", "plan_mounts", "build_lower", "CreatedMounts", "create_in_rootfs",
           "excluder", "helper_mounts", "add_kept_parents"]

_HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")
_KERNEL_DIRS = ("/proc", "/dev", "/sys")
_MODES = ("ro", "rw", "tmpfs", "secret")


@dataclass(frozen=True)
class MountPoint:
    """A path in the root the helper mounts something on."""

    target: str  # absolute, normalised, inside the root
    kind: str  # "dir" | "file"
    source: str | None  # host path for read-only binds; None for /proc /dev /sys
    missing: tuple[str, ...] = ()  # components (absolute paths) to create, outermost first
    mode: str = "ro"  # "ro" | "rw" (bind) | "tmpfs" | "secret"
    keep_parents: bool = False  # missing parents of the target are kept (RUN --mount)

    def kept(self) -> tuple[str, ...]:
        """Missing parent directories that stay in the step's layer."""
        return self.missing[:-1] if self.keep_parents else ()


def _norm(target: str) -> str:
    parts = [p for p in target.split("/") if p and p != "."]
    if ".." in parts:
        raise SandboxError(f"mount target {target!r} must not contain '..'")
    return "/" + "/".join(parts)


def _check(rootfs: Path, target: str, kind: str, *, strict: bool) -> tuple[str, ...] | None:
    """Components to create; None when the target cannot be used (strict: raise)."""
    parts = target.strip("/").split("/")
    missing: list[str] = []
    for i in range(len(parts)):
        rel = "/" + "/".join(parts[: i + 1])
        last = i == len(parts) - 1
        if missing:
            missing.append(rel)
            continue
        try:
            st = os.lstat(rootfs / rel.lstrip("/"))
        except FileNotFoundError:
            missing.append(rel)
            continue
        want_dir = not last or kind == "dir"
        ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
        if not ok:
            if strict:
                what = "a directory" if want_dir else "a regular file"
                raise SandboxError(
                    f"cannot mount on {target}: {rel} in the image is not {what} "
                    "(symlinks are not followed out of the rootfs)"
                )
            return None
    return tuple(missing)


def plan_mounts(rootfs: Path, extra: Sequence[tuple[str, ...]]) -> list[MountPoint]:
    """Check every mount target against the rootfs and list what must be created."""
    plan = []
    for d in _KERNEL_DIRS:
        missing = _check(rootfs, d, "dir", strict=True)
        assert missing is not None
        plan.append(MountPoint(d, "dir", None, missing))
    for f in _HOST_FILES:
        if not os.path.isfile(f):
            continue
        missing = _check(rootfs, f, "file", strict=False)
        if missing is not None:
            plan.append(MountPoint(f, "file", f, missing))
    for item in extra:
        src, target = item[0], item[1]
        mode = item[2] if len(item) > 2 else "ro"
        if mode not in _MODES:
            raise SandboxError(f"mount mode {mode!r}: expected one of {', '.join(_MODES)}")
        if mode not in ("tmpfs", "secret") and not os.path.exists(src):
            raise SandboxError(f"mount source {src} does not exist")
        if mode == "secret":
            kind = "file"
        else:
            kind = "dir" if mode == "tmpfs" or os.path.isdir(src) else "file"
        t = _norm(target)
        if t == "/" or any(t == k or t.startswith(k + "/") for k in _KERNEL_DIRS):
            raise SandboxError(f"mount target {target!r} is reserved")
        missing = _check(rootfs, t, kind, strict=True)
        assert missing is not None
        if any(m.target == t for m in plan):
            raise SandboxError(f"mount target {target!r} is used twice")
        if mode == "tmpfs" and not re.fullmatch(r"(size=\d+[kmg]?)?", src):
            raise SandboxError(f"tmpfs options {src!r}: only size=BYTES is accepted")
        source = src if mode in ("tmpfs", "secret") else os.path.realpath(src)
        plan.append(MountPoint(t, kind, source, missing, mode=mode, keep_parents=True))
    return plan


def helper_mounts(plan: list[MountPoint]) -> list[list[str]]:
    """``[source, target, mode]`` of what the helper mounts after /proc, /dev and /sys."""
    return [[m.source or "", m.target, m.mode] for m in plan
            if m.source or m.mode in ("tmpfs", "secret")]


def add_kept_parents(upper: Path, plan: list[MountPoint]) -> None:
    """Overlay mode: put the kept parent directories into the upper dir (the step's diff).

    They were only in the extra lower dir; anything the step made there already wins.
    """
    for m in plan:
        for rel in m.kept():
            path = upper / rel.lstrip("/")
            if os.path.lexists(path):
                continue
            try:
                path.mkdir(mode=0o755)
                os.chmod(path, 0o755)
            except OSError:
                break


def excluder(plan: list[MountPoint]) -> set[str]:
    """Relative paths (no leading "/") a snapshot must skip: everything mounted over."""
    return {m.target.lstrip("/") for m in plan}


def _mirror(src: Path, dst: Path) -> None:
    st = os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def build_lower(rootfs: Path, lower: Path, plan: list[MountPoint]) -> bool:
    """Fill the extra overlay lower dir with the missing mount points; False if none needed."""
    if not any(m.missing for m in plan):
        return False
    lower.mkdir(mode=0o755)
    made_dirs: list[tuple[Path, Path | None]] = [(lower, rootfs)]
    for m in plan:
        if not m.missing:
            continue
        parts = m.target.strip("/").split("/")
        for i in range(len(parts)):
            rel = "/".join(parts[: i + 1])
            dst = lower / rel
            last = i == len(parts) - 1
            if dst.exists():
                continue
            if last and m.kind == "file":
                dst.touch(mode=0o644)
            else:
                dst.mkdir(mode=0o755)
                made_dirs.append((dst, rootfs / rel if os.path.lexists(rootfs / rel) else None))
    # Mirror the rootfs metadata last (children creation changed the mtimes).
    for dst, src in reversed(made_dirs):
        if src is not None:
            _mirror(src, dst)
    return True


@dataclass
class CreatedMounts:
    """Mount points created in the rootfs for walk mode, to remove after the step."""

    rootfs: Path = Path("/nonexistent")
    created: list[Path] = field(default_factory=list)
    parents: dict[Path, tuple[int, int, int]] = field(default_factory=dict)  # atime, mtime, new

    def _inside(self, path: Path) -> bool:
        """True when no component between the rootfs and ``path`` is a symlink.

        The step may have replaced a directory by a symlink to a host path; it is dead by the
        time this runs, so checking each component with lstat is race-free.
        """
        try:
            rel = path.relative_to(self.rootfs)
        except ValueError:
            return False
        cur = self.rootfs
        for part in rel.parts:
            cur = cur / part
            try:
                if stat.S_ISLNK(os.lstat(cur).st_mode):
                    return False
            except OSError:
                return False
        return True

    def remove(self) -> None:
        """Remove what was created (if still empty) and restore untouched parents' mtimes."""
        seen: dict[Path, int] = {}
        for parent in self.parents:
            if not self._inside(parent):
                continue
            try:
                seen[parent] = os.lstat(parent).st_mtime_ns
            except OSError:
                continue
        for p in reversed(self.created):
            if not self._inside(p):
                continue
            try:
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(p)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(p)
            except OSError:
                continue
        for parent, (atime, mtime, after) in self.parents.items():
            if seen.get(parent) == after and self._inside(parent):
                try:
                    os.utime(parent, ns=(atime, mtime))
                except OSError:
                    pass
        self.created.clear()
        self.parents.clear()


def create_in_rootfs(rootfs: Path, plan: list[MountPoint]) -> CreatedMounts:
    """Create the missing mount points in the rootfs itself (walk/full/container modes)."""
    out = CreatedMounts(rootfs=rootfs)
    try:
        for m in plan:
            kept = set(m.kept())
            for i, rel in enumerate(m.missing):
                path = rootfs / rel.lstrip("/")
                parent = path.parent
                if parent not in out.parents and parent not in out.created:
                    st = os.lstat(parent)
                    out.parents[parent] = (st.st_atime_ns, st.st_mtime_ns, 0)
                if i == len(m.missing) - 1 and m.kind == "file":
                    path.touch(mode=0o644, exist_ok=False)
                else:
                    path.mkdir(mode=0o755)
                if rel in kept:
                    os.chmod(path, 0o755)
                    continue
                out.created.append(path)
        for parent, (atime, mtime, _) in list(out.parents.items()):
            out.parents[parent] = (atime, mtime, os.lstat(parent).st_mtime_ns)
    except OSError as exc:
        out.remove()
        raise SandboxError(f"cannot create mount point in {rootfs}: {exc}") from exc
    return out
