"""The executor ``Job`` (batch/v1): ``trustbuild build`` in a pod under the policy.

A pod cannot learn the digest of its own image (the downward API has no such field), so the
renderer takes it (``--executor-image REPO@sha256:...``) and passes it to the build twice: as
the container image and as ``--executor-image`` / ``TRUSTBUILD_EXECUTOR_IMAGE``, which the
policy gate verifies against ``spec.executor``. The policy file goes in a ConfigMap with its
keys inlined (``key:`` paths become ``keyData:``). The image's entrypoint is ``--mode auto``:
with the securityContext of a ``baseline`` or ``restricted`` build profile (no CAP_SYS_ADMIN) it
builds in its own container as Kaniko does, privileged it uses the RUN sandbox. It runs as root,
so its namespace gets the Pod Security level ``baseline`` (``privileged`` for a privileged build
profile), never ``restricted``.
"""

from __future__ import annotations

from pathlib import Path

from trustbuild.errors import PolicyError, UsageError
from trustbuild.oci.reference import Reference
from trustbuild.policy.document import AttestationDoc, SignatureDoc
from trustbuild.policy.model import Policy
from trustbuild.policy.render.manifest import JSONValue, Manifest
from trustbuild.policy.render.options import RenderOptions, dns_name, require_options
from trustbuild.policy.render.output import dump_document
from trustbuild.policy.render.pod_security import namespace
from trustbuild.policy.render.seccomp import localhost_profile, profile_file

__all__ = ["render", "inline_policy", "POLICY_MOUNT"]

POLICY_MOUNT = "/trustbuild/policy"
SIGNING_MOUNT = "/trustbuild/signing"
DOCKER_MOUNT = "/trustbuild/.docker"


def _resolve(policy: Policy, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(policy.path).parent / p


def inline_policy(policy: Policy) -> dict[str, str]:
    """ConfigMap data: ``policy.yaml`` with keys inlined, plus the files it names (trusted
    roots, PKI CA bundles, a seccomp profile path) next to it, renamed to their mount path."""
    import copy

    doc = copy.deepcopy(policy.raw)
    files: dict[str, str] = {}

    def copy_in(value: str, name: str, where: str) -> str:
        path = _resolve(policy, value)
        try:
            files[name] = path.read_text()
        except OSError as exc:
            raise PolicyError(f"{policy.path}: {where}: cannot read {path}: "
                              f"{exc.strerror}") from None
        return f"{POLICY_MOUNT}/{name}"

    def fix(item: SignatureDoc | AttestationDoc, where: str) -> None:
        if "key" in item:
            path = _resolve(policy, item.pop("key"))
            try:
                item["keyData"] = path.read_text()
            except OSError as exc:
                raise PolicyError(f"{policy.path}: {where}.key: cannot read {path}: "
                                  f"{exc.strerror}") from None
        kl = item.get("keyless")
        if kl is not None and "trustedRoot" in kl:
            kl["trustedRoot"] = copy_in(kl["trustedRoot"], f"trusted-root-{len(files)}.json",
                                        f"{where}.keyless.trustedRoot")

    def fix_pki(item: SignatureDoc, where: str) -> None:
        pki = item.get("pki")
        if pki is None:
            return
        pki["caRoots"] = copy_in(pki["caRoots"], f"ca-roots-{len(files)}.pem",
                                 f"{where}.pki.caRoots")
        if "caIntermediates" in pki:
            pki["caIntermediates"] = copy_in(pki["caIntermediates"],
                                             f"ca-intermediates-{len(files)}.pem",
                                             f"{where}.pki.caIntermediates")

    spec = doc["spec"]
    for name, images in (("baseImages", spec.get("baseImages")), ("deploy", spec.get("deploy"))):
        for i, sig in enumerate(images.get("signatures") or [] if images else []):
            fix(sig, f"spec.{name}.signatures[{i}]")
            fix_pki(sig, f"spec.{name}.signatures[{i}]")
        for i, att in enumerate(images.get("attestations") or [] if images else []):
            fix(att, f"spec.{name}.attestations[{i}]")
    executor = spec.get("executor")
    for i, sig in enumerate(executor.get("signatures") or [] if executor else []):
        fix(sig, f"spec.executor.signatures[{i}]")
        fix_pki(sig, f"spec.executor.signatures[{i}]")
    build = spec.get("build")
    sc = build.get("seccompProfile") if build is not None else None
    if build is not None and sc and ("/" in sc or sc.endswith(".json")):
        build["seccompProfile"] = copy_in(sc, f"seccomp-{dns_name(_resolve(policy, sc).stem)}"
                                              ".json", "spec.build.seccompProfile")
    text = dump_document(doc)
    return {"policy.yaml": text, **files}


def _security_context(profile: str) -> dict[str, JSONValue]:
    from trustbuild.sandbox.profiles import DOCKER_DEFAULT_CAPS, RESTRICTED_CAPS

    if profile == "privileged":
        return {"privileged": True, "runAsUser": 0}
    caps = RESTRICTED_CAPS if profile == "restricted" else DOCKER_DEFAULT_CAPS
    return {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": sorted(caps)},
    }


def render(policy: Policy, options: RenderOptions) -> list[Manifest]:
    """The build namespace, the policy ConfigMap and the Job."""
    require_options("executor-job", options, "executor_image", "build_context", "destination")
    assert options.executor_image and options.build_context and options.destination
    ref = Reference.parse(options.executor_image)
    if ref.digest is None:
        raise UsageError(f"--executor-image {options.executor_image}: pin it by digest "
                         "(REPO@sha256:...); the gate verifies exactly that image")
    if policy.executor.image and Reference.parse(policy.executor.image).name != ref.name:
        raise PolicyError(f"--executor-image {options.executor_image}: not from "
                          f"spec.executor.image {policy.executor.image}; the gate would deny it")
    image = options.executor_image
    profile = policy.build.security_profile or "baseline"
    ns = options.build_namespace
    name = dns_name("trustbuild-build", policy.name, limit=52)
    cm_name = dns_name("trustbuild-policy", policy.name)
    args = ["--context", options.build_context, "--destination", options.destination,
            "--policy", f"{POLICY_MOUNT}/policy.yaml", "--executor-image", image,
            "--security-profile", profile]
    env: list[JSONValue] = [{"name": "TRUSTBUILD_EXECUTOR_IMAGE", "value": image}]
    mounts: list[JSONValue] = [{"name": "policy", "mountPath": POLICY_MOUNT,
                                     "readOnly": True}]
    volumes: list[JSONValue] = [{"name": "policy", "configMap": {"name": cm_name}}]
    if options.signing_secret:
        args += ["--sign-key", f"{SIGNING_MOUNT}/cosign.key"]
        env.append({"name": "COSIGN_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": options.signing_secret, "key": "cosign.password"}}})
        mounts.append({"name": "signing-key", "mountPath": SIGNING_MOUNT, "readOnly": True})
        volumes.append({"name": "signing-key", "secret": {
            "secretName": options.signing_secret,
            "items": [{"key": "cosign.key", "path": "cosign.key"}]}})
    if options.registry_secret:
        env.append({"name": "DOCKER_CONFIG", "value": DOCKER_MOUNT})
        mounts.append({"name": "docker-config", "mountPath": DOCKER_MOUNT, "readOnly": True})
        volumes.append({"name": "docker-config", "secret": {
            "secretName": options.registry_secret,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
    pod_sc: dict[str, JSONValue] = {}
    found = profile_file(policy) if profile != "privileged" else None
    if found is not None:
        pod_sc["seccompProfile"] = {"type": "Localhost",
                                    "localhostProfile": localhost_profile(found[0])}
    labels = {"app.kubernetes.io/name": "trustbuild-executor",
              "app.kubernetes.io/managed-by": "trustbuild"}
    level = "privileged" if profile == "privileged" else "baseline"
    policy_cm: Manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": cm_name, "namespace": ns, "labels": labels,
                     "annotations": {"trustbuild.dev/source-policy-digest": policy.digest}},
        "data": inline_policy(policy),
    }
    job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": {"trustbuild.dev/policy": policy.name,
                                     "trustbuild.dev/executor-image": image}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_sc,
                    "containers": [{
                        "name": "executor",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": args,
                        "env": env,
                        "securityContext": _security_context(profile),
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    return [namespace(ns, level, policy=policy), policy_cm, job]
