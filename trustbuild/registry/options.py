"""Transport options shared by every command that reaches a registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trustbuild.oci.descriptor import Platform

__all__ = ["StoreOptions"]


@dataclass
class StoreOptions:
    """Transport options shared by all commands (registry flags, platform, parallelism)."""

    insecure_registries: Sequence[str] = ()
    skip_tls_verify: bool = False
    skip_tls_verify_registries: Sequence[str] = ()  # hosts whose TLS is not verified
    registry_certificates: dict[str, str] = field(default_factory=dict)  # host -> CA PEM path
    # host -> (client certificate PEM, key PEM) for mutual TLS (--registry-client-cert)
    registry_client_certs: dict[str, tuple[str, str]] = field(default_factory=dict)
    registry_mirrors: Sequence[str] = ()
    registry_maps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # registry -> mirrors
    skip_default_registry_fallback: bool = False  # mirrors only, never the original registry
    platform: Platform | None = None
    jobs: int = 4
    progress: bool = True
