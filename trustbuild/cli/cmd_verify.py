"""``trustbuild verify``: check an image's cosign signatures and Sigstore bundles."""

from __future__ import annotations

import argparse
import json

from trustbuild.cli.cmd_sign import docker_reference_for
from trustbuild.cli.common import (
    add_keyless_verify_flags,
    add_registry_flags,
    keyless_from_args,
    store_options,
)
from trustbuild.errors import UsageError
from trustbuild.store.location import Location, parse_location
from trustbuild.store.open import open_store

__all__ = ["register", "run", "image_reference_for"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` command."""
    p = sub.add_parser(
        "verify", help="verify an image's signatures (cosign-compatible)",
        description="Verify every simple-signing signature and Sigstore bundle of IMAGE. Exit 0 "
                    "when at least one signature meets the requirements, 1 otherwise.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--key", action="append", default=[], metavar="PUB",
                   help="trusted public key PEM (repeatable)")
    add_keyless_verify_flags(p)
    p.add_argument("--ca-roots", metavar="PEM", help="Fulcio root/intermediate certificates")
    p.add_argument("--certificate-email", metavar="EMAIL",
                   help="PKI mode (containers/image sigstoreSigned pki): the certificate must "
                        "chain to --ca-roots and carry this SAN email; no Rekor entry needed")
    p.add_argument("--certificate-hostname", metavar="HOST",
                   help="PKI mode: the certificate must be valid for this hostname")
    p.add_argument("--ca-intermediates", metavar="PEM",
                   help="PKI mode: intermediate CA certificates (besides the signature's chain)")
    p.add_argument("--rekor-key", action="append", default=[], metavar="PEM",
                   help="Rekor public key for the SET (repeatable)")
    p.add_argument("--require-tlog", action="store_true",
                   help="only accept signatures with a verified Rekor entry")
    p.add_argument("--docker-reference", metavar="REPO",
                   help="repository the payload must name (default: the image's repository)")
    p.add_argument("--signed-identity", metavar="SPEC",
                   help="containers/image signedIdentity the payload's docker-reference must "
                        "meet: matchRepository (default, as cosign), matchRepoDigestOrExact, "
                        "matchExact, exactReference:REF, exactRepository:REPO, "
                        "remapIdentity:PREFIX=SIGNED_PREFIX, or the JSON object of "
                        "containers-policy.json")
    p.add_argument("--policy", metavar="FILE",
                   help="apply the policy's spec.deploy (allowed repositories, signatures, "
                        "attestations) instead of --key / keyless flags")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="count", default=0, help="tracebacks on errors")
    add_registry_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify; print verdicts on stdout; 0 if at least one signature is valid."""
    from trustbuild.sign.identity import SignedIdentity
    from trustbuild.sign.keys import load_verifying_key
    from trustbuild.sign.verify import TrustRoots, verify_image

    if args.policy:
        return _run_policy(args)
    pki = None
    if args.certificate_email or args.certificate_hostname or args.ca_intermediates:
        if args.certificate_identity or args.certificate_identity_regexp or \
                args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp:
            raise UsageError("PKI mode (--certificate-email/--certificate-hostname) excludes "
                             "the keyless --certificate-identity/--certificate-oidc-issuer flags")
        if not args.ca_roots:
            raise UsageError("PKI mode needs --ca-roots PEM (the CA certificates to trust)")
        from trustbuild.sign.pki import PKIPolicy

        pki = PKIPolicy.from_files(args.ca_roots, ca_intermediates=args.ca_intermediates,
                                   subject_email=args.certificate_email,
                                   subject_hostname=args.certificate_hostname)
    keyless, trust = keyless_from_args(args)
    if not args.key and keyless is None and pki is None:
        raise UsageError("verify: pass --key PUB, --certificate-identity and "
                         "--certificate-oidc-issuer, or --ca-roots with --certificate-email / "
                         "--certificate-hostname")
    keys = [load_verifying_key(k) for k in args.key]
    if trust is None and (args.ca_roots or args.rekor_key):
        trust = TrustRoots.from_pems(ca_roots=args.ca_roots, rekor_keys=args.rekor_key)
    identity = SignedIdentity.parse(args.signed_identity) if args.signed_identity else None
    location = parse_location(args.image)
    docker_ref = docker_reference_for(location, args.docker_reference, required=False)
    store, ref = open_store(location, store_options(args))
    try:
        result = verify_image(store, ref, keys=keys or None, keyless=keyless, trusted_root=trust,
                              require_tlog=args.require_tlog, docker_reference=docker_ref,
                              identity=identity, pki=pki,
                              image_reference=image_reference_for(location, args.docker_reference))
    finally:
        store.close()
    if args.output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(f"Verification for {result.image}:")
        for v in result.signatures:
            mark = "VALID  " if v.ok else "INVALID"
            who = f" [{v.signer}]" if v.signer else ""
            checked = f" (checked: {', '.join(v.checks)})" if v.checks else ""
            print(f"  {mark} {v.kind} {v.where}{who}: {v.reason}{checked}")
        print("verified: at least one valid signature" if result.ok
              else "not verified: no valid signature")
    return 0 if result.ok else 1


def image_reference_for(location: Location, override: str | None) -> str | None:
    """The image as the user named it, for signedIdentity: ``--docker-reference`` (tag kept),
    else the registry reference (``repo:tag`` or ``repo@digest``)."""
    if override:
        return override
    return str(location.reference) if location.reference is not None else None


def _run_policy(args: argparse.Namespace) -> int:
    """``verify --policy FILE``: the deploy check of the policy, on the digest resolved once."""
    import sys

    from trustbuild.policy.deploy import check_deploy
    from trustbuild.policy.model import load_policy
    from trustbuild.sign.sign import resolve_subject

    if args.key or args.certificate_identity or args.certificate_identity_regexp:
        raise UsageError("--policy takes its keys from the policy: drop --key / --certificate-*")
    if args.signed_identity:
        raise UsageError("--policy takes signedIdentity from its signature entries: drop "
                         "--signed-identity")
    policy = load_policy(args.policy)
    location = parse_location(args.image)
    docker_ref = docker_reference_for(location, args.docker_reference, required=False)
    store, ref = open_store(location, store_options(args))
    try:
        digest = str(resolve_subject(store, ref).digest)
        report = check_deploy(policy, store, digest, repository=docker_ref, image=str(location),
                              image_reference=image_reference_for(location,
                                                                  args.docker_reference))
    finally:
        store.close()
    if args.output == "json":
        report.write_json(sys.stdout)
    else:
        report.write_text(sys.stdout)
    return 1 if report.denied else 0
