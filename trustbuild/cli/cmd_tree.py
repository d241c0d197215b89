"""``trustbuild tree IMAGE`` (cosign tree): what is attached to the image's digest."""

from __future__ import annotations

import argparse
import json

from trustbuild.cli.attached import add_image_flags, open_image

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tree`` parser."""
    p = sub.add_parser(
        "tree", help="list the signatures, attestations, SBOMs and referrers of an image "
        "(cosign tree)",
        description="Resolve IMAGE to its digest and list what is attached to it: the cosign "
        "tags sha256-<hex>.sig/.att/.sbom (each layer's digest, media type and predicate type) "
        "and the OCI 1.1 referrers (artifact type, predicate type, layers).")
    add_image_flags(p)
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tree; exit 0 (also when nothing is attached)."""
    from trustbuild.sign.attachments import supply_chain_tree

    with open_image(args) as img:
        tree = supply_chain_tree(img.store, img.subject.digest)
    if args.output == "json":
        print(json.dumps(tree.to_json(args.image), indent=2))
    else:
        print(tree.render_text(args.image, img.where))
    return 0
