"""``ValidatingWebhookConfiguration`` for ``trustbuild admission serve``.

Pods (including the ephemeral-containers subresource) and the workload kinds whose pod
templates the webhook reads are sent on CREATE and UPDATE; ``failurePolicy: Fail`` so an
unreachable webhook denies, ``sideEffects: None``, AdmissionReview v1 only. The webhook's own
namespace and ``kube-system`` are left out so the webhook can always be (re)started.
"""

from __future__ import annotations

import base64
from typing import Any

from trustbuild.errors import UsageError
from trustbuild.policy.model import Policy
from trustbuild.policy.render.options import RenderOptions, dns_name

__all__ = ["render", "RULES", "WEBHOOK_NAME"]

WEBHOOK_NAME = "deploy-policy.trustbuild.dev"

RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
     "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers",
                   "podtemplates"], "scope": "Namespaced"},
    {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
     "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
     "scope": "Namespaced"},
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
     "resources": ["jobs", "cronjobs"], "scope": "Namespaced"},
]


def _service(text: str) -> tuple[str, str]:
    ns, sep, name = text.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise UsageError(f"--webhook-service {text!r}: expected NAMESPACE/NAME")
    return ns, name


def render(policy: Policy, options: RenderOptions) -> list[dict[str, Any]]:
    """The webhook configuration pointing at ``options.webhook_service``."""
    assert options.webhook_service and options.ca_bundle
    ns, name = _service(options.webhook_service)
    if b"-----BEGIN CERTIFICATE-----" not in options.ca_bundle:
        raise UsageError("--ca-bundle: not a PEM certificate bundle")
    excluded = sorted({"kube-system", ns})
    if options.namespace:
        selector: dict[str, Any] = {"matchLabels": {"kubernetes.io/metadata.name":
                                                    options.namespace}}
    else:
        selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                          "operator": "NotIn", "values": excluded}]}
    return [{
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": dns_name("trustbuild", policy.name),
                     "annotations": {"trustbuild.dev/policy": policy.name,
                                     "trustbuild.dev/policy-digest": policy.digest}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": 30,
            "clientConfig": {
                "service": {"namespace": ns, "name": name, "path": options.webhook_path,
                            "port": options.webhook_port},
                "caBundle": base64.b64encode(options.ca_bundle).decode(),
            },
            "rules": RULES,
            "namespaceSelector": selector,
        }],
    }]
