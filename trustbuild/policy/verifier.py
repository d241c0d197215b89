"""Signature and attestation checks of one resolved image, for the gate and the deploy check.

It calls the same engines as ``trustbuild verify`` and ``trustbuild verify-attestation``, always
on the digest the build resolved (never on a tag again).
"""

from __future__ import annotations

from collections.abc import Mapping

from trustbuild.attest.verify import verify_attestations
from trustbuild.builder.record import ResolvedImage
from trustbuild.errors import TrustbuildError
from trustbuild.oci.reference import Reference
from trustbuild.oci.store import Store
from trustbuild.policy.model import AttestationRule, SignatureRule
from trustbuild.registry.options import StoreOptions
from trustbuild.sign.keys import load_verifying_key
from trustbuild.sign.trust import KeylessPolicy, TrustRoots
from trustbuild.sign.verify import verify_image

__all__ = ["ImageVerifier", "signed_in", "attested_in"]


class ImageVerifier:
    """Verifies images in registries with the options of the build."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._stores: dict[str, Store] = {}  # one client (and token) per repository

    def _store(self, img: ResolvedImage) -> tuple[Store, Reference]:
        from trustbuild.registry.store import RegistryStore

        ref = Reference.parse(img.reference)
        if ref.name not in self._stores:
            self._stores[ref.name] = RegistryStore(ref.registry, ref.repository, self.options)
        return self._stores[ref.name], ref

    def signed(self, img: ResolvedImage, rules: tuple[SignatureRule, ...]) -> tuple[bool, str]:
        """(ok, reason): ok when any one rule is met by a valid signature on ``img.digest``."""
        store, ref = self._store(img)
        return signed_in(store, img.digest, ref.name, rules, image_reference=img.reference)

    def attested(self, img: ResolvedImage, rule: AttestationRule) -> tuple[bool, str]:
        """(ok, reason): a verified attestation of ``rule.type`` (and builder id, if listed)."""
        store, _ref = self._store(img)
        return attested_in(store, img.digest, img.reference, rule)


def signed_in(
    store: Store, digest: str, docker_reference: str | None, rules: tuple[SignatureRule, ...],
    *, image_reference: str | None = None,
) -> tuple[bool, str]:
    """(ok, reason) for the image ``digest`` in any store: any one rule must be met.

    ``docker_reference`` is the repository (matchRepository, the default); a rule with a
    ``signedIdentity`` is evaluated against ``image_reference`` (``repo:tag`` / ``repo@digest``).
    """
    reasons = []
    for rule in rules:
        try:
            if rule.pki is not None:
                res = verify_image(
                    store,
                    digest,
                    pki=rule.pki,
                    docker_reference=docker_reference,
                    identity=rule.signed_identity,
                    image_reference=image_reference,
                )
                who = "pki"
            elif rule.key_pem is not None:
                res = verify_image(
                    store,
                    digest,
                    keys=[load_verifying_key(rule.key_pem)],
                    docker_reference=docker_reference,
                    identity=rule.signed_identity,
                    image_reference=image_reference,
                )
                who = f"key {rule.key_source}"
            else:
                assert rule.keyless is not None
                kl = rule.keyless
                roots = (TrustRoots.from_trusted_root(kl.trusted_root) if kl.trusted_root
                         else TrustRoots.public_good())
                issuer_rx, subject_rx = kl.python_regexps()
                if not (kl.subject or subject_rx):
                    reasons.append("keyless rule has no subject or subjectRegExp")
                    continue
                res = verify_image(
                    store,
                    digest,
                    keyless=KeylessPolicy(kl.subject, subject_rx, kl.issuer, issuer_rx),
                    trusted_root=roots,
                    require_tlog=True,
                    docker_reference=docker_reference,
                    identity=rule.signed_identity,
                    image_reference=image_reference,
                )
                who = f"keyless {kl.issuer or kl.issuer_regexp}"
        except TrustbuildError as exc:
            reasons.append(str(exc))
            continue
        if res.ok:
            return True, f"signed ({who}): {res.valid[0].reason}"
        reasons.extend(v.reason for v in res.signatures)
    return False, "no signature by a trusted signer: " + "; ".join(dict.fromkeys(reasons))


def attested_in(store: Store, digest: str, image: str, rule: AttestationRule) -> tuple[bool, str]:
    """(ok, reason): a verified attestation of ``rule.type`` (and builder id, if listed)."""
    if rule.signer is None or rule.signer.key_pem is None:
        return False, "attestation rules need a key (keyless attestation rules are not supported)"
    res = verify_attestations(
        store,
        digest,
        keys=[load_verifying_key(rule.signer.key_pem)],
        predicate_type=rule.type,
        image=image,
    )
    if not res.ok:
        return False, res.reason
    if rule.builder_ids:
        ids = {_builder_id(s) for s in res.statements()}
        if not ids & set(rule.builder_ids):
            return False, (
                f"{rule.type} attestation builder {sorted(map(str, ids))} is not one of "
                f"{list(rule.builder_ids)}"
            )
    return True, res.reason


def _builder_id(statement: Mapping[str, object]) -> object:
    """``predicate.runDetails.builder.id`` of a SLSA v1 provenance statement (None if absent)."""
    node: object = statement
    for key in ("predicate", "runDetails", "builder", "id"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node
