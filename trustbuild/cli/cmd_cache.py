"""``trustbuild cache warm|prune``: fill or trim the local layer store (``--cache-dir``).

``warm IMAGE...`` downloads every layer of each image into the store (Kaniko's warmer), so
later builds FROM them download nothing; ``prune`` removes entries unused for ``--older-than``
and then the least recently used ones above ``--max-size``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from trustbuild.cli.common import add_common_flags, add_registry_flags, store_options

if TYPE_CHECKING:
    from trustbuild.builder.layerstore import LayerStore

__all__ = ["register", "run_warm", "run_prune"]


def _dir_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="the layer store (default: $XDG_CACHE_HOME/trustbuild, "
                        "/var/cache/trustbuild as root)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cache`` command with ``warm`` and ``prune``."""
    p = sub.add_parser("cache", help="fill or trim the local layer store (--cache-dir)",
                       description="Manage the local layer store that builds share "
                                   "(docs/cache.md).")
    cmds = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND", required=True)
    w = cmds.add_parser("warm", help="download the layers of images into the store",
                        description="Resolve each IMAGE (tag or digest; from an index, the "
                                    "--platform image) and download its layers into the store.")
    w.add_argument("images", nargs="+", metavar="IMAGE")
    _dir_flag(w)
    add_registry_flags(w)
    add_common_flags(w)
    w.set_defaults(func=run_warm)
    r = cmds.add_parser("prune", help="remove old or least recently used layers",
                        description="Remove layers unused for --older-than, then the least "
                                    "recently used until the store is at most --max-size. "
                                    "Layers a running build holds are kept.")
    _dir_flag(r)
    r.add_argument("--max-size", metavar="SIZE", help="e.g. 500M, 10G")
    r.add_argument("--older-than", metavar="DURATION", help="e.g. 12h, 14d (plain numbers: hours)")
    add_common_flags(r)
    r.set_defaults(func=run_prune)


def _store(args: argparse.Namespace) -> LayerStore:
    from trustbuild.builder.layerstore import LayerStore, default_cache_dir

    return LayerStore(args.cache_dir or default_cache_dir())


def run_warm(args: argparse.Namespace) -> int:
    """Download each image's layers into the store; prints one JSON line per image."""
    from trustbuild.builder.base import BaseImages
    from trustbuild.oci.descriptor import Platform

    store = _store(args)
    sopts = store_options(args)
    plat = sopts.platform or Platform.host()
    bases = BaseImages(store_options=sopts, cache_dir=store.root / "tmp", platform=plat,
                       layer_store=store)
    downloaded = there = 0
    try:
        for image in args.images:
            resolved = bases.resolve(image, platform=plat)  # the config goes into the store too
            fetched, reused = store.fetched, store.reused
            bases.fetch_layers(resolved)
            downloaded += store.fetched - fetched
            there += store.reused - reused
            print(json.dumps({"image": image, "digest": str(resolved.digest),
                              "layers": len(resolved.manifest.layers),
                              "downloaded": store.fetched - fetched}))
    finally:
        bases.close()
    print(f"layer store {store.root}: {downloaded} layer(s) downloaded, {there} "
          "already there", file=sys.stderr)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    """Prune the store; prints what was removed as JSON."""
    from trustbuild.builder.layerstore import parse_duration, parse_size
    from trustbuild.errors import UsageError

    if not args.max_size and not args.older_than:
        raise UsageError("cache prune: give --max-size and/or --older-than")
    store = _store(args)
    result = store.prune(max_size=parse_size(args.max_size) if args.max_size else None,
                         older_than=parse_duration(args.older_than) if args.older_than else None)
    print(json.dumps({"removed": result.removed, "freed_bytes": result.freed,
                      "kept": result.kept, "size_bytes": result.size}))
    return 0
