"""``trustbuild verify-attestation``: check the attestations attached to an image."""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.common import (
    add_common_flags,
    add_keyless_verify_flags,
    add_registry_flags,
    keyless_from_args,
    store_options,
)
from trustbuild.errors import UsageError

__all__ = ["register", "run", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """``64MiB``, ``200MB``, ``1048576`` -> bytes (argparse type; a clear error otherwise)."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 64MiB, 200MB, 1048576)")
    return int(m.group(1)) * _UNITS[unit]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify-attestation`` parser."""
    p = sub.add_parser("verify-attestation",
                       help="verify in-toto attestations attached to an image",
                       description="Check the DSSE signature, payload type, subject digest and "
                       "predicate type of the attestations attached to IMAGE. Exit 0 when at "
                       "least one verifies, 1 otherwise.")
    p.add_argument("image", metavar="IMAGE", help="docker://REF, REF, oci:DIR[:TAG]")
    p.add_argument("--key", action="append", default=[], metavar="PUB",
                   help="public key file (repeatable)")
    p.add_argument("--type", default=None, metavar="TYPE",
                   help="predicate type to require (short name or URI); default any")
    add_keyless_verify_flags(p)
    p.add_argument("--max-attestation-size", type=parse_size, default=None, metavar="SIZE",
                   help="largest attestation read (.att layer or bundle), e.g. 64MiB (the "
                        "default), 200MB, 134217728")
    p.add_argument("--output", choices=("text", "json"), default="text")
    add_registry_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify; exit 0 if some attestation (of the asked type) verifies, else 1."""
    from trustbuild.attest.verify import verify_attestations
    from trustbuild.sign.keys import load_verifying_key
    from trustbuild.store.location import parse_location
    from trustbuild.store.open import open_store

    keyless, trust = keyless_from_args(args)
    if not args.key and keyless is None:
        raise UsageError("verify-attestation: give --key PUB (repeatable) or the keyless flags "
                         "--certificate-identity and --certificate-oidc-issuer")
    keys = [load_verifying_key(k) for k in args.key]
    loc = parse_location(args.image)
    store, ref = open_store(loc, store_options(args))
    try:
        limit = {"max_bytes": args.max_attestation_size} if args.max_attestation_size else {}
        result = verify_attestations(store, ref, keys=keys, keyless=keyless, trusted_root=trust,
                                     predicate_type=args.type, image=args.image, **limit)
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.render_text(), file=sys.stderr)
        for stmt in result.statements():
            print(json.dumps(stmt, separators=(",", ":")))
    return 0 if result.ok else 1
