"""Flags shared by several commands (registry access, platform, verbosity, output)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Platform
from trustbuild.registry.options import RegistryTimeouts, StoreOptions, parse_limit

if TYPE_CHECKING:
    from trustbuild.sign.trust import KeylessPolicy, TrustRoots

__all__ = ["add_registry_flags", "add_common_flags", "add_keyless_sign_flags",
           "add_keyless_verify_flags", "keyless_from_args", "store_options", "read_input",
           "print_usage"]


def print_usage(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of a command group run without its subcommand: help on stderr, exit 2."""

    def run(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    return run


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """-v and --output."""
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail; tracebacks on errors"
    )


def add_keyless_sign_flags(p: argparse._ActionsContainer, *, what: str) -> None:
    """``--keyless``, ``--identity-token``, ``--sigstore-trust-config`` (cosign's): sign
    ``what`` with a Fulcio certificate and log it in Rekor."""
    p.add_argument("--keyless", action="store_true",
                   help=f"sign {what} with a Fulcio certificate logged in Rekor, as cosign "
                        "--keyless (needs an OIDC token and the Sigstore services)")
    p.add_argument("--identity-token", metavar="TOKEN",
                   help="OIDC token for --keyless (default: the CI's ambient token: GitHub "
                        "Actions, GitLab, Buildkite, Google Cloud)")
    p.add_argument("--sigstore-trust-config", metavar="FILE",
                   help="--keyless: Sigstore ClientTrustConfig JSON (a private Sigstore "
                        "instance); default: the public-good instance through TUF")


def add_keyless_verify_flags(p: argparse._ActionsContainer) -> None:
    """The keyless signer identity (cosign's ``--certificate-identity[-regexp]``,
    ``--certificate-oidc-issuer[-regexp]``) and ``--trusted-root``; read by
    :func:`keyless_from_args`."""
    p.add_argument("--certificate-identity", metavar="ID",
                   help="keyless: the signer identity (SAN) the certificate must carry")
    p.add_argument("--certificate-identity-regexp", metavar="RE",
                   help="keyless: identity regexp")
    p.add_argument("--certificate-oidc-issuer", metavar="URL",
                   help="keyless: the OIDC issuer of that identity")
    p.add_argument("--certificate-oidc-issuer-regexp", metavar="RE",
                   help="keyless: issuer regexp")
    p.add_argument("--trusted-root", metavar="FILE",
                   help="keyless: Sigstore trusted_root.json (default: the Sigstore public-good "
                        "root shipped with sigstore-python; nothing is fetched)")


def keyless_from_args(args: argparse.Namespace) -> tuple[KeylessPolicy | None,
                                                         TrustRoots | None]:
    """The keyless policy and trust material of the ``--certificate-*`` / ``--trusted-root`` /
    ``--ca-roots`` / ``--rekor-key`` flags (cosign's); (None, None) without identity flags.

    Trust: ``--trusted-root FILE``, else ``--ca-roots`` + ``--rekor-key``, else the Sigstore
    public-good root shipped with sigstore-python (offline).
    """
    from trustbuild.sign.trust import KeylessPolicy, TrustRoots

    ca_roots = getattr(args, "ca_roots", None)
    rekor_key = getattr(args, "rekor_key", None) or []
    if args.trusted_root and (ca_roots or rekor_key):
        raise UsageError("--trusted-root excludes --ca-roots and --rekor-key")
    identity_rx = getattr(args, "certificate_identity_regexp", None)
    issuer_rx = getattr(args, "certificate_oidc_issuer_regexp", None)
    if not any((args.certificate_identity, identity_rx, args.certificate_oidc_issuer,
                issuer_rx)):
        if args.trusted_root:  # key-based, but Rekor entries checked with its keys
            return None, TrustRoots.from_trusted_root(args.trusted_root)
        return None, None
    if not (args.certificate_identity or identity_rx):
        raise UsageError("keyless verification needs --certificate-identity or "
                         "--certificate-identity-regexp")
    if not (args.certificate_oidc_issuer or issuer_rx):
        raise UsageError("keyless verification needs --certificate-oidc-issuer or "
                         "--certificate-oidc-issuer-regexp")
    policy = KeylessPolicy(args.certificate_identity, identity_rx, args.certificate_oidc_issuer,
                           issuer_rx)
    if args.trusted_root:
        return policy, TrustRoots.from_trusted_root(args.trusted_root)
    if ca_roots or rekor_key:
        return policy, TrustRoots.from_pems(ca_roots=ca_roots, rekor_keys=rekor_key)
    return policy, TrustRoots.public_good()


def add_registry_flags(p: argparse.ArgumentParser, *, pull_flags: bool = True) -> None:
    """Registry transport flags (Kaniko/skopeo names); ``pull_flags`` adds --platform and --jobs
    (``build`` has its own --custom-platform / --platform, which take a list)."""
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
    g.add_argument(
        "--registry-timeout",
        metavar="SECONDS",
        default=None,
        help="most seconds to wait for one manifest/tag/token response, 0 = no limit "
        "(default 120, or TRUSTBUILD_REGISTRY_TIMEOUT)",
    )
    g.add_argument(
        "--registry-blob-timeout",
        metavar="SECONDS",
        default=None,
        help="most seconds to wait for one blob download, 0 = no limit "
        "(default 3600, or TRUSTBUILD_REGISTRY_BLOB_TIMEOUT)",
    )
    g.add_argument(
        "--registry-speed-limit",
        metavar="BYTES",
        default=None,
        help="abort a response slower than BYTES per second over --registry-speed-time, "
        "0 = no limit (default 1024, or TRUSTBUILD_REGISTRY_SPEED_LIMIT)",
    )
    g.add_argument(
        "--registry-speed-time",
        metavar="SECONDS",
        default=None,
        help="window of the speed limit (default 30, or TRUSTBUILD_REGISTRY_SPEED_TIME)",
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
    timeouts = RegistryTimeouts.from_env()
    for name, flag in (("request", "registry_timeout"), ("blob", "registry_blob_timeout"),
                       ("speed_limit", "registry_speed_limit"),
                       ("speed_time", "registry_speed_time")):
        value = getattr(args, flag, None)
        if value is not None:
            limit = parse_limit(value, "--" + flag.replace("_", "-"),
                                integer=name == "speed_limit")
            timeouts = replace(timeouts, **{name: limit})  # type: ignore[arg-type]
    return StoreOptions(
        timeouts=timeouts,
        insecure_registries=tuple(getattr(args, "insecure_registry", []) or []),
        skip_tls_verify=bool(getattr(args, "skip_tls_verify", False)),
        registry_certificates=certs,
        registry_mirrors=tuple(getattr(args, "registry_mirror", []) or []),
        platform=Platform.parse(plat) if plat else None,
        jobs=max(1, int(getattr(args, "jobs", 4) or 4)),
    )


def names_a_file(value: str) -> bool:
    """Whether ``value`` is the path of a regular file; False for text no path can be.

    Flags such as ``--signature`` take either a file or the base64 text itself, and base64 can
    hold ``/`` and be longer than a file name may be (ENAMETOOLONG), which ``Path.is_file``
    raises on rather than answering.
    """
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def read_input(value: str, flag: str, limit: int) -> bytes:
    """The bytes of file ``value`` (``-`` = stdin), at most ``limit``; UsageError otherwise."""
    if value == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            with open(Path(value), "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"{flag} {value}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{flag} {value}: larger than {limit} bytes")
    return data
