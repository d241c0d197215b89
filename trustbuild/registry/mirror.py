"""Pull-through mirrors for Docker Hub (``--registry-mirror HOST``, like dockerd's) and for any
registry (Kaniko's ``--registry-map REGISTRY=MIRROR``).

Only reads go through mirrors (manifests and blobs), tried in the order given and
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
    """A mirror spec as (host, insecure).

    ``https://mirror.example/`` -> (``mirror.example``, False);
    ``http://h:5000`` -> (h:5000, True).
    """
    s = spec.strip()
    insecure = s.startswith("http://")
    if "://" in s:
        s = s.split("://", 1)[1]
    return s.split("/", 1)[0], insecure


def mirror_transports(registry: str, options: StoreOptions, *,
                      retry: RetryPolicy) -> list[Transport]:
    """One Transport per mirror of ``registry``: ``--registry-map`` entries for it, then (for
    Docker Hub) ``--registry-mirror`` ones; none when it has no mirror."""
    hub = registry in (DEFAULT_REGISTRY, "index.docker.io")
    maps = getattr(options, "registry_maps", None) or {}
    specs = [*maps.get(DEFAULT_REGISTRY if hub else registry, ())]
    if hub:
        specs += [*options.registry_mirrors]
    if not specs:
        return []
    out = []
    for spec in specs:
        host, insecure = mirror_host(spec)
        if not host:
            continue
        opts = options
        if insecure:
            opts = dataclasses.replace(
                options, insecure_registries=(*options.insecure_registries, host))
        out.append(Transport(host, options=opts, credentials=_UNSET, retry=retry))
    return out
