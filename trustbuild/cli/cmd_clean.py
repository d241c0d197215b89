"""``trustbuild clean IMAGE`` (cosign clean): remove the signatures, attestations and/or SBOM
attached to the image's digest."""

from __future__ import annotations

import argparse
import json
import sys

from trustbuild.cli.attached import add_image_flags, open_image

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``clean`` parser."""
    p = sub.add_parser(
        "clean", help="remove what is attached to an image (cosign clean)",
        description="Resolve IMAGE to its digest and delete its sha256-<hex>.sig/.att/.sbom "
        "tags and Sigstore bundle referrers (signature bundles with --type signature, the "
        "others with --type attestation). Registries must allow deletes. Nothing to remove is "
        "not an error.")
    add_image_flags(p)
    p.add_argument("--type", dest="clean_type", default="all",
                   choices=("signature", "attestation", "sbom", "all"),
                   help="what to remove (default all)")
    p.add_argument("-f", "--force", action="store_true",
                   help="accepted for cosign compatibility (trustbuild never prompts)")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Delete; list what was removed on stderr (or as JSON on stdout)."""
    from trustbuild.sign.attachments import clean_attachments

    with open_image(args) as img:
        removed = clean_attachments(img.store, img.subject.digest, args.clean_type)
    if args.output == "json":
        print(json.dumps({"digest": str(img.subject.digest), "removed": removed}))
        return 0
    for item in removed:
        print(f"Removed {item} from {args.image}", file=sys.stderr)
    if not removed:
        print(f"trustbuild: nothing of type {args.clean_type} attached to "
              f"{img.subject.digest}", file=sys.stderr)
    return 0
