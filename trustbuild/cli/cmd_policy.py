"""``trustbuild policy validate FILE`` and ``trustbuild policy check --policy FILE [build flags]``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trustbuild.errors import TrustbuildError

__all__ = ["register"]


class _GateDone(TrustbuildError):
    """Raised by the gate callback of ``policy check`` to stop before anything is extracted."""


def register(sub: Any) -> None:
    """Add ``policy`` with its ``validate`` and ``check`` subcommands."""
    from trustbuild.cli import cmd_build

    p = sub.add_parser(
        "policy", help="validate a policy file or run the policy gate without building"
    )
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    v = psub.add_parser(
        "validate", help="check a policy file against the schema; exit 1 if invalid"
    )
    v.add_argument("file", metavar="FILE")
    v.add_argument("--output", choices=["text", "json"], default="text")
    v.set_defaults(func=run_validate)

    holder = argparse.ArgumentParser(add_help=False).add_subparsers()
    cmd_build.register(holder)
    build_parser = holder.choices["build"]
    c = psub.add_parser(
        "check",
        parents=[build_parser],
        conflict_handler="resolve",
        help="run the gate (signatures, repositories, executor, Dockerfile rules) "
        "with the same flags as build; builds nothing",
        description="Resolve every base image to a digest and run the policy gate "
        "exactly as `trustbuild build --policy` would, then stop.",
    )
    c.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="report format on stdout (default text)",
    )
    c.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def run_validate(args: argparse.Namespace) -> int:
    """Validate; print a short summary."""
    from trustbuild.policy.model import load_policy

    pol = load_policy(args.file)
    if args.output == "json":
        print(
            json.dumps({"file": args.file, "valid": True, "name": pol.name, "digest": pol.digest})
        )
    else:
        print(f"{args.file}: valid policy {pol.name!r} ({pol.digest})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Run the gate only; exit 1 on deny."""
    from trustbuild.build.api import build
    from trustbuild.cli.cmd_build import options_from_args
    from trustbuild.errors import PolicyViolation, UsageError
    from trustbuild.pipeline import configure
    from trustbuild.policy.report import Report

    if not args.policy:
        raise UsageError("policy check: --policy FILE is required")
    args.no_push = True
    args.sign_key = None
    args.attest = ""
    options = options_from_args(args)
    reports: list[Report] = []

    def stop(report: Report) -> None:
        reports.append(report)
        if not report.denied:
            raise _GateDone("gate passed")

    configure(options, policy_output="none", on_gate=stop, gate_only=True)
    try:
        build(options).close()
    except _GateDone:
        pass
    except PolicyViolation:
        if not reports:
            raise
    if not reports:
        raise UsageError("policy check: the gate did not run")
    report = reports[0]
    if args.output == "json":
        report.write_json(sys.stdout)
    else:
        report.write_text(sys.stdout)
    return 1 if report.denied else 0
