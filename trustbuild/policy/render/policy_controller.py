"""sigstore policy-controller ``ClusterImagePolicy`` (policy.sigstore.dev/v1beta1).

policy-controller admits an image when, for EVERY ClusterImagePolicy whose ``images`` match it,
ANY authority passes. So ``spec.deploy`` becomes one policy for the signatures (one authority
per trusted key or identity) and one more per required attestation (its signer as the only
authority, with ``attestations[].predicateType``): all must pass, as in ``check_deploy``.
Key authorities carry no ``ctlog`` (trustbuild signs offline, without Rekor); keyless ones use
policy-controller's default Fulcio/Rekor, with the policy's identity (regexps anchored
as ``^(?:RE)$``, as trustbuild checks them). policy-controller does not restrict repositories:
images outside ``images`` are untouched unless its ``no-match-policy`` is ``deny``.
A ``pki`` rule (containers/image) gets no authority: policy-controller reads private CA roots
only from a TrustRoot resource (current releases do not use the keyless ``ca-cert``), which
trustbuild does not render; the authority is left out (images signed only that way are
denied) with a render warning, as is what it cannot check of the other rules
(``signedIdentity``, a private ``trustedRoot``).
"""

from __future__ import annotations

from trustbuild.attest.statement import predicate_type_uri
from trustbuild.errors import PolicyError
from trustbuild.policy.model import Policy, SignatureRule
from trustbuild.policy.render.images import policy_controller_globs
from trustbuild.policy.render.manifest import JSONValue, Manifest, add_warnings
from trustbuild.policy.render.options import (
    RenderOptions,
    Unrenderable,
    dns_name,
    require_deploy,
)
from trustbuild.policy.render.signers import identity_warning, trusted_root_warning

__all__ = ["render", "API_VERSION"]

API_VERSION = "policy.sigstore.dev/v1beta1"
TARGET = "policy-controller"


def _authority(name: str, rule: SignatureRule, where: str,
               warnings: list[str]) -> dict[str, JSONValue] | None:
    """The authority for ``rule``, or None (with a warning) when it has none."""
    if rule.pki is not None:
        warnings.append(f"{where}.pki (containers/image PKI) has no {TARGET} authority "
                        "(it reads private CA roots only from a TrustRoot resource, which "
                        "trustbuild does not render): images signed only that way are denied "
                        "by this bundle; enforce it with the trustbuild webhook")
        return None
    for note in (identity_warning(rule, where, TARGET),
                 trusted_root_warning(rule, where, TARGET)):
        if note:
            warnings.append(note)
    if rule.key_pem is not None:
        return {"name": name, "key": {"data": rule.key_pem.decode().strip() + "\n",
                                      "hashAlgorithm": "sha256"}}
    kl = rule.keyless
    assert kl is not None
    ident: dict[str, JSONValue] = {}
    for field, value in (("issuer", kl.issuer), ("issuerRegExp", kl.issuer_regexp),
                         ("subject", kl.subject), ("subjectRegExp", kl.subject_regexp)):
        if value:
            ident[field] = value
    if "subject" not in ident and "subjectRegExp" not in ident:  # a loaded policy always has one
        raise PolicyError(f"{name}: keyless signer without subject or subjectRegExp")
    return {"name": name, "keyless": {"identities": [ident]}}


def _cip(name: str, policy: Policy, images: list[JSONValue],
         authorities: list[JSONValue], what: str) -> Manifest:
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


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """One ClusterImagePolicy for the signatures and one per required attestation."""
    require_deploy(policy, TARGET)
    dep = policy.deploy
    images: list[JSONValue] = [
        {"glob": g} for g in policy_controller_globs(dep.allowed_repositories or ("**",))]
    base = dns_name("trustbuild", policy.name, limit=50)
    docs = []
    if dep.signatures:
        warnings: list[str] = []
        auths: list[JSONValue] = []
        for i, s in enumerate(dep.signatures):
            auth = _authority(f"signer-{i}", s, f"spec.deploy.signatures[{i}]", warnings)
            if auth is not None:
                auths.append(auth)
        if not auths:
            raise Unrenderable(f"{policy.path}: spec.deploy.signatures: no signer {TARGET} can "
                               "check (" + "; ".join(warnings) + ")")
        doc = _cip(f"{base}-signed", policy, images, auths,
                   "signed by one of spec.deploy.signatures")
        add_warnings(doc, warnings)
        docs.append(doc)
    for i, att in enumerate(dep.attestations):
        if att.signer is None:
            continue
        warnings = []
        where = f"spec.deploy.attestations[{i}]"
        auth = _authority(f"attestor-{i}", att.signer, where, warnings)
        if auth is None:  # attestation signers are keys or keyless identities (the schema)
            raise Unrenderable(f"{policy.path}: {where}: " + "; ".join(warnings))
        auth["attestations"] = [{"name": dns_name(att.type),
                                 "predicateType": predicate_type_uri(att.type)}]
        if att.builder_ids:
            warnings.append(f"{where}.builderIds ({', '.join(att.builder_ids)}) are not checked "
                            f"by {TARGET} (that needs a CUE/Rego policy): any builder's signed "
                            f"{att.type} attestation passes")
        doc = _cip(f"{base}-att-{i}-{dns_name(att.type, limit=20)}", policy, images,
                   [auth], f"signed {att.type} attestation ({where})")
        add_warnings(doc, warnings)
        docs.append(doc)
    return docs
