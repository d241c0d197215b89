"""docker-archive (``docker save`` format): read it as a Store, write one from blobs + a manifest.

An archive is a tar with ``manifest.json`` (``[{"Config", "RepoTags", "Layers"}]``), the config
(``<hex>.json``) and uncompressed layer tars (``<hex>.tar``, ``<id>/layer.tar`` or
``blobs/sha256/<hex>``). :class:`ArchiveReader` presents the image as a Docker schema2 manifest
whose layers are those tars (media type ``application/vnd.docker.image.rootfs.diff.tar``; their
digests are the config's ``diff_ids``). :class:`ArchiveWriter` accepts blobs and one image
manifest through the Store interface, decompresses gzip/zstd layers so every stored tar's sha256
is its ``diff_id``, and on :meth:`ArchiveWriter.close` writes the archive to a temp file renamed
into place. Layers are streamed, never held in memory.

Example::

    reader = ArchiveReader("busybox.tar")
    raw, media_type = reader.get_manifest("")
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
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
from trustbuild.oci.compression import DECOMPRESS_ERRORS, MAGIC_LEN, detect, open_decompressed
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import CHUNK, Digest, Hasher
from trustbuild.oci.manifest import Index, Manifest, dump_json, load_json, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.reference import Reference
from trustbuild.oci.verify import VerifyingReader, copy_verified_to_file

if TYPE_CHECKING:
    from trustbuild.oci.store import BlobSource, Store

__all__ = ["ArchiveReader", "ArchiveWriter", "DOCKER_LAYER_TAR", "archive_manifest"]

DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
_CONFIG_TYPES = (MediaType.DOCKER_CONFIG, MediaType.OCI_CONFIG)


def archive_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """The Docker schema2 manifest an archive's image is presented as (deterministic bytes)."""
    return dump_json(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.DOCKER_MANIFEST,
            "config": {
                "mediaType": MediaType.DOCKER_CONFIG,
                "size": config.size,
                "digest": str(config.digest),
            },
            "layers": [
                {"mediaType": d.media_type, "size": d.size, "digest": str(d.digest)} for d in layers
            ],
        }
    )


class _Slice(io.RawIOBase):
    """A read-only window ``[offset, offset+size)`` of a file, with its own handle."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass(frozen=True)
class _ArchiveEntry:
    """One checked entry of ``manifest.json``."""

    config: str
    repo_tags: list[str]
    layers: list[str]


@dataclass
class _Image:
    raw: bytes
    config: Descriptor
    config_bytes: bytes
    layers: list[tuple[Descriptor, tarfile.TarInfo]]
    repo_tags: list[str]


class ArchiveReader:
    """Read-only Store over a docker-archive file (``ref``: a RepoTag, or '' for the only image)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tmp: Path | None = None
        if not self.path.is_file():
            raise NotFound(f"docker-archive:{self.path}: no such file")
        self._tar_path = self._maybe_decompress()
        try:
            with tarfile.open(self._tar_path, "r:") as tf:
                self._members = {_norm(m.name): m for m in tf.getmembers()}
        except (tarfile.TarError, OSError) as exc:
            self.close()
            raise StoreError(f"{self.describe()}: not a readable tar archive ({exc})") from None
        try:
            self._entries = self._read_manifest_json()
        except BaseException:
            self.close()
            raise
        self._images: dict[int, _Image] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        """``docker-archive:FILE``."""
        return f"docker-archive:{self.path}"

    def _maybe_decompress(self) -> Path:
        with open(self.path, "rb") as f:
            kind = detect(f.read(MAGIC_LEN))
        if kind == "none":
            return self.path
        fd, tmp = tempfile.mkstemp(prefix="trustbuild-archive-", suffix=".tar")
        self._tmp = Path(tmp)
        # removed on close(), or when the reader is garbage-collected without one
        self._finalizer = weakref.finalize(self, os.unlink, tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                _decompress(self.path, out)
        except Exception as exc:
            self.close()
            raise StoreError(f"{self.describe()}: cannot decompress the archive ({exc})") from None
        return self._tmp

    def _member(self, name: str, *, depth: int = 0) -> tarfile.TarInfo:
        m = self._members.get(_norm(name))
        if m is None:
            raise InvalidManifest(
                f"{self.describe()}: manifest.json names {name!r}, which is not in the archive"
            )
        if (m.issym() or m.islnk()) and depth < 8:
            target = (
                m.linkname if m.islnk() else posixpath.join(posixpath.dirname(m.name), m.linkname)
            )
            return self._member(target, depth=depth + 1)
        if not m.isfile():
            raise InvalidManifest(
                f"{self.describe()}: {name!r} is not a regular file in the archive"
            )
        return m

    def _member_bytes(self, name: str, limit: int) -> bytes:
        m = self._member(name)
        if m.size > limit:
            raise InvalidManifest(f"{self.describe()}: {name} is larger than {limit} bytes")
        with _Slice(self._tar_path, m.offset_data, m.size) as s:
            return s.read()

    def _read_manifest_json(self) -> list[_ArchiveEntry]:
        what = f"{self.describe()}: manifest.json"
        if "manifest.json" not in self._members:
            raise InvalidManifest(f"{what} is missing (not a docker save archive?)")
        try:
            entries = json.loads(self._member_bytes("manifest.json", 4 * 1024 * 1024))
        except ValueError as exc:
            raise InvalidManifest(f"{what}: not valid JSON ({exc})") from None
        except RecursionError:
            raise InvalidManifest(f"{what}: JSON nested too deeply") from None
        if not isinstance(entries, list) or not entries:
            raise InvalidManifest(f"{what}: expected a non-empty list of images")
        for i, e in enumerate(entries):
            if not (
                isinstance(e, dict)
                and isinstance(e.get("Config"), str)
                and isinstance(e.get("Layers"), list)
                and all(isinstance(x, str) for x in e["Layers"])
            ):
                raise InvalidManifest(f"{what}: entry {i} needs a Config string and a Layers list")
            tags = e.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidManifest(f"{what}: entry {i}: RepoTags must be a list of strings")
        return [_ArchiveEntry(e["Config"], list(e.get("RepoTags") or []), e["Layers"])
                for e in entries]

    def repo_tags(self) -> list[str]:
        """Every RepoTag in the archive."""
        return [t for e in self._entries for t in e.repo_tags]

    def _select(self, ref: str | None) -> int:
        if not ref:
            if len(self._entries) == 1:
                return 0
            raise NotFound(
                f"{self.describe()}: holds {len(self._entries)} images; name one with "
                f"docker-archive:FILE:REF (tags: {', '.join(self.repo_tags()) or 'none'})"
            )
        if ref.startswith("sha256:"):
            for i in range(len(self._entries)):
                if str(Digest.of(self._image(i).raw)) == ref:
                    return i
            raise NotFound(f"{self.describe()}: no image with manifest digest {ref}")
        try:
            want = Reference.parse(ref)
        except InvalidReference:
            want = None
        for i, e in enumerate(self._entries):
            for t in e.repo_tags:
                try:
                    r = Reference.parse(t)
                except InvalidReference:
                    continue
                if want and (r.name, r.tag) == (want.name, want.tag):
                    return i
        raise NotFound(
            f"{self.describe()}: no image tagged {ref!r} "
            f"(tags: {', '.join(self.repo_tags()) or 'none'})"
        )

    def _image(self, i: int) -> _Image:
        with self._lock:
            if i in self._images:
                return self._images[i]
            e = self._entries[i]
            cfg_bytes = self._member_bytes(e.config, MAX_CONFIG_BYTES)
            cfg = load_json(cfg_bytes, what=f"{self.describe()}: config {e.config}")
            rootfs = cfg.get("rootfs")
            diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
            if not isinstance(diff_ids, list) or len(diff_ids) != len(e.layers):
                raise InvalidManifest(
                    f"{self.describe()}: config {e.config}: rootfs.diff_ids must list "
                    f"one digest per layer ({len(e.layers)} layers)"
                )
            layers: list[tuple[Descriptor, tarfile.TarInfo]] = []
            for name, diff_id in zip(e.layers, diff_ids, strict=True):
                m = self._member(name)
                with _Slice(self._tar_path, m.offset_data, m.size) as s:
                    kind = detect(s.read(MAGIC_LEN))
                if kind in ("gzip", "zstd"):
                    with _Slice(self._tar_path, m.offset_data, m.size) as s:
                        h = Hasher()
                        while chunk := s.read(CHUNK):
                            h.update(chunk)
                    mt = MediaType.DOCKER_LAYER_GZIP if kind == "gzip" else MediaType.OCI_LAYER_ZSTD
                    desc = Descriptor(str(mt), h.digest(), m.size)
                else:
                    try:
                        dg = Digest.parse(str(diff_id))
                    except Exception as exc:
                        raise InvalidManifest(
                            f"{self.describe()}: config diff_id {diff_id!r}: {exc}"
                        ) from None
                    desc = Descriptor(DOCKER_LAYER_TAR, dg, m.size)
                layers.append((desc, m))
            config = Descriptor(MediaType.DOCKER_CONFIG, Digest.of(cfg_bytes), len(cfg_bytes))
            raw = archive_manifest(config, [d for d, _ in layers])
            img = _Image(raw, config, cfg_bytes, layers, list(e.repo_tags))
            self._images[i] = img
            return img

    # ------------------------------------------------------------------ Store (read side)

    def get_manifest(self, ref: str | None) -> tuple[bytes, str]:
        """The image's Docker schema2 manifest (``ref``: RepoTag, manifest digest, or '')."""
        return self._image(self._select(ref)).raw, MediaType.DOCKER_MANIFEST

    def _find(self, digest: Digest) -> tuple[bytes | None, tarfile.TarInfo | None]:
        for i in range(len(self._entries)):
            img = self._image(i)
            if img.config.digest == digest:
                return img.config_bytes, None
            for d, m in img.layers:
                if d.digest == digest:
                    return None, m
        raise NotFound(f"{self.describe()}: no blob {digest}")

    def has_blob(self, digest: Digest) -> bool:
        """True for the config or a layer of an image in the archive."""
        try:
            self._find(digest)
        except NotFound:
            return False
        return True

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """A verifying stream of the config or layer tar."""
        data, member = self._find(desc.digest)
        stream: BinaryIO
        if data is not None:
            stream = io.BytesIO(data)
        else:
            assert member is not None
            stream = cast(BinaryIO, _Slice(self._tar_path, member.offset_data, member.size))
        reader = VerifyingReader(stream, desc, what=f"{self.describe()}: blob {desc.digest}")
        return cast(AbstractContextManager[BinaryIO], reader)

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Copy a blob to ``dest`` (verified, atomic)."""
        with self.open_blob(desc) as src:
            what = f"{self.describe()}: blob {desc.digest}"
            copy_verified_to_file(src, desc, Path(dest), what=what)

    def put_blob(self, desc: Descriptor, source: BlobSource) -> None:
        """Read-only: StoreError."""
        raise StoreError(f"{self.describe()}: opened for reading")

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = ()) -> Descriptor:
        """Read-only: StoreError."""
        raise StoreError(f"{self.describe()}: opened for reading")

    def list_tags(self) -> list[str]:
        """The archive's RepoTags."""
        return self.repo_tags()

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """A docker-archive cannot hold signatures or attestations: always empty."""
        return []

    def delete_tag(self, tag: str) -> None:
        """Read-only: StoreError."""
        raise StoreError(f"{self.describe()}: opened for reading")

    def close(self) -> None:
        """Remove the decompressed copy of a compressed archive, if any."""
        if self._tmp is not None:
            self._finalizer.detach()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


@dataclass
class _Staged:
    path: Path
    diff_id: Digest
    size: int


class ArchiveWriter:
    """Write-only Store that produces a docker-archive on :meth:`close` (``tags``: RepoTags)."""

    def __init__(self, path: str | os.PathLike[str], *, tags: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self._tags = list(tags)
        self._dir: Path | None = None
        self._staged: dict[Digest, _Staged] = {}
        self._manifest: Manifest | None = None
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise StoreError(f"{self.describe()}: {self.path} is a directory")
        if not self.path.parent.is_dir():
            raise NotFound(f"{self.describe()}: directory {self.path.parent} does not exist")

    def describe(self) -> str:
        """``docker-archive:FILE``."""
        return f"docker-archive:{self.path}"

    def _workdir(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(
                    tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-")
                )
            return self._dir

    def get_manifest(self, ref: str | None) -> tuple[bytes, str]:
        """Write-only: NotFound."""
        raise NotFound(f"{self.describe()}: opened for writing")

    def has_blob(self, digest: Digest) -> bool:
        """True if the blob was already staged."""
        return digest in self._staged

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        """Write-only: NotFound."""
        raise NotFound(f"{self.describe()}: opened for writing")

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Write-only: NotFound."""
        raise NotFound(f"{self.describe()}: opened for writing")

    def put_blob(self, desc: Descriptor, source: BlobSource) -> None:
        """Stage a blob, verified; compressed layers are decompressed (sha256 = diff_id)."""
        if desc.digest in self._staged:
            return
        work = self._workdir()
        what = f"blob {desc.digest} for {self.describe()}"
        if desc.media_type in _CONFIG_TYPES:
            path = work / f"{desc.digest.hex}.json"
            with source() as stream:
                copy_verified_to_file(stream, desc, path, what=what)
            staged = _Staged(path, desc.digest, desc.size)
        else:
            path = work / f"{desc.digest.hex}.tar"
            with source() as stream:
                h = _stage_layer(VerifyingReader(stream, desc, what=what), path, what=what)
            staged = _Staged(path, h.digest(), h.size)
        with self._lock:
            self._staged[desc.digest] = staged

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = ()) -> Descriptor:
        """Accept the one image manifest; returns the descriptor the archive will present."""
        m = parse_manifest(raw, media_type, what=f"manifest for {self.describe()}")
        if isinstance(m, Index):
            raise StoreError(
                f"{self.describe()}: a docker-archive holds one image, not an index "
                "(copy one platform: drop --all)"
            )
        if self._manifest is not None:
            raise StoreError(f"{self.describe()}: already holds an image")
        for d in (m.config, *m.layers):
            if d.digest not in self._staged:
                raise StoreError(
                    f"{self.describe()}: blob {d.digest} was not written before the manifest"
                )
        cfg_path = self._staged[m.config.digest].path
        cfg = load_json(cfg_path.read_bytes(), what=f"{self.describe()}: config {m.config.digest}")
        rootfs = cfg.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        got = [str(self._staged[d.digest].diff_id) for d in m.layers]
        if diff_ids != got:
            raise DigestMismatch(
                f"{self.describe()}: config {m.config.digest} rootfs.diff_ids do not match "
                "the uncompressed layers"
            )
        self._manifest = m
        self._tags += list(tags)
        return self.descriptor()

    def descriptor(self) -> Descriptor:
        """Descriptor of the Docker schema2 manifest the archive presents (as ArchiveReader)."""
        if self._manifest is None:
            raise StoreError(f"{self.describe()}: no image written")
        raw = archive_manifest(self._manifest.config, self._layer_descs())
        return Descriptor(MediaType.DOCKER_MANIFEST, Digest.of(raw), len(raw))

    def _layer_descs(self) -> list[Descriptor]:
        assert self._manifest is not None
        return [
            Descriptor(
                DOCKER_LAYER_TAR, self._staged[d.digest].diff_id, self._staged[d.digest].size
            )
            for d in self._manifest.layers
        ]

    def list_tags(self) -> list[str]:
        """Tags given so far."""
        return list(self._tags)

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """A docker-archive cannot hold referrers: always empty."""
        return []

    def delete_tag(self, tag: str) -> None:
        """Drop a RepoTag that would be written."""
        self._tags = [t for t in self._tags if t != tag]

    def close(self) -> None:
        """Write the archive (temp file renamed into place) if an image was given; clean up."""
        try:
            if self._manifest is not None:
                self._write()
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop everything staged; nothing is written."""
        self._manifest = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._staged.clear()

    def _repo_tags(self) -> list[str]:
        out: list[str] = []
        for t in self._tags:
            try:
                r = Reference.parse(t)
            except InvalidReference:
                raise InvalidReference(
                    f"{self.describe()}: invalid tag {t!r} for RepoTags"
                ) from None
            if r.tag:
                s = Reference(r.registry, r.repository, r.tag).familiar()
                if s not in out:
                    out.append(s)
        return out

    def _write(self) -> None:
        m = self._manifest
        assert m is not None
        cfg_name = f"{m.config.digest.hex}.json"
        layer_names = [f"{self._staged[d.digest].diff_id.hex}.tar" for d in m.layers]
        index = dump_json(
            [{"Config": cfg_name, "RepoTags": self._repo_tags(), "Layers": layer_names}]
        )
        with (
            atomic_file(self.path, prefix=f".{self.path.name}.tmp-", suffix=".tar") as out,
            tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tf,
        ):
            _add_file(tf, cfg_name, self._staged[m.config.digest].path)
            done: set[str] = set()
            for d, name in zip(m.layers, layer_names, strict=True):
                if name not in done:
                    _add_file(tf, name, self._staged[d.digest].path)
                    done.add(name)
            _add_bytes(tf, "manifest.json", index)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime, ti.uid, ti.gid = size, 0o644, 0, 0, 0
    return ti


def _add_file(tf: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as f:
        tf.addfile(_tarinfo(name, os.fstat(f.fileno()).st_size), f)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    tf.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _stage_layer(src: VerifyingReader, dest: Path, *, what: str) -> Hasher:
    """One pass: verify the (possibly compressed) blob, decompress it into ``dest`` and hash the
    tar (its diff_id). ``dest`` appears only when everything checked out."""
    h = Hasher()
    with atomic_file(dest, prefix=".part-") as out:
        try:
            with open_decompressed(cast(BinaryIO, src)) as reader:
                while chunk := reader.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except DECOMPRESS_ERRORS as exc:
            while src.read(CHUNK):  # a blob that is not what it claims: say that instead
                pass
            raise StoreError(f"{what}: layer does not decompress ({exc})") from None
        while src.read(CHUNK):  # to EOF: the digest of the blob as sent is checked here
            pass
    return h


def _decompress(src: Path, out: BinaryIO) -> Hasher:
    """Decompress the file ``src`` (gzip, zstd, bzip2, xz) into ``out``; the output's hasher."""
    h = Hasher()
    with open_decompressed(src) as reader:
        while chunk := reader.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
    return h


def _norm(name: str) -> str:
    n = posixpath.normpath(name.lstrip("/"))
    return n[2:] if n.startswith("./") else n


if TYPE_CHECKING:

    def _conforms(r: ArchiveReader, w: ArchiveWriter) -> tuple[Store, Store]:
        return r, w
