"""Kyverno ``ClusterPolicy`` (kyverno.io/v1): verifyImages from ``spec.deploy``.

One rule verifies signatures and attestations (``verifyImages``), one denies images outside
``allowedRepositories``. Field names follow Kyverno's ``ImageVerification`` API
(``attestors[].entries[].keys.publicKeys`` / ``keyless``, ``attestations[].type``).
Keys signed offline by trustbuild have no Rekor entry, so key attestors set
``rekor.ignoreTlog`` and ``ctlog.ignoreSCT``; keyless attestors use the public Sigstore
instance (Kyverno cannot read a ``trusted_root.json``) and the policy's identity, regexps
anchored as ``^(?:RE)$`` (Kyverno, like cosign, matches regexps anywhere in the value).
A ``pki`` rule (containers/image) becomes a keyless attestor with the CA roots as ``roots``
and neither Rekor nor SCT. What Kyverno cannot check (``signedIdentity``, a second PKI
subject, configured intermediates, a private ``trustedRoot``) is listed in the render
warnings (:mod:`trustbuild.policy.render.manifest`).
"""

from __future__ import annotations

from trustbuild.attest.statement import predicate_type_uri
from trustbuild.errors import PolicyError
from trustbuild.policy.model import AttestationRule, Policy, SignatureRule
from trustbuild.policy.render.images import image_regex, kyverno_references
from trustbuild.policy.render.manifest import JSONValue, Manifest, add_warnings
from trustbuild.policy.render.options import RenderOptions, dns_name, require_deploy
from trustbuild.policy.render.signers import (
    hostname_regexp,
    identity_warning,
    roots_pem,
    trusted_root_warning,
)
from trustbuild.sign.pki import PKIPolicy

__all__ = ["render", "API_VERSION"]

API_VERSION = "kyverno.io/v1"
REKOR_URL = "https://rekor.sigstore.dev"


class _Entries:
    """Attestor entries for signature rules, collecting what Kyverno cannot check."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def entry(self, rule: SignatureRule, where: str) -> dict[str, JSONValue]:
        """One ``attestors[].entries[]`` item for ``rule`` (at ``where`` in the policy)."""
        for note in (identity_warning(rule, where, "Kyverno"),
                     trusted_root_warning(rule, where, "Kyverno")):
            if note:
                self.warnings.append(note)
        if rule.pki is not None:
            return {"keyless": self._pki(rule.pki, where)}
        if rule.key_pem is not None:
            return {"keys": {
                "publicKeys": rule.key_pem.decode().strip() + "\n",
                "rekor": {"url": REKOR_URL, "ignoreTlog": True},
                "ctlog": {"ignoreSCT": True},
            }}
        kl = rule.keyless
        assert kl is not None
        keyless: dict[str, JSONValue] = {}
        for field, value in (("issuer", kl.issuer), ("issuerRegExp", kl.issuer_regexp),
                             ("subject", kl.subject), ("subjectRegExp", kl.subject_regexp)):
            if value:
                keyless[field] = value
        if "subject" not in keyless and "subjectRegExp" not in keyless:  # never from load_policy
            raise PolicyError("keyless attestor without subject or subjectRegExp")
        keyless["rekor"] = {"url": REKOR_URL}
        return {"keyless": keyless}

    def _pki(self, pki: PKIPolicy, where: str) -> dict[str, JSONValue]:
        """containers/image PKI as a keyless attestor: the CA roots as ``roots``, the subject
        on the certificate's SANs, no Rekor entry and no SCT (a private CA logs nowhere)."""
        out: dict[str, JSONValue] = {}
        if pki.subject_email:
            out["subject"] = pki.subject_email
            if pki.subject_hostname:
                self.warnings.append(
                    f"{where}.pki.subjectHostname {pki.subject_hostname} is not checked by "
                    "Kyverno (an attestor matches one subject: subjectEmail is the one checked)")
        elif pki.subject_hostname:
            out["subjectRegExp"] = hostname_regexp(pki.subject_hostname)
        if pki.intermediates:
            self.warnings.append(
                f"{where}.pki.caIntermediates cannot be given to Kyverno: a signature whose "
                "chain annotation lacks the intermediates is denied there")
        out["roots"] = roots_pem(pki)
        out["rekor"] = {"url": REKOR_URL, "ignoreTlog": True}
        out["ctlog"] = {"ignoreSCT": True}
        return out


def _attestation(att: AttestationRule, entries: _Entries,
                 where: str) -> dict[str, JSONValue]:
    uri = predicate_type_uri(att.type)
    out: dict[str, JSONValue] = {
        "type": uri,
        "predicateType": uri,  # Kyverno < 1.10 reads this name; later ones read `type`
    }
    if att.signer is not None:
        out["attestors"] = [{"count": 1, "entries": [entries.entry(att.signer, where)]}]
    if att.builder_ids:
        key = ("{{ runDetails.builder.id }}" if uri.endswith("/provenance/v1")
               else "{{ builder.id }}")
        out["conditions"] = [{"all": [{"key": key, "operator": "AnyIn",
                                       "value": list(att.builder_ids)}]}]
    return out


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """The ClusterPolicy for ``policy.deploy``."""
    dep = policy.deploy
    require_deploy(policy, "kyverno")
    resources: dict[str, JSONValue] = {"kinds": ["Pod"]}
    if options.namespace:
        resources["namespaces"] = [options.namespace]
    pod_match = {"any": [{"resources": resources}]}
    rules: list[JSONValue] = []
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
    verify: dict[str, JSONValue] = {
        "imageReferences": kyverno_references(dep.allowed_repositories or ("**",)),
        "mutateDigest": True,
        "verifyDigest": True,
        "required": True,
    }
    entries = _Entries()
    if dep.signatures:
        verify["attestors"] = [{"count": 1, "entries": [
            entries.entry(s, f"spec.deploy.signatures[{i}]")
            for i, s in enumerate(dep.signatures)]}]
    if dep.attestations:
        verify["attestations"] = [_attestation(a, entries, f"spec.deploy.attestations[{i}]")
                                  for i, a in enumerate(dep.attestations)]
    if dep.signatures or dep.attestations:
        rules.append({"name": "verify-signatures-and-attestations", "match": pod_match,
                      "verifyImages": [verify]})
    name = dns_name("trustbuild", policy.name)
    doc: Manifest = {
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
    }
    add_warnings(doc, entries.warnings)
    return [doc]
