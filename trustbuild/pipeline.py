"""The whole supply chain around one build, in order: prepare -> gate -> run -> write outputs
(by digest) -> sign -> attest -> tags.

:func:`run` is what ``trustbuild build`` and ``trustbuild.build()`` do; :func:`check` is
``trustbuild policy check`` (prepare + gate: no layer extracted, no RUN). The build itself
(:class:`BuildOptions`) knows nothing of policies or keys; those are the
:class:`SupplyChainOptions`. Example::

    result = run(BuildOptions(context="app", destinations=["registry.example/app:1"]),
                 SupplyChainOptions(policy="policy.yaml", sign_key="cosign.key",
                                    attest=["provenance"]))
    with result:
        result.built.digest, result.signed, result.attested

Layering: this module sits above ``builder``, ``sign``, ``attest`` and ``policy``; none of them
imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TextIO

from trustbuild.builder.api import prepare, put_tags, write_outputs
from trustbuild.builder.options import BuildOptions
from trustbuild.builder.plan import BuiltImage
from trustbuild.errors import PolicyViolation, SigningError, UsageError
from trustbuild.oci.reference import Reference
from trustbuild.policy.executor_image import executor_image_from_env

if TYPE_CHECKING:
    from trustbuild.attest.sbom import SbomFormat
    from trustbuild.builder.multiplatform import IndexPlan
    from trustbuild.builder.plan import BuildPlan
    from trustbuild.policy.model import Policy
    from trustbuild.policy.report import Report
    from trustbuild.sign.keys import SigningKey

__all__ = ["SupplyChainOptions", "PipelineResult", "run", "check"]


@dataclass
class SupplyChainOptions:
    """What the build is checked against and how its result is signed and attested."""

    policy: str | None = None  # --policy FILE: the gate before anything runs
    sign_key: str | None = None  # --sign-key KEY (cosign format or PEM)
    bundle: bool = False  # --bundle: Sigstore bundle referrers too
    # --keyless: sign and attest with a Fulcio certificate logged in Rekor (Sigstore), as
    # `trustbuild sign --keyless`
    keyless: bool = False
    identity_token: str | None = field(default=None, repr=False)  # --identity-token (a secret)
    sigstore_trust_config: str | None = None  # --sigstore-trust-config (private Sigstore)
    attest: list[str] = field(default_factory=list)  # provenance, sbom
    sbom_format: SbomFormat = "spdx"  # spdx | cyclonedx
    builder_id: str | None = None  # builder.id in provenance
    executor_image: str | None = None  # REF@DIGEST this build runs in (policy, provenance)


@dataclass
class PipelineResult:
    """The built image (its outputs written and tagged) and what the supply chain did;
    ``close()`` releases the image's work dir."""

    built: BuiltImage
    policy: Policy | None = None
    report: Report | None = None
    signed: list[str] = field(default_factory=list)  # "location@digest"
    attested: list[str] = field(default_factory=list)  # "location@digest kind"

    def close(self) -> None:
        """Release the built image (work dir, stores)."""
        self.built.close()

    def __enter__(self) -> PipelineResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(options: BuildOptions, chain: SupplyChainOptions, *,
        out: TextIO | None = None) -> PipelineResult:
    """Build under ``chain``: the policy (which may set the security profile and demand
    signing and attestations) and the signing key are loaded first (a wrong password fails
    before anything is pulled); the gate sees every image by digest before anything runs;
    outputs go up by digest, are signed and attested, and only then tagged. ``out`` gets the
    report and the signing lines (default: the build's output)."""
    policy = _load_policy(options, chain, check_output=True)
    if chain.sign_key and chain.keyless:
        raise UsageError("--sign-key and --keyless are mutually exclusive")
    if chain.attest and not (chain.sign_key or chain.keyless):
        raise UsageError("--attest needs --sign-key KEY or --keyless: attestations are signed "
                         "DSSE envelopes")
    key: SigningKey | _Keyless | None = None
    if chain.sign_key:
        from trustbuild.sign.keys import load_signing_key

        key = load_signing_key(chain.sign_key)
    elif chain.keyless:
        key = _keyless_signer(chain)
    try:
        with prepare(options) as plan:
            out = out or options.output
            _pin_executor(plan, chain)
            report = _gate(plan, policy, chain, out) if policy is not None else None
            built = plan.run()
        result = PipelineResult(built, policy, report)
        try:
            write_outputs(built, options)
            if key is not None:
                _sign_and_attest(built, options, chain, key, result, out)
            put_tags(built, options)
        except BaseException:
            built.close()
            raise
        return result
    finally:
        if options.log is not None:
            options.log.close()


def check(options: BuildOptions, chain: SupplyChainOptions) -> Report:
    """``policy check``: prepare the build and run the gate, nothing more (no layer extracted,
    no RUN, nothing written); the report, denied or not."""
    from trustbuild.policy.gate import gate_plan

    policy = _load_policy(options, chain, check_output=False)
    if policy is None:
        raise UsageError("policy check: --policy FILE is required")
    options.plan_only = True
    try:
        with prepare(options) as plan:
            _pin_executor(plan, chain)
            return gate_plan(policy, plan, executor_image=chain.executor_image,
                             options=options.store_options).report
    finally:
        if options.log is not None:
            options.log.close()


def _load_policy(options: BuildOptions, chain: SupplyChainOptions, *,
                 check_output: bool) -> Policy | None:
    """The policy (if any), applied to ``options`` and ``chain``; the executor image from the
    flag or ``TRUSTBUILD_EXECUTOR_IMAGE``."""
    chain.executor_image = executor_image_from_env(chain.executor_image)
    if not chain.policy:
        return None
    from trustbuild.policy.model import load_policy  # yaml, jsonschema: only with a policy

    policy = load_policy(chain.policy)
    b = policy.build
    if b.security_profile and b.security_profile != options.security_profile:
        options.output.write(f"policy {policy.name}: security profile {b.security_profile}\n")
        options.security_profile = b.security_profile
    if b.seccomp_profile and not options.seccomp_profile:
        options.seccomp_profile = b.seccomp_profile
    if check_output:
        if policy.output.sign and not (chain.sign_key or chain.keyless):
            raise PolicyViolation(f"policy {policy.name} (spec.output.sign) requires a signed "
                                  "image: pass --sign-key KEY or --keyless")
        for kind in policy.output.attestations:
            if kind not in chain.attest:
                chain.attest.append(kind)
    return policy


@dataclass(frozen=True)
class _Keyless:
    """Keyless signing for the build: the OIDC token (found before the build) and trust config."""

    token: str = field(repr=False)
    trust_config: str | None


def _keyless_signer(chain: SupplyChainOptions) -> _Keyless:
    """The token and the trust config now, so a build without a token or with a trust config
    it cannot use fails before anything is pulled or run."""
    from trustbuild.sign.keyless import ambient_token, load_trust_config

    token = chain.identity_token or ambient_token()
    if not token:
        raise UsageError("--keyless needs an OIDC token: pass --identity-token or run in a CI "
                         "job that provides one (GitHub Actions id-token: write, GitLab "
                         "id_tokens, ...)")
    if chain.sigstore_trust_config is not None:
        try:
            load_trust_config(chain.sigstore_trust_config)
        except SigningError as exc:
            raise UsageError(f"--sigstore-trust-config {exc}") from None
    return _Keyless(token, chain.sigstore_trust_config)


def _pin_executor(plan: BuildPlan | IndexPlan, chain: SupplyChainOptions) -> None:
    for one in plan.plans:
        one.record.executor_image = chain.executor_image


def _gate(plan: BuildPlan | IndexPlan, policy: Policy, chain: SupplyChainOptions,
          out: TextIO) -> Report:
    """Run the gate on the prepared plan; raise PolicyViolation on deny."""
    from trustbuild.policy.gate import denial, gate_plan

    log = plan.options.log
    verdict = gate_plan(policy, plan, executor_image=chain.executor_image,
                        options=plan.options.store_options)
    for one, mine in zip(plan.plans, verdict.per_platform, strict=True):
        one.record.policy_digest = policy.digest
        one.record.policy_decision = mine.decision
        one.record.policy_report = [asdict(c) for c in mine.checks]
    report = verdict.report
    report.write_text(out)
    if report.denied:
        exc = denial(policy, report)
        if log is not None:
            log.event("gate", verdict="deny", reason=str(exc))
        raise exc
    if log is not None:
        log.event("gate", verdict="allow",
                  images=[f"{i.reference}@{i.digest}" for one in plan.plans
                          for i in one.record.images])
    return report


def _docker_reference(options: BuildOptions, location: str) -> str:
    """The repository a signature names: the registry repository, else the first destination."""
    if location.startswith("docker://"):
        return Reference.parse(location[len("docker://") :]).name
    if options.destinations:
        return Reference.parse(options.destinations[0]).name
    raise UsageError(
        f"cannot sign {location}: name the image with --destination NAME "
        "(with --no-push it is only used as the name)"
    )


def _sign_and_attest(built: BuiltImage, options: BuildOptions, chain: SupplyChainOptions,
                     key: SigningKey | _Keyless, result: PipelineResult, out: TextIO) -> None:
    """Sign (and attest) every output written by digest: an index's platforms, then the index."""
    for image in [*built.children, built]:
        _sign_one(image, options, chain, key, result, out)


def _sign_one(image: BuiltImage, options: BuildOptions, chain: SupplyChainOptions,
              key: SigningKey | _Keyless, result: PipelineResult, out: TextIO) -> None:
    """Sign (with the key, or keylessly with the same code as ``sign --keyless``) and attest."""
    from trustbuild.attest.attach import attest_build
    from trustbuild.sign.keyless import keyless_sign_image
    from trustbuild.sign.sign import sign_image

    keyless = key if isinstance(key, _Keyless) else None
    signing_key = None if isinstance(key, _Keyless) else key
    for o in image.outputs:
        if o.location.startswith("docker-archive:"):
            continue  # a tarball holds no signatures; sign it where it is loaded
        docker_ref = _docker_reference(options, o.location)
        if keyless is not None:
            keyless_sign_image(o.store, None, identity_token=keyless.token,
                               docker_reference=docker_ref, subject=o.descriptor,
                               bundle=chain.bundle, trust_config=keyless.trust_config)
        else:
            assert signing_key is not None
            sign_image(o.store, None, signing_key, docker_reference=docker_ref,
                       subject=o.descriptor, bundle=chain.bundle)
        result.signed.append(f"{o.location}@{o.descriptor.digest}")
        out.write(f"signed {o.location}@{o.descriptor.digest} as {docker_ref}\n")
        # an index gets provenance; an SBOM belongs to each platform's image (as BuildKit)
        kinds = [k for k in chain.attest if not (k == "sbom" and image.children)]
        if not kinds:
            continue
        attest_build(
            o.store,
            o.descriptor,
            image.record,
            key=signing_key,
            keyless=keyless is not None,
            identity_token=keyless.token if keyless else None,
            trust_config=keyless.trust_config if keyless else None,
            kinds=kinds,
            sbom_format=chain.sbom_format,
            # container mode: "/" also holds the executor; scan the pushed layers
            rootfs=None if image.record.mode == "container" else image.rootfs,
            builder_id=chain.builder_id,
            bundle=chain.bundle,
            subject_name=docker_ref,
        )
        for kind in kinds:
            result.attested.append(f"{o.location}@{o.descriptor.digest} {kind}")
        out.write(f"attested {', '.join(kinds)} for {o.location}\n")
