"""The whole supply chain around one build: policy gate before, signing and attestations after.

``trustbuild build`` calls :func:`configure` on its BuildOptions: it loads the policy (which may
set the security profile and demand signing and attestations), installs the gate, loads the
signing key up front (a wrong password fails before anything is pulled), and adds the post-push
hook that signs and attests every written image by the digest the build produced.

Layering: this module sits above ``build``, ``sign``, ``attest`` and ``policy``; none of them
imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from trustbuild.builder.options import BuildOptions
from trustbuild.errors import PolicyViolation, UsageError
from trustbuild.oci.reference import Reference
from trustbuild.policy.gate import executor_image_from_env, make_gate
from trustbuild.policy.model import Policy, load_policy
from trustbuild.policy.report import Report

if TYPE_CHECKING:
    from trustbuild.builder.api import BuildResult
    from trustbuild.sign.keys import SigningKey

__all__ = ["configure", "SupplyChain"]


@dataclass
class SupplyChain:
    """What :func:`configure` decided, for the caller's summary."""

    policy: Policy | None = None
    report: Report | None = None
    signed: list[str] = field(default_factory=list)  # "location@digest"
    attested: list[str] = field(default_factory=list)  # "location@digest kind"


def configure(
    options: BuildOptions,
    *,
    policy_output: str = "text",
    out: TextIO | None = None,
    on_gate: Callable[[Report], None] | None = None,
    gate_only: bool = False,
) -> SupplyChain:
    """Install the gate and the sign/attest hook on ``options``; returns what was decided.

    ``gate_only`` (``trustbuild policy check``) skips the output requirements and signing.
    """
    out = out or sys.stderr
    chain = SupplyChain()
    options.executor_image = executor_image_from_env(options.executor_image)
    if options.policy:
        chain.policy = policy = load_policy(options.policy)
        _apply_policy(options, policy, out, check_output=not gate_only)

        def report_gate(report: Report) -> None:
            chain.report = report
            if policy_output == "text":
                report.write_text(out)
            if on_gate:
                on_gate(report)

        options.gate = make_gate(
            policy,
            dockerfile_path=options.dockerfile if options.dockerfile != "-" else "Dockerfile",
            build_args=options.build_args,
            executor_image=options.executor_image,
            options=options.store_options,
            on_report=report_gate,
        )
    if gate_only:
        return chain
    if options.sign_key and options.keyless:
        raise UsageError("--sign-key and --keyless are mutually exclusive")
    if options.attest and not (options.sign_key or options.keyless):
        raise UsageError("--attest needs --sign-key KEY or --keyless: attestations are signed "
                         "DSSE envelopes")
    if options.sign_key:
        from trustbuild.sign.keys import load_signing_key

        key = load_signing_key(options.sign_key)
        options.post_push_hooks.append(_sign_and_attest_hook(options, key, chain, out))
    elif options.keyless:
        options.post_push_hooks.append(
            _sign_and_attest_hook(options, _keyless_signer(options), chain, out))
    return chain


@dataclass(frozen=True)
class _Keyless:
    """Keyless signing for the build: the OIDC token (found before the build) and trust config."""

    token: str = field(repr=False)
    trust_config: str | None


def _keyless_signer(options: BuildOptions) -> _Keyless:
    """The token now, so a build without one fails before anything is pulled or run."""
    from trustbuild.sign.keyless import ambient_token

    token = options.identity_token or ambient_token()
    if not token:
        raise UsageError("--keyless needs an OIDC token: pass --identity-token or run in a CI "
                         "job that provides one (GitHub Actions id-token: write, GitLab "
                         "id_tokens, ...)")
    return _Keyless(token, options.sigstore_trust_config)


def _apply_policy(
    options: BuildOptions, policy: Policy, out: TextIO, *, check_output: bool
) -> None:
    b = policy.build
    if b.security_profile and b.security_profile != options.security_profile:
        out.write(f"policy {policy.name}: security profile {b.security_profile}\n")
        options.security_profile = b.security_profile
    if b.seccomp_profile and not options.seccomp_profile:
        options.seccomp_profile = b.seccomp_profile
    if not check_output:
        return
    if policy.output.sign and not (options.sign_key or options.keyless):
        raise PolicyViolation(
            f"policy {policy.name} (spec.output.sign) requires a signed image: pass --sign-key KEY "
            "or --keyless"
        )
    for kind in policy.output.attestations:
        if kind not in options.attest:
            options.attest.append(kind)


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


def _sign_and_attest_hook(
    options: BuildOptions, key: SigningKey | _Keyless, chain: SupplyChain, out: TextIO
) -> Callable[[BuildResult], None]:
    """Sign (with the key, or keylessly with the same code as ``sign --keyless``) and attest."""
    from trustbuild.attest.attach import attest_build
    from trustbuild.sign.keyless import keyless_sign_image
    from trustbuild.sign.sign import sign_image

    keyless = key if isinstance(key, _Keyless) else None
    signing_key = None if isinstance(key, _Keyless) else key

    def hook(result: BuildResult) -> None:
        for o in result.outputs:
            if o.location.startswith("docker-archive:"):
                continue  # a tarball holds no signatures; sign it where it is loaded
            docker_ref = _docker_reference(options, o.location)
            if keyless is not None:
                keyless_sign_image(o.store, None, identity_token=keyless.token,
                                   docker_reference=docker_ref, subject=o.descriptor,
                                   bundle=bool(options.bundle),
                                   trust_config=keyless.trust_config)
            else:
                assert signing_key is not None
                sign_image(o.store, None, signing_key, docker_reference=docker_ref,
                           subject=o.descriptor, bundle=bool(options.bundle))
            chain.signed.append(f"{o.location}@{o.descriptor.digest}")
            out.write(f"signed {o.location}@{o.descriptor.digest} as {docker_ref}\n")
            # an index gets provenance; an SBOM belongs to each platform's image (as BuildKit)
            kinds = [k for k in options.attest
                     if not (k == "sbom" and result.children)]
            if kinds:
                attest_build(
                    o.store,
                    o.descriptor,
                    result.record,
                    key=signing_key,
                    keyless=keyless is not None,
                    identity_token=keyless.token if keyless else None,
                    trust_config=keyless.trust_config if keyless else None,
                    kinds=kinds,
                    sbom_format=options.sbom_format,
                    # container mode: "/" also holds the executor; scan the pushed layers
                    rootfs=None if result.record.mode == "container" else result.rootfs,
                    builder_id=options.builder_id,
                    bundle=bool(options.bundle),
                    subject_name=docker_ref,
                )
                for kind in kinds:
                    chain.attested.append(f"{o.location}@{o.descriptor.digest} {kind}")
                out.write(f"attested {', '.join(kinds)} for {o.location}\n")

    return hook
