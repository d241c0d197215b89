"""OCI image layout store: ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>`` in a directory.

Tags are the ``org.opencontainers.image.ref.name`` annotation of ``index.json`` entries; setting a
tag that exists moves it. Every write is atomic (temp file + rename) and ``index.json`` updates are
serialised with ``flock`` on the layout directory. Blobs are verified when written and when read.

Signatures and attestations in a layout (how ``sign``/``attest`` store them here):

- OCI 1.1 referrers (Sigstore bundles, attestations with a ``subject``) are written with
  ``put_manifest(raw, mt)`` and no tag: they get an *untagged* entry in ``index.json``, and
  :meth:`LayoutStore.referrers` finds them by scanning the ``subject`` of the manifests listed
  there (the layout has no referrers API).
- cosign-style signatures are ordinary manifests tagged ``sha256-<hex>.sig`` (``.att`` for
  attestations), i.e. an ``index.json`` entry whose ``ref.name`` is that tag.

Example::

    store = LayoutStore("/tmp/layout")
    raw, media_type = store.get_manifest("latest")
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from trustbuild._internal.atomic import atomic_file
from trustbuild.errors import (
    DigestMismatch,
    InvalidManifest,
    InvalidReference,
    NotFound,
    StoreError,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import (
    MAX_MANIFEST_BYTES,
    Index,
    Manifest,
    dump_json,
    load_json,
    parse_manifest,
)
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.verify import VerifyingReader, check_bytes, copy_verified_to_file

if TYPE_CHECKING:
    from trustbuild.oci.store import BlobSource, Store

__all__ = ["LayoutStore", "REF_NAME", "LAYOUT_VERSION"]

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
# OCI image-layout ``ref.name`` grammar (component separators include ':' '@' '+').
_REF_NAME = re.compile(
    r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$"
)
_FOREIGN = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)


class LayoutStore:
    """A :class:`~trustbuild.oci.store.Store` over an OCI image layout directory.

    The directory is created on the first write; reading a missing layout is NotFound.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._existed = (self.root / "oci-layout").exists()
        # the outermost directory a write would create: abort() removes exactly that
        self._created_top: Path | None = None
        if not self._existed:
            top = self.root.absolute()
            while not top.parent.exists() and top.parent != top:
                top = top.parent
            self._created_top = None if top.exists() else top

    # ------------------------------------------------------------------ naming and files

    def describe(self) -> str:
        """``oci:DIR``."""
        return f"oci:{self.root}"

    def blob_path(self, digest: Digest) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        return self.root / "blobs" / digest.algorithm / digest.hex

    def exists(self) -> bool:
        """True if the directory holds an OCI layout."""
        return (self.root / "oci-layout").is_file()

    def _require(self) -> None:
        if not self.exists():
            if self.root.exists() and not self.root.is_dir():
                raise StoreError(f"{self.describe()}: {self.root} is not a directory")
            raise NotFound(
                f"{self.describe()}: no OCI image layout there (missing oci-layout file)"
            )
        try:
            marker = load_json(
                (self.root / "oci-layout").read_bytes(), what=f"{self.describe()}/oci-layout"
            )
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot read oci-layout: {exc.strerror}") from None
        if not isinstance(marker.get("imageLayoutVersion"), str):
            raise InvalidManifest(f"{self.describe()}/oci-layout: missing imageLayoutVersion")

    def _ensure(self) -> None:
        """Create the layout (idempotent)."""
        if self.exists():
            return
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.describe()}: {self.root} exists and is not a directory")
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            if not (self.root / "index.json").exists():
                _atomic_write(
                    self.root / "index.json",
                    dump_json(
                        {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX, "manifests": []}
                    ),
                )
            _atomic_write(
                self.root / "oci-layout", dump_json({"imageLayoutVersion": LAYOUT_VERSION})
            )
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create the layout: {exc}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ index.json

    def index_entries(self) -> list[Descriptor]:
        """The descriptors listed in ``index.json`` (tagged and untagged)."""
        self._require()
        path = self.root / "index.json"
        what = f"{self.describe()}/index.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InvalidManifest(f"{what}: missing") from None
        obj = load_json(raw, what=what)
        ms = obj.get("manifests", [])
        if not isinstance(ms, list):
            raise InvalidManifest(f"{what}: 'manifests' must be a list")
        return [Descriptor.from_json(m, where=f"{what}: manifests[{i}]") for i, m in enumerate(ms)]

    def _write_index(self, entries: list[Descriptor]) -> None:
        path = self.root / "index.json"
        try:
            obj = load_json(path.read_bytes(), what=f"{self.describe()}/index.json")
        except FileNotFoundError:
            obj = {"schemaVersion": 2}
        obj.setdefault("schemaVersion", 2)
        obj["mediaType"] = MediaType.OCI_INDEX
        obj["manifests"] = [e.to_json() for e in entries]
        _atomic_write(path, dump_json(obj))

    # ------------------------------------------------------------------ reading

    def resolve(self, ref: str | None) -> Descriptor:
        """The descriptor for a tag, a digest, or (empty ``ref``) the layout's only manifest."""
        entries = self.index_entries()
        if not ref:
            if len(entries) == 1:
                return entries[0]
            tags = sorted({t for e in entries if (t := _ref_name(e))})
            raise NotFound(
                f"{self.describe()}: holds {len(entries)} images; name one with "
                f"oci:{self.root}:TAG (tags: {', '.join(tags) or 'none'})"
            )
        if ref.startswith(("sha256:", "sha512:")):
            dg = Digest.parse(ref)
            for e in entries:
                if e.digest == dg:
                    return e
            path = self.blob_path(dg)
            if not path.is_file():
                raise NotFound(f"{self.describe()}: no manifest {dg}")
            size = path.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                raise InvalidManifest(
                    f"{self.describe()}@{dg}: larger than {MAX_MANIFEST_BYTES} bytes"
                )
            raw = self._read_blob_bytes(Descriptor(MediaType.OCI_MANIFEST, dg, size))
            obj = load_json(raw, what=f"{self.describe()}@{dg}")
            mt = obj.get("mediaType") or (
                MediaType.OCI_INDEX if "manifests" in obj else MediaType.OCI_MANIFEST
            )
            return Descriptor(str(mt), dg, size)
        for e in entries:
            if _ref_name(e) == ref:
                return e
        raise NotFound(
            f"{self.describe()}: no image tagged {ref!r} (tags: "
            f"{', '.join(sorted(self.list_tags())) or 'none'})"
        )

    def get_manifest(self, ref: str | None) -> tuple[bytes, str]:
        """Raw bytes and media type of the manifest at tag/digest ``ref`` (verified)."""
        desc = self.resolve(ref)
        if desc.size > MAX_MANIFEST_BYTES:
            raise InvalidManifest(
                f"{self.describe()}@{desc.digest}: larger than {MAX_MANIFEST_BYTES} bytes"
            )
        return self._read_blob_bytes(desc), desc.media_type

    def _read_blob_bytes(self, desc: Descriptor) -> bytes:
        what = f"{self.describe()}: blob {desc.digest}"
        try:
            data = self.blob_path(desc.digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{what} is missing from the layout") from None
        check_bytes(data, desc, what=what)
        return data

    def has_blob(self, digest: Digest) -> bool:
        """True if ``blobs/<alg>/<hex>`` exists."""
        return self.blob_path(digest).is_file()

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A verifying stream of the blob (DigestMismatch at EOF if it was altered or truncated)."""
        try:
            f = open(self.blob_path(desc.digest), "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError:
            raise NotFound(
                f"{self.describe()}: blob {desc.digest} is missing from the layout"
            ) from None
        reader = VerifyingReader(
            cast(BinaryIO, f), desc, what=f"{self.describe()}: blob {desc.digest}"
        )
        return cast(AbstractContextManager[BinaryIO], reader)

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Copy the blob to ``dest`` (verified, atomic)."""
        with self.open_blob(desc) as src:
            what = f"{self.describe()}: blob {desc.digest}"
            copy_verified_to_file(src, desc, Path(dest), what=what)

    def list_tags(self) -> list[str]:
        """Every ``ref.name`` in ``index.json``."""
        if not self.exists():
            return []
        return [t for e in self.index_entries() if (t := _ref_name(e))]

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests listed in ``index.json`` whose ``subject`` is ``digest``.

        Each result carries ``artifactType`` (the manifest's, else its config media type) and the
        manifest's annotations, as the registry referrers API returns them. Unreadable entries
        are skipped.
        """
        if not self.exists():
            return []
        out: list[Descriptor] = []
        seen: set[Digest] = set()
        for e in self.index_entries():
            if e.digest in seen or e.size > MAX_MANIFEST_BYTES:
                continue
            seen.add(e.digest)
            try:
                m = parse_manifest(self._read_blob_bytes(e), e.media_type, what=str(e.digest))
            except (NotFound, InvalidManifest, StoreError, DigestMismatch):
                continue
            if m.subject is None or m.subject.digest != digest:
                continue
            declared = m.data.get("artifactType")
            at = (
                (m.artifact_type or m.config.media_type)
                if isinstance(m, Manifest)
                else declared if isinstance(declared, str) else None
            )
            if artifact_type and at != artifact_type:
                continue
            out.append(
                Descriptor(
                    m.media_type, m.digest, len(m.raw), m.annotations or None, artifact_type=at
                )
            )
        return out

    # ------------------------------------------------------------------ writing

    def put_blob(self, desc: Descriptor, source: BlobSource) -> None:
        """Store a blob, verified against ``desc`` (skipped if present)."""
        self._ensure()
        dest = self.blob_path(desc.digest)
        if dest.is_file():
            return
        with source() as stream:
            copy_verified_to_file(
                stream, desc, dest, what=f"blob {desc.digest} for {self.describe()}"
            )

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = ()) -> Descriptor:
        """Store a manifest/index (its blobs must be present) and point ``tags`` at it.

        With no tag it gets an untagged ``index.json`` entry (so referrers and untagged copies stay
        reachable); untagged entries that are children of a newly written index are dropped.
        """
        for t in tags:
            _check_tag(t)
        m = parse_manifest(raw, media_type, what=f"manifest for {self.describe()}")
        mt = m.media_type
        self._ensure()
        for child in _children(m):
            if (
                child.media_type not in _FOREIGN
                and not child.urls
                and not self.has_blob(child.digest)
            ):
                raise StoreError(
                    f"{self.describe()}: cannot write manifest {m.digest}: "
                    f"blob {child.digest} is not in the layout"
                )
        dest = self.blob_path(m.digest)
        if not dest.is_file():
            _atomic_write(dest, raw)
        desc = Descriptor(
            mt,
            m.digest,
            len(raw),
            artifact_type=m.artifact_type if isinstance(m, Manifest) else None,
        )
        child_digests = {c.digest for c in m.manifests} if isinstance(m, Index) else set()
        with self._locked():
            entries = self.index_entries()
            keep = [
                e
                for e in entries
                if _ref_name(e) not in tags
                and not (_ref_name(e) is None and e.digest in child_digests)
                and not (tags and _ref_name(e) is None and e.digest == m.digest)
            ]
            if tags:
                keep += [
                    Descriptor(
                        mt, m.digest, len(raw), {REF_NAME: t}, artifact_type=desc.artifact_type
                    )
                    for t in tags
                ]
            elif not any(e.digest == m.digest for e in keep):
                keep.append(desc)
            self._write_index(keep)
        return desc

    def delete_tag(self, tag: str) -> None:
        """Drop the ``index.json`` entry named ``tag`` (blobs stay); no-op if absent."""
        if not self.exists():
            return
        with self._locked():
            entries = self.index_entries()
            keep = [e for e in entries if _ref_name(e) != tag]
            if len(keep) != len(entries):
                self._write_index(keep)

    def delete_manifest(self, digest: Digest) -> None:
        """Drop every ``index.json`` entry for ``digest`` (blobs stay); no-op if absent."""
        if not self.exists():
            return
        with self._locked():
            entries = self.index_entries()
            keep = [e for e in entries if e.digest != digest]
            if len(keep) != len(entries):
                self._write_index(keep)

    def abort(self) -> None:
        """Undo a failed write into a layout this store created (an existing one is left as is).

        Directories the write created are removed; in a directory that existed but held no
        layout, only ``oci-layout``, ``index.json`` and ``blobs/`` are.
        """
        if self._existed:
            return
        if self._created_top is not None:
            shutil.rmtree(self._created_top, ignore_errors=True)
            return
        for name in ("oci-layout", "index.json"):
            (self.root / name).unlink(missing_ok=True)
        shutil.rmtree(self.root / "blobs", ignore_errors=True)

    def close(self) -> None:
        """Nothing to flush: every write is already complete."""


def _ref_name(d: Descriptor) -> str | None:
    return (d.annotations or {}).get(REF_NAME)


def _check_tag(tag: str) -> None:
    if not _REF_NAME.match(tag):
        raise InvalidReference(
            f"invalid OCI layout tag {tag!r}: use letters, digits and . _ - : @ + /"
        )


def _children(m: Manifest | Index) -> list[Descriptor]:
    if isinstance(m, Index):
        return list(m.manifests)
    return [m.config, *m.layers]


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        f.write(data)


if TYPE_CHECKING:

    def _conforms(store: LayoutStore) -> Store:
        return store
