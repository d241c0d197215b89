"""``trustbuild attest``: sign a predicate as an in-toto DSSE attestation and attach it."""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.common import (
    add_common_flags,
    add_keyless_sign_flags,
    add_registry_flags,
    read_input,
    store_options,
)
from trustbuild.errors import UsageError
from trustbuild.store.location import Location, parse_location

__all__ = ["register", "run", "subject_name"]

MAX_PREDICATE_FILE = 16 * 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``attest`` parser."""
    p = sub.add_parser("attest", help="attach a signed in-toto attestation to an image",
                       description="Sign PREDICATE as an in-toto Statement v1 (DSSE) about the "
                       "image digest and attach it as cosign does (sha256-<hex>.att).")
    p.add_argument("image", metavar="IMAGE", help="docker://REF, REF, oci:DIR[:TAG]")
    p.add_argument("--key",
                   help="cosign private key file (password from TRUSTBUILD_PASSWORD or "
                   "COSIGN_PASSWORD)")
    p.add_argument("--predicate", required=True, metavar="FILE",
                   help="predicate file ('-' = stdin)")
    p.add_argument("--type", default="custom", metavar="TYPE",
                   help="slsaprovenance|slsaprovenance02|spdxjson|cyclonedx|vuln|link|custom or "
                   "a URI "
                   "(default custom)")
    p.add_argument("--replace", action="store_true",
                   help="drop earlier attestations of the same predicate type")
    p.add_argument("--bundle", action="store_true",
                   help="also attach a Sigstore bundle (v0.3) as an OCI 1.1 referrer")
    add_keyless_sign_flags(p, what="the attestation")
    p.add_argument("--output", choices=("text", "json"), default="text")
    add_registry_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def subject_name(loc: Location) -> str:
    """The statement subject name: ``registry/repository`` or the layout/archive path."""
    if loc.transport == "docker" and loc.reference is not None:
        return loc.reference.name
    return f"{loc.transport}:{loc.path}"


def run(args: argparse.Namespace) -> int:
    """Attach the attestation; prints the ``.att`` manifest digest."""
    from trustbuild.attest.attach import attest_image
    from trustbuild.attest.statement import predicate_type_uri
    from trustbuild.sign.keys import load_signing_key
    from trustbuild.store.open import open_store

    if not args.key and not args.keyless:
        raise UsageError("attest: give --key KEY (a cosign private key) or --keyless")
    if args.key and args.keyless:
        raise UsageError("attest: --key and --keyless are mutually exclusive")
    ptype = predicate_type_uri(args.type)
    predicate = read_input(args.predicate, "--predicate", MAX_PREDICATE_FILE)
    key = load_signing_key(args.key) if args.key else None
    loc = parse_location(args.image)
    store, ref = open_store(loc, store_options(args))
    try:
        desc = attest_image(store, ref, key=key, predicate=predicate, predicate_type=ptype,
                            subject_name=subject_name(loc), replace=args.replace,
                            bundle=args.bundle, keyless=args.keyless,
                            identity_token=args.identity_token,
                            trust_config=args.sigstore_trust_config)
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps({"attestationManifest": str(desc.digest), "predicateType": ptype}))
    else:
        print(f"trustbuild: attached {ptype} attestation to {args.image}", file=sys.stderr)
        print(str(desc.digest))
    return 0
