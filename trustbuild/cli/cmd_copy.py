"""``trustbuild copy SRC DST``: copy an image between registries, OCI layouts, docker-archives."""

from __future__ import annotations

import argparse
import sys

from trustbuild.cli.common import add_common_flags, add_registry_flags, store_options
from trustbuild.errors import StoreError, TrustbuildError, UsageError
from trustbuild.oci.store import abort_write
from trustbuild.store.copy import copy_image
from trustbuild.store.location import parse_location
from trustbuild.store.open import open_store

__all__ = ["register", "run"]


def _kinds(text: str) -> tuple[str, ...]:
    """``--only``: a comma-separated subset of sig, att, sbom (or ``none``)."""
    from trustbuild.sign.copy import ATTACHMENT_KINDS

    items = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if items == ("none",):
        return ()
    bad = [x for x in items if x not in ATTACHMENT_KINDS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of "
                                         f"{', '.join(ATTACHMENT_KINDS)} (or none)")
    return items


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``copy`` command."""
    p = sub.add_parser(
        "copy",
        help="copy an image between transports",
        description="Copy an image. Locations: docker://REF (or a bare REF), oci:DIR[:TAG], "
        "docker-archive:FILE[:REF]. Prints the destination manifest digest.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument(
        "--all",
        dest="all_platforms",
        action="store_true",
        help="copy every platform of an index (the index digest is kept)",
    )
    p.add_argument("--digest-file", metavar="FILE", help="also write the destination digest here")
    p.add_argument("--only", metavar="LIST", type=_kinds, default=None,
                   help="carry only these attachments of the copied digest, comma-separated: "
                        "sig, att, sbom (default: all; 'none' for the image alone), as cosign "
                        "copy --only")
    p.add_argument("--sig-only", action="store_true",
                   help="copy only the signatures (.sig and signature bundles), not the image")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_registry_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Copy SRC to DST (with its signatures and attestations); print the destination digest."""
    from trustbuild.sign.copy import ATTACHMENT_KINDS, copy_attachments

    if args.sig_only and args.only is not None:
        raise UsageError("--sig-only and --only are mutually exclusive")
    kinds = ("sig",) if args.sig_only else (ATTACHMENT_KINDS if args.only is None else args.only)
    opts = store_options(args)
    src_loc, dst_loc = parse_location(args.src), parse_location(args.dst)
    if args.sig_only and dst_loc.transport == "docker-archive":
        raise UsageError(f"{dst_loc}: a docker-archive cannot hold signatures")
    src, src_ref = open_store(src_loc, opts)
    try:
        dst, dst_ref = open_store(dst_loc, opts, for_write=True)
        done = False
        try:

            def progress(msg: str) -> None:
                if not args.quiet:
                    print(msg, file=sys.stderr, flush=True)

            if args.sig_only:
                from trustbuild.sign.sign import resolve_subject

                desc = resolve_subject(src, src_ref)
            else:
                desc = copy_image(
                    src,
                    src_ref,
                    dst,
                    [dst_ref] if dst_ref else [],
                    platform=opts.platform,
                    all_platforms=args.all_platforms,
                    jobs=opts.jobs,
                    progress=progress,
                )
            if kinds and dst_loc.transport != "docker-archive":
                try:
                    copy_attachments(src, dst, desc.digest, kinds=kinds, jobs=opts.jobs,
                                     progress=progress)
                except TrustbuildError as exc:
                    raise StoreError(f"{dst_loc}: copying the signatures/attestations of "
                                     f"{desc.digest} failed (--only none skips them): "
                                     f"{exc}") from None
            dst.close()  # a docker-archive is written here
            done = True
        finally:
            if not done:
                abort_write(dst)
                dst.close()
    finally:
        src.close()
    print(desc.digest)
    if args.digest_file:
        with open(args.digest_file, "w", encoding="utf-8") as f:
            f.write(f"{desc.digest}\n")
    return 0
