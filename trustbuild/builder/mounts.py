"""``RUN --mount``: parse BuildKit's mount options and turn them into sandbox mounts.

Supported (BuildKit's syntax, comma-separated ``key=value`` in CSV quoting):

- ``type=bind`` (the default): ``source`` from the build context (never outside it; the
  ``.dockerignore`` applies) or, with ``from=STAGE|IMAGE``, from that filesystem; read-only
  unless ``rw``, and then writes go to a throw-away copy;
- ``type=cache``: a directory keyed by ``id`` (default: the target), created with
  ``uid``/``gid``/``mode`` (default 0:0 0755), kept in the local layer store
  (``--cache-dir``, ``run-cache/``) so it persists across builds, else in the build's work dir.
  ``sharing=shared`` (default) lets concurrent steps use it together, ``locked`` waits until no
  other step (of any build) uses it, ``private`` takes another directory of the same id when
  it is in use (fcntl locks held for the step's duration);
- ``type=tmpfs`` with an optional ``size``;
- ``type=secret``: the ``--secret`` value ``id`` (default: the target's basename) as a
  read-only file at ``target`` (default ``/run/secrets/ID``, mode 0400, owner 0:0) and/or in
  the environment variable ``env``; ``required`` makes a missing secret an error (the build
  checks that before anything runs, see ``trustbuild.builder.buildsecrets``);
- ``type=ssh``: the ``--ssh`` agent ``id`` (default ``default``) as a socket at ``target``
  (default ``/run/buildkit/ssh_agent.N``, mode 0600) with ``SSH_AUTH_SOCK`` pointing at it.

Mount contents never reach the layer (see ``trustbuild.sandbox.mountplan``); secret values
never reach the history, the cache key, the record or the logs (only their ids do).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trustbuild.builder.rootfs import clean_abs, secure_join
from trustbuild.errors import BuildError

if TYPE_CHECKING:
    from trustbuild.builder.commands import Command
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import RunContext

__all__ = ["CacheSharing", "MountSpec", "MountType", "parse_mount", "mount_from_refs",
           "number_ssh_targets", "sandbox_mounts", "resolve_target", "SECRET_TYPES"]

MountType = Literal["bind", "cache", "tmpfs", "secret", "ssh"]
CacheSharing = Literal["shared", "private", "locked"]
_TYPES: dict[str, MountType] = {"bind": "bind", "cache": "cache", "tmpfs": "tmpfs",
                                "secret": "secret", "ssh": "ssh"}
_SHARING: dict[str, CacheSharing] = {"shared": "shared", "private": "private",
                                     "locked": "locked"}
_KEYS = {
    "bind": {"target", "source", "from", "rw", "readonly"},
    "cache": {"target", "rw", "readonly", "id", "sharing", "uid", "gid", "mode"},
    "tmpfs": {"target", "size"},
    "secret": {"target", "id", "required", "mode", "uid", "gid", "env"},
    "ssh": {"target", "id", "required", "mode", "uid", "gid"},
}
SECRET_TYPES = ("secret", "ssh")  # mounts whose content comes from --secret / --ssh
_ALIASES = {"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
            "readwrite": "rw"}
_SIZE = re.compile(r"(\d+)([kmg]?)b?", re.IGNORECASE)


@dataclass(frozen=True)
class MountSpec:
    """One parsed ``--mount`` value (after variable expansion)."""

    type: MountType
    target: str
    source: str = ""
    from_: str = ""
    rw: bool = False
    id: str = ""
    sharing: CacheSharing = "shared"
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    size: int | None = None
    required: bool = False  # secret, ssh: a missing --secret/--ssh value is an error
    env: str = ""  # secret: also expose the value in this environment variable


def _bool(key: str, value: str | None) -> bool:
    if value is None or value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BuildError(f"--mount {key}={value}: expected true or false")


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise BuildError(f"--mount {key}={value}: expected a number") from None


def parse_mount(text: str) -> MountSpec:
    """Parse ``type=cache,target=/root/.cache,id=pip`` (raises BuildError, one line)."""
    fields = next(csv.reader([text]), [])
    pairs: list[tuple[str, str | None]] = []
    for field in fields:
        key, eq, value = field.strip().partition("=")
        key = _ALIASES.get(key.lower(), key.lower())
        pairs.append((key, value if eq else None))
    kind_text = next((v for k, v in pairs if k == "type"), None) or "bind"
    kind = _TYPES.get(kind_text)
    if kind is None:
        raise BuildError(f"--mount type={kind_text}: unknown mount type "
                         "(use bind, cache, tmpfs, secret or ssh)")
    opts: dict[str, str | None] = {}
    for name, val in pairs:
        if name == "type":
            continue
        if name not in _KEYS[kind]:
            raise BuildError(f"--mount type={kind}: unknown option {name!r} "
                             f"(allowed: {', '.join(sorted(_KEYS[kind]))})")
        opts[name] = val
    if kind in SECRET_TYPES:
        return _parse_secret(kind, opts)
    target = opts.get("target")
    if not target:
        raise BuildError(f"--mount type={kind}: target= is required")
    rw = _bool("rw", opts["rw"]) if "rw" in opts else kind == "cache"
    if "readonly" in opts and _bool("readonly", opts["readonly"]):
        rw = False
    spec = MountSpec(type=kind, target=target, source=opts.get("source") or "",
                     from_=opts.get("from") or "", rw=rw, id=opts.get("id") or "")
    if kind == "cache":
        sharing_text = opts.get("sharing") or "shared"
        sharing = _SHARING.get(sharing_text)
        if sharing is None:
            raise BuildError(f"--mount sharing={sharing_text}: expected shared, private or "
                             "locked")
        spec = replace(spec, sharing=sharing,
                       uid=_int("uid", opts.get("uid") or "0"),
                       gid=_int("gid", opts.get("gid") or "0"),
                       mode=_int("mode", opts.get("mode") or "755", 8))
    if kind == "tmpfs" and opts.get("size"):
        m = _SIZE.fullmatch(opts["size"] or "")
        if m is None:
            raise BuildError(f"--mount size={opts['size']}: expected BYTES or a k/m/g suffix")
        mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
        spec = replace(spec, size=int(m.group(1)) * mult)
    return spec


def _parse_secret(kind: MountType, opts: dict[str, str | None]) -> MountSpec:
    """BuildKit's defaults: a secret's id is the target's basename and its target
    /run/secrets/ID; an ssh mount's id is ``default`` (its target is numbered later)."""
    target = opts.get("target") or ""
    env = opts.get("env") or ""
    if kind == "secret":
        sid = opts.get("id") or (target.rstrip("/").rpartition("/")[2] if target else "")
        if not sid:
            raise BuildError("--mount type=secret: id= (or target=) is required")
        if not target and not env:
            target = f"/run/secrets/{sid}"
        if env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            raise BuildError(f"--mount env={env}: expected an environment variable name")
    else:
        sid = opts.get("id") or "default"
    if "/" in sid or sid in (".", ".."):
        raise BuildError(f"--mount id={sid}: a {kind} id cannot contain '/'")
    return MountSpec(type=kind, target=target, id=sid, env=env,
                     required=_bool("required", opts["required"]) if "required" in opts else False,
                     uid=_int("uid", opts.get("uid") or "0"),
                     gid=_int("gid", opts.get("gid") or "0"),
                     mode=_int("mode", opts.get("mode") or ("400" if kind == "secret" else "600"),
                               8))


def mount_from_refs(raw: str | list[str], expand: Callable[[str], str]) -> list[str]:
    """The ``from=`` stages/images of a RUN's ``--mount`` values (for build planning)."""
    values = [raw] if isinstance(raw, str) else list(raw)
    return [spec.from_ for spec in (parse_mount(expand(v)) for v in values) if spec.from_]


def number_ssh_targets(specs: list[MountSpec]) -> list[MountSpec]:
    """Default ssh targets ``/run/buildkit/ssh_agent.N``, N counting the step's ssh mounts."""
    out, n = [], 0
    for spec in specs:
        if spec.type == "ssh":
            if not spec.target:
                spec = replace(spec, target=f"/run/buildkit/ssh_agent.{n}")
            n += 1
        out.append(spec)
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _filtered_copy(ex: RunContext, src: Path, dst: Path, *, rw: bool) -> None:
    """The context directory ``src`` as .dockerignore leaves it (hardlinks when read-only)."""
    dst.mkdir()
    shutil.copystat(src, dst)
    for path in ex.ctx.iter_included(src):
        out = dst / os.path.relpath(path, src)
        if path.is_symlink():
            out.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), out)
        elif path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copystat(path, out)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copy2 if rw else _link_or_copy)(path, out)


def _bind_source(ex: RunContext, st: StageRun, ins: Command, spec: MountSpec,
                 tmp: Path) -> Path:
    """The host path a bind shows; a copy when it is rw or .dockerignore filters it."""
    if spec.from_:
        root = ex.source_root(st, ins, spec.from_)
        src = secure_join(root, spec.source or "/")
        if not os.path.lexists(src):
            raise ex.error(ins, f"--mount from={spec.from_}: {spec.source or '/'} not found")
        filtered = False
    else:
        src = ex.ctx.resolve_sources(spec.source or ".", line=ins.line, path=ex.path,
                                     instruction="RUN --mount")[0]
        src = Path(os.path.realpath(src))
        filtered = src.is_dir() and bool(ex.ctx.ignore.patterns)
    if not spec.rw and not filtered:
        return src
    dst = tmp / f"bind-{len(list(tmp.iterdir()))}"
    if filtered:
        _filtered_copy(ex, src, dst, rw=spec.rw)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_copy_regular)
    else:
        shutil.copy2(src, dst)
    return dst


def _copy_regular(src: str, dst: str) -> None:
    """copytree's copier: regular files only (a fifo or device would block or be unsafe)."""
    if stat.S_ISREG(os.lstat(src).st_mode):
        shutil.copy2(src, dst)


def _cache_dir(ex: RunContext, spec: MountSpec, target: str, locks: ExitStack) -> Path:
    """The cache mount's directory, locked as ``sharing`` says until ``locks`` closes."""
    key = spec.id or target
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    store = ex.layer_store
    base = (store.root if store is not None else Path(ex.work)) / "run-cache"
    base.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = base / (name if n == 0 else f"{name}-{n}")
        fd = os.open(base / f"{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        kind = fcntl.LOCK_SH if spec.sharing == "shared" else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, kind | (fcntl.LOCK_NB if spec.sharing == "private" else 0))
        except BlockingIOError:
            os.close(fd)
            n += 1  # private: this one is in use, take the next
            continue
        locks.callback(os.close, fd)
        break
    if not path.is_dir():
        tmp = base / f".new-{path.name}-{os.getpid()}"
        tmp.mkdir()
        try:
            os.chown(tmp, spec.uid, spec.gid)
        except OSError as exc:
            os.rmdir(tmp)
            raise BuildError(f"cache mount {key!r}: cannot make it owned by uid={spec.uid} "
                             f"gid={spec.gid}: {exc.strerror} (a rootless build maps only its "
                             "subordinate ids: docs/rootless.md)") from None
        os.chmod(tmp, spec.mode)
        try:
            os.rename(tmp, path)
        except OSError:
            os.rmdir(tmp)  # created meanwhile by a build holding a shared lock
    return path


def resolve_target(ex: RunContext, st: StageRun, ins: Command, target: str,
                   workdir: str) -> str:
    """The absolute target inside the rootfs (symlinks on the way followed inside it, as
    BuildKit does); never ``/`` nor a path outside the image."""
    path = clean_abs(target, workdir=workdir)
    rel = os.path.relpath(secure_join(st.rootfs, path), st.rootfs)
    if rel == ".." or rel.startswith("../"):
        raise ex.error(ins, f"--mount target={target} resolves outside the image")
    path = clean_abs(rel)
    if path == "/":
        raise ex.error(ins, f"--mount target={target}: cannot mount over /")
    return path


def sandbox_mounts(ex: RunContext, st: StageRun, ins: Command, specs: list[MountSpec],
                   workdir: str, tmp: Path, locks: ExitStack) -> list[tuple[str, str, str]]:
    """``(source, target, mode)`` tuples for ``RunSpec.extra_mounts``.

    ``tmp`` holds per-step copies (rw binds, .dockerignore-filtered directories); the caller
    removes it after the step, and closes ``locks`` (cache mount locks) then.
    """
    out: list[tuple[str, str, str]] = []
    for spec in specs:
        target = resolve_target(ex, st, ins, spec.target, workdir)
        if spec.type == "tmpfs":
            out.append((f"size={spec.size}" if spec.size else "", target, "tmpfs"))
        elif spec.type == "cache":
            out.append((str(_cache_dir(ex, spec, target, locks)), target,
                        "rw" if spec.rw else "ro"))
        else:
            src = _bind_source(ex, st, ins, spec, tmp)
            out.append((str(src), target, "rw" if spec.rw else "ro"))
    return out
