"""``RegistryStore``: the :class:`~trustbuild.oci.store.Store` of one registry repository.

Reads are verified: a manifest asked for by digest (or served with ``Docker-Content-Digest``)
must hash to it, and blobs are streamed through :mod:`trustbuild.oci.verify` so a mismatch
raises DigestMismatch and leaves no file. Writes go blobs first (HEAD, then cross-repository
mount or upload), manifest last.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar
from urllib.parse import urljoin

from trustbuild._internal.retry import DEFAULT_POLICY, RetryPolicy, retry_call
from trustbuild.errors import (
    DigestMismatch,
    InvalidManifest,
    InvalidReference,
    NotFound,
    RegistryError,
    TrustbuildError,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import MAX_MANIFEST_BYTES, load_json, parse_manifest
from trustbuild.oci.mediatype import ACCEPT_MANIFESTS, MediaType
from trustbuild.oci.reference import _REPO, _TAG
from trustbuild.oci.store import BlobSource
from trustbuild.oci.verify import VerifyingReader, check_bytes, copy_verified_to_file
from trustbuild.registry import referrers as _ref
from trustbuild.registry.challenge import repository_scope
from trustbuild.registry.credentials import Credentials
from trustbuild.registry.httpclient import HTTP_ERRORS, Response
from trustbuild.registry.mirror import mirror_transports
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.response import connection_error, read_limited
from trustbuild.registry.transport import _UNSET, Transport, Unset
from trustbuild.registry.upload import DEFAULT_CHUNK_SIZE, upload_blob

if TYPE_CHECKING:
    from trustbuild.oci.store import Store

__all__ = ["RegistryStore"]

_GENERIC_TYPES = ("application/json", "application/octet-stream", "text/plain", "")
_REDIRECTS = (301, 302, 303, 307, 308)
_T = TypeVar("_T")


def _is_digest(ref: str) -> bool:
    return ":" in ref


def _check_ref(ref: str, registry: str, repository: str) -> str:
    """A tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``) or a valid digest; InvalidReference else."""
    if _is_digest(ref):
        try:
            Digest.parse(ref)
        except TrustbuildError as exc:
            raise InvalidReference(f"{registry}/{repository}@{ref}: {exc}") from None
    elif not _TAG.match(ref or ""):
        raise InvalidReference(f"invalid tag {ref!r} for {registry}/{repository}: letters, digits, "
                               "'_', '.', '-' (not first), at most 128")
    return ref


_POOL_LOCK = threading.Lock()


def shared_transport(registry: str, options: StoreOptions) -> Transport:
    """The Transport that every store opened with ``options`` (default credentials and retries)
    uses for ``registry``: one ping, one token cache, one connection pool. It lives as long as
    ``options``."""
    key = (registry, options.transport_key())
    with _POOL_LOCK:
        transport = options.transports.get(key)
        if transport is None:
            transport = options.transports[key] = Transport(registry, options=options)
        return transport


class RegistryStore:
    """One repository on a registry, e.g. ``RegistryStore("127.0.0.1:5000", "app", opts)``.

    Keyword-only extras: ``credentials`` (default: docker config.json), ``retry`` (a
    RetryPolicy), ``chunk_size`` (blobs larger than this are uploaded in PATCH chunks of this
    size), ``transport`` (share one Transport, hence one token cache, between repositories).
    ``stats`` counts blobs ``present`` / ``mounted`` / ``uploaded`` and ``manifests`` pushed.
    """

    def __init__(self, registry: str, repository: str, options: StoreOptions, *,
                 credentials: Credentials | None | Unset = _UNSET,
                 retry: RetryPolicy = DEFAULT_POLICY,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, transport: Transport | None = None) -> None:
        if not _REPO.match(repository or ""):
            raise InvalidReference(f"invalid repository name {repository!r} for {registry}: "
                                   "lowercase components of [a-z0-9] "
                                   "separated by '/', '.', '_' or '-'")
        self.registry = registry
        self.repository = repository
        self.options = options
        self.chunk_size = max(1, chunk_size)
        pooled = transport is None and credentials is _UNSET and retry is DEFAULT_POLICY
        self._owns_transport = transport is None and not pooled
        if transport is None:
            transport = shared_transport(registry, options) if pooled else Transport(
                registry, options=options, credentials=credentials, retry=retry)
        self.transport = transport
        self._mirrors = mirror_transports(registry, options, retry=retry)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._mount_source: str | None = None
        self._pull = (repository_scope(repository, "pull"),)
        self._push = (repository_scope(repository, "pull,push"),)

    # ------------------------------------------------------------------ naming

    def describe(self) -> str:
        """``docker://host/repo``."""
        return f"docker://{self.registry}/{self.repository}"

    def _name(self, ref: str) -> str:
        return f"{self.describe()}{'@' if _is_digest(ref) else ':'}{ref}"

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def ping(self) -> None:
        """``GET /v2/``: checks the registry answers and learns how to authenticate."""
        self.transport.ping()

    def close(self) -> None:
        """Release connections (a shared Transport, or one passed in by the caller, stays open)."""
        for t in self._mirrors:
            t.close()
        if self._owns_transport:
            self.transport.close()

    # ------------------------------------------------------------------ manifests

    def _readers(self) -> list[Transport]:
        """Mirrors first (Docker Hub, or ``--registry-map``), then the registry itself (unless
        ``skip_default_registry_fallback``)."""
        if self._mirrors and self.options.skip_default_registry_fallback:
            return list(self._mirrors)
        return [*self._mirrors, self.transport]

    def _from_readers(self, fn: Callable[[Transport], _T]) -> _T:
        """``fn`` on each reader in turn; a mirror's failure falls through to the next one."""
        readers = self._readers()
        for t in readers[:-1]:
            try:
                return fn(t)
            except (NotFound, RegistryError, DigestMismatch, InvalidManifest):
                continue
        return fn(readers[-1])

    def get_manifest(self, ref: str) -> tuple[bytes, str]:
        """Raw bytes and media type at tag or digest ``ref``; verified; NotFound if absent."""
        _check_ref(ref, self.registry, self.repository)
        return self._from_readers(lambda t: self._get_manifest(t, ref))

    def _get_manifest(self, transport: Transport, ref: str) -> tuple[bytes, str]:
        want = Digest.parse(ref) if _is_digest(ref) else None
        resp = transport.request(
            "GET", f"/v2/{self.repository}/manifests/{ref}", scopes=self._pull,
            expect=(200, 404), headers={"Accept": ACCEPT_MANIFESTS}, stream=True)
        try:
            if resp.status_code == 404:
                raise NotFound(f"manifest {self._name(ref)} not found")
            raw = read_limited(resp, MAX_MANIFEST_BYTES + 1)
        finally:
            resp.close()
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"manifest {self._name(ref)}: "
                                  f"larger than {MAX_MANIFEST_BYTES} bytes")
        if want is not None:
            check_bytes(raw, want, what=f"manifest {self._name(ref)}")
        header = resp.headers.get("Docker-Content-Digest")
        if header and want is None:
            try:
                served = Digest.parse(header)
            except Exception:
                served = None
            if served is not None:
                check_bytes(raw, served, what=f"manifest {self._name(ref)} (Docker-Content-Digest)")
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype in _GENERIC_TYPES:
            mt = load_json(raw, what=f"manifest {self._name(ref)}").get("mediaType")
            ctype = mt if isinstance(mt, str) and mt else MediaType.OCI_MANIFEST
        return raw, ctype

    def resolve(self, ref: str) -> Descriptor:
        """Descriptor (media type, digest, size) of the manifest at ``ref``, read and verified."""
        raw, mt = self.get_manifest(ref)
        return Descriptor(mt, Digest.of(raw), len(raw))

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = (),
                     update_referrers: bool = True) -> Descriptor:
        """PUT the manifest under each tag (by digest when no tags); returns its descriptor.

        If it has a ``subject`` and the registry did not answer with ``OCI-Subject`` (no
        referrers API), the subject's ``sha256-<hex>`` fallback index is updated too.
        """
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"manifest for {self.describe()}: "
                                  f"larger than {MAX_MANIFEST_BYTES} bytes")
        digest = Digest.of(raw)
        refs = [_check_ref(t, self.registry, self.repository) for t in tags] or [str(digest)]
        subject_header: str | None = None
        for ref in refs:
            resp = self.transport.request(
                "PUT", f"/v2/{self.repository}/manifests/{ref}", scopes=self._push,
                expect=(201, 202, 204), headers={"Content-Type": media_type}, body=raw)
            served = resp.headers.get("Docker-Content-Digest")
            subject_header = resp.headers.get("OCI-Subject") or subject_header
            resp.close()
            if served and served != str(digest):
                raise DigestMismatch(f"registry stored manifest {self._name(ref)} as {served}, "
                                     f"expected {digest}")
            self._count("manifests")
        desc = Descriptor(media_type, digest, len(raw))
        if update_referrers and not subject_header:
            self._maybe_update_referrers(raw, media_type)
        return desc

    def _maybe_update_referrers(self, raw: bytes, media_type: str) -> None:
        try:
            parsed = parse_manifest(raw, media_type, what="manifest")
        except InvalidManifest:
            return
        if parsed.subject is None:
            return
        _ref.update_referrers_tag(self, parsed.subject.digest,
                                  _ref.referrer_descriptor(raw, media_type))

    def delete_manifest(self, digest: Digest) -> None:
        """DELETE the manifest by digest (the registry also drops every tag pointing at it)."""
        resp = self.transport.request("DELETE", f"/v2/{self.repository}/manifests/{digest}",
                                      scopes=(repository_scope(self.repository, "delete"),
                                              *self._push), expect=(200, 202, 404))
        resp.close()

    def delete_tag(self, tag: str) -> None:
        """Remove ``tag``; no-op if absent.

        Tries the spec's ``DELETE /manifests/<tag>`` first; registries that refuse it
        (distribution 2.x answers 400/405) get ``DELETE /manifests/<digest>``, which removes the
        manifest and so every tag pointing at it: if other tags share the digest a RegistryError
        is raised instead of deleting them.
        """
        path = f"/v2/{self.repository}/manifests/{_check_ref(tag, self.registry, self.repository)}"
        scopes = (repository_scope(self.repository, "delete"), *self._push)
        resp = self.transport.request("DELETE", path, scopes=scopes,
                                      expect=(200, 202, 400, 404, 405))
        status = resp.status_code
        resp.close()
        if status in (200, 202):
            return
        try:
            digest = self.resolve(tag).digest
        except NotFound:
            return
        sharing = [t for t in self.list_tags() if t != tag and self._tag_digest(t) == digest]
        if sharing:
            raise RegistryError(f"cannot delete tag {self._name(tag)} alone: this registry deletes "
                                f"by digest and {', '.join(sharing[:3])} "
                                f"point at the same {digest}")
        self.delete_manifest(digest)

    def _tag_digest(self, tag: str) -> Digest | None:
        try:
            return self.resolve(tag).digest
        except NotFound:
            return None

    def list_tags(self) -> list[str]:
        """Every tag, following ``Link`` pagination; [] if the repository does not exist."""
        tags: list[str] = []
        url: str | None = f"/v2/{self.repository}/tags/list"
        for _page in range(10000):
            if url is None:
                break
            resp = self.transport.request("GET", url, scopes=self._pull, expect=(200, 404))
            try:
                if resp.status_code == 404:
                    return tags
                obj = load_json(read_limited(resp, MAX_MANIFEST_BYTES + 1),
                                what=f"tag list of {self.describe()}")
                next_link = resp.link("next")
                base = resp.url
            finally:
                resp.close()
            page = obj.get("tags") or []
            if not isinstance(page, list):
                raise InvalidManifest(f"tag list of {self.describe()}: 'tags' is not a list")
            tags.extend(str(t) for t in page)
            url = urljoin(base, next_link) if next_link else None
        return tags

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: the referrers API, else the tag schema."""
        params = {"artifactType": artifact_type} if artifact_type else None
        url: str | None = f"/v2/{self.repository}/referrers/{digest}"
        found: list[Descriptor] = []
        for _page in range(1000):
            if url is None:
                break
            resp = self.transport.request("GET", url, scopes=self._pull,
                                          expect=(200, 404, 400, 405), params=params,
                                          headers={"Accept": MediaType.OCI_INDEX})
            try:
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
                if resp.status_code != 200 or ctype != MediaType.OCI_INDEX:
                    if found:
                        raise RegistryError(f"referrers of {self._name(str(digest))}: page "
                                            f"{_page + 1} answered {resp.status_code} {ctype}")
                    fallback = _ref.fallback_referrers(self, digest)
                    return _ref.filter_referrers(fallback, artifact_type)
                raw = read_limited(resp, MAX_MANIFEST_BYTES + 1)
                next_link = resp.link("next")
                url = urljoin(resp.url, next_link) if next_link else None
                params = None  # the next link carries its own query
            finally:
                resp.close()
            what = f"referrers of {self._name(str(digest))}"
            entries = load_json(raw, what=what).get("manifests") or []
            if not isinstance(entries, list):
                raise InvalidManifest(f"{what}: 'manifests' must be a list")
            found += [Descriptor.from_json(d, where=f"referrers of {digest}") for d in entries]
        return _ref.filter_referrers(found, artifact_type)

    # ------------------------------------------------------------------ blobs

    def _blob_path(self, digest: Digest) -> str:
        return f"/v2/{self.repository}/blobs/{digest}"

    def has_blob(self, digest: Digest) -> bool:
        """HEAD the blob in this repository: True on 200, False on 404."""
        return self._has_blob(self.transport, digest)

    def _has_blob(self, transport: Transport, digest: Digest) -> bool:
        resp = transport.request("HEAD", self._blob_path(digest), scopes=self._pull,
                                 expect=(200, 404))
        resp.close()
        return resp.status_code == 200

    def _get_blob(self, transport: Transport, desc: Descriptor, *,
                  retry: bool = True) -> Response:
        """GET the blob; redirects (e.g. to object storage) are followed without credentials."""
        resp = transport.request("GET", self._blob_path(desc.digest), scopes=self._pull,
                                 expect=(200, 404, *_REDIRECTS), stream=True, retry=retry,
                                 headers={"Accept-Encoding": "identity"}, allow_redirects=False)
        for _hop in range(5):
            if resp.status_code not in _REDIRECTS:
                break
            target = urljoin(resp.url, resp.headers.get("Location", ""))
            resp.close()
            resp = transport.fetch_unauthenticated(target, expect=(200, 404, *_REDIRECTS),
                                                   headers={"Accept-Encoding": "identity"})
        if resp.status_code == 404:
            resp.close()
            raise NotFound(f"blob {desc.digest} not found in {self.describe()}")
        if resp.status_code != 200:
            resp.close()
            raise RegistryError(f"GET blob {desc.digest} from {self.describe()}: "
                                "too many redirects")
        return resp

    @contextmanager
    def _open_from(self, transport: Transport, desc: Descriptor, *,
                   retry: bool = True) -> Iterator[BinaryIO]:
        resp = self._get_blob(transport, desc, retry=retry)
        try:
            what = f"blob {desc.digest} from {self.describe()}"
            reader = VerifyingReader(_RawReader(resp, transport.host, what),  # type: ignore[arg-type]
                                     desc, what=what)
            yield reader  # type: ignore[misc]
        finally:
            resp.close()

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[BinaryIO]:
        """A verifying stream of the blob: reading to the end raises DigestMismatch if wrong."""
        readers = self._readers()
        transport = readers[-1]
        for t in readers[:-1]:
            try:
                if self._has_blob(t, desc.digest):
                    transport = t
                    break
            except RegistryError:
                continue
        with self._open_from(transport, desc) as stream:
            yield stream

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        """Stream the blob to ``dest`` (temp file + rename); nothing is left on any failure."""

        def fetch(transport: Transport) -> None:
            def attempt() -> None:
                with self._open_from(transport, desc, retry=False) as stream:
                    copy_verified_to_file(stream, desc, dest,
                                          what=f"blob {desc.digest} from {self.describe()}")

            retry_call(attempt, policy=transport.retry)

        self._from_readers(fetch)

    def set_mount_source(self, repository: str | None) -> None:
        """Default ``mount_from`` for later ``put_blob`` calls (a repository on this registry)."""
        self._mount_source = repository

    def put_blob(self, desc: Descriptor, source: BlobSource, *,
                 mount_from: str | None = None) -> None:
        """Upload unless present; mount from ``mount_from`` (same registry) when given."""
        self.push_blob(desc, source, mount_from=mount_from)

    def push_blob(self, desc: Descriptor, source: BlobSource, *,
                  mount_from: str | None = None, absent: bool = False) -> str:
        """:meth:`put_blob`, saying what happened: ``present``, ``mounted`` or ``uploaded``.
        ``absent``: the caller has just seen the blob missing (no HEAD here)."""
        if not absent:
            # HEAD with the push scope: one token serves the HEAD and the upload
            resp = self.transport.request("HEAD", self._blob_path(desc.digest),
                                          scopes=self._push, expect=(200, 404))
            resp.close()
            if resp.status_code == 200:
                self._count("present")
                return "present"
        result = str(upload_blob(self.transport, self.repository, desc, source,
                                 mount_from=mount_from or self._mount_source,
                                 chunk_size=self.chunk_size))
        self._count(result)
        return result


class _RawReader:
    """``resp.raw`` with transport failures turned into temporary one-line RegistryErrors."""

    def __init__(self, resp: Response, host: str, what: str) -> None:
        self._resp = resp
        self._host = host
        self._what = what
        self._got = 0

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` undecoded bytes."""
        try:
            data = self._resp.read(n)
        except HTTP_ERRORS as exc:
            expected = self._resp.headers.get("Content-Length", "?")
            if _is_incomplete(exc):
                raise RegistryError(f"{self._what}: registry {self._host} closed the connection "
                                    f"after {self._got} of {expected} bytes (truncated response)",
                                    temporary=True) from exc
            raise connection_error(self._host, exc) from exc
        self._got += len(data)
        return data

    def close(self) -> None:
        """Close the response."""
        self._resp.close()


def _is_incomplete(exc: BaseException) -> bool:
    cur: BaseException | None = exc
    for _ in range(5):
        if cur is None:
            return False
        if isinstance(cur, http.client.IncompleteRead):
            return True
        cur = cur.__context__ or (cur.args[1] if len(cur.args) > 1
                                  and isinstance(cur.args[1], BaseException) else None)
    return False


if TYPE_CHECKING:
    _check: Store = RegistryStore("h", "r", StoreOptions())
