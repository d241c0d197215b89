"""Build secrets and ssh agents: the ``--secret`` / ``--ssh`` flags (buildx syntax) and the
check, before anything runs, that every ``required`` one a RUN mounts was given.

Example::

    secrets = load_secrets(["id=tok,src=token.txt", "id=api,env=API_TOKEN"])
    ssh = parse_ssh_flags(["default", "deploy=/home/me/.ssh/id_ed25519"])

Secret values live only in memory (``BuildOptions.secrets``); the build passes them to the
sandbox through a pipe and the sandbox shows them to the step on a private tmpfs.
"""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Mapping, Sequence

from trustbuild.errors import UsageError

__all__ = ["MAX_SECRET_SIZE", "parse_secret_flag", "load_secrets", "secret_ids",
           "parse_ssh_flags"]

MAX_SECRET_SIZE = 500 * 1024  # BuildKit's limit


def parse_secret_flag(text: str, *, environ: Mapping[str, str] | None = None
                      ) -> tuple[str, str, str]:
    """``id=NAME,src=FILE`` | ``id=NAME,env=VAR`` | ``type=file|env`` -> (id, kind, where).

    As buildx and BuildKit: ``source`` is an alias of ``src``; with ``type=env`` a ``src``
    names the variable; with neither ``src`` nor ``env``, the variable named like the id is
    used when it is set, else the file named like the id.
    """
    env = os.environ if environ is None else environ
    fields = next(csv.reader([text]), [])
    sid = src = var = kind = ""
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:
            raise UsageError(f"--secret {text!r}: {field!r} must be a key=value pair")
        if key == "type":
            if value not in ("file", "env"):
                raise UsageError(f"--secret {text!r}: unsupported type {value!r} "
                                 "(use file or env)")
            kind = value
        elif key == "id":
            sid = value
        elif key in ("src", "source"):
            src = value
        elif key == "env":
            var = value
        else:
            raise UsageError(f"--secret {text!r}: unexpected key {key!r} "
                             "(use id, src, env, type)")
    if kind == "env" and not var:
        var, src = src, ""
    if not sid:
        raise UsageError(f"--secret {text!r}: id= is required")
    if "/" in sid:
        raise UsageError(f"--secret {text!r}: the id cannot contain '/'")
    if src and var:
        raise UsageError(f"--secret {text!r}: give src= or env=, not both")
    if not src and not var:
        if sid in env:
            var = sid
        else:
            src = sid
    return (sid, "env", var) if var else (sid, "file", src)


def load_secrets(items: Sequence[str], *, environ: Mapping[str, str] | None = None
                 ) -> dict[str, bytes]:
    """Read every ``--secret`` now (a missing file or variable is a usage error); last wins."""
    env = os.environ if environ is None else environ
    out: dict[str, bytes] = {}
    for item in items:
        sid, kind, where = parse_secret_flag(item, environ=env)
        if kind == "env":
            value = _env_value(sid, where, env).encode()
        else:
            try:
                with open(os.path.expanduser(where), "rb") as f:
                    _check_file(sid, where, os.fstat(f.fileno()))
                    value = f.read(MAX_SECRET_SIZE + 1)
            except OSError as exc:
                raise _unreadable(sid, where, exc) from None
        _check_size(sid, len(value))
        out[sid] = value
    return out


def secret_ids(items: Sequence[str], *, environ: Mapping[str, str] | None = None
               ) -> frozenset[str]:
    """The ids of ``--secret`` flags whose source is there (the variable set, the file a
    regular file within the size limit), checked as :func:`load_secrets` does but never read:
    for ``policy check``, which needs only to know which secrets are given."""
    env = os.environ if environ is None else environ
    ids: set[str] = set()
    for item in items:
        sid, kind, where = parse_secret_flag(item, environ=env)
        if kind == "env":
            _check_size(sid, len(_env_value(sid, where, env).encode()))
        else:
            try:
                st = os.stat(os.path.expanduser(where))
            except OSError as exc:
                raise _unreadable(sid, where, exc) from None
            _check_file(sid, where, st)
            _check_size(sid, st.st_size)
        ids.add(sid)
    return frozenset(ids)


def _env_value(sid: str, var: str, env: Mapping[str, str]) -> str:
    if var not in env:
        raise UsageError(f"--secret id={sid}: environment variable {var} is not set")
    return env[var]


def _check_file(sid: str, where: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"--secret id={sid}: {where} is not a regular file")


def _check_size(sid: str, size: int) -> None:
    if size > MAX_SECRET_SIZE:
        raise UsageError(f"--secret id={sid}: larger than {MAX_SECRET_SIZE // 1024} KiB")


def _unreadable(sid: str, where: str, exc: OSError) -> UsageError:
    return UsageError(f"--secret id={sid}: cannot read {where}: {exc.strerror}")


def parse_ssh_flags(items: Sequence[str], *, environ: Mapping[str, str] | None = None
                    ) -> dict[str, list[str]]:
    """``default`` | ``ID`` | ``ID=SOCKET`` | ``ID=KEYFILE[,KEYFILE]`` -> id: paths.

    A bare ID means the agent at ``$SSH_AUTH_SOCK`` (as buildx). Paths are checked here: one
    socket, or one or more readable key files.
    """
    env = os.environ if environ is None else environ
    out: dict[str, list[str]] = {}
    for item in items:
        sid, eq, rest = item.partition("=")
        sid = sid.strip()
        if not sid or "/" in sid:
            raise UsageError(f"--ssh {item!r}: expected default, ID, ID=SOCKET or "
                             "ID=KEYFILE[,KEYFILE]")
        paths = [os.path.expanduser(p) for p in rest.split(",") if p] if eq else []
        if not paths:
            sock = env.get("SSH_AUTH_SOCK", "")
            if not sock:
                raise UsageError(f"--ssh {item}: SSH_AUTH_SOCK is not set; start an ssh-agent "
                                 "or pass --ssh ID=SOCKET or ID=KEYFILE")
            paths = [sock]
        for path in paths:
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:
                raise UsageError(f"--ssh {sid}: {path}: {exc.strerror}") from None
            if stat.S_ISSOCK(mode) and len(paths) > 1:
                raise UsageError(f"--ssh {sid}: {path} is a socket; give one agent socket "
                                 "or key files, not both")
            if not stat.S_ISSOCK(mode) and not stat.S_ISREG(mode):
                raise UsageError(f"--ssh {sid}: {path} is neither an agent socket nor a key "
                                 "file")
        out[sid] = paths
    return out
