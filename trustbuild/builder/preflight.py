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
from collections.abc import Sequence
from urllib.parse import urljoin

from trustbuild.errors import RegistryError, TrustbuildError
from trustbuild.oci.reference import Reference
from trustbuild.registry.options import StoreOptions

__all__ = ["PushPermissionError", "check_push_permissions", "push_targets"]


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
    """Raise PushPermissionError naming the first repository that refuses an upload."""
    from trustbuild.registry.challenge import repository_scope
    from trustbuild.registry.store import RegistryStore

    seen: set[tuple[str, str]] = set()
    for target in targets:
        ref = _repo_ref(target)
        key = (ref.registry, ref.repository)
        if key in seen:
            continue
        seen.add(key)
        store = RegistryStore(ref.registry, ref.repository, options)
        try:
            scopes = (repository_scope(ref.repository, "pull,push"),)
            path = f"/v2/{ref.repository}/blobs/uploads/"
            try:
                resp = store.transport.request("POST", path, scopes=scopes, expect=(202, 201),
                                               headers={"Content-Length": "0"})
            except RegistryError as exc:
                raise PushPermissionError(
                    f"cannot push to {ref.registry}/{ref.repository} ({target}): {exc} -- check "
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
