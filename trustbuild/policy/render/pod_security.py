"""Pod Security Admission labels: a ``Namespace`` enforcing ``spec.deploy.securityProfile``.

The profile names match the Pod Security Standards (privileged, baseline, restricted); the
default is ``restricted``. enforce, audit and warn use the same level, pinned to ``latest``.
"""

from __future__ import annotations

from trustbuild.policy.model import Policy
from trustbuild.policy.render.manifest import Manifest
from trustbuild.policy.render.options import RenderOptions, require_options

__all__ = ["render", "namespace", "deploy_profile"]

PREFIX = "pod-security.kubernetes.io"


def deploy_profile(policy: Policy) -> str:
    """``spec.deploy.securityProfile`` or ``restricted``."""
    dep = policy.raw.get("spec", {}).get("deploy") or {}
    return str(dep.get("securityProfile") or "restricted")


def namespace(name: str, level: str, *, policy: Policy) -> Manifest:
    """A Namespace with the three Pod Security labels at ``level``."""
    labels = {"app.kubernetes.io/managed-by": "trustbuild"}
    for mode in ("enforce", "audit", "warn"):
        labels[f"{PREFIX}/{mode}"] = level
        labels[f"{PREFIX}/{mode}-version"] = "latest"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"trustbuild.dev/policy": policy.name,
                                     "trustbuild.dev/policy-digest": policy.digest}},
    }


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """The application namespace (``--namespace``) with its labels.

    It also opts in to sigstore policy-controller (``policy.sigstore.dev/include``), which
    only enforces ClusterImagePolicies in namespaces carrying that label.
    """
    require_options("pod-security", options, "namespace")
    assert options.namespace
    ns = namespace(options.namespace, deploy_profile(policy), policy=policy)
    ns["metadata"]["labels"]["policy.sigstore.dev/include"] = "true"
    return [ns]
