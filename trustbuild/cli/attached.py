"""Shared by ``tree``, ``download``, ``attach``, ``clean`` and ``generate``: open IMAGE and
resolve it to its digest once (every later read and write names that digest)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from trustbuild.cli.common import add_common_flags, add_registry_flags, store_options
from trustbuild.errors import UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.store import Store, abort_write
from trustbuild.store.location import Location, parse_location
from trustbuild.store.open import open_store

__all__ = ["Image", "open_image", "add_image_flags"]


@dataclass(frozen=True)
class Image:
    """An opened IMAGE: its store, location and resolved manifest descriptor."""

    store: Store
    location: Location
    subject: Descriptor

    @property
    def where(self) -> str:
        """The repository or layout, for messages."""
        return self.store.describe()


def add_image_flags(p: argparse.ArgumentParser) -> None:
    """IMAGE, -v and the registry flags (no --platform: an index's own digest is used)."""
    p.add_argument("image", metavar="IMAGE", help="docker://REF, REF or oci:DIR[:TAG]")
    add_registry_flags(p, pull_flags=False)
    add_common_flags(p)


@contextmanager
def open_image(args: argparse.Namespace) -> Iterator[Image]:
    """Open ``args.image`` and resolve it once; the store is closed (or, on failure, a layout
    this command created is removed) at the end."""
    from trustbuild.sign.sign import resolve_subject

    location = parse_location(args.image)
    if location.transport == "docker-archive":
        raise UsageError(f"{location}: a docker-archive holds no signatures or attachments; "
                         "use the image in a registry (docker://) or an OCI layout (oci:)")
    store, ref = open_store(location, store_options(args))
    try:
        yield Image(store, location, resolve_subject(store, ref))
        store.close()
    except BaseException:
        abort_write(store)
        raise
