"""``trustbuild version``."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from trustbuild import __version__


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``version`` command."""
    p = sub.add_parser("version", help="print the version")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the version (JSON with --output json)."""
    if args.output == "json":
        info = {"version": __version__, "python": platform.python_version()}
        json.dump(info, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"trustbuild {__version__}")
    return 0
