"""Transport options shared by every command that reaches a registry."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from trustbuild.oci.descriptor import Platform

if TYPE_CHECKING:
    from trustbuild.registry.transport import Transport

__all__ = ["StoreOptions", "RegistryTimeouts", "parse_limit"]


@dataclass(frozen=True)
class RegistryTimeouts:
    """How long a registry may keep one response waiting (0 disables a limit).

    ``request``: seconds of waiting for a manifest, tag list, token or other API response;
    ``blob``: the same for one blob download; ``speed_limit``/``speed_time``: abort a response
    that delivers fewer than ``speed_limit`` bytes/s over ``speed_time`` seconds of waiting
    (curl's ``--speed-limit``/``--speed-time``).
    """

    request: float = 120.0
    blob: float = 3600.0
    speed_limit: int = 1024
    speed_time: float = 30.0

    ENV: ClassVar[dict[str, str]] = {
        "request": "TRUSTBUILD_REGISTRY_TIMEOUT",
        "blob": "TRUSTBUILD_REGISTRY_BLOB_TIMEOUT",
        "speed_limit": "TRUSTBUILD_REGISTRY_SPEED_LIMIT",
        "speed_time": "TRUSTBUILD_REGISTRY_SPEED_TIME",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryTimeouts:
        """The defaults, overridden by the ``TRUSTBUILD_REGISTRY_*`` variables that are set."""
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for name, var in cls.ENV.items():
            if env.get(var, "").strip():
                values[name] = parse_limit(env[var], var, integer=name == "speed_limit")
        return cls(**values)  # type: ignore[arg-type]


def parse_limit(text: str, what: str, *, integer: bool = False) -> float:
    """A non-negative number of seconds (or bytes/s); UsageError naming ``what`` otherwise."""
    from trustbuild.errors import UsageError

    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not value >= 0 or value == float("inf"):
        unit = "bytes per second" if integer else "seconds"
        raise UsageError(f"{what}={text!r}: expected a non-negative number of {unit} "
                         "(0 disables the limit)")
    return value


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
    timeouts: RegistryTimeouts = field(default_factory=RegistryTimeouts.from_env)
    # the Transports of the registry stores opened with these options (and copies of them made
    # by dataclasses.replace), one per registry and transport settings: one ping, one token
    # cache and one connection pool per registry for a whole build (registry.store)
    transports: dict[tuple[str, str], Transport] = field(default_factory=dict, compare=False,
                                                         repr=False)

    def transport_key(self) -> str:
        """What a Transport takes from these options: stores whose options agree on it may
        share one."""
        return repr((tuple(self.insecure_registries), self.skip_tls_verify,
                     tuple(self.skip_tls_verify_registries),
                     sorted(self.registry_certificates.items()),
                     sorted(self.registry_client_certs.items()), self.jobs, self.timeouts))
