"""``trustbuild generate IMAGE`` (cosign generate): the simple-signing payload for the image's
digest, to be signed elsewhere (``sign-blob``) and attached with ``attach signature``."""

from __future__ import annotations

import argparse
import sys

from trustbuild.cli.attached import add_image_flags, open_image

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``generate`` parser."""
    p = sub.add_parser(
        "generate", help="print the payload to sign for an image (cosign generate)",
        description="Resolve IMAGE to its digest and print the cosign simple-signing payload "
        "naming it, byte for byte as cosign generate and trustbuild sign write it (no trailing "
        "newline). Sign it with sign-blob and attach it with attach signature.")
    add_image_flags(p)
    p.add_argument("-a", "--annotations", action="append", default=[], metavar="KEY=VALUE",
                   help="add to the payload's optional section (repeatable)")
    p.add_argument("--docker-reference", metavar="REPO",
                   help="repository to name in the payload (default: the image's repository; "
                        "required for oci: layouts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the payload to stdout."""
    from trustbuild.cli.cmd_sign import docker_reference_for, parse_annotations
    from trustbuild.sign.simplesigning import build_payload

    annotations = parse_annotations(args.annotations)
    with open_image(args) as img:
        repo = docker_reference_for(img.location, args.docker_reference, required=True)
        assert repo is not None
        payload = build_payload(repo, img.subject.digest, annotations)
    sys.stdout.buffer.write(payload)
    sys.stdout.flush()
    return 0
