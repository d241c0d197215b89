"""``ValidatingAdmissionPolicy`` + binding (admissionregistration.k8s.io/v1, Kubernetes 1.30+).

CEL in the API server itself, no webhook: every image of a Pod (containers, initContainers,
ephemeralContainers) must be pinned by digest and come from ``spec.deploy.allowedRepositories``.
CEL cannot verify signatures; pair this with the Kyverno, policy-controller or trustbuild
webhook bundle for that. Workload templates are not checked here: their Pods are, on creation.
"""

from __future__ import annotations

from trustbuild.policy.model import Policy
from trustbuild.policy.render.images import DIGEST_RX, image_regex
from trustbuild.policy.render.manifest import JSONValue, Manifest
from trustbuild.policy.render.options import RenderOptions, dns_name

__all__ = ["render", "API_VERSION", "IMAGES_EXPRESSION"]

API_VERSION = "admissionregistration.k8s.io/v1"

#: Every image string of the Pod as one list(string) (the three lists have different types).
IMAGES_EXPRESSION = (
    "object.spec.containers.map(c, c.image)"
    " + (has(object.spec.initContainers) ? object.spec.initContainers.map(c, c.image) : [])"
    " + (has(object.spec.ephemeralContainers) ?"
    " object.spec.ephemeralContainers.map(c, c.image) : [])"
)


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """The policy and its binding (scoped to ``options.namespace`` when given)."""
    dep = policy.deploy
    name = dns_name("trustbuild", policy.name, "images", limit=63)
    pinned = f"{DIGEST_RX}$"
    validations: list[JSONValue] = [{
        "expression": f"variables.images.all(i, i.matches('{pinned}'))",
        "messageExpression": "'images must be pinned by digest (name@sha256:...): ' + "
                             f"variables.images.filter(i, !i.matches('{pinned}')).join(', ')",
        "reason": "Forbidden",
    }]
    if dep.allowed_repositories:
        rx = image_regex(dep.allowed_repositories)
        validations.append({
            "expression": f"variables.images.all(i, i.matches('{rx}'))",
            "messageExpression": "'images not from an allowed repository "
                                 f"({', '.join(dep.allowed_repositories)}): ' + "
                                 f"variables.images.filter(i, !i.matches('{rx}')).join(', ')",
            "reason": "Forbidden",
        })
    vap: Manifest = {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "annotations": {"trustbuild.dev/policy": policy.name,
                                                   "trustbuild.dev/policy-digest": policy.digest}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["pods", "pods/ephemeralcontainers"],
            }]},
            "variables": [{"name": "images", "expression": IMAGES_EXPRESSION}],
            "validations": validations,
        },
    }
    if options.namespace:
        selector: JSONValue = {"matchLabels": {"kubernetes.io/metadata.name":
                                                    options.namespace}}
    else:
        selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                          "operator": "NotIn", "values": ["kube-system"]}]}
    binding: Manifest = {
        "apiVersion": API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": selector},
        },
    }
    return [vap, binding]
