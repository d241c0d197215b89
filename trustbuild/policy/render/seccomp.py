"""The build seccomp profile (``spec.build.seccompProfile``) as a ConfigMap.

The kubelet reads ``Localhost`` profiles from files under its seccomp root
(``/var/lib/kubelet/seccomp``), not from the API: install ``data[<name>.json]`` on each build
node as ``trustbuild/<name>.json`` (docs/admission.md shows a one-line copy), and the executor
Job refers to it as ``localhostProfile: trustbuild/<name>.json``. The file bytes are kept
exactly, so their digest (annotation) is the one the BuildRecord names.
"""

from __future__ import annotations

from pathlib import Path

from trustbuild.policy.model import Policy
from trustbuild.policy.render.manifest import Manifest
from trustbuild.policy.render.options import RenderOptions, dns_name

__all__ = ["render", "profile_file", "localhost_profile"]

DEFAULT_PROFILE = "build-default"


def profile_file(policy: Policy) -> tuple[str, Path] | None:
    """(name, path) of the policy's build seccomp profile; None when ``unconfined``."""
    from trustbuild._internal.seccomp import find_profile

    chosen = policy.build.seccomp_profile or DEFAULT_PROFILE
    if policy.build.security_profile == "privileged" and not policy.build.seccomp_profile:
        return None
    if chosen == "unconfined":
        return None
    looks_like_path = "/" in chosen or chosen.endswith(".json")
    if looks_like_path and not Path(chosen).is_absolute():
        chosen = str(Path(policy.path).parent / chosen)
    path = find_profile(chosen)
    return path.stem, path


def localhost_profile(name: str) -> str:
    """The ``localhostProfile`` path, relative to the kubelet's seccomp root."""
    return f"trustbuild/{name}.json"


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """A ConfigMap holding the profile JSON (nothing when the build runs unconfined)."""
    from trustbuild._internal.seccomp import load_profile

    found = profile_file(policy)
    if found is None:
        return []
    name, path = found
    prof = load_profile(path)
    return [{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": dns_name("trustbuild-seccomp", name),
            "namespace": options.build_namespace,
            "labels": {"app.kubernetes.io/managed-by": "trustbuild",
                       "app.kubernetes.io/component": "seccomp-profile"},
            "annotations": {"trustbuild.dev/seccomp-digest": prof.digest,
                            "trustbuild.dev/localhost-profile": localhost_profile(name)},
        },
        "data": {f"{name}.json": path.read_text()},
    }]
