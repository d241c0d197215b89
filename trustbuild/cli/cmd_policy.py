"""``trustbuild policy validate FILE``, ``policy check --policy FILE [build flags]``, ``render``."""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.common import print_usage

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _register_render(psub)
    p.set_defaults(func=print_usage(p))


def _register_render(psub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from trustbuild.policy.render import FORMATS

    r = psub.add_parser(
        "render", help="render cluster bundles (Kyverno, policy-controller, VAP, Pod Security, "
                       "seccomp, executor Job, webhook) from the policy",
        description="Render Kubernetes manifests from the same policy file: deterministic YAML, "
                    "multi-document on stdout or one file per kind in --output-dir.")
    r.add_argument("--policy", required=True, metavar="FILE")
    r.add_argument("--format", action="append", metavar="FORMAT",
                   help=f"all (default) or {', '.join(FORMATS)} (repeatable, or comma-separated)")
    r.add_argument("--namespace", metavar="NS",
                   help="application namespace (Pod Security labels; VAP/webhook scope)")
    r.add_argument("--output-dir", metavar="DIR", help="write one file per kind here")
    r.add_argument("--build-namespace", default="trustbuild-build", metavar="NS",
                   help="namespace of the executor Job (default trustbuild-build)")
    r.add_argument("--executor-image", metavar="REPO@DIGEST",
                   help="executor image for the Job, pinned by digest")
    r.add_argument("--build-context", metavar="CTX", help="executor Job: --context to build")
    r.add_argument("--destination", metavar="REF", help="executor Job: image to push")
    r.add_argument("--registry-secret", metavar="NAME",
                   help="executor Job: dockerconfigjson Secret for pushing")
    r.add_argument("--signing-secret", metavar="NAME",
                   help="executor Job: Secret with cosign.key and cosign.password")
    r.add_argument("--webhook-service", metavar="NS/NAME",
                   help="webhook: Service of `trustbuild admission serve`")
    r.add_argument("--webhook-port", type=int, default=443, metavar="PORT")
    r.add_argument("--ca-bundle", metavar="FILE", help="webhook: CA of the serving certificate")
    r.add_argument("--webhook-image", metavar="REPO@DIGEST",
                   help="webhook: also render its Deployment/Service/ConfigMap from this image")
    r.add_argument("--tls-secret", default="trustbuild-admission-tls", metavar="NAME",
                   help="webhook: kubernetes.io/tls Secret with the serving key pair")
    r.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    """Render the bundles to stdout or --output-dir."""
    from pathlib import Path

    from trustbuild.errors import UsageError
    from trustbuild.policy.model import load_policy
    from trustbuild.policy.render import RenderOptions, dump_yaml, render, write_dir

    ca = None
    if args.ca_bundle:
        try:
            ca = Path(args.ca_bundle).read_bytes()
        except OSError as exc:
            raise UsageError(f"--ca-bundle {args.ca_bundle}: {exc.strerror}") from None
    options = RenderOptions(
        namespace=args.namespace, build_namespace=args.build_namespace,
        executor_image=args.executor_image, build_context=args.build_context,
        destination=args.destination, registry_secret=args.registry_secret,
        signing_secret=args.signing_secret, webhook_service=args.webhook_service,
        webhook_port=args.webhook_port, ca_bundle=ca, webhook_image=args.webhook_image,
        tls_secret=args.tls_secret)
    policy = load_policy(args.policy)
    skipped: list[str] = []
    warnings: list[str] = []
    formats = [f.strip() for item in args.format or ["all"] for f in item.split(",") if f.strip()]
    docs = render(policy, formats or ["all"], options, skipped=skipped, warnings=warnings)
    for note in skipped:
        print(f"policy render: skipped {note}", file=sys.stderr)
    for note in warnings:
        print(f"policy render: warning: {note}", file=sys.stderr)
    if args.output_dir:
        for path in write_dir(docs, args.output_dir):
            print(path)
    else:
        sys.stdout.write(dump_yaml(docs))
    return 0


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
    """Prepare the build and run the gate only (no layer extracted, no RUN); exit 1 on deny."""
    from trustbuild.cli.cmd_build import (
        options_from_args,
        secret_options,
        supply_chain_from_args,
    )
    from trustbuild.errors import UsageError
    from trustbuild.pipeline import check

    if not args.policy:
        raise UsageError("policy check: --policy FILE is required")
    args.no_push = True
    args.sign_key = None
    args.attest = ""
    options = options_from_args(args)
    options.plan_only = True
    secret_options(options, args)
    report = check(options, supply_chain_from_args(args))
    if args.output == "json":
        report.write_json(sys.stdout)
    else:
        report.write_text(sys.stdout)
    return 1 if report.denied else 0
