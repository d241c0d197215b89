"""The deploy check: ``trustbuild verify IMAGE --policy FILE`` applies ``spec.deploy``.

The same check backs the cluster bundles: an image may run when its repository is allowed, one
``signatures`` entry verifies on its digest, and every ``attestations`` entry verifies.
"""

from __future__ import annotations

from trustbuild.oci.store import Store
from trustbuild.policy.model import Policy, repository_matches
from trustbuild.policy.report import DENY, PASS, Check, Report
from trustbuild.policy.verifier import attested_in, signed_in

__all__ = ["check_deploy"]


def check_deploy(policy: Policy, store: Store, digest: str, *, repository: str | None,
                 image: str, image_reference: str | None = None) -> Report:
    """Evaluate ``spec.deploy`` on the image ``digest`` in ``store``.

    ``image_reference`` is the image as named (``repo:tag`` or ``repo@digest``), for rules with a
    ``signedIdentity``; it defaults to ``repository``.
    """
    dep = policy.deploy
    report = Report(policy.name, policy.digest)
    where = f"{image}@{digest}" if "@" not in image else image
    if dep.allowed_repositories:
        if repository is None:
            report.add(Check("allowed-repository", DENY, "the image's repository is unknown "
                             "(not in a registry): pass --docker-reference REPO", where))
        elif repository_matches(repository, dep.allowed_repositories):
            report.add(Check("allowed-repository", PASS, f"{repository} is allowed", where))
        else:
            report.add(Check("allowed-repository", DENY,
                             f"{repository} is not in spec.deploy.allowedRepositories", where,
                             "deploy only images from the allowed repositories"))
    if dep.signatures:
        ok, reason = signed_in(store, digest, repository, dep.signatures,
                               image_reference=image_reference)
        report.add(Check("signature", PASS if ok else DENY, reason, where,
                         "" if ok else "sign the image with a key the policy trusts"))
    for att in dep.attestations:
        ok, reason = attested_in(store, digest, image, att)
        report.add(Check(f"attestation:{att.type}", PASS if ok else DENY, reason, where,
                         "" if ok else f"attach a signed {att.type} attestation"))
    if not report.checks:
        report.add(Check("deploy", DENY, f"policy {policy.name} has no spec.deploy requirements",
                         where, "add spec.deploy.signatures (and attestations) to the policy"))
    return report
