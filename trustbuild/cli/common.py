"""Flags shared by several commands (registry access, platform, verbosity, output)."""

from __future__ import annotations

import argparse

from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Platform
from trustbuild.registry.options import StoreOptions

__all__ = ["add_registry_flags", "add_common_flags", "store_options"]


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """-v and --output."""
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail; tracebacks on errors"
    )


def add_registry_flags(p: argparse.ArgumentParser, *, pull_flags: bool = True) -> None:
    """Registry transport flags (Kaniko/skopeo names); ``pull_flags`` adds --platform and --jobs
    (``build`` has its own --custom-platform)."""
    g = p.add_argument_group("registry access")
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="use plain HTTP for this registry (repeatable); loopback registries always are",
    )
    g.add_argument(
        "--skip-tls-verify", action="store_true", help="do not verify registry TLS certificates"
    )
    g.add_argument(
        "--registry-certificate",
        action="append",
        default=[],
        metavar="HOST=CA.pem",
        help="trust this CA for HOST (repeatable)",
    )
    g.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="HOST",
        help="pull docker.io images through this mirror (repeatable)",
    )
    if not pull_flags:
        return
    g.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        default=None,
        help="platform to pick from an index (default: this machine)",
    )
    g.add_argument("--jobs", type=int, default=4, help="parallel blob transfers (default 4)")


def store_options(args: argparse.Namespace) -> StoreOptions:
    """StoreOptions from parsed registry flags."""
    certs: dict[str, str] = {}
    for item in getattr(args, "registry_certificate", []) or []:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise UsageError(f"--registry-certificate {item!r}: expected HOST=CA.pem")
        certs[host] = path
    plat = getattr(args, "platform", None)
    return StoreOptions(
        insecure_registries=tuple(getattr(args, "insecure_registry", []) or []),
        skip_tls_verify=bool(getattr(args, "skip_tls_verify", False)),
        registry_certificates=certs,
        registry_mirrors=tuple(getattr(args, "registry_mirror", []) or []),
        platform=Platform.parse(plat) if plat else None,
        jobs=max(1, int(getattr(args, "jobs", 4) or 4)),
    )
