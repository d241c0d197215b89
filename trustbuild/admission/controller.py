"""The admission decision: every image of a request through the policy's deploy check.

Each distinct image string is parsed, resolved to a digest once in its registry, and checked
with :func:`trustbuild.policy.deploy.check_deploy` on that digest; the first denial becomes
the answer's message. Anything that cannot be checked (bad reference, registry down) denies:
the webhook fails closed.

Example::

    ctl = AdmissionController(load_policy("policies/restricted.yaml"), StoreOptions())
    answer = ctl.review(body)       # AdmissionReview response dict
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from trustbuild.admission.review import (
    AdmissionRequest,
    InvalidReview,
    ReviewAnswer,
    extract_images,
    parse_review,
    response,
)
from trustbuild.errors import TrustbuildError
from trustbuild.oci.reference import Reference
from trustbuild.policy.deploy import check_deploy
from trustbuild.policy.model import Policy, repository_matches
from trustbuild.registry.options import StoreOptions

if TYPE_CHECKING:
    from trustbuild.registry.transport import Transport

__all__ = ["AdmissionController", "ImageVerdict"]

log = logging.getLogger("trustbuild.admission")
_CHECKED_OPERATIONS = ("CREATE", "UPDATE")
_CACHE_MAX = 4096
_MAX_TRANSPORTS = 64


@dataclass(frozen=True)
class ImageVerdict:
    """The deploy check's outcome for one image string."""

    image: str
    allowed: bool
    message: str
    digest: str = ""


class AdmissionController:
    """Applies ``policy.deploy`` to AdmissionReviews (thread-safe).

    ``cache_ttl`` seconds (0: off) remembers which ``repository@digest`` passed the deploy
    check, so the replicas of one rollout do not verify the same signatures again; an image
    pinned by such a digest is then admitted without a registry request, tags are still
    resolved on every review, and denials are never cached. One registry client per registry
    serves all reviews (kept-alive connections, cached tokens).
    """

    def __init__(self, policy: Policy, options: StoreOptions, *, cache_ttl: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.options = options
        self.cache_ttl = cache_ttl
        self._clock = clock
        self._passed: dict[str, float] = {}  # "repo@digest" -> expiry
        self._lock = threading.Lock()
        self._transports: dict[str, Transport] = {}  # registry -> one client (keep-alive, tokens)

    def _transport(self, registry: str) -> Transport:
        """One Transport per registry for all reviews: connections and tokens are reused."""
        from trustbuild.registry.transport import Transport

        with self._lock:
            t = self._transports.get(registry)
            if t is None:
                if len(self._transports) >= _MAX_TRANSPORTS:  # many registries: start over
                    for old in self._transports.values():
                        old.close()
                    self._transports.clear()
                opts = replace(self.options, jobs=max(self.options.jobs, 16))  # pool size
                t = self._transports[registry] = Transport(registry, options=opts)
            return t

    def close(self) -> None:
        """Release the registry connections."""
        with self._lock:
            for t in self._transports.values():
                t.close()
            self._transports.clear()

    def _cached(self, key: str) -> bool:
        if self.cache_ttl <= 0:
            return False
        with self._lock:
            expiry = self._passed.get(key)
            if expiry is not None and expiry <= self._clock():
                del self._passed[key]
                return False
            return expiry is not None

    def _remember(self, key: str) -> None:
        if self.cache_ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            if len(self._passed) >= _CACHE_MAX:
                for k in [k for k, exp in self._passed.items() if exp <= now] or \
                        list(self._passed)[: _CACHE_MAX // 2]:
                    del self._passed[k]
            self._passed[key] = now + self.cache_ttl

    def check_image(self, image: str) -> ImageVerdict:
        """Resolve ``image`` to a digest once and run the deploy check on that digest.

        Pod images are hostile input: they are parsed as registry references only (never as
        ``oci:``/``docker-archive:`` locations, which would read the webhook's own files).
        """
        from trustbuild.registry.store import RegistryStore
        from trustbuild.sign.sign import resolve_subject

        try:
            ref = Reference.parse(image)
        except TrustbuildError as exc:
            return ImageVerdict(image, False, f"image {image}: {exc}")
        allowed = self.policy.deploy.allowed_repositories
        if allowed and not repository_matches(ref.name, allowed):
            # denied before any request: the webhook only talks to allowed registries
            return ImageVerdict(image, False, f"image {image}: allowed-repository: {ref.name} "
                                              "is not in spec.deploy.allowedRepositories")
        if ref.digest is not None and self._cached(f"{ref.name}@{ref.digest}"):
            # content-addressed and passed within the TTL: no registry request at all
            return ImageVerdict(image, True, "", str(ref.digest))
        store = RegistryStore(ref.registry, ref.repository, self.options,
                              transport=self._transport(ref.registry))
        try:
            subject = resolve_subject(store, str(ref.digest) if ref.digest else ref.tag)
            digest = str(subject.digest)
            if ref.digest is not None and digest != str(ref.digest):
                return ImageVerdict(image, False, f"image {image}: the registry returned a "
                                                  f"manifest with digest {digest}")
            # the tag is part of the key: a signedIdentity (matchRepoDigestOrExact) may depend on it
            key = f"{ref.name}:{ref.tag or ''}@{digest}"
            if self._cached(key):
                return ImageVerdict(image, True, "", digest)
            report = check_deploy(self.policy, store, digest, repository=ref.name,
                                  image=f"{ref.name}@{digest}", image_reference=str(ref))
        except TrustbuildError as exc:
            return ImageVerdict(image, False, f"image {image}: cannot be verified: {exc}")
        finally:
            store.close()
        if report.denied:
            first = report.denied[0]
            return ImageVerdict(image, False, f"image {image} ({digest}): {first.id}: "
                                              f"{first.message}", digest)
        self._remember(f"{ref.name}:{ref.tag or ''}@{digest}")
        return ImageVerdict(image, True, "", digest)

    def decide(self, req: AdmissionRequest) -> ReviewAnswer:
        """The AdmissionReview response for a parsed request."""
        if req.operation not in _CHECKED_OPERATIONS:
            return response(req.uid, allowed=True)
        try:
            uses = extract_images(req)
            # An UPDATE is judged on the images it brings: one already in the old object was
            # admitted then, so a label change never fails on a registry outage.
            before = ({u.image for u in extract_images(req, old=True)}
                      if req.operation == "UPDATE" else set())
        except InvalidReview as exc:
            return response(req.uid, allowed=False, code=400,
                            message=f"trustbuild policy {self.policy.name}: {exc}")
        verdicts: dict[str, ImageVerdict] = {}
        for use in uses:
            if use.image in before:
                continue
            if use.image not in verdicts:
                verdicts[use.image] = self.check_image(use.image)
            v = verdicts[use.image]
            if not v.allowed:
                msg = f"trustbuild policy {self.policy.name} denied {use.where}: {v.message}"
                log.info("deny %s %s/%s uid=%s: %s", req.kind, req.namespace, req.name,
                         req.uid, msg)
                return response(req.uid, allowed=False, message=msg)
        log.info("allow %s %s/%s uid=%s (%d images)", req.kind, req.namespace, req.name,
                 req.uid, len(verdicts))
        return response(req.uid, allowed=True)

    def review(self, body: bytes) -> ReviewAnswer:
        """Parse a request body and decide; InvalidReview when the body is not a review."""
        return self.decide(parse_review(body))
