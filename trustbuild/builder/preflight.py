"""Fail early: check every push target is reachable and writable before anything is built.

Kaniko's ``CheckPushPermissions`` (go-containerregistry ``remote.CheckPushPermission``): for each
repository, authenticate with the push scope, start a blob upload (``POST
/v2/<repo>/blobs/uploads/``) and cancel it (``DELETE`` of the upload location). Nothing is
written. ``--skip-push-permission-check`` skips it; with ``--no-push`` only the cache repository
(when it is a registry) is checked.

Example::

    check_push_permissions(["registry.example/app:1"], StoreOptions())
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

from trustbuild.errors import RegistryError, TrustbuildError
from trustbuild.oci.reference import Reference
from trustbuild.registry.options import StoreOptions

__all__ = ["PushPermissionError", "check_push_permissions", "push_targets", "start_push_check"]


class PushPermissionError(TrustbuildError):
    """A destination that cannot be pushed to (unreachable, unauthorised, read-only)."""


def push_targets(destinations: Sequence[str], *, no_push: bool, cache: bool,
                 cache_repo: str | None, no_push_cache: bool = False) -> list[str]:
    """The references whose repositories the build will push to (Kaniko's choice of targets)."""
    out: list[str] = [] if no_push else list(destinations)
    if cache and not no_push_cache:
        if cache_repo and not cache_repo.startswith("oci:"):
            out.append(cache_repo)
        elif not cache_repo and destinations and not no_push:
            from trustbuild.builder.cache import cache_repo_for

            out.append(cache_repo_for(None, list(destinations)))
    return out


def _repo_ref(target: str) -> Reference:
    ref = Reference.parse(target.removeprefix("docker://"))
    return ref


def check_push_permissions(targets: Sequence[str], options: StoreOptions) -> None:
    """Raise PushPermissionError naming the first repository (in ``targets`` order) that
    refuses an upload; the repositories are asked at the same time."""
    repos: dict[tuple[str, str], str] = {}
    for target in targets:
        ref = _repo_ref(target)
        repos.setdefault((ref.registry, ref.repository), target)
    if len(repos) == 1:
        _check_one(*next(iter(repos.items())), options)
        return
    with ThreadPoolExecutor(max_workers=min(8, len(repos)),
                            thread_name_prefix="push-check") as pool:
        futures = [pool.submit(_check_one, key, target, options) for key, target in repos.items()]
    for future in futures:
        future.result()


def start_push_check(targets: Sequence[str], options: StoreOptions) -> Callable[[], None]:
    """:func:`check_push_permissions` on a thread of its own, so the build can read its context
    and resolve its base images meanwhile; call the returned function before anything is
    pulled, run or pushed: it waits and raises the check's error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-check")
    try:
        future = pool.submit(check_push_permissions, targets, options)
    finally:
        pool.shutdown(wait=False)
    return future.result


def _check_one(key: tuple[str, str], target: str, options: StoreOptions) -> None:
    """Start a blob upload in repository ``key`` and cancel it; PushPermissionError if refused."""
    from trustbuild.registry.challenge import repository_scope
    from trustbuild.registry.store import RegistryStore

    registry, repository = key
    store = RegistryStore(registry, repository, options)
    try:
        scopes = (repository_scope(repository, "pull,push"),)
        path = f"/v2/{repository}/blobs/uploads/"
        try:
            resp = store.transport.request("POST", path, scopes=scopes, expect=(202, 201),
                                           headers={"Content-Length": "0"})
        except RegistryError as exc:
            raise PushPermissionError(
                f"cannot push to {registry}/{repository} ({target}): {exc} -- check "
                "the destination name and the registry credentials (docker config.json), "
                "or pass --skip-push-permission-check") from exc
        location = resp.headers.get("Location")
        resp.close()
        if location:
            # cancel the upload; registries that cannot cancel let it expire
            with contextlib.suppress(TrustbuildError):
                store.transport.request("DELETE", urljoin(resp.url, location), scopes=scopes,
                                        expect=(200, 202, 204, 404, 405), retry=False).close()
    finally:
        store.close()
