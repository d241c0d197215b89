"""sigstore policy-controller ``ClusterImagePolicy`` (policy.sigstore.dev/v1beta1).

policy-controller admits an image when, for EVERY ClusterImagePolicy whose ``images`` match it,
ANY authority passes. So ``spec.deploy`` becomes one policy for the signatures (one authority
per trusted key or identity) and one more per required attestation (its signer as the only
authority, with ``attestations[].predicateType``): all must pass, as in ``check_deploy``.
Key authorities carry no ``ctlog`` (trustbuild signs offline, without Rekor); keyless ones use
policy-controller's default Fulcio/Rekor, with the policy's identity (regexps anchored
as ``^(?:RE)$``, as trustbuild checks them). policy-controller does not restrict repositories:
images outside ``images`` are untouched unless its ``no-match-policy`` is ``deny``.
"""

from __future__ import annotations

from typing import Any

from trustbuild.attest.statement import predicate_type_uri
from trustbuild.errors import PolicyError
from trustbuild.policy.model import Policy, SignatureRule
from trustbuild.policy.render.images import policy_controller_globs
from trustbuild.policy.render.options import RenderOptions, dns_name, require_deploy

__all__ = ["render", "API_VERSION"]

API_VERSION = "policy.sigstore.dev/v1beta1"


def _authority(name: str, rule: SignatureRule) -> dict[str, Any]:
    if rule.pki is not None:
        raise PolicyError("a pki signature rule (containers/image PKI mode) has no "
                          "policy-controller equivalent: enforce it with trustbuild's "
                          "admission webhook")
    if rule.key_pem is not None:
        return {"name": name, "key": {"data": rule.key_pem.decode().strip() + "\n",
                                      "hashAlgorithm": "sha256"}}
    kl = rule.keyless
    assert kl is not None
    ident: dict[str, str] = {}
    for field, value in (("issuer", kl.issuer), ("issuerRegExp", kl.issuer_regexp),
                         ("subject", kl.subject), ("subjectRegExp", kl.subject_regexp)):
        if value:
            ident[field] = value
    if "subject" not in ident and "subjectRegExp" not in ident:  # a loaded policy always has one
        raise PolicyError(f"{name}: keyless signer without subject or subjectRegExp")
    return {"name": name, "keyless": {"identities": [ident]}}


def _cip(name: str, policy: Policy, images: list[dict[str, str]],
         authorities: list[dict[str, Any]], what: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterImagePolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "trustbuild.dev/policy": policy.name,
                "trustbuild.dev/policy-digest": policy.digest,
                "trustbuild.dev/requirement": what,
            },
        },
        "spec": {"mode": "enforce", "images": images, "authorities": authorities},
    }


def render(policy: Policy, options: RenderOptions) -> list[dict[str, Any]]:
    """One ClusterImagePolicy for the signatures and one per required attestation."""
    require_deploy(policy, "policy-controller")
    dep = policy.deploy
    images = [{"glob": g} for g in policy_controller_globs(dep.allowed_repositories or ("**",))]
    base = dns_name("trustbuild", policy.name, limit=50)
    docs = []
    if dep.signatures:
        auths = [_authority(f"signer-{i}", s) for i, s in enumerate(dep.signatures)]
        docs.append(_cip(f"{base}-signed", policy, images, auths,
                         "signed by one of spec.deploy.signatures"))
    for i, att in enumerate(dep.attestations):
        if att.signer is None:
            continue
        auth = _authority(f"attestor-{i}", att.signer)
        auth["attestations"] = [{"name": dns_name(att.type),
                                 "predicateType": predicate_type_uri(att.type)}]
        docs.append(_cip(f"{base}-att-{i}-{dns_name(att.type, limit=20)}", policy, images,
                         [auth], f"signed {att.type} attestation (spec.deploy.attestations[{i}])"))
    return docs
