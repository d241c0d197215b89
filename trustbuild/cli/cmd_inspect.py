"""``trustbuild inspect REF``: print an image's digest, media type, platform, config and layers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from trustbuild.cli.common import add_common_flags, add_registry_flags, store_options
from trustbuild.errors import TrustbuildError
from trustbuild.oci.image import read_config, read_config_bytes, resolve_image
from trustbuild.store.location import parse_location
from trustbuild.store.open import open_store

if TYPE_CHECKING:
    from trustbuild.oci.descriptor import Platform
    from trustbuild.oci.store import Store

__all__ = ["register", "run", "inspect_info"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``inspect`` command."""
    p = sub.add_parser(
        "inspect",
        help="show an image's manifest, config and layers as JSON",
        description="Inspect an image at docker://REF (or a bare REF), oci:DIR[:TAG] or "
        "docker-archive:FILE[:REF]. From an index, the --platform image (default: "
        "this machine) is shown.",
    )
    p.add_argument("ref", metavar="REF")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--raw", action="store_true", help="print the raw manifest (or index) bytes")
    out.add_argument("--config", action="store_true", help="print the raw image config")
    p.add_argument("--no-tags", action="store_true", help="do not list the repository's tags")
    add_registry_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def inspect_info(
    store: Store, ref: str | None, *, name: str, platform: Platform | None = None,
    tags: bool = True
) -> dict[str, object]:
    """The JSON document ``inspect`` prints."""
    img = resolve_image(store, ref, platform=platform)
    cfg = read_config(store, img.manifest)
    plat = {k: cfg[k] for k in ("os", "architecture", "variant") if isinstance(cfg.get(k), str)}
    info: dict[str, object] = {
        "name": name,
        "digest": str(img.digest),
        "mediaType": img.manifest.media_type,
        "platform": plat,
    }
    if img.index is not None:
        info["index"] = {
            "digest": str(img.index.digest),
            "mediaType": img.index.media_type,
            "platforms": [str(d.platform) for d in img.index.manifests if d.platform],
        }
    info["config"] = cfg
    info["configDigest"] = str(img.manifest.config.digest)
    info["layers"] = [d.to_json() for d in img.manifest.layers]
    if img.manifest.annotations:
        info["annotations"] = img.manifest.annotations
    if tags:
        try:
            info["tags"] = sorted(store.list_tags())
        except TrustbuildError as exc:
            print(f"trustbuild: warning: cannot list tags: {exc}", file=sys.stderr)
    return info


def run(args: argparse.Namespace) -> int:
    """Print the inspection as JSON (or the raw manifest/config)."""
    opts = store_options(args)
    loc = parse_location(args.ref)
    store, ref = open_store(loc, opts)
    try:
        if args.raw:
            raw, _ = store.get_manifest(ref or "")
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
            return 0
        if args.config:
            img = resolve_image(store, ref, platform=opts.platform)
            sys.stdout.buffer.write(read_config_bytes(store, img.manifest))
            sys.stdout.flush()
            return 0
        info = inspect_info(
            store, ref, name=str(loc), platform=opts.platform, tags=not args.no_tags
        )
    finally:
        store.close()
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
