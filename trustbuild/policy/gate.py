"""The build gate: runs after every FROM / COPY --from image is resolved to a digest and before
any layer is extracted or any RUN executes.

It checks allowed repositories, base image signatures and attestations, the executor image, and
the Dockerfile rules, and returns a Report. trustbuild.pipeline calls :func:`gate_plan` on the
prepared build (builder.api.prepare), records the verdict in each platform's BuildRecord and raises
:func:`denial` before the plan runs. The gate itself writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trustbuild.builder.executor import predefined_args
from trustbuild.builder.record import ResolvedImage
from trustbuild.errors import InvalidReference, PolicyViolation, TrustbuildError
from trustbuild.oci.descriptor import Platform
from trustbuild.oci.reference import Reference
from trustbuild.policy.executor_image import EXECUTOR_ENV, executor_image_from_env
from trustbuild.policy.model import Policy, Section, SignatureRule, repository_matches
from trustbuild.policy.report import DENY, PASS, Check, Report
from trustbuild.policy.rules import run_rules
from trustbuild.registry.options import StoreOptions

if TYPE_CHECKING:
    from trustbuild.builder.dockerfile import Dockerfile, Stage
    from trustbuild.builder.multiplatform import IndexPlan
    from trustbuild.builder.plan import BuildPlan
    from trustbuild.policy.verifier import ImageVerifier  # cryptography: loaded when a gate runs

__all__ = ["GateInput", "PlanVerdict", "run_gate", "gate_plan", "denial", "executor_image_from_env"]

@dataclass
class GateInput:
    """What the gate looks at besides the policy."""

    dockerfile: Dockerfile
    dockerfile_path: str
    target_stage: Stage
    build_args: Mapping[str, str]
    images: list[ResolvedImage]
    executor_image: str | None
    options: StoreOptions
    # TARGETARCH, BUILDPLATFORM, ... of the platform built (builder.executor.predefined_args)
    platform_args: Mapping[str, str] = field(default_factory=dict)


def run_gate(policy: Policy, inp: GateInput, *, verifier: ImageVerifier | None = None) -> Report:
    """Evaluate the policy; never raises for a denial (see ``Report.decision``)."""
    from trustbuild.policy.verifier import ImageVerifier

    verifier = verifier or ImageVerifier(inp.options)
    report = Report(policy.name, policy.digest)
    for img in inp.images:
        if img.role in ("base", "copy-from"):
            _check_image(report, policy.base_images, img, verifier)
    _check_executor(report, policy, inp.executor_image, verifier)
    for check in run_rules(
        inp.dockerfile,
        inp.target_stage,
        build_args=inp.build_args,
        severities=policy.rules,
        require_digest=policy.base_images.require_digest,
        path=inp.dockerfile_path,
        platform_args=inp.platform_args,
    ):
        report.add(check)
    return report


def _check_image(
    report: Report, section: Section, img: ResolvedImage, verifier: ImageVerifier
) -> None:
    name = Reference.parse(img.reference).name
    where = f"{img.reference}@{img.digest}"
    if section.allowed_repositories:
        if repository_matches(name, section.allowed_repositories):
            report.add(Check("allowed-repository", PASS, f"{name} is an allowed repository", where))
        else:
            report.add(
                Check(
                    "allowed-repository",
                    DENY,
                    f"{name} is not in spec.baseImages.allowedRepositories",
                    where,
                    "use a base image from an allowed repository or extend the list",
                )
            )
    if section.signatures:
        _check_signed(report, "base-signature", section.signatures, img, verifier, where)
    for att in section.attestations:
        try:
            ok, reason = verifier.attested(img, att)
        except TrustbuildError as exc:
            ok, reason = False, str(exc)
        report.add(
            Check(
                f"base-attestation:{att.type}",
                PASS if ok else DENY,
                reason,
                where,
                "" if ok else f"attach a {att.type} attestation signed by a trusted key",
            )
        )


def _check_signed(
    report: Report,
    cid: str,
    rules: tuple[SignatureRule, ...],
    img: ResolvedImage,
    verifier: ImageVerifier,
    where: str,
) -> bool:
    try:
        ok, reason = verifier.signed(img, rules)
    except TrustbuildError as exc:
        ok, reason = False, str(exc)
    report.add(
        Check(
            cid,
            PASS if ok else DENY,
            reason,
            where,
            ""
            if ok
            else "sign the image with a key the policy trusts "
            "(trustbuild sign --key KEY IMAGE@DIGEST)",
        )
    )
    return ok


def _check_executor(
    report: Report, policy: Policy, executor: str | None, verifier: ImageVerifier
) -> None:
    ex = policy.executor
    if not ex.image and not ex.signatures:
        return
    remedy = (
        "run the signed executor image and pass --executor-image REF@DIGEST "
        f"(or set {EXECUTOR_ENV})"
    )
    if not executor:
        report.add(
            Check(
                "executor",
                DENY,
                "the policy requires a verified executor but the executor image is unknown",
                "",
                remedy,
            )
        )
        return
    try:
        ref = Reference.parse(executor)
    except InvalidReference as exc:
        report.add(Check("executor", DENY, f"--executor-image: {exc}", "", remedy))
        return
    if ref.digest is None:
        report.add(
            Check(
                "executor",
                DENY,
                f"executor image {executor} is not given by digest",
                executor,
                remedy,
            )
        )
        return
    if ex.image and not repository_matches(ref.name, (Reference.parse(ex.image).name,)):
        report.add(
            Check("executor", DENY, f"executor {ref.name} is not {ex.image}", executor, remedy)
        )
        return
    img = ResolvedImage(
        reference=str(ref.with_tag(ref.tag or "latest")), digest=str(ref.digest), role="executor"
    )
    if ex.signatures:
        _check_signed(report, "executor-signature", ex.signatures, img, verifier, executor)
    else:
        report.add(Check("executor", PASS, f"executor {ref.name} is from {ex.image}", executor))


@dataclass(frozen=True)
class PlanVerdict:
    """The gate's answer for a prepared build: one report over every platform (each check
    once) and each platform's own, in the order of ``plan.plans``."""

    report: Report
    per_platform: list[Report]


def gate_plan(
    policy: Policy,
    plan: BuildPlan | IndexPlan,
    *,
    executor_image: str | None,
    options: StoreOptions | None = None,
) -> PlanVerdict:
    """Evaluate ``policy`` against a prepared build (builder.api.prepare: every image pinned by
    digest, nothing run). Writes nothing (the pipeline records the verdict). Never raises for a
    denial: see :func:`denial`."""
    merged = Report(policy.name, policy.digest)
    per_platform = []
    for one in plan.plans:
        opts = one.options
        report = run_gate(
            policy,
            GateInput(
                one.dockerfile,
                opts.dockerfile if opts.dockerfile != "-" else "Dockerfile",
                one.target,
                opts.build_args,
                list(one.record.images),
                executor_image,
                options or opts.store_options,
                predefined_args(opts.target_platform(), Platform.host()),
            ),
        )
        per_platform.append(report)
        for check in report.checks:
            if check not in merged.checks:
                merged.add(check)
    return PlanVerdict(merged, per_platform)


def denial(policy: Policy, report: Report) -> PolicyViolation:
    """The one-line error for a denied report (its first denial, and how many more)."""
    first = report.denied[0]
    more = f" (and {len(report.denied) - 1} more)" if len(report.denied) > 1 else ""
    where = f"{first.where}: " if first.where else ""
    return PolicyViolation(
        f"policy {policy.name} denied the build: {where}{first.id}: {first.message}{more}"
    )
