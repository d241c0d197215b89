"""``ValidatingWebhookConfiguration`` for ``trustbuild admission serve``.

Pods (including the ephemeral-containers subresource) and the workload kinds whose pod
templates the webhook reads are sent on CREATE and UPDATE; ``failurePolicy: Fail`` so an
unreachable webhook denies, ``sideEffects: None``, AdmissionReview v1 only. The webhook's own
namespace and ``kube-system`` are left out so the webhook can always be (re)started.

With ``--webhook-image`` the webhook itself comes too: the policy (keys inlined) as a
ConfigMap, a Deployment of ``trustbuild admission serve`` (non-root, read-only root, every
capability dropped: it passes Pod Security ``restricted``) reading its key pair from the TLS
Secret, and the Service the configuration points at.
"""

from __future__ import annotations

import base64

from trustbuild.errors import UsageError
from trustbuild.oci.reference import Reference
from trustbuild.policy.model import Policy
from trustbuild.policy.render.executor_job import inline_policy
from trustbuild.policy.render.manifest import JSONValue, Manifest
from trustbuild.policy.render.options import RenderOptions, dns_name, require_options

__all__ = ["render", "RULES", "WEBHOOK_NAME"]

WEBHOOK_NAME = "deploy-policy.trustbuild.dev"

RULES: list[JSONValue] = [
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


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """The webhook configuration pointing at ``options.webhook_service``."""
    require_options("webhook", options, "webhook_service", "ca_bundle")
    assert options.webhook_service and options.ca_bundle
    ns, name = _service(options.webhook_service)
    if b"-----BEGIN CERTIFICATE-----" not in options.ca_bundle:
        raise UsageError("--ca-bundle: not a PEM certificate bundle")
    docs = _server(policy, options, ns, name) if options.webhook_image else []
    excluded = sorted({"kube-system", ns})
    if options.namespace:
        selector: JSONValue = {"matchLabels": {"kubernetes.io/metadata.name":
                                                    options.namespace}}
    else:
        selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                          "operator": "NotIn", "values": excluded}]}
    config: Manifest = {
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
    }
    return [*docs, config]


SERVER_PORT = 8443


def _server(policy: Policy, options: RenderOptions, ns: str, name: str) -> list[Manifest]:
    """ConfigMap, Deployment and Service running ``trustbuild admission serve``."""
    assert options.webhook_image
    if Reference.parse(options.webhook_image).digest is None:
        raise UsageError(f"--webhook-image {options.webhook_image}: pin it by digest "
                         "(REPO@sha256:...)")
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "admission",
              "app.kubernetes.io/managed-by": "trustbuild"}
    cm_name = dns_name(name, "policy")
    env: list[JSONValue] = []
    mounts: list[JSONValue] = [
        {"name": "policy", "mountPath": "/trustbuild/policy", "readOnly": True},
        {"name": "tls", "mountPath": "/trustbuild/tls", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[JSONValue] = [
        {"name": "policy", "configMap": {"name": cm_name}},
        {"name": "tls", "secret": {"secretName": options.tls_secret}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if options.registry_secret:
        env.append({"name": "DOCKER_CONFIG", "value": "/trustbuild/.docker"})
        mounts.append({"name": "docker-config", "mountPath": "/trustbuild/.docker",
                       "readOnly": True})
        volumes.append({"name": "docker-config", "secret": {
            "secretName": options.registry_secret,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
    probe: JSONValue = {"httpGet": {"path": "/healthz", "port": SERVER_PORT, "scheme": "HTTPS"},
             "periodSeconds": 10}
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"trustbuild.dev/policy-digest": policy.digest}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                        "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "admission",
                        "image": options.webhook_image,
                        "command": ["trustbuild", "admission", "serve",
                                    "--policy", "/trustbuild/policy/policy.yaml",
                                    "--listen", f"0.0.0.0:{SERVER_PORT}",
                                    "--tls-cert", "/trustbuild/tls/tls.crt",
                                    "--tls-key", "/trustbuild/tls/tls.key",
                                    "--path", options.webhook_path],
                        "env": env,
                        "ports": [{"name": "https", "containerPort": SERVER_PORT}],
                        "readinessProbe": probe,
                        "livenessProbe": probe,
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": cm_name, "namespace": ns, "labels": labels,
                      "annotations": {"trustbuild.dev/source-policy-digest": policy.digest}},
         "data": inline_policy(policy)},
        deployment,
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"selector": {"app.kubernetes.io/name": name},
                  "ports": [{"name": "https", "port": options.webhook_port,
                             "targetPort": SERVER_PORT}]}},
    ]
