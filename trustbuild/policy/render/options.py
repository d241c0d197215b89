"""Inputs of the renderers that are not in the policy file (cluster names, images, CA)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustbuild.errors import PolicyError, UsageError
from trustbuild.policy.model import Policy

__all__ = ["RenderOptions", "dns_name", "require_deploy", "require_options"]


@dataclass(frozen=True)
class RenderOptions:
    """What ``trustbuild policy render`` flags provide.

    ``namespace``: the application namespace (Pod Security labels, VAP binding scope; None binds
    cluster-wide). ``build_namespace``: where the executor Job runs. ``executor_image``: the
    executor as ``REPO@sha256:...`` (a Job cannot learn its own image digest, so the renderer
    takes it). ``registry_secret``: a ``kubernetes.io/dockerconfigjson`` Secret for pushing;
    ``signing_secret``: a Secret with ``cosign.key`` and ``cosign.password`` (cosign's
    ``k8s://`` layout) for ``spec.output.sign``. ``webhook_service``: ``NAMESPACE/NAME`` of
    the admission Service; ``ca_bundle``: PEM bytes of the CA that signed its serving certificate;
    ``webhook_image``: an image with trustbuild (``REPO@sha256:...``, e.g. the executor) to run
    the webhook Deployment from, with its serving key pair in the TLS Secret ``tls_secret``.
    """

    namespace: str | None = None
    build_namespace: str = "trustbuild-build"
    executor_image: str | None = None
    build_context: str | None = None
    destination: str | None = None
    registry_secret: str | None = None
    signing_secret: str | None = None
    webhook_service: str | None = None
    webhook_port: int = 443
    webhook_path: str = "/validate"
    webhook_image: str | None = None
    tls_secret: str = "trustbuild-admission-tls"
    ca_bundle: bytes | None = None
    architecture: str = "SCMP_ARCH_X86_64"


_BAD = re.compile(r"[^a-z0-9-]+")


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from ``parts`` (lowercased, other characters to ``-``, trimmed)."""
    text = "-".join(p for p in parts if p)
    text = _BAD.sub("-", text.lower()).strip("-")
    return text[:limit].rstrip("-") or "trustbuild"


def require_deploy(policy: Policy, target: str) -> None:
    """PolicyError when ``spec.deploy`` asks for nothing (a bundle would admit everything)."""
    dep = policy.deploy
    if not (dep.allowed_repositories or dep.signatures or dep.attestations):
        raise PolicyError(f"{policy.path}: spec.deploy: no allowedRepositories, signatures or "
                          f"attestations to render as {target}; add them to the policy")


def require_options(target: str, options: RenderOptions, *fields: str) -> None:
    """UsageError naming the flags ``target`` needs that ``options`` lacks."""
    missing = [f"--{f.replace('_', '-')}" for f in fields if not getattr(options, f)]
    if missing:
        raise UsageError(f"policy render --format {target}: pass {', '.join(missing)}")
