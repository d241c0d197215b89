"""``trustbuild policy render``: deterministic bundles, checked against the published schemas.

No Kubernetes API server, Kyverno or policy-controller can run here: the Kyverno ClusterPolicy
and the ClusterImagePolicy are validated against schemas vendored in tests/assets/admission
(see its README), including the API server's structural rule that an undeclared field would be
pruned; core manifests (Job, Deployment, VAP, webhook configuration, ...) against the API
models of the official Kubernetes Python client; the ValidatingAdmissionPolicy CEL is
evaluated with cel-python on Pod objects.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from trustbuild.cli.main import main
from trustbuild.errors import PolicyError, UsageError
from trustbuild.policy.model import load_policy, parse_policy
from trustbuild.policy.render import FORMATS, RenderOptions, dump_yaml, render

REPO = Path(__file__).resolve().parents[3]
ASSETS = REPO / "tests/assets/admission"
RESTRICTED = REPO / "policies/restricted.yaml"
DIGEST = "sha256:" + "ab" * 32
EXECUTOR = f"registry.example.com/trustbuild/executor@{DIGEST}"
FULL = RenderOptions(namespace="apps", executor_image=EXECUTOR, build_context="git://h/app.git",
                     destination="registry.example.com/apps/app:1", signing_secret="cosign",
                     webhook_service="trustbuild-system/trustbuild-admission",
                     ca_bundle=b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
KEYLESS = """apiVersion: trustbuild.dev/v1alpha1
kind: Policy
metadata: {name: Keyless Apps}
spec:
  deploy:
    allowedRepositories: ["docker.io/acme/*", "ghcr.io/acme/**"]
    signatures:
      - keyless: {issuer: "https://token.actions.githubusercontent.com",
                  subjectRegExp: 'https://github\\.com/acme/.*'}
"""


def _kinds(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["apiVersion"], d["kind"]) for d in docs]


def _undeclared(doc: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune: not declared by a structural schema."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or "$ref" in schema:
        return []
    out: list[str] = []
    if isinstance(doc, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in doc.items():
            if k in props:
                out += _undeclared(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += _undeclared(v, extra, f"{path}.{k}")
            else:
                out.append(f"{path}.{k}")
    elif isinstance(doc, list) and "items" in schema:
        for i, v in enumerate(doc):
            out += _undeclared(v, schema["items"], f"{path}[{i}]")
    return out


def _resolve_refs(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve_refs(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _resolve_refs(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve_refs(v, defs) for v in schema]
    return schema


def _crd_schema(name: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((ASSETS / name).read_text())
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = ver["schema"]["openAPIV3Schema"]
    for implicit in ("apiVersion", "kind"):
        schema["properties"].setdefault(implicit, {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object",
                                                 "x-kubernetes-preserve-unknown-fields": True})
    return schema  # type: ignore[no-any-return]


def _check_schema(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(doc)
    flat = _resolve_refs(schema, schema.get("$defs", {}))
    assert _undeclared(doc, flat) == []


def test_all_formats_render_deterministically_and_parse() -> None:
    pol = load_policy(RESTRICTED)
    first = dump_yaml(render(pol, ["all"], FULL))
    again = dump_yaml(render(load_policy(RESTRICTED), ["all"], FULL))
    assert first == again
    docs = list(yaml.safe_load_all(first))
    assert _kinds(docs) == [
        ("v1", "Namespace"),
        ("v1", "ConfigMap"),
        ("v1", "Namespace"), ("v1", "ConfigMap"), ("batch/v1", "Job"),
        ("kyverno.io/v1", "ClusterPolicy"),
        ("policy.sigstore.dev/v1beta1", "ClusterImagePolicy"),
        ("policy.sigstore.dev/v1beta1", "ClusterImagePolicy"),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ]
    for d in docs:
        name = d["metadata"]["name"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
        assert "&id" not in first  # no YAML anchors: every manifest stands alone


def _kyverno_semantic_errors(doc: dict[str, Any]) -> list[str]:
    """Kyverno's own checks on verifyImages (transcribed from ImageVerification.Validate,
    AttestorSet/Attestor/StaticKeyAttestor/KeylessAttestor.Validate in api/kyverno/v1)."""
    errs: list[str] = []

    def attestor_sets(sets: list[dict[str, Any]], where: str) -> None:
        for i, s in enumerate(sets):
            entries = s.get("entries", [])
            if not entries:
                errs.append(f"{where}[{i}]: an entry is required")
            if s.get("count") is not None and s["count"] > len(entries):
                errs.append(f"{where}[{i}]: count cannot exceed length of entries")
            for j, e in enumerate(entries):
                kinds = [k for k in ("keys", "certificates", "keyless", "attestor") if k in e]
                if len(kinds) != 1:
                    errs.append(f"{where}[{i}].entries[{j}]: exactly one attestor kind")
                keys = e.get("keys")
                if keys is not None and not (keys.get("publicKeys") or keys.get("kms")
                                             or keys.get("secret")):
                    errs.append(f"{where}[{i}].entries[{j}].keys: a key is required")
                kl = e.get("keyless")
                if kl is not None and not (kl.get("rekor", {}).get("url") or kl.get("roots")):
                    errs.append(f"{where}[{i}].entries[{j}].keyless: rekor.url or roots")

    for r, rule in enumerate(doc["spec"]["rules"]):
        for v, iv in enumerate(rule.get("verifyImages", [])):
            where = f"rules[{r}].verifyImages[{v}]"
            if not iv.get("imageReferences"):
                errs.append(f"{where}: an image reference is required")
            attestor_sets(iv.get("attestors", []), f"{where}.attestors")
            for a, att in enumerate(iv.get("attestations", [])):
                attestor_sets(att.get("attestors", []), f"{where}.attestations[{a}].attestors")
    return errs


def test_kyverno_cluster_policy_matches_schema_and_policy() -> None:
    pol = load_policy(RESTRICTED)
    (doc,) = render(pol, ["kyverno"], RenderOptions())
    _check_schema(doc, yaml.safe_load((ASSETS / "kyverno-clusterpolicy-schema.yaml").read_text()))
    assert _kyverno_semantic_errors(doc) == []
    spec = doc["spec"]
    assert spec["validationFailureAction"] == "Enforce"
    deny, verify_rule = spec["rules"]
    assert "regex_match(" in deny["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]["key"]
    (verify,) = verify_rule["verifyImages"]
    assert verify["imageReferences"] == ["registry.example.com/apps/*", "127.0.0.1:*/*"]
    assert verify["mutateDigest"] is True and verify["verifyDigest"] is True
    key = verify["attestors"][0]["entries"][0]["keys"]
    assert key["publicKeys"].encode() == pol.deploy.signatures[0].key_pem
    assert key["rekor"]["ignoreTlog"] is True
    (att,) = verify["attestations"]
    assert att["type"] == att["predicateType"] == "https://slsa.dev/provenance/v1"


def test_kyverno_keyless_and_builder_ids() -> None:
    pol = parse_policy(KEYLESS.encode() + b"""    attestations:
      - {type: slsaprovenance, keyData: "%s", builderIds: ["https://ci.example/b"]}
""" % (RESTRICTED.parent / "keys/release.pub").read_bytes().replace(b"\n", b"\\n"))
    (doc,) = render(pol, ["kyverno"], RenderOptions())
    _check_schema(doc, yaml.safe_load((ASSETS / "kyverno-clusterpolicy-schema.yaml").read_text()))
    assert _kyverno_semantic_errors(doc) == []
    assert doc["metadata"]["name"] == "trustbuild-keyless-apps"
    assert doc["spec"]["rules"][0]["match"] == {"any": [{"resources": {"kinds": ["Pod"]}}]}
    (scoped,) = render(pol, ["kyverno"], RenderOptions(namespace="apps"))
    assert scoped["spec"]["rules"][1]["match"]["any"][0]["resources"]["namespaces"] == ["apps"]
    verify = doc["spec"]["rules"][1]["verifyImages"][0]
    assert verify["imageReferences"] == ["docker.io/acme/*", "ghcr.io/acme/*"]
    keyless = verify["attestors"][0]["entries"][0]["keyless"]
    assert keyless["issuer"] == "https://token.actions.githubusercontent.com"
    assert keyless["subjectRegExp"] == r"^(?:https://github\.com/acme/.*)$"
    cond = verify["attestations"][0]["conditions"][0]["all"][0]
    assert cond == {"key": "{{ runDetails.builder.id }}", "operator": "AnyIn",
                    "value": ["https://ci.example/b"]}


def test_cluster_image_policies_match_crd() -> None:
    pol = load_policy(RESTRICTED)
    docs = render(pol, ["policy-controller"], RenderOptions())
    _check_policy_controller(docs)
    signed, att = docs
    assert signed["spec"]["images"] == [{"glob": "registry.example.com/apps/**"},
                                        {"glob": "127.0.0.1:*/**"}]
    assert signed["spec"]["authorities"][0]["key"]["data"].encode() == \
        pol.deploy.signatures[0].key_pem
    (auth,) = att["spec"]["authorities"]
    assert auth["attestations"][0]["predicateType"] == "https://slsa.dev/provenance/v1"
    kl = render(parse_policy(KEYLESS.encode()), ["policy-controller"], RenderOptions())
    _check_policy_controller(kl)
    assert kl[0]["spec"]["images"][0] == {"glob": "index.docker.io/acme/*"}
    assert kl[0]["spec"]["authorities"][0]["keyless"]["identities"] == [{
        "issuer": "https://token.actions.githubusercontent.com",
        "subjectRegExp": r"^(?:https://github\.com/acme/.*)$"}]
    # builderIds cannot be expressed there: said, not dropped silently
    with_ids = parse_policy(KEYLESS.encode() + b"""    attestations:
      - {type: slsaprovenance, keyData: "%s", builderIds: ["https://ci.example/b"]}
""" % (RESTRICTED.parent / "keys/release.pub").read_bytes().replace(b"\n", b"\\n"))
    warnings: list[str] = []
    docs = render(with_ids, ["policy-controller"], RenderOptions(), warnings=warnings)
    assert warnings == ["policy-controller: spec.deploy.attestations[0].builderIds "
                        "(https://ci.example/b) are not checked by policy-controller (that needs "
                        "a CUE/Rego policy): any builder's signed slsaprovenance attestation "
                        "passes"]
    assert "builderIds" in docs[1]["metadata"]["annotations"]["trustbuild.dev/render-warnings"]
    assert "trustbuild.dev/render-warnings" not in docs[0]["metadata"]["annotations"]


def _cel(expr: str, activation: dict[str, Any]) -> Any:
    """Evaluate with cel-python; ``join`` stands in for Kubernetes' strings extension."""
    import celpy
    from celpy import celtypes, json_to_cel

    def join(lst: Any, sep: Any) -> Any:
        return celtypes.StringType(str(sep).join(str(x) for x in lst))

    env = celpy.Environment()
    prog = env.program(env.compile(expr), functions={"join": join})
    return prog.evaluate({k: json_to_cel(v) for k, v in activation.items()})


def _pod(*images: str, init: tuple[str, ...] = (), eph: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im}
                                           for i, im in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": "i", "image": im} for im in init]
    if eph:
        spec["ephemeralContainers"] = [{"name": "e", "image": im} for im in eph]
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec}


def test_validating_admission_policy_cel_on_pods() -> None:
    pol = parse_policy(KEYLESS.encode())
    vap, binding = render(pol, ["vap"], RenderOptions(namespace="apps"))
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "apps"}}
    (var,) = vap["spec"]["variables"]
    pinned, repos = vap["spec"]["validations"]

    def verdicts(pod: dict[str, Any]) -> list[tuple[bool, str]]:
        images = _cel(var["expression"], {"object": pod})
        act = {"variables": {"images": [str(i) for i in images]}}
        return [(bool(_cel(v["expression"], act)), str(_cel(v["messageExpression"], act)))
                for v in (pinned, repos)]

    good = f"ghcr.io/acme/team/app@{DIGEST}"
    assert verdicts(_pod(good, init=(f"acme/tool:1@{DIGEST}",))) == [
        (True, "images must be pinned by digest (name@sha256:...): "),
        (True, "images not from an allowed repository (docker.io/acme/*, ghcr.io/acme/**): ")]
    (p_ok, p_msg), (r_ok, r_msg) = verdicts(_pod(good, eph=("ghcr.io/acme/debug:1",)))
    assert not p_ok and p_msg.endswith(": ghcr.io/acme/debug:1") and r_ok
    (p_ok, _), (r_ok, r_msg) = verdicts(_pod(f"ghcr.io/evil/app@{DIGEST}",
                                             init=(f"docker.io/acme/x/y@{DIGEST}",)))
    assert p_ok and not r_ok
    assert r_msg.endswith(f": ghcr.io/evil/app@{DIGEST}, docker.io/acme/x/y@{DIGEST}")


@pytest.mark.parametrize(("image", "allowed"), [
    ("ghcr.io/acme/app", True),
    ("ghcr.io/acme/team/app:1.0", True),
    (f"ghcr.io/acme/app@{DIGEST}", True),
    ("ghcr.io/acmeco/app", False),
    ("ghcr.io/acme", False),
    ("docker.io/acme/app:1", True),
    ("index.docker.io/acme/app", True),
    ("acme/app:2", True),                      # Docker short form of docker.io/acme/app
    ("acme/app/extra", False),                 # * stays within one segment
    ("evil.io/acme/app", False),
    ("127.0.0.1:5000/acme/app", False),
    ("app", False),                            # docker.io/library/app
])
def test_image_regex_follows_repository_globs(image: str, allowed: bool) -> None:
    from trustbuild.policy.render.images import image_regex

    rx = image_regex(["docker.io/acme/*", "ghcr.io/acme/**"])
    assert bool(re.search(rx, image)) is allowed
    assert "\\" not in rx and "'" not in rx


def test_library_images_and_bare_names() -> None:
    from trustbuild.policy.render.images import image_regex

    rx = image_regex(["docker.io/library/*"])
    for ok in ("nginx", "nginx:1.27", "library/nginx", "docker.io/library/nginx"):
        assert re.search(rx, ok), ok
    for bad in ("acme/nginx", "localhost:5000/nginx", "quay.io/nginx"):
        assert not re.search(rx, bad), bad
    with pytest.raises(PolicyError, match="unsupported characters"):
        image_regex(["ghcr.io/acme/(evil)"])


def test_pod_security_namespace_and_seccomp_configmap() -> None:
    pol = load_policy(RESTRICTED)
    (ns,) = render(pol, ["pod-security"], RenderOptions(namespace="apps"))
    assert ns["metadata"]["name"] == "apps"
    labels = ns["metadata"]["labels"]
    assert labels["policy.sigstore.dev/include"] == "true"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    baseline = parse_policy(KEYLESS.replace("  deploy:\n", "  deploy:\n    securityProfile: "
                                            "baseline\n").encode())
    (ns2,) = render(baseline, ["pod-security"], RenderOptions(namespace="web"))
    assert ns2["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    (cm,) = render(pol, ["seccomp"], RenderOptions())
    text = cm["data"]["build-default.json"]
    assert text == (REPO / "seccomp/build-default.json").read_text()
    import hashlib
    assert cm["metadata"]["annotations"]["trustbuild.dev/seccomp-digest"] == \
        "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_executor_job_takes_its_image_and_inlines_the_policy(tmp_path: Path) -> None:
    pol = load_policy(RESTRICTED)
    ns, cm, job = render(pol, ["executor-job"], FULL)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == EXECUTOR
    assert c["args"][c["args"].index("--executor-image") + 1] == EXECUTOR
    assert {"name": "TRUSTBUILD_EXECUTOR_IMAGE", "value": EXECUTOR} in c["env"]
    assert c["args"][c["args"].index("--security-profile") + 1] == "restricted"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "SYS_ADMIN" not in c["securityContext"]["capabilities"]["add"]
    assert pod["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "trustbuild/build-default.json"}
    # the inlined policy is a valid policy with the same keys, readable without key files
    (tmp_path / "policy.yaml").write_text(cm["data"]["policy.yaml"])
    inlined = load_policy(tmp_path / "policy.yaml")
    assert [s.key_pem for s in inlined.deploy.signatures] == \
        [s.key_pem for s in pol.deploy.signatures]
    assert [s.key_pem for s in inlined.executor.signatures] == \
        [s.key_pem for s in pol.executor.signatures]
    with pytest.raises(UsageError, match="pin it by digest"):
        render(pol, ["executor-job"], RenderOptions(
            executor_image="registry.example.com/trustbuild/executor:1", build_context="c",
            destination="d", signing_secret="s"))
    with pytest.raises(PolicyError, match="not from spec.executor.image"):
        render(pol, ["executor-job"], RenderOptions(
            executor_image=f"evil.example.com/executor@{DIGEST}", build_context="c",
            destination="d", signing_secret="s"))


def test_webhook_configuration() -> None:
    (doc,) = render(load_policy(RESTRICTED), ["webhook"], FULL)
    (hook,) = doc["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["clientConfig"]["service"] == {"namespace": "trustbuild-system",
                                               "name": "trustbuild-admission",
                                               "path": "/validate", "port": 443}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == FULL.ca_bundle
    pods = hook["rules"][0]
    assert "pods" in pods["resources"] and pods["operations"] == ["CREATE", "UPDATE"]
    with pytest.raises(UsageError, match="NAMESPACE/NAME"):
        render(load_policy(RESTRICTED), ["webhook"],
               RenderOptions(webhook_service="svc", ca_bundle=FULL.ca_bundle))


def test_empty_deploy_section_is_refused_or_skipped() -> None:
    pol = parse_policy(b"apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nspec: {}\n")
    with pytest.raises(PolicyError, match="spec.deploy: no allowedRepositories"):
        render(pol, ["kyverno"], RenderOptions())
    skipped: list[str] = []
    docs = render(load_policy(REPO / "policies/baseline.yaml"), ["all"],
                  RenderOptions(namespace="apps"), skipped=skipped)
    assert [d["kind"] for d in docs] == ["Namespace", "ConfigMap", "ValidatingAdmissionPolicy",
                                         "ValidatingAdmissionPolicyBinding"]
    assert "kyverno: spec.deploy has no allowedRepositories, signatures or attestations" in skipped


def test_cli_render_stdout_and_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["policy", "render", "--policy", str(RESTRICTED)]) == 0
    out, err = capsys.readouterr()
    assert "skipped executor-job: needs --executor-image" in err
    assert "skipped webhook: needs --webhook-service" in err
    assert "skipped pod-security: needs --namespace NS" in err
    kinds = [d["kind"] for d in yaml.safe_load_all(out)]
    assert "ClusterPolicy" in kinds and "Job" not in kinds
    assert main(["policy", "render", "--policy", str(RESTRICTED)]) == 0
    assert capsys.readouterr()[0] == out
    ca = tmp_path / "ca.pem"
    ca.write_bytes(FULL.ca_bundle or b"")
    assert main(["policy", "render", "--policy", str(RESTRICTED), "--format", "vap,webhook",
                 "--webhook-service", "tb/adm", "--ca-bundle", str(ca),
                 "--output-dir", str(tmp_path / "out")]) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["60-validatingadmissionpolicy.yaml",
                     "61-validatingadmissionpolicybinding.yaml",
                     "90-validatingwebhookconfiguration.yaml"]
    assert main(["policy", "render", "--policy", str(RESTRICTED), "--namespace", "apps",
                 "--output-dir", str(tmp_path / "all")]) == 0
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names[0] == "00-namespace.yaml" and names[1] == "10-configmap.yaml"
    assert len(list(yaml.safe_load_all((tmp_path / "all/50-clusterimagepolicy.yaml")
                                       .read_text()))) == 2
    assert main(["policy", "render", "--policy", str(RESTRICTED), "--format", "webhook"]) == 2
    assert "--webhook-service" in capsys.readouterr()[1]
    assert main(["policy", "render", "--policy", str(RESTRICTED), "--format", "helm"]) == 2
    assert "unknown render format 'helm'" in capsys.readouterr()[1]
    assert set(FORMATS) >= {"kyverno", "vap", "webhook"}


BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _pss_violations(spec: dict[str, Any], level: str) -> list[str]:
    """The Pod Security Standards checks that concern these pods (not the whole standard)."""
    out = []
    psc = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(key)
    if any("hostPath" in v for v in spec.get("volumes", [])):
        out.append("hostPath")
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if sc.get("privileged"):
            out.append("privileged")
        if seccomp == "Unconfined":
            out.append("seccomp Unconfined")
        add = set(sc.get("capabilities", {}).get("add", []))
        if add - BASELINE_CAPS:
            out.append(f"capabilities {sorted(add - BASELINE_CAPS)}")
        if level == "restricted":
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append("allowPrivilegeEscalation")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                out.append("drop ALL")
            if add - {"NET_BIND_SERVICE"}:
                out.append("added capabilities")
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                out.append("runAsNonRoot")
            if sc.get("runAsUser", psc.get("runAsUser")) == 0:
                out.append("runAsUser 0")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                out.append("seccomp profile")
    return out


def test_webhook_server_bundle_passes_restricted_and_executor_passes_baseline() -> None:
    image = f"registry.example.com/trustbuild/executor@{DIGEST}"
    opts = RenderOptions(webhook_service=FULL.webhook_service, ca_bundle=FULL.ca_bundle,
                         webhook_image=image)
    cm, deploy, svc, config = render(load_policy(RESTRICTED), ["webhook"], opts)
    assert [d["kind"] for d in (cm, deploy, svc, config)] == [
        "ConfigMap", "Deployment", "Service", "ValidatingWebhookConfiguration"]
    ns, name = "trustbuild-system", "trustbuild-admission"
    assert svc["metadata"] == {**svc["metadata"], "namespace": ns, "name": name}
    assert config["webhooks"][0]["clientConfig"]["service"]["port"] == svc["spec"]["ports"][0][
        "port"]
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == image and c["command"][:3] == ["trustbuild", "admission", "serve"]
    assert c["ports"][0]["containerPort"] == svc["spec"]["ports"][0]["targetPort"]
    assert _pss_violations(pod, "restricted") == []
    assert parse_policy(cm["data"]["policy.yaml"].encode()).deploy.signatures
    job = render(load_policy(RESTRICTED), ["executor-job"], FULL)[2]
    job_pod = job["spec"]["template"]["spec"]
    assert _pss_violations(job_pod, "baseline") == []
    assert "runAsUser 0" in _pss_violations(job_pod, "restricted")  # hence its own namespace
    with pytest.raises(UsageError, match="pin it by digest"):
        render(load_policy(RESTRICTED), ["webhook"], RenderOptions(
            webhook_service="a/b", ca_bundle=FULL.ca_bundle, webhook_image="x/y:1"))


def _k8s_errors(data: Any, type_name: str, path: str = "") -> list[str]:
    """Fields and types against the Kubernetes API models (the official Python client's
    generated ``openapi_types`` / ``attribute_map``): an unknown field or wrong type is an
    error, as ``kubectl apply --validate=strict`` would report."""
    import kubernetes.client.models as models

    if type_name.lower().startswith("list["):
        if not isinstance(data, list):
            return [f"{path}: expected a list"]
        return [e for i, v in enumerate(data) for e in _k8s_errors(v, type_name[5:-1],
                                                                     f"{path}[{i}]")]
    if type_name.lower().startswith(("dict(", "dict[")):
        if not isinstance(data, dict):
            return [f"{path}: expected a map"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [e for k, v in data.items() for e in _k8s_errors(v, inner, f"{path}.{k}")]
    primitive = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if type_name in primitive:
        ok = isinstance(data, primitive[type_name]) and not (
            type_name == "int" and isinstance(data, bool))
        return [] if ok else [f"{path}: expected {type_name}, got {data!r}"]
    if type_name in ("bytes", "bytearray"):  # base64 in JSON
        try:
            base64.b64decode(data, validate=True)
        except (ValueError, TypeError):
            return [f"{path}: expected base64"]
        return []
    if type_name == "object":
        return []
    cls = getattr(models, type_name)
    if not isinstance(data, dict):
        return [f"{path}: expected {type_name}"]
    by_json = {j: a for a, j in cls.attribute_map.items()}
    out = []
    for k, v in data.items():
        if k not in by_json:
            out.append(f"{path}.{k}: unknown field of {type_name}")
        else:
            out += _k8s_errors(v, cls.openapi_types[by_json[k]], f"{path}.{k}")
    return out


def test_core_manifests_match_the_kubernetes_api() -> None:
    from kubernetes.client import ApiClient

    opts = RenderOptions(namespace="apps", executor_image=EXECUTOR, build_context="c",
                         destination="d", signing_secret="s", registry_secret="r",
                         webhook_service=FULL.webhook_service, ca_bundle=FULL.ca_bundle,
                         webhook_image=EXECUTOR)
    docs = render(load_policy(RESTRICTED), ["all"], opts)
    core = [d for d in docs if not d["apiVersion"].startswith(("kyverno.io", "policy.sigstore"))]
    assert {d["kind"] for d in core} >= {
        "Namespace", "ConfigMap", "Job", "Deployment", "Service", "ValidatingAdmissionPolicy",
        "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicyBinding"}
    client = ApiClient()
    for d in core:
        model = "V1" + d["kind"]
        assert _k8s_errors(d, model, d["kind"]) == []
        # required fields: the generated models refuse to be built without them
        client._ApiClient__deserialize(d, model)


def test_executor_job_profiles_and_a_seccomp_file_next_to_the_policy(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/mine.json").write_bytes((REPO / "seccomp/build-default.json")
                                                  .read_bytes())
    head = ("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n"
            "spec:\n  executor: {image: registry.example.com/trustbuild/executor}\n")
    opts = RenderOptions(executor_image=EXECUTOR, build_context="c", destination="d")
    (tmp_path / "priv.yaml").write_text(head + "  build: {securityProfile: privileged}\n")
    ns, _, job = render(load_policy(tmp_path / "priv.yaml"), ["executor-job"], opts)
    pod = job["spec"]["template"]["spec"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert pod["containers"][0]["securityContext"]["privileged"] is True
    assert "seccompProfile" not in pod["securityContext"]
    (tmp_path / "own.yaml").write_text(
        head + "  build: {securityProfile: baseline, seccompProfile: profiles/mine.json}\n")
    pol = load_policy(tmp_path / "own.yaml")
    _, cm, job = render(pol, ["executor-job"], opts)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"]["localhostProfile"] == "trustbuild/mine.json"
    assert "NET_RAW" in pod["containers"][0]["securityContext"]["capabilities"]["add"]
    assert cm["data"]["seccomp-mine.json"] == (tmp_path / "profiles/mine.json").read_text()
    assert "seccompProfile: /trustbuild/policy/seccomp-mine.json" in cm["data"]["policy.yaml"]
    (seccomp_cm,) = render(pol, ["seccomp"], opts)
    assert list(seccomp_cm["data"]) == ["mine.json"]


# --- signedIdentity and PKI signers: rendered where the target can check them, warned where not

KYVERNO_SCHEMA = ASSETS / "kyverno-clusterpolicy-schema.yaml"
RELEASE_PUB = RESTRICTED.parent / "keys/release.pub"


def _ca(tmp_path: Path, name: str = "corp") -> Path:
    """A self-signed CA certificate (PEM file) for pki.caRoots / caIntermediates."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _policy(tmp_path: Path, signatures: str, name: str = "policy") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: modes}\n"
                    "spec:\n  deploy:\n    allowedRepositories: ['registry.example.com/apps/**']\n"
                    f"    signatures:\n{signatures}")
    return path


IDENTITIES = [
    ("matchRepoDigestOrExact", "{type: matchRepoDigestOrExact}", ""),
    ("matchExact", "{type: matchExact}", ""),
    ("exactReference", "{type: exactReference, dockerReference: 'registry.example.com/apps/a:1'}",
     "dockerReference=registry.example.com/apps/a:1"),
    ("exactRepository", "{type: exactRepository, dockerRepository: 'registry.example.com/apps/a'}",
     "dockerRepository=registry.example.com/apps/a"),
    ("remapIdentity", "{type: remapIdentity, prefix: 'mirror.example.com/apps', "
                      "signedPrefix: 'registry.example.com/apps'}",
     "prefix=mirror.example.com/apps, signedPrefix=registry.example.com/apps"),
]


@pytest.mark.parametrize(("mode", "identity", "detail"), IDENTITIES)
def test_signed_identity_modes_render_the_key_and_warn(tmp_path: Path, mode: str, identity: str,
                                                       detail: str) -> None:
    """cosign (Kyverno, policy-controller) never reads the signed docker-reference: the key is
    rendered, the identity is named in a warning, an annotation and a YAML comment."""
    path = _policy(tmp_path, f"      - {{key: {RELEASE_PUB}}}\n"
                             f"      - {{key: {RELEASE_PUB}, signedIdentity: {identity}}}\n")
    pol = load_policy(path)
    warnings: list[str] = []
    docs = render(pol, ["kyverno", "policy-controller"], RenderOptions(), warnings=warnings)
    kyv, cip = docs
    _check_schema(kyv, yaml.safe_load(KYVERNO_SCHEMA.read_text()))
    assert _kyverno_semantic_errors(kyv) == []
    _check_schema(cip, _crd_schema("clusterimagepolicy-crd.yaml", "v1beta1"))
    entries = kyv["spec"]["rules"][1]["verifyImages"][0]["attestors"][0]["entries"]
    assert [e["keys"]["publicKeys"].encode() for e in entries] == [RELEASE_PUB.read_bytes()] * 2
    assert [a["key"]["data"].encode() for a in cip["spec"]["authorities"]] == \
        [RELEASE_PUB.read_bytes()] * 2
    want = f"spec.deploy.signatures[1].signedIdentity {mode}"
    assert len(warnings) == 2
    for target, w in zip(("kyverno", "policy-controller"), warnings, strict=True):
        assert w.startswith(f"{target}: {want}") and "not checked by" in w, w
        assert detail in w
    for d in docs:
        assert want in d["metadata"]["annotations"]["trustbuild.dev/render-warnings"]
    text = dump_yaml(docs)
    assert text.count(f"# WARNING (trustbuild policy render): {want}") == 2
    assert [d["kind"] for d in yaml.safe_load_all(text)] == ["ClusterPolicy",
                                                             "ClusterImagePolicy"]


def test_default_identity_renders_without_warnings() -> None:
    warnings: list[str] = []
    docs = render(load_policy(RESTRICTED), ["all"], FULL, warnings=warnings)
    assert warnings == []
    assert "WARNING" not in dump_yaml(docs)
    for d in docs:
        assert "trustbuild.dev/render-warnings" not in d["metadata"].get("annotations", {})


def test_pki_signer_is_a_kyverno_keyless_attestor_with_the_ca_roots(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    path = _policy(tmp_path, f"      - pki: {{caRoots: {ca.name}, subjectEmail: "
                             "release@example.com}\n"
                             f"      - pki: {{caRoots: {ca.name}, "
                             "subjectHostname: build.example.com}\n")
    warnings: list[str] = []
    (doc,) = render(load_policy(path), ["kyverno"], RenderOptions(), warnings=warnings)
    _check_schema(doc, yaml.safe_load(KYVERNO_SCHEMA.read_text()))
    assert _kyverno_semantic_errors(doc) == []
    assert warnings == []
    email, host = (e["keyless"] for e in
                   doc["spec"]["rules"][1]["verifyImages"][0]["attestors"][0]["entries"])
    assert email["roots"] == ca.read_text()
    assert email["subject"] == "release@example.com" and "issuer" not in email
    assert email["rekor"]["ignoreTlog"] is True and email["ctlog"]["ignoreSCT"] is True
    # the hostname as Go's VerifyHostname accepts it, over the certificate's SAN values
    rx = host["subjectRegExp"]
    for san in ("build.example.com", "BUILD.example.com", "*.example.com"):
        assert re.search(rx, san), san
    for san in ("evil.example.com", "build.example.com.evil", "xbuild.example.com", "*.com"):
        assert not re.search(rx, san), san


def test_pki_parts_kyverno_cannot_check_are_warned(tmp_path: Path) -> None:
    ca, inter = _ca(tmp_path), _ca(tmp_path, "inter")
    path = _policy(tmp_path, f"      - pki: {{caRoots: {ca.name}, caIntermediates: {inter.name},"
                             " subjectEmail: release@example.com, "
                             "subjectHostname: build.example.com}\n")
    warnings: list[str] = []
    (doc,) = render(load_policy(path), ["kyverno"], RenderOptions(), warnings=warnings)
    entry = doc["spec"]["rules"][1]["verifyImages"][0]["attestors"][0]["entries"][0]["keyless"]
    assert entry["subject"] == "release@example.com" and "subjectRegExp" not in entry
    assert warnings == [
        "kyverno: spec.deploy.signatures[0].pki.subjectHostname build.example.com is not "
        "checked by Kyverno (an attestor matches one subject: subjectEmail is the one checked)",
        "kyverno: spec.deploy.signatures[0].pki.caIntermediates cannot be given to Kyverno: a "
        "signature whose chain annotation lacks the intermediates is denied there"]


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _trust_root_errors(doc: dict[str, Any]) -> list[str]:
    """policy-controller's TrustRoot validation the CRD does not express (transcribed from
    TrustRootSpec/SigstoreKeys/ValidateCertificateAuthority.Validate in
    pkg/apis/policy/v1alpha1/trustroot_validation.go), plus what its reconciler and webhook
    need to read the chain (``certChain`` is ``[]byte``: base64 of PEM blocks back to back,
    as config.DeserializeCertChain decodes them)."""
    errs: list[str] = []
    spec = doc["spec"]
    if sum(k in spec for k in ("repository", "remote", "sigstoreKeys")) != 1:
        return ["spec: exactly one of repository, remote, sigstoreKeys"]
    keys = spec.get("sigstoreKeys")
    if keys is None:
        return errs
    if not keys.get("certificateAuthorities") and not keys.get("timestampAuthorities"):
        errs.append("spec.sigstoreKeys: missing certificateAuthority or timestampAuthorities")
    for i, ca in enumerate(keys.get("certificateAuthorities", [])):
        where = f"spec.sigstoreKeys.certificateAuthority[{i}]"
        for field in ("organization", "commonName"):
            if not ca.get("subject", {}).get(field):
                errs.append(f"{where}.subject.{field}: missing")
        if not ca.get("uri"):
            errs.append(f"{where}.uri: missing")
        try:
            pem = base64.b64decode(ca.get("certChain", ""), validate=True).decode()
        except ValueError:
            errs.append(f"{where}.certChain: not base64")
            continue
        if not pem:
            errs.append(f"{where}.certchain: missing")
        if re.sub(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n",
                  "", pem):
            errs.append(f"{where}.certChain: not PEM certificates back to back")
    for field in ("tLogs", "ctLogs"):
        for j, log in enumerate(keys.get(field, [])):
            errs += [f"spec.sigstoreKeys.{field}[{j}].{f}: missing"
                     for f in ("baseURL", "hashAlgorithm", "publicKey") if not log.get(f)]
    return errs


def _cip_errors(doc: dict[str, Any], trust_roots: set[str]) -> list[str]:
    """policy-controller's ClusterImagePolicy validation after its defaulting (transcribed from
    pkg/apis/policy/v1beta1/clusterimagepolicy_defaults.go and _validation.go: Authority,
    KeylessRef and Identity.Validate), plus: a ``trustRootRef`` names a TrustRoot that exists
    (the webhook denies with "trustRootRef ... not found" otherwise)."""
    errs: list[str] = []
    for i, auth in enumerate(doc["spec"]["authorities"]):
        where = f"spec.authorities[{i}]"
        if sum(k in auth for k in ("key", "keyless", "static")) != 1:
            errs.append(f"{where}: expected exactly one of key, keyless, static")
            continue
        if "static" in auth and ("ctlog" in auth or "attestations" in auth):
            errs.append(f"{where}: static with ctlog or attestations")
        kl = auth.get("keyless")
        if kl is None:
            continue
        if "url" not in kl and "ca-cert" not in kl:
            kl = {**kl, "url": "https://fulcio.sigstore.dev"}  # SetDefaults
        if "url" in kl and "ca-cert" in kl:
            errs.append(f"{where}.keyless: expected exactly one of url, ca-cert")
        ref = kl.get("trustRootRef")
        if ref is not None and (not _DNS_SUBDOMAIN.fullmatch(ref) or ref not in trust_roots):
            errs.append(f"{where}.keyless.trustRootRef {ref}: no such TrustRoot")
        if not kl.get("identities"):
            errs.append(f"{where}.keyless.identities: missing")
        for j, ident in enumerate(kl.get("identities", [])):
            iw = f"{where}.keyless.identities[{j}]"
            for exact, rx in (("issuer", "issuerRegExp"), ("subject", "subjectRegExp")):
                if exact in ident and rx in ident:
                    errs.append(f"{iw}: expected exactly one of {exact}, {rx}")
                if not ident.get(exact) and not ident.get(rx):
                    errs.append(f"{iw}: missing {exact} or {rx}")
                if rx in ident:
                    re.compile(ident[rx])
    return errs


def _check_policy_controller(docs: list[dict[str, Any]]) -> None:
    """Every TrustRoot and ClusterImagePolicy against its CRD and the Go validation."""
    roots = [d for d in docs if d["kind"] == "TrustRoot"]
    names = {d["metadata"]["name"] for d in roots}
    for d in roots:
        assert d["apiVersion"] == "policy.sigstore.dev/v1alpha1"
        _check_schema(d, _crd_schema("trustroot-crd.yaml", "v1alpha1"))
        assert _trust_root_errors(d) == []
    for d in docs:
        if d["kind"] == "ClusterImagePolicy":
            _check_schema(d, _crd_schema("clusterimagepolicy-crd.yaml", "v1beta1"))
            assert _cip_errors(d, names) == []


def test_policy_controller_go_validation_transcript_rejects_bad_objects() -> None:
    """The transcribed checks fail what policy-controller would refuse."""
    assert _cip_errors({"spec": {"authorities": [
        {"keyless": {"trustRootRef": "missing", "identities": [{"subject": "a"}]}},
        {"key": {"data": "k"}, "keyless": {"identities": []}}]}}, set()) == [
        "spec.authorities[0].keyless.trustRootRef missing: no such TrustRoot",
        "spec.authorities[0].keyless.identities[0]: missing issuer or issuerRegExp",
        "spec.authorities[1]: expected exactly one of key, keyless, static"]
    assert _trust_root_errors({"spec": {"sigstoreKeys": {"certificateAuthorities": [
        {"subject": {"commonName": "x"}, "certChain": base64.b64encode(b"junk").decode()}]}}}
    ) == ["spec.sigstoreKeys.certificateAuthority[0].subject.organization: missing",
          "spec.sigstoreKeys.certificateAuthority[0].uri: missing",
          "spec.sigstoreKeys.certificateAuthority[0].certChain: not PEM certificates back to "
          "back"]


def _chain(ca: dict[str, Any]) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return [c.public_bytes(Encoding.DER) for c in
            x509.load_pem_x509_certificates(base64.b64decode(ca["certChain"]))]


def test_pki_signer_is_a_policy_controller_trust_root(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """A pki signer: a TrustRoot with the CA chain and no logs, and a keyless authority on it
    that skips Rekor and the SCT, with the subject on the certificate's SANs."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ca, inter = _ca(tmp_path), _ca(tmp_path, "inter")
    pki = f"      - pki: {{caRoots: {ca.name}, subjectEmail: release@example.com}}\n"
    host = (f"      - pki: {{caRoots: {ca.name}, caIntermediates: {inter.name}, "
            "subjectHostname: build.example.com}\n")
    path = _policy(tmp_path, f"      - {{key: {RELEASE_PUB}}}\n" + pki + host)
    warnings: list[str] = []
    docs = render(load_policy(path), ["policy-controller"], RenderOptions(), warnings=warnings)
    assert warnings == []
    assert [d["kind"] for d in docs] == ["TrustRoot", "TrustRoot", "ClusterImagePolicy"]
    _check_policy_controller(docs)
    tr_email, tr_host, cip = docs
    key, email, hostname = cip["spec"]["authorities"]
    assert "key" in key
    assert email == {"name": "signer-1", "keyless": {
        "trustRootRef": tr_email["metadata"]["name"], "insecureIgnoreSCT": True,
        "identities": [{"issuerRegExp": ".*", "subject": "release@example.com"}]}}
    assert "ctlog" not in email  # no ctlog: policy-controller sets IgnoreTlog
    assert hostname["keyless"]["trustRootRef"] == tr_host["metadata"]["name"]
    rx = hostname["keyless"]["identities"][0]["subjectRegExp"]
    for san in ("build.example.com", "BUILD.example.com", "*.example.com"):
        assert re.search(rx, san), san
    for san in ("evil.example.com", "build.example.com.evil", "*.com"):
        assert not re.search(rx, san), san
    der = [x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(Encoding.DER)
           for p in (ca, inter)]
    (ca_email,) = tr_email["spec"]["sigstoreKeys"]["certificateAuthorities"]
    assert set(tr_email["spec"]["sigstoreKeys"]) == {"certificateAuthorities"}
    assert _chain(ca_email) == [der[0]]
    assert ca_email["subject"]["commonName"] == "corp root"
    (ca_host,) = tr_host["spec"]["sigstoreKeys"]["certificateAuthorities"]
    assert _chain(ca_host) == [der[1], der[0]]  # intermediates, then the root (last)
    # only a pki signer now renders too, with `all` as well
    only = _policy(tmp_path, pki, "only-pki")
    docs = render(load_policy(only), ["all"], RenderOptions())
    assert [d["kind"] for d in docs if d["apiVersion"].startswith("policy.sigstore.dev")] == \
        ["TrustRoot", "ClusterImagePolicy"]
    _check_policy_controller(docs)
    # the CLI: the TrustRoot file sorts before the ClusterImagePolicy naming it
    assert main(["policy", "render", "--policy", str(path), "--format", "policy-controller",
                 "--output-dir", str(tmp_path / "out")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "45-trustroot.yaml", "50-clusterimagepolicy.yaml"]
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(
        (tmp_path / "out/45-trustroot.yaml").read_text())] == [
        tr_email["metadata"]["name"], tr_host["metadata"]["name"]]


def test_pki_parts_policy_controller_cannot_check_are_warned(tmp_path: Path) -> None:
    """Both subjects (an identity has one), a signedIdentity, and a CA root that is not
    self-signed (policy-controller pools it as an intermediate) are render warnings."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cross = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sub CA"),
                                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elsewhere")]))
             .public_key(key.public_key()).serial_number(1)
             .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(key, hashes.SHA256()))
    (tmp_path / "sub.pem").write_bytes(cross.public_bytes(serialization.Encoding.PEM))
    path = _policy(tmp_path, "      - pki: {caRoots: sub.pem, subjectEmail: release@example.com,"
                             " subjectHostname: build.example.com}\n"
                             "        signedIdentity: {type: matchExact}\n")
    warnings: list[str] = []
    docs = render(load_policy(path), ["policy-controller"], RenderOptions(), warnings=warnings)
    _check_policy_controller(docs)
    tr, cip = docs
    assert tr["spec"]["sigstoreKeys"]["certificateAuthorities"][0]["subject"] == {
        "organization": "Acme", "commonName": "sub CA"}
    (ident,) = cip["spec"]["authorities"][0]["keyless"]["identities"]
    assert ident == {"issuerRegExp": ".*", "subject": "release@example.com"}
    where = "policy-controller: spec.deploy.signatures[0]"
    assert [w.split(" ", 3)[:3] for w in warnings] == [
        ["policy-controller:", "spec.deploy.signatures[0].pki.caRoots", "certificate"],
        ["policy-controller:", "spec.deploy.signatures[0].signedIdentity", "matchExact"],
        ["policy-controller:", "spec.deploy.signatures[0].pki.subjectHostname",
         "build.example.com"]]
    assert warnings[0].startswith(f"{where}.pki.caRoots certificate 0 (O=Acme,CN=sub CA) is not "
                                  "self-signed")
    assert "denied" in warnings[0] and "not checked" in warnings[2]


def test_keyless_trusted_root_is_warned(tmp_path: Path) -> None:
    (tmp_path / "root.json").write_text("{}")
    path = _policy(tmp_path, "      - keyless: {issuer: 'https://issuer.example', "
                             "subject: 'a@example.com', trustedRoot: root.json}\n")
    warnings: list[str] = []
    render(load_policy(path), ["kyverno", "policy-controller"], RenderOptions(),
           warnings=warnings)
    assert [w.split(": ", 1)[0] for w in warnings] == ["kyverno", "policy-controller"]
    assert all("keyless.trustedRoot is not used" in w for w in warnings)


def test_webhook_bundle_carries_the_pki_ca_files(tmp_path: Path) -> None:
    """The trustbuild webhook checks every mode: its ConfigMap holds a policy that loads in the
    pod, with the CA files next to it and the signedIdentity unchanged."""
    ca, inter = _ca(tmp_path), _ca(tmp_path, "inter")
    path = _policy(tmp_path, f"      - pki: {{caRoots: {ca.name}, caIntermediates: {inter.name},"
                             " subjectEmail: release@example.com}\n"
                             f"      - {{key: {RELEASE_PUB}, signedIdentity: {IDENTITIES[4][1]}}}"
                             "\n")
    opts = RenderOptions(webhook_service=FULL.webhook_service, ca_bundle=FULL.ca_bundle,
                         webhook_image=EXECUTOR)
    warnings: list[str] = []
    cm = render(load_policy(path), ["webhook"], opts, warnings=warnings)[0]
    assert warnings == []
    mount = tmp_path / "mounted"
    mount.mkdir()
    for name, text in cm["data"].items():
        (mount / name).write_text(text.replace("/trustbuild/policy/", f"{mount}/"))
    assert sorted(cm["data"]) == ["ca-intermediates-1.pem", "ca-roots-0.pem", "policy.yaml"]
    pol = load_policy(mount / "policy.yaml")
    pki, keyed = pol.deploy.signatures
    assert pki.pki is not None and pki.pki.subject_email == "release@example.com"
    assert [c.subject for c in pki.pki.roots] == [c.subject for c in
                                                  load_policy(path).deploy.signatures[0].pki.roots]
    assert keyed.signed_identity == load_policy(path).deploy.signatures[1].signed_identity
