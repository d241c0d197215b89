"""Cluster bundles rendered from one policy file (``trustbuild policy render``).

Every target is a module with ``render(policy, options) -> list[Manifest]`` returning
Kubernetes manifests as plain dicts; :func:`render` picks the targets and :func:`dump_yaml`
writes them as deterministic multi-document YAML. What a target cannot enforce of the policy
is recorded on its manifests (:mod:`~trustbuild.policy.render.manifest`) and returned by
:func:`render` in ``warnings``.

Example::

    from trustbuild.policy.model import load_policy
    from trustbuild.policy.render import RenderOptions, dump_yaml, render

    docs = render(load_policy("policies/restricted.yaml"), ["kyverno", "vap"],
                  RenderOptions(namespace="apps"))
    print(dump_yaml(docs))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from trustbuild.errors import UsageError
from trustbuild.policy.model import Policy
from trustbuild.policy.render.manifest import Manifest, warnings_of
from trustbuild.policy.render.options import RenderOptions
from trustbuild.policy.render.output import dump_yaml, file_name_for, write_dir

__all__ = ["FORMATS", "RenderOptions", "render", "render_to", "dump_yaml", "write_dir",
           "file_name_for", "missing_inputs"]

_NEEDS_DEPLOY = ("kyverno", "policy-controller")

#: Targets in the order ``all`` renders them.
FORMATS = ("pod-security", "seccomp", "executor-job", "kyverno", "policy-controller", "vap",
           "webhook")


def _renderer(fmt: str) -> Callable[[Policy, RenderOptions], list[Manifest]]:
    from trustbuild.policy.render import (
        executor_job,
        kyverno,
        pod_security,
        policy_controller,
        seccomp,
        vap,
        webhook,
    )

    table: dict[str, Callable[[Policy, RenderOptions], list[Manifest]]] = {
        "pod-security": pod_security.render,
        "seccomp": seccomp.render,
        "executor-job": executor_job.render,
        "kyverno": kyverno.render,
        "policy-controller": policy_controller.render,
        "vap": vap.render,
        "webhook": webhook.render,
    }
    return table[fmt]


def missing_inputs(fmt: str, options: RenderOptions, policy: Policy | None = None) -> list[str]:
    """The flags a target needs that ``options`` lacks (empty when it can be rendered)."""
    need: list[str] = []
    if fmt == "pod-security" and not options.namespace:
        need.append("--namespace NS")
    if fmt == "executor-job":
        if not options.executor_image:
            need.append("--executor-image REPO@sha256:...")
        if not options.build_context:
            need.append("--build-context CTX")
        if not options.destination:
            need.append("--destination REF")
        if policy is not None and policy.output.sign and not options.signing_secret:
            need.append("--signing-secret NAME (spec.output.sign)")
    if fmt == "webhook":
        if not options.webhook_service:
            need.append("--webhook-service NS/NAME")
        if not options.ca_bundle:
            need.append("--ca-bundle FILE")
    return need


def render(policy: Policy, formats: Sequence[str], options: RenderOptions, *,
           skipped: list[str] | None = None,
           warnings: list[str] | None = None) -> list[Manifest]:
    """Render ``formats`` (names from :data:`FORMATS`, or ``all``) for ``policy``.

    With ``all``, targets whose inputs are missing, or that can express none of the policy's
    signers, are left out and named in ``skipped`` (``"executor-job: needs --executor-image
    ..."``); a target asked for by name raises UsageError (PolicyError) instead. What a
    rendered target does not enforce goes to ``warnings`` (``"kyverno: spec.deploy..."``).
    """
    wanted = list(FORMATS) if "all" in formats else list(dict.fromkeys(formats))
    docs: list[Manifest] = []
    for fmt in wanted:
        if fmt not in FORMATS:
            raise UsageError(f"unknown render format {fmt!r}: use all or {', '.join(FORMATS)}")
        dep = policy.deploy
        if ("all" in formats and fmt in _NEEDS_DEPLOY
                and not (dep.allowed_repositories or dep.signatures or dep.attestations)):
            if skipped is not None:
                skipped.append(f"{fmt}: spec.deploy has no allowedRepositories, signatures or "
                               "attestations")
            continue
        need = missing_inputs(fmt, options, policy)
        if need:
            if "all" in formats:
                if skipped is not None:
                    skipped.append(f"{fmt}: needs {', '.join(need)}")
                continue
            raise UsageError(f"policy render --format {fmt}: pass {', '.join(need)}")
        out = _renderer(fmt)(policy, options)
        if warnings is not None:
            warnings.extend(dict.fromkeys(f"{fmt}: {w}" for d in out for w in warnings_of(d)))
        docs.extend(out)
    return docs


def render_to(policy: Policy, formats: Sequence[str], options: RenderOptions,
              output_dir: str | Path) -> list[Path]:
    """Render and write one file per kind into ``output_dir``; returns the files written."""
    return write_dir(render(policy, formats, options), output_dir)
