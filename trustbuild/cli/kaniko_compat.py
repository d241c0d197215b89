"""Kaniko's executor flags on ``trustbuild build``: accepted, mapped, or refused in one line.

Every flag of Kaniko's ``cmd/executor/cmd/root.go`` (GoogleContainerTools v1.24 and the
osscontainertools fork v1.28) parses. Flags whose meaning trustbuild has are mapped to it; the
ones it cannot honour are refused by the parser with a one-line error that names the trustbuild
way (exit 2). Boolean flags take pflag's forms (``--cache``, ``--cache=true``, ``--cache=false``,
``1``/``t``/``F``/...). Kaniko's ``KANIKO_*`` environment variables are read where Kaniko reads
them. The table is in docs/build.md.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from trustbuild.errors import UsageError
from trustbuild.sandbox.spec import SnapshotMode

__all__ = ["add_kaniko_flags", "apply_kaniko_flags", "parse_go_bool", "parse_go_duration",
           "pflag_bools", "registry_client_certs", "registry_maps", "REFUSED", "SNAPSHOT_MODES",
           "VERBOSITY_LEVELS"]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")

SNAPSHOT_MODES: dict[str, SnapshotMode] = {
    "auto": "auto", "overlay": "overlay", "walk": "walk", "full": "full",
    # Kaniko's modes: full hashes contents (trustbuild's full); redo (mtime, size, mode, owner)
    # and time (mtime) are metadata walks (trustbuild's walk, which also looks at ctime/inode,
    # so it never misses a change they catch)
    "redo": "walk", "time": "walk"}

VERBOSITY_LEVELS = {"trace": 2, "debug": 1, "info": 0, "warn": 0, "warning": 0, "error": 0,
                    "fatal": 0, "panic": 0}

REFUSED: dict[str, str] = {
    "--insecure-pull": "name the registry: --insecure-registry HOST (plain HTTP for that "
                       "registry only)",
    "--skip-tls-verify-pull": "trust the registry's CA with --registry-certificate HOST=CA.pem, "
                              "or name it: --skip-tls-verify-registry HOST",
    "--push-ignore-immutable-tag-errors": "a failed push fails the build; push to a new tag "
                                          "(or use --digest-file to name the image by digest)",
    "--single-snapshot": "trustbuild writes one layer per COPY/ADD/RUN; squash afterwards if "
                         "one layer is needed",
    "--annotation": "manifest annotations are not supported; use --label, or attach metadata "
                    "with trustbuild attest",
    "--dryrun": "no plan-only mode; trustbuild policy check lints a Dockerfile without building",
    "--credential-helpers": "credential helpers come from docker config.json (credHelpers / "
                            "credsStore, e.g. docker-credential-ecr-login); no built-in helpers",
}
"""Kaniko flags trustbuild refuses (when set to a non-default value), with the trustbuild way."""


def parse_go_bool(value: str, flag: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{flag}={value!r}: expected true or false")


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(value: str, flag: str) -> float:
    """Go's ``time.ParseDuration`` (``6h``, ``1h30m``, ``336h0m0s``, ``0``) in seconds."""
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise UsageError(f"{flag} {value!r}: expected a duration such as 6h, 90m or 1h30m")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise UsageError(f"{flag} {value!r}: expected a duration such as 6h, 90m or 1h30m")
    return sign * total


class _PflagBool(argparse.Action):
    """``--flag`` / ``--flag=true|false`` (pflag's boolean forms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: object = False,
                 required: bool = False, help: str | None = None,  # noqa: A002
                 **_kw: object) -> None:
        super().__init__(option_strings, dest, nargs="?", const="true", default=default,
                         required=required, help=help, metavar="true|false")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, parse_go_bool(str(values), option_string or self.dest))
        except UsageError as exc:
            parser.error(str(exc))


def pflag_bools(parser: argparse.ArgumentParser) -> None:
    """Let every ``store_true`` flag of ``parser`` also take ``=true``/``=false`` as in Kaniko."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public action list
        if isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
            action.__class__ = _PflagBool  # type: ignore[assignment]
            action.nargs = "?"
            action.const = "true"
            action.metavar = "true|false"


class _Refused(argparse.Action):
    """A Kaniko flag trustbuild cannot honour: a one-line usage error naming the way."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, boolean: bool = False,
                 **kw: object) -> None:
        self.boolean = boolean
        kw.pop("nargs", None)
        super().__init__(option_strings, dest, nargs="?" if boolean else None,
                         const="true" if boolean else None, default=None,
                         help=argparse.SUPPRESS)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        flag = option_string or self.dest
        if self.boolean:
            try:
                if not parse_go_bool(str(values), flag):
                    return  # --flag=false asks for what trustbuild does anyway
            except UsageError as exc:
                parser.error(str(exc))
        parser.error(f"{flag} (Kaniko) is not supported: {REFUSED[flag]}")


class _Verbosity(argparse.Action):
    """``-v`` / ``-vv`` (more detail) or Kaniko's ``-v LEVEL`` / ``--verbosity=LEVEL``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        current = int(getattr(namespace, self.dest, 0) or 0)
        if values is None:
            setattr(namespace, self.dest, current + 1)
        elif re.fullmatch(r"v+", str(values)):
            setattr(namespace, self.dest, current + 1 + len(str(values)))
        elif str(values).lower() in VERBOSITY_LEVELS:
            setattr(namespace, self.dest, VERBOSITY_LEVELS[str(values).lower()])
        else:
            parser.error(f"{option_string} {values!r}: expected a log level "
                         "(trace, debug, info, warn, error, fatal, panic)")


def add_verbosity_flag(p: argparse.ArgumentParser) -> None:
    """``-v``/``--verbose``/``--verbosity`` in one flag (trustbuild's count, Kaniko's level)."""
    p.add_argument("-v", "--verbose", "--verbosity", dest="verbose", action=_Verbosity,
                   nargs="?", default=0, metavar="LEVEL",
                   help="more detail and tracebacks on errors (-v, -vv), or Kaniko's level: "
                        "trace, debug (= -v), info, warn, error")


def _bool(g: argparse._ActionsContainer, flag: str, help_text: str, *,
          default: bool = False) -> None:
    g.add_argument(flag, action=_PflagBool, default=default, help=help_text)


def _refuse(g: argparse._ActionsContainer, *flags: str, boolean: bool = False) -> None:
    for flag in flags:
        g.add_argument(flag, action=_Refused, boolean=boolean)


def add_kaniko_flags(p: argparse.ArgumentParser) -> None:
    """Kaniko's executor flags that ``trustbuild build`` does not define natively."""
    k = p.add_argument_group("Kaniko compatibility (see docs/build.md)")
    # deprecated camelCase spellings Kaniko still accepts
    k.add_argument("--customPlatform", dest="custom_platform_deprecated", help=argparse.SUPPRESS)
    k.add_argument("--tarPath", dest="tar_path_deprecated", help=argparse.SUPPRESS)
    k.add_argument("--snapshotMode", dest="snapshot_mode_deprecated", help=argparse.SUPPRESS)
    k.add_argument("--bucket", "-b", dest="bucket", help=argparse.SUPPRESS)
    k.add_argument("--git", action="append", default=[], metavar="KEY=VALUE",
                   help="git context options: branch=NAME, single-branch=BOOL, depth=N, "
                        "recurse-submodules=BOOL")
    k.add_argument("--image-name-tag-with-digest-file", metavar="FILE",
                   help="write NAME:TAG@DIGEST for every destination here, one a line")
    _bool(k, "--log-timestamp", "prefix text log lines with a UTC timestamp")
    _bool(k, "--insecure", "push to the destinations (and cache repository) over plain HTTP")
    k.add_argument("--skip-tls-verify-registry", action="append", default=[], metavar="HOST",
                   help="do not verify TLS certificates of this registry (repeatable)")
    k.add_argument("--registry-map", action="append", default=[],
                   metavar="REGISTRY=MIRROR[;...]",
                   help="pull images of REGISTRY through MIRROR (repeatable; ';' separates "
                        "pairs)")
    _bool(k, "--skip-default-registry-fallback",
          "with mirrors: fail instead of falling back to the original registry")
    k.add_argument("--push-retry", type=int, default=0, metavar="N",
                   help="accepted: every registry request already retries temporary errors "
                        "with backoff")
    k.add_argument("--image-download-retry", type=int, default=0, metavar="N",
                   help="accepted: every registry request already retries temporary errors "
                        "with backoff")
    k.add_argument("--image-fs-extract-retry", type=int, default=0, metavar="N",
                   help="accepted: layers are extracted from verified local blobs")
    _bool(k, "--skip-push-permission-check",
          "do not check that every destination accepts a push before building")
    k.add_argument("--kaniko-dir", metavar="DIR",
                   help="the executor's own directory (default $KANIKO_DIR, else /kaniko); "
                        "left out of container-mode snapshots")
    _bool(k, "--ignore-var-run", "leave /var/run out of container-mode snapshots (default true)",
          default=True)
    k.add_argument("--whitelist-var-run", dest="ignore_var_run", action=_PflagBool,
                   default=True, help=argparse.SUPPRESS)
    for flag, text in (("--cleanup", "accepted: trustbuild always removes its work directory"),
                       ("--pre-cleanup", "accepted: trustbuild never builds in the executor's /"),
                       ("--preserve-context", "accepted: the context is never part of a stage's "
                                              "filesystem, so it is always preserved"),
                       ("--materialize", "accepted: the target's filesystem is always "
                                         "materialised, cache hits included"),
                       ("--skip-unused-stages", "accepted: only the stages the target needs are "
                                                "ever built"),
                       ("--force-build-metadata", "accepted: metadata instructions are always "
                                                  "recorded in history"),
                       ("--use-new-run", "accepted: RUN changes are found without a full "
                                         "filesystem snapshot where overlayfs works "
                                         "(--snapshot-mode auto)"),
                       ("--compressed-caching", "accepted: layers are always streamed, never "
                                                "held in memory")):
        _bool(k, flag, text, default=flag == "--compressed-caching")
    k.add_argument("--cache-dir", metavar="DIR",
                   help="the local layer store: base and cached layers downloaded once per "
                        "machine, RUN cache mounts kept (with --cache the default is "
                        "$XDG_CACHE_HOME/trustbuild, /var/cache/trustbuild as root; "
                        "docs/cache.md)")
    k.add_argument("--cache-ttl", metavar="DURATION",
                   help="cache entries older than this are not used (Go duration, e.g. 6h; "
                        "default: no expiry)")
    _bool(k, "--cache-run-layers", "look up and store RUN steps when --cache is on "
          "(default true)", default=True)
    _bool(k, "--cache-copy-layers", "look up and store COPY/ADD steps when --cache is on "
          "(default true; Kaniko's is false)", default=True)
    _bool(k, "--no-push-cache", "with --cache: read the cache but do not push new layers")
    _refuse(k, "--insecure-pull", "--skip-tls-verify-pull", "--push-ignore-immutable-tag-errors",
            "--single-snapshot", "--dryrun", boolean=True)
    k.add_argument("--registry-client-cert", action="append", default=[],
                   metavar="HOST=CERT.pem,KEY.pem",
                   help="client certificate and key for mutual TLS with this registry "
                        "(repeatable)")
    _refuse(k, "--annotation", "--credential-helpers")


def _env_bool(environ: Mapping[str, str], name: str) -> bool | None:
    raw = environ.get(name)
    if raw is None:
        return None
    return parse_go_bool(raw, name)


def registry_maps(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``--registry-map`` values (``a=b;c=d``, repeatable, several mirrors per registry)."""
    out: dict[str, list[str]] = {}
    for item in items:
        for pair in item.split(";"):
            if not pair.strip():
                continue
            src, sep, dst = pair.partition("=")
            src, dst = src.strip(), dst.strip()
            if not sep or not src or not dst:
                raise UsageError(f"--registry-map {pair!r}: expected REGISTRY=MIRROR")
            host = dst.split("://", 1)[-1].rstrip("/")
            if "/" in host:
                raise UsageError(f"--registry-map {pair!r}: the mirror must be a registry host "
                                 "(HOST[:PORT]), without a repository path")
            if src in ("index.docker.io", "registry-1.docker.io"):
                src = "docker.io"
            out.setdefault(src, []).append(dst)
    return {k: tuple(v) for k, v in out.items()}


def registry_client_certs(items: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``--registry-client-cert HOST=CERT,KEY`` values (Kaniko's format)."""
    out: dict[str, tuple[str, str]] = {}
    for item in items:
        host, sep, paths = item.partition("=")
        cert, comma, key = paths.partition(",")
        if not sep or not host or not comma or not cert or not key:
            raise UsageError(f"--registry-client-cert {item!r}: expected HOST=CERT.pem,KEY.pem")
        out[host] = (cert, key)
    return out


def _git_context(context: str, items: Sequence[str]) -> str:
    branch = None
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--git {item!r}: expected KEY=VALUE (branch, single-branch, "
                             "depth, recurse-submodules)")
        if key == "branch":
            branch = value
        elif key in ("single-branch", "recurse-submodules"):
            parse_go_bool(value, f"--git {key}")  # trustbuild fetches one ref, with submodules
        elif key == "depth":
            if not value.isdigit():
                raise UsageError(f"--git depth={value!r}: expected a number")
        elif key == "insecure-skip-tls":
            if parse_go_bool(value, "--git insecure-skip-tls"):
                raise UsageError("--git insecure-skip-tls=true (Kaniko) is not supported: "
                                 "trustbuild verifies the git server's TLS certificate")
        else:
            raise UsageError(f"--git {item!r}: unknown key {key!r} (branch, single-branch, "
                             "depth, recurse-submodules)")
    if branch and "#" not in context:
        return f"{context}#refs/heads/{branch}"
    return context


def apply_kaniko_flags(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
                       *, warn: Callable[[str], None] | None = None) -> None:
    """Fold Kaniko's spellings and ``KANIKO_*`` variables into trustbuild's own fields."""
    env = os.environ if environ is None else environ
    say = warn or (lambda _msg: None)
    if getattr(args, "_kaniko_applied", False):
        return  # once per parse: KANIKO_* values are appended
    args._kaniko_applied = True
    for old, new, dest in (("--customPlatform", "--custom-platform", "custom_platform"),
                           ("--tarPath", "--tar-path", "tar_path"),
                           ("--snapshotMode", "--snapshot-mode", "snapshot_mode")):
        value = getattr(args, dest + "_deprecated", None)
        if value:
            say(f"flag {old} is deprecated (as in Kaniko); use {new}")
            setattr(args, dest, value)
    mode = str(args.snapshot_mode)
    if mode not in SNAPSHOT_MODES:
        raise UsageError(f"--snapshot-mode {mode!r}: expected one of "
                         f"{', '.join(SNAPSHOT_MODES)}")
    args.snapshot_mode = SNAPSHOT_MODES[mode]
    if args.log_format == "color":
        args.log_format = "text"
    if args.compression_level is not None and args.compression_level < 0:
        args.compression_level = None  # Kaniko's default -1: the algorithm's default level
    if args.target and "," in args.target:
        raise UsageError(f"--target {args.target!r}: trustbuild builds one target per run "
                         "(run one build per stage)")
    if re.match(r"^https?://", args.dockerfile or ""):
        raise UsageError(f"--dockerfile {args.dockerfile!r}: a Dockerfile URL (Kaniko) is not "
                         "supported; put the Dockerfile in the context, or pipe it: "
                         "--dockerfile - < FILE")
    if args.bucket:
        if args.context not in (".", None):
            raise UsageError("--bucket and --context both name the context: give one")
        args.context = args.bucket if "://" in args.bucket else f"gs://{args.bucket}"
    if args.git:
        args.context = _git_context(args.context, args.git)
    # KANIKO_* variables (root.go: validateFlags, pkg/config/init.go)
    if "KANIKO_REGISTRY_MIRROR" in env:
        args.registry_mirror = [*args.registry_mirror, env["KANIKO_REGISTRY_MIRROR"]]
    no_push = _env_bool(env, "KANIKO_NO_PUSH")
    if no_push is not None:
        args.no_push = no_push
    if "KANIKO_REGISTRY_MAP" in env:
        args.registry_map = [*args.registry_map, env["KANIKO_REGISTRY_MAP"]]
    for name in ("KANIKO_CLEANUP", "KANIKO_PRE_CLEANUP", "KANIKO_PRESERVE_CONTEXT"):
        _env_bool(env, name)  # accepted (see the flags); a bad value is still an error
    kdir = args.kaniko_dir or env.get("KANIKO_DIR") or "/kaniko"
    args.kaniko_dir = Path(kdir)
    args.cache_ttl_seconds = (parse_go_duration(args.cache_ttl, "--cache-ttl")
                              if args.cache_ttl else None)
    if args.image_name_tag_with_digest_file and not args.destination:
        raise UsageError("--image-name-tag-with-digest-file needs a --destination")
    if args.image_name_with_digest_file and not args.destination:
        raise UsageError("--image-name-with-digest-file needs a --destination")
