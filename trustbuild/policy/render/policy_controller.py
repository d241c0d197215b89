"""sigstore policy-controller ``ClusterImagePolicy`` (policy.sigstore.dev/v1beta1).

policy-controller admits an image when, for EVERY ClusterImagePolicy whose ``images`` match it,
ANY authority passes. So ``spec.deploy`` becomes one policy for the signatures (one authority
per trusted key or identity) and one more per required attestation (its signer as the only
authority, with ``attestations[].predicateType``): all must pass, as in ``check_deploy``.
Key authorities carry no ``ctlog`` (trustbuild signs offline, without Rekor); keyless ones use
policy-controller's default Fulcio/Rekor, with the policy's identity (regexps anchored
as ``^(?:RE)$``, as trustbuild checks them). policy-controller does not restrict repositories:
images outside ``images`` are untouched unless its ``no-match-policy`` is ``deny``.
A ``pki`` rule (containers/image) gets a ``TrustRoot`` (policy.sigstore.dev/v1alpha1) whose
``sigstoreKeys.certificateAuthorities`` carry the CA roots and ``caIntermediates`` (no
``tLogs``/``ctLogs``) and a keyless authority naming it by ``trustRootRef``, with
``insecureIgnoreSCT`` and no ``ctlog`` (policy-controller then skips Rekor: a private CA logs
nowhere), the subject on the SANs and ``issuerRegExp: .*`` (policy-controller requires an
issuer; a private CA's certificate has no OIDC issuer, which ``.*`` matches). What it cannot
check (``signedIdentity``, a private ``trustedRoot``, a second PKI subject, a CA root that is
not self-signed) is a render warning.
"""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from trustbuild.attest.statement import predicate_type_uri
from trustbuild.errors import PolicyError
from trustbuild.policy.model import Policy, SignatureRule
from trustbuild.policy.render.images import policy_controller_globs
from trustbuild.policy.render.manifest import JSONValue, Manifest, add_warnings
from trustbuild.policy.render.options import (
    RenderOptions,
    dns_name,
    require_deploy,
)
from trustbuild.policy.render.signers import (
    hostname_regexp,
    identity_warning,
    trusted_root_warning,
)
from trustbuild.sign.pki import PKIPolicy

__all__ = ["render", "API_VERSION", "TRUST_ROOT_API_VERSION"]

API_VERSION = "policy.sigstore.dev/v1beta1"
TRUST_ROOT_API_VERSION = "policy.sigstore.dev/v1alpha1"
TARGET = "policy-controller"


def _name_attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _trust_root(name: str, pki: PKIPolicy, policy: Policy, where: str,
                warnings: list[str]) -> Manifest:
    """The TrustRoot for a ``pki`` rule: one certificate authority per CA root, the configured
    intermediates in the first one's chain (policy-controller pools every self-signed
    certificate of all chains as roots, the others as intermediates). ``certChain`` is
    ``[]byte`` in the Go type, so base64 in the object; the validation requires a subject
    organization and common name and a URI, taken from the root or else naming it by its
    SHA-256 fingerprint."""
    cas: list[JSONValue] = []
    for i, root in enumerate(pki.roots):
        fingerprint = root.fingerprint(hashes.SHA256()).hex()
        if root.subject.public_bytes() != root.issuer.public_bytes():
            warnings.append(f"{where}.pki.caRoots certificate {i} ({root.subject.rfc4514_string()})"
                            f" is not self-signed: {TARGET} trusts only self-signed roots from a "
                            "TrustRoot (it takes this one as an intermediate), so signatures "
                            "chaining only to it are denied by this bundle")
        chain = [*(pki.intermediates if i == 0 else ()), root]
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
        cas.append({
            "subject": {
                "organization": _name_attr(root, NameOID.ORGANIZATION_NAME)
                or f"trustbuild policy {policy.name}",
                "commonName": _name_attr(root, NameOID.COMMON_NAME) or f"sha256:{fingerprint}",
            },
            "uri": f"urn:trustbuild:pki-root:sha256:{fingerprint}",
            "certChain": base64.b64encode(pem).decode(),
        })
    return {
        "apiVersion": TRUST_ROOT_API_VERSION,
        "kind": "TrustRoot",
        "metadata": {
            "name": name,
            "annotations": {
                "trustbuild.dev/policy": policy.name,
                "trustbuild.dev/policy-digest": policy.digest,
                "trustbuild.dev/requirement": f"CA roots of {where}.pki",
            },
        },
        "spec": {"sigstoreKeys": {"certificateAuthorities": cas}},
    }


def _pki_authority(name: str, trust_root: str, pki: PKIPolicy, where: str,
                   warnings: list[str]) -> dict[str, JSONValue]:
    """containers/image PKI as a keyless authority on ``trust_root``: no SCT, no Rekor."""
    ident: dict[str, JSONValue] = {"issuerRegExp": ".*"}
    if pki.subject_email:
        ident["subject"] = pki.subject_email
        if pki.subject_hostname:
            warnings.append(f"{where}.pki.subjectHostname {pki.subject_hostname} is not checked "
                            f"by {TARGET} (an identity matches one subject: subjectEmail is the "
                            "one checked)")
    elif pki.subject_hostname:
        ident["subjectRegExp"] = hostname_regexp(pki.subject_hostname)
    else:  # a loaded policy always has one
        raise PolicyError(f"{where}.pki: neither subjectEmail nor subjectHostname")
    return {"name": name, "keyless": {"trustRootRef": trust_root, "insecureIgnoreSCT": True,
                                      "identities": [ident]}}


def _authority(name: str, rule: SignatureRule, where: str, warnings: list[str],
               trust_root: str) -> dict[str, JSONValue]:
    """The authority for ``rule``; a ``pki`` rule refers to the TrustRoot ``trust_root``."""
    for note in (identity_warning(rule, where, TARGET),
                 trusted_root_warning(rule, where, TARGET)):
        if note:
            warnings.append(note)
    if rule.pki is not None:
        return _pki_authority(name, trust_root, rule.pki, where, warnings)
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
    """A TrustRoot per ``pki`` signer, then one ClusterImagePolicy for the signatures and one
    per required attestation."""
    require_deploy(policy, TARGET)
    dep = policy.deploy
    images: list[JSONValue] = [
        {"glob": g} for g in policy_controller_globs(dep.allowed_repositories or ("**",))]
    base = dns_name("trustbuild", policy.name, limit=50)
    roots: list[Manifest] = []
    docs: list[Manifest] = []

    def authority(name: str, rule: SignatureRule, where: str,
                  warnings: list[str]) -> dict[str, JSONValue]:
        trust_root = f"{base}-{name}-ca"
        if rule.pki is not None:
            roots.append(_trust_root(trust_root, rule.pki, policy, where, warnings))
        return _authority(name, rule, where, warnings, trust_root)

    if dep.signatures:
        warnings: list[str] = []
        auths: list[JSONValue] = [
            authority(f"signer-{i}", s, f"spec.deploy.signatures[{i}]", warnings)
            for i, s in enumerate(dep.signatures)]
        doc = _cip(f"{base}-signed", policy, images, auths,
                   "signed by one of spec.deploy.signatures")
        add_warnings(doc, warnings)
        docs.append(doc)
    for i, att in enumerate(dep.attestations):
        if att.signer is None:
            continue
        warnings = []
        where = f"spec.deploy.attestations[{i}]"
        auth = authority(f"attestor-{i}", att.signer, where, warnings)
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
    return roots + docs
