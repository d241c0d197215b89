"""Entry point: parse arguments, dispatch to a command module, turn TrustbuildError into exit codes.

Each command lives in ``trustbuild/cli/cmd_<name>.py`` with ``register(subparsers)`` that adds its
parser and sets ``func(args) -> int``. Exit codes: 0 ok, 1 failed/denied, 2 usage error,
130 interrupted (SIGINT), 143 terminated (SIGTERM, as CI systems and Kubernetes send on cancel).
SIGTERM unwinds exactly like Ctrl-C, so every clean-up (temp dirs, sandbox processes) runs.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

from trustbuild import __version__
from trustbuild.errors import TrustbuildError

__all__ = ["main", "run", "exit_now", "build_parser", "Parser", "Terminated"]


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler: unwinds like Ctrl-C (every ``finally`` runs)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A second SIGTERM must not cut the clean-up short (SIGKILL still can).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


COMMANDS = (
    "version",
    "copy",
    "inspect",
    "build",
    "cache",
    "generate_key_pair",
    "sign",
    "verify",
    "attest",
    "verify_attestation",
    "policy",
    "admission",
    "blob",
    "keys",
    "tree",
    "download",
    "attach",
    "clean",
    "generate",
    "unshare",
)


class Parser(argparse.ArgumentParser):
    """argparse without prefix matching (``--dest`` is not ``--destination``); subparsers
    inherit the class, so no parser of the CLI guesses what an abbreviation means."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """One line on stderr (``PROG: error: MESSAGE (see PROG --help)``), exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser with every available command, or with command ``only``
    (``cmd_NAME`` is imported only for the commands registered, so a build does not import
    what signing, policy or admission need)."""
    parser = Parser(
        prog="trustbuild",
        description="Daemonless container image builder with signing, provenance and a "
                    "policy gate.",
    )
    parser.add_argument("--version", action="version", version=f"trustbuild {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(f"trustbuild.cli.cmd_{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"trustbuild.cli.cmd_{name}":
                continue  # command not part of this build yet
            raise
        mod.register(sub)
    return parser


# commands whose module is named otherwise (one module, several commands)
_MODULE_OF = {"sign-blob": "blob", "verify-blob": "blob", "attest-blob": "blob",
              "verify-blob-attestation": "blob", "public-key": "keys", "import-key-pair": "keys"}


def _command_of(argv: list[str]) -> str | None:
    """The module of the command ``argv`` runs when its first word names one (``build ...``),
    else None (``--help``, ``--version``, a typo: the full parser answers those)."""
    if not argv:
        return None
    word = argv[0]
    name = _MODULE_OF.get(word) or word.replace("-", "_")
    if name in ("blob", "keys") and word not in _MODULE_OF:
        return None
    return name if "_" not in word and name in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (console script entry point)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)  # to re-execute (rootless)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    verbose = bool(getattr(args, "verbose", 0))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except TrustbuildError as err:
        if verbose:
            raise
        msg = str(err)
        print(f"trustbuild: error: {msg}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"trustbuild: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` without tearing the interpreter down, once the command is done.

    Freeing every module and object of a finished command took 50-100 ms, a fifth of a
    no-change rebuild. The ``atexit`` handlers still run and stdout/stderr are flushed first;
    while any non-daemon thread is still alive, or a profiler or tracer (cProfile, coverage)
    waits for the normal exit, this is a plain ``sys.exit``.
    """
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()) \
            or sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()  # logging.shutdown, temp-dir finalizers, ...
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: let the normal exit report it
        sys.exit(code)
    os._exit(code)


def run() -> NoReturn:
    """The console script: :func:`main` with the command-line arguments, then :func:`exit_now`."""
    exit_now(main())


if __name__ == "__main__":
    run()
