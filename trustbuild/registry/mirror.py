"""Pull-through mirrors for Docker Hub (``--registry-mirror HOST``, like dockerd's).

Only ``docker.io`` reads go through mirrors (manifests and blobs), tried in the order given and
falling back to the next mirror and finally to Docker Hub when a mirror fails or lacks the
content. Everything read from a mirror is verified exactly like content from the registry itself.
Writes always go to the real registry.
"""

from __future__ import annotations

import dataclasses

from trustbuild._internal.retry import RetryPolicy
from trustbuild.oci.reference import DEFAULT_REGISTRY
from trustbuild.registry.options import StoreOptions
from trustbuild.registry.transport import _UNSET, Transport

__all__ = ["mirror_host", "mirror_transports"]


def mirror_host(spec: str) -> tuple[str, bool]:
    """``https://mirror.example/`` -> (``mirror.example``, False); ``http://h:5000`` -> (h:5000, True)."""
    s = spec.strip()
    insecure = s.startswith("http://")
    if "://" in s:
        s = s.split("://", 1)[1]
    return s.split("/", 1)[0], insecure


def mirror_transports(registry: str, options: StoreOptions, *, retry: RetryPolicy) -> list[Transport]:
    """One Transport per configured mirror when ``registry`` is Docker Hub, else none."""
    if registry not in (DEFAULT_REGISTRY, "index.docker.io") or not options.registry_mirrors:
        return []
    out = []
    for spec in options.registry_mirrors:
        host, insecure = mirror_host(spec)
        if not host:
            continue
        opts = options
        if insecure:
            opts = dataclasses.replace(options, insecure_registries=(*options.insecure_registries, host))
        out.append(Transport(host, options=opts, credentials=_UNSET, retry=retry))
    return out
