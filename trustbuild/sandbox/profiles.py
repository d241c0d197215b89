"""Security profiles for RUN steps, modelled on the Kubernetes Pod Security Standards.

=============  ============================  ==========================  =========  ==============
profile        seccomp                       capabilities (bounding)     network    no_new_privs
=============  ============================  ==========================  =========  ==============
privileged     none (unconfined)             all                         host       no
baseline       seccomp/build-default.json    Docker's default 14 (*)     host       yes
restricted     seccomp/build-default.json    CHOWN DAC_OVERRIDE FOWNER   none       yes
                                             FSETID SETUID SETGID SETFCAP
=============  ============================  ==========================  =========  ==============

(*) without NET_RAW when the network is the host's: there is no network namespace to confine
raw sockets to. Under every profile, every mount a step sees is nosuid and nodev (only the
bound /dev devices and devpts need dev).

``resolve_profile("baseline", seccomp="unconfined", network="none")`` overrides one part;
the result carries the seccomp profile's digest for the BuildRecord.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from trustbuild._internal.seccomp import load_profile
from trustbuild.errors import SandboxError
from trustbuild.sandbox.spec import ProfileName

__all__ = ["SecurityProfile", "resolve_profile", "PROFILES", "DOCKER_DEFAULT_CAPS",
           "RESTRICTED_CAPS"]

#: Docker's default capability set (moby/oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)
#: What a root step needs to manage files in its own rootfs (see docs/sandbox.md).
RESTRICTED_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "SETFCAP")

PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)
_COMPILED: set[tuple[str, tuple[str, ...], bool]] = set()  # profiles libseccomp accepted
DEFAULT_SECCOMP = "build-default"


@dataclass(frozen=True)
class SecurityProfile:
    """What a RUN step may do: capabilities, seccomp filter, network, no_new_privs."""

    name: str
    capabilities: list[str] = field(default_factory=list)  # names without CAP_
    seccomp_path: str | None = None  # None: unconfined
    seccomp_digest: str = ""  # "sha256:..." of the profile file, "" when unconfined
    network: str = "host"  # "host" | "none"
    no_new_privs: bool = True
    mask_paths: bool = True  # hide /proc/kcore & co. and make /proc/sys read-only

    @property
    def seccomp_name(self) -> str:
        """How the BuildRecord names the seccomp profile: a path or ``unconfined``."""
        return self.seccomp_path or "unconfined"


def _all_caps() -> list[str]:
    from trustbuild.sandbox._linux import CAPABILITIES, last_cap

    top = last_cap()
    return [name for name, nr in CAPABILITIES.items() if nr <= top]


def resolve_profile(name: str, *, seccomp: str | None = None,
                    network: str | None = None, compile_check: bool = True) -> SecurityProfile:
    """The security profile ``name``, with the seccomp profile and network optionally overridden.

    ``seccomp`` is a path, a profile name in ``seccomp/`` (``build-default``), ``unconfined``,
    or None for the profile's default. ``network`` is ``host``, ``none`` or None.
    Raises SandboxError for an unknown profile, network mode or an invalid seccomp profile;
    with ``compile_check`` also for one libseccomp refuses (a 20-50 ms compile, done once per
    process; without it the profile is only read, checked and digested).
    """
    if name not in PROFILES:
        raise SandboxError(
            f"unknown security profile {name!r}: use one of {', '.join(PROFILES)}"
        )
    if network not in (None, "host", "none"):
        raise SandboxError(f"unknown network mode {network!r}: use 'host' or 'none'")
    if name == "privileged":
        caps, default_seccomp, net, nnp = _all_caps(), None, "host", False
    elif name == "baseline":
        caps, default_seccomp, net, nnp = list(DOCKER_DEFAULT_CAPS), DEFAULT_SECCOMP, "host", True
    else:
        caps, default_seccomp, net, nnp = list(RESTRICTED_CAPS), DEFAULT_SECCOMP, "none", True
    net = network or net
    if net == "host" and name != "privileged" and "NET_RAW" in caps:
        # No device cgroup and no network namespace: NET_RAW would let a step sniff and
        # spoof on the host's own interfaces (Docker gives it inside a private netns).
        caps.remove("NET_RAW")
    chosen = default_seccomp if seccomp is None else seccomp
    seccomp_path: str | None = None
    digest = ""
    if chosen and chosen != "unconfined":
        prof = load_profile(chosen)
        # Compile once here so a profile libseccomp rejects fails before anything runs.
        key = (prof.digest, tuple(caps), nnp)
        if compile_check and key not in _COMPILED:
            from trustbuild._internal.seccomp import compile_filter

            compile_filter(prof, capabilities=caps, no_new_privs=nnp)
            _COMPILED.add(key)
        seccomp_path, digest = prof.path, prof.digest
    return SecurityProfile(
        name=name, capabilities=caps, seccomp_path=seccomp_path, seccomp_digest=digest,
        network=net, no_new_privs=nnp, mask_paths=name != "privileged",
    )
