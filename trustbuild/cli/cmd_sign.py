"""``trustbuild sign``: sign an image with a cosign key (or keyless through Sigstore)."""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.common import add_keyless_sign_flags, add_registry_flags, store_options
from trustbuild.errors import UsageError
from trustbuild.oci.store import abort_write
from trustbuild.store.location import Location, parse_location
from trustbuild.store.open import open_store

__all__ = ["register", "run", "parse_annotations", "docker_reference_for", "sign_identity"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sign`` command."""
    p = sub.add_parser(
        "sign", help="sign an image (cosign-compatible)",
        description="Sign IMAGE (docker://REF, a bare REF, or oci:DIR[:TAG]). The reference is "
                    "resolved to a digest once; a cosign simple-signing signature is added to the "
                    "sha256-<hex>.sig manifest, and with --bundle a Sigstore bundle is attached "
                    "as an OCI 1.1 referrer. Prints the signed digest.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--key", metavar="KEY", help="private key (cosign format or PKCS#8 PEM)")
    p.add_argument("-a", "--annotations", action="append", default=[], metavar="KEY=VALUE",
                   help="add to the payload's optional section (repeatable)")
    p.add_argument("--bundle", action="store_true",
                   help="also write a Sigstore bundle v0.3 referrer (cosign 3's format)")
    p.add_argument("--bundle-only", action="store_true",
                   help="write only the Sigstore bundle, no simple-signing signature")
    p.add_argument("--docker-reference", metavar="REPO",
                   help="repository to name in the payload (default: the image's repository; "
                        "required for oci: layouts)")
    p.add_argument("--sign-identity", metavar="REF",
                   help="name exactly REF (repository:tag) in the payload, as containers/image "
                        "(skopeo copy --sign-identity) does, instead of the repository alone; "
                        "needed by signedIdentity matchRepoDigestOrExact / matchExact")
    p.add_argument("--certificate", metavar="PEM",
                   help="with --key: store this X.509 certificate (for the key) with the "
                        "signature, as cosign sign --certificate (containers/image PKI mode)")
    p.add_argument("--certificate-chain", metavar="PEM",
                   help="with --certificate: its chain (intermediates, then the root)")
    add_keyless_sign_flags(p, what="the image")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="count", default=0, help="tracebacks on errors")
    add_registry_flags(p)
    p.set_defaults(func=run)


def parse_annotations(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict (UsageError on a missing ``=``)."""
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"annotation {item!r}: expected KEY=VALUE")
        out[k] = v
    return out


def docker_reference_for(location: Location, override: str | None, *, required: bool) -> str | None:
    """The repository a payload names: ``--docker-reference``, else the registry repository."""
    if override:
        from trustbuild.oci.reference import Reference

        return Reference.parse(override).name
    if location.reference is not None:
        return location.reference.name
    if required:
        raise UsageError(f"{location}: pass --docker-reference REPO (the repository this image "
                         "will be pulled as) to sign an image outside a registry")
    return None


def sign_identity(text: str) -> str:
    """``--sign-identity``: a normalised ``repository:tag`` (no digest, tag required)."""
    from trustbuild.errors import InvalidReference
    from trustbuild.oci.reference import Reference

    try:
        ref = Reference.parse(text)
    except InvalidReference as exc:
        raise UsageError(f"--sign-identity: {exc}") from None
    last = text.rsplit("/", 1)[-1]
    if ref.digest is not None or ":" not in last:
        raise UsageError(f"--sign-identity {text!r}: give repository:tag (no digest), as "
                         "containers/image signs")
    return str(ref)


def _read_pem(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(1024 * 1024 + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {path}: cannot read a PEM file ({exc})") from None
    if len(text) > 1024 * 1024 or "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(f"{flag} {path}: not a PEM certificate file")
    return text


def run(args: argparse.Namespace) -> int:
    """Sign; print the signed digest (or JSON) on stdout."""
    if not args.key and not args.keyless:
        raise UsageError("sign: pass --key KEY or --keyless")
    if args.key and args.keyless:
        raise UsageError("sign: --key and --keyless are mutually exclusive")
    if (args.certificate or args.certificate_chain) and not args.key:
        raise UsageError("sign: --certificate needs --key (the certificate's private key)")
    if args.certificate_chain and not args.certificate:
        raise UsageError("sign: --certificate-chain needs --certificate")
    annotations = parse_annotations(args.annotations)
    location = parse_location(args.image)
    if location.transport == "docker-archive":
        raise UsageError(f"{location}: a docker-archive cannot hold signatures; sign the image "
                         "in a registry (docker://) or an OCI layout (oci:)")
    if args.sign_identity:
        if args.docker_reference:
            raise UsageError("--sign-identity and --docker-reference are mutually exclusive")
        docker_ref: str | None = sign_identity(args.sign_identity)
    else:
        docker_ref = docker_reference_for(location, args.docker_reference, required=True)
    assert docker_ref is not None
    store, ref = open_store(location, store_options(args))
    try:
        if args.keyless:
            from trustbuild.sign.keyless import keyless_sign_image

            result = keyless_sign_image(store, ref, identity_token=args.identity_token,
                                        docker_reference=docker_ref, annotations=annotations,
                                        bundle=args.bundle or args.bundle_only,
                                        simple=not args.bundle_only,
                                        trust_config=args.sigstore_trust_config)
        else:
            from trustbuild.sign.keys import load_signing_key
            from trustbuild.sign.sign import sign_image

            key = load_signing_key(args.key)
            result = sign_image(store, ref, key, docker_reference=docker_ref,
                                annotations=annotations, bundle=args.bundle or args.bundle_only,
                                simple=not args.bundle_only,
                                certificate_pem=_read_pem(args.certificate, "--certificate"),
                                chain_pem=_read_pem(args.certificate_chain,
                                                    "--certificate-chain"))
        store.close()
    except BaseException:
        abort_write(store)
        raise
    if result.signature_manifest is not None:
        print(f"Signature written to {result.digest.tag_form}.sig "
              f"({result.signature_manifest.digest})", file=sys.stderr)
    if result.bundle_manifest is not None:
        print(f"Sigstore bundle attached as referrer {result.bundle_manifest.digest}",
              file=sys.stderr)
    if args.output == "json":
        print(json.dumps({
            "digest": str(result.digest), "docker_reference": result.docker_reference,
            "signature_manifest": str(result.signature_manifest.digest)
            if result.signature_manifest else None,
            "bundle_manifest": str(result.bundle_manifest.digest)
            if result.bundle_manifest else None,
        }))
    else:
        print(result.digest)
    return 0
