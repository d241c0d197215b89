"""Kyverno ``ClusterPolicy`` (kyverno.io/v1): verifyImages from ``spec.deploy``.

One rule verifies signatures and attestations (``verifyImages``), one denies images outside
``allowedRepositories``. Field names follow Kyverno's ``ImageVerification`` API
(``attestors[].entries[].keys.publicKeys`` / ``keyless``, ``attestations[].type``).
Keys signed offline by trustbuild have no Rekor entry, so key attestors set
``rekor.ignoreTlog`` and ``ctlog.ignoreSCT``; keyless attestors use the public Sigstore
instance (Kyverno cannot read a ``trusted_root.json``) and the policy's identity, regexps
anchored as ``^(?:RE)$`` (Kyverno, like cosign, matches regexps anywhere in the value).
"""

from __future__ import annotations

from typing import Any

from trustbuild.attest.statement import predicate_type_uri
from trustbuild.errors import PolicyError
from trustbuild.policy.model import AttestationRule, Policy, SignatureRule
from trustbuild.policy.render.images import image_regex, kyverno_references
from trustbuild.policy.render.options import RenderOptions, dns_name, require_deploy

__all__ = ["render", "API_VERSION"]

API_VERSION = "kyverno.io/v1"
REKOR_URL = "https://rekor.sigstore.dev"


def _entry(rule: SignatureRule) -> dict[str, Any]:
    if rule.pki is not None:
        raise PolicyError("a pki signature rule (containers/image PKI mode) has no Kyverno "
                          "equivalent: enforce it with trustbuild's admission webhook")
    if rule.key_pem is not None:
        return {"keys": {
            "publicKeys": rule.key_pem.decode().strip() + "\n",
            "rekor": {"url": REKOR_URL, "ignoreTlog": True},
            "ctlog": {"ignoreSCT": True},
        }}
    kl = rule.keyless
    assert kl is not None
    keyless: dict[str, Any] = {}
    for field, value in (("issuer", kl.issuer), ("issuerRegExp", kl.issuer_regexp),
                         ("subject", kl.subject), ("subjectRegExp", kl.subject_regexp)):
        if value:
            keyless[field] = value
    if "subject" not in keyless and "subjectRegExp" not in keyless:  # never from load_policy
        raise PolicyError("keyless attestor without subject or subjectRegExp")
    keyless["rekor"] = {"url": REKOR_URL}
    return {"keyless": keyless}


def _attestation(att: AttestationRule) -> dict[str, Any]:
    uri = predicate_type_uri(att.type)
    out: dict[str, Any] = {
        "type": uri,
        "predicateType": uri,  # Kyverno < 1.10 reads this name; later ones read `type`
    }
    if att.signer is not None:
        out["attestors"] = [{"count": 1, "entries": [_entry(att.signer)]}]
    if att.builder_ids:
        key = ("{{ runDetails.builder.id }}" if uri.endswith("/provenance/v1")
               else "{{ builder.id }}")
        out["conditions"] = [{"all": [{"key": key, "operator": "AnyIn",
                                       "value": list(att.builder_ids)}]}]
    return out


def render(policy: Policy, options: RenderOptions) -> list[dict[str, Any]]:
    """The ClusterPolicy for ``policy.deploy``."""
    dep = policy.deploy
    require_deploy(policy, "kyverno")
    resources: dict[str, Any] = {"kinds": ["Pod"]}
    if options.namespace:
        resources["namespaces"] = [options.namespace]
    pod_match = {"any": [{"resources": resources}]}
    rules: list[dict[str, Any]] = []
    if dep.allowed_repositories:
        rx = image_regex(dep.allowed_repositories)
        rules.append({
            "name": "allowed-repositories",
            "match": pod_match,
            "validate": {
                "message": "image {{ element.image }} is not from a repository allowed by "
                           f"trustbuild policy {policy.name} (spec.deploy.allowedRepositories: "
                           f"{', '.join(dep.allowed_repositories)})",
                "foreach": [{
                    "list": "request.object.spec.[ephemeralContainers, initContainers, "
                            "containers][]",
                    "deny": {"conditions": {"all": [{
                        "key": f"{{{{ regex_match('{rx}', '{{{{element.image}}}}') }}}}",
                        "operator": "Equals",
                        "value": False,
                    }]}},
                }],
            },
        })
    verify: dict[str, Any] = {
        "imageReferences": kyverno_references(dep.allowed_repositories or ("**",)),
        "mutateDigest": True,
        "verifyDigest": True,
        "required": True,
    }
    if dep.signatures:
        verify["attestors"] = [{"count": 1, "entries": [_entry(s) for s in dep.signatures]}]
    if dep.attestations:
        verify["attestations"] = [_attestation(a) for a in dep.attestations]
    if dep.signatures or dep.attestations:
        rules.append({"name": "verify-signatures-and-attestations", "match": pod_match,
                      "verifyImages": [verify]})
    name = dns_name("trustbuild", policy.name)
    return [{
        "apiVersion": API_VERSION,
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/title": f"trustbuild deploy policy {policy.name}",
                "policies.kyverno.io/description":
                    "Rendered by `trustbuild policy render` from spec.deploy: images must come "
                    "from the allowed repositories, be signed by a trusted key or identity, and "
                    "carry the required attestations; tags are replaced by digests.",
                "trustbuild.dev/policy-digest": policy.digest,
            },
        },
        "spec": {
            "validationFailureAction": "Enforce",
            "background": False,
            "webhookTimeoutSeconds": 30,
            "rules": rules,
        },
    }]
