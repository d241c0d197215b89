"""SLSA provenance v1 predicates, derived only from a build record.

The record is a :class:`~trustbuild.builder.record.BuildRecord`.
Nothing is recomputed: every digest, time and parameter comes from the record the build filled in.
Values of secret-looking build args (see :mod:`trustbuild.attest.redact`) are redacted again here,
and so is instruction text in the step list. Example::

    predicate = provenance_predicate(record, builder_id="https://ci.example/runner")
    stmt = Statement.for_image(name, record.result_digest, SLSA_PROVENANCE_V1, predicate)

The ``buildType`` and the default ``builder.id`` are documented in ``docs/provenance.md``.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.redact import redact_mapping, redact_text
from trustbuild.builder.record import BuildRecord, ResolvedImage
from trustbuild.errors import AttestationError
from trustbuild.oci.digest import Digest
from trustbuild.oci.reference import Reference

__all__ = [
    "BUILD_TYPE", "DEFAULT_BUILDER_ID", "BUILDER_ID_ENV", "provenance_predicate", "docker_purl",
    "default_builder_id",
]

BUILD_TYPE = "https://trustbuild.dev/buildtypes/dockerfile/v1"
DEFAULT_BUILDER_ID = "https://trustbuild.dev/builder/local/v1"
BUILDER_ID_ENV = "TRUSTBUILD_BUILDER_ID"
_DOCKER_HUB = "docker.io"


def default_builder_id() -> str:
    """``$TRUSTBUILD_BUILDER_ID`` when set, else :data:`DEFAULT_BUILDER_ID`."""
    return os.environ.get(BUILDER_ID_ENV) or DEFAULT_BUILDER_ID


def _digest_map(text: str | None, *, what: str) -> dict[str, str]:
    """``{"sha256": hex}`` from ``sha256:hex`` (or a bare 64-hex string)."""
    if not text:
        return {}
    if ":" not in text:
        text = f"sha256:{text}"
    try:
        d = Digest.parse(text)
    except Exception as exc:
        raise AttestationError(f"build record: {what} is not a digest ({exc})") from None
    return {d.algorithm: d.hex}


def docker_purl(reference: str, digest: str, *, platform: str | None = None) -> str:
    """``pkg:docker/NAMESPACE/NAME@sha256%3AHEX?repository_url=HOST/PATH`` (purl-spec docker type).

    Docker Hub images have no ``repository_url``; other registries name the full repository.
    """
    ref = Reference.parse(reference.split("@", 1)[0] if "@" in reference else reference)
    d = Digest.parse(digest)
    path = "/".join(quote(p, safe="") for p in ref.repository.split("/"))
    quals = []
    if platform:
        quals.append(f"platform={quote(platform, safe='')}")
    if ref.registry != _DOCKER_HUB:
        quals.append(f"repository_url={quote(ref.name, safe='/:')}")
    q = ("?" + "&".join(sorted(quals))) if quals else ""
    return f"pkg:docker/{path}@{d.algorithm}%3A{d.hex}{q}"


def _dependency(img: ResolvedImage, platform: str) -> JSONObject:
    ann: JSONObject = {"role": img.role}
    if img.stage is not None:
        ann["stage"] = str(img.stage)
    if img.index_digest:
        ann["indexDigest"] = img.index_digest
    return {
        "uri": docker_purl(img.reference, img.digest, platform=platform or None),
        "digest": _digest_map(img.digest, what=f"digest of {img.reference}"),
        "name": img.reference,
        "annotations": ann,
    }


def _executor_dependency(ref_at_digest: str) -> JSONObject:
    name, sep, dg = ref_at_digest.partition("@")
    if not sep:
        raise AttestationError(f"build record: executor_image {ref_at_digest!r} is not REF@DIGEST")
    return {
        "uri": docker_purl(name, dg),
        "digest": _digest_map(dg, what="executor image digest"),
        "name": name,
        "annotations": {"role": "executor"},
    }


def _external(record: BuildRecord) -> JSONObject:
    ext: JSONObject = {
        "dockerfile": {"path": record.dockerfile_path,
                       "digest": _digest_map(record.dockerfile_digest, what="dockerfile_digest")},
    }
    if record.git_commit:
        ext["context"] = {"source": record.context_source, "git": {"url": record.context_source,
                                                                    "commit": record.git_commit}}
    else:
        ext["context"] = {"source": record.context_source,
                          "digest": _digest_map(record.context_digest, what="context_digest")}
    ext["buildArgs"] = dict(sorted(redact_mapping(record.build_args).items()))
    if record.target:
        ext["target"] = record.target
    if record.platform:
        ext["platform"] = record.platform
    ext["destinations"] = list(record.destinations)
    if record.labels:
        ext["labels"] = dict(sorted(redact_mapping(record.labels).items()))
    # as BuildKit: the ids RUN steps mounted and whether each was optional, never a value
    if record.secrets:
        ext["secrets"] = [{"id": str(e["id"]), "optional": bool(e["optional"])}
                          for e in record.secrets]
    if record.ssh:
        ext["ssh"] = [{"id": str(e["id"]), "optional": bool(e["optional"])} for e in record.ssh]
    return ext


def _internal(record: BuildRecord) -> JSONObject:
    internal: JSONObject = {
        "trustbuildVersion": record.trustbuild_version,
        "securityProfile": record.security_profile,
        "seccompProfile": {"name": record.seccomp_profile,
                           "digest": _digest_map(record.seccomp_profile_digest,
                                                 what="seccomp_profile_digest")},
        "snapshotMode": record.snapshot_mode,
        "mode": record.mode,
        "reproducible": record.reproducible,
    }
    if record.policy_digest or record.policy_decision:
        pol: JSONObject = {"digest": _digest_map(record.policy_digest, what="policy_digest"),
                               "decision": record.policy_decision}
        if record.policy_report:
            pol["report"] = record.policy_report
        internal["policy"] = pol
    return internal


def _byproducts(record: BuildRecord) -> list[JSONObject]:
    steps: list[JSONObject] = [{
        "stage": s.stage, "line": s.line, "instruction": s.instruction,
        "text": redact_text(s.text), "started": s.started, "finished": s.finished,
        "cached": s.cached, **({"layerDigest": s.layer_digest} if s.layer_digest else {}),
    } for s in record.steps]
    out: list[JSONObject] = [{"name": "steps", "mediaType": "application/json",
                                  "annotations": {"steps": steps}}]
    if record.config_digest:
        out.append({"name": "config",
                    "digest": _digest_map(record.config_digest, what="config_digest"),
                    "mediaType": "application/vnd.oci.image.config.v1+json"})
    return out


def provenance_predicate(record: BuildRecord, *, builder_id: str | None = None) -> JSONObject:
    """The SLSA v1 predicate (``https://slsa.dev/provenance/v1``) for ``record``."""
    deps = [_dependency(img, record.platform) for img in record.images]
    if record.executor_image:
        deps.append(_executor_dependency(record.executor_image))
    metadata: JSONObject = {}
    if record.invocation_id:
        metadata["invocationId"] = record.invocation_id
    if record.started_on:
        metadata["startedOn"] = record.started_on
    if record.finished_on:
        metadata["finishedOn"] = record.finished_on
    run: JSONObject = {
        "builder": {"id": builder_id or default_builder_id(),
                    "version": {"trustbuild": record.trustbuild_version}},
        "metadata": metadata,
        "byproducts": _byproducts(record),
    }
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": _external(record),
            "internalParameters": _internal(record),
            "resolvedDependencies": deps,
        },
        "runDetails": run,
    }
