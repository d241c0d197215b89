"""SLSA v1 provenance from a BuildRecord: fields, purls, redaction, protobuf validation."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

from trustbuild.attest.provenance import (
    BUILD_TYPE,
    DEFAULT_BUILDER_ID,
    docker_purl,
    provenance_predicate,
)
from trustbuild.builder.record import BuildRecord, ResolvedImage, StepRecord

BASE = "sha256:" + "1" * 64
INDEX = "sha256:" + "2" * 64
COPYFROM = "sha256:" + "3" * 64
EXEC = "sha256:" + "4" * 64


def _record(**kw):
    r = BuildRecord(
        invocation_id="inv-1", started_on="2026-11-27T10:00:00Z",
        finished_on="2026-11-27T10:01:00Z", trustbuild_version="0.1.0",
        dockerfile_path="Dockerfile", dockerfile_digest="sha256:" + "d" * 64,
        context_source="/src/app", context_digest="sha256:" + "c" * 64,
        build_args={"VERSION": "1.2", "MY_TOKEN": "tok-VALUE-123", "db_password": "pw-VALUE-456"},
        target="final", platform="linux/amd64", destinations=["127.0.0.1:5000/app:1"],
        images=[ResolvedImage("127.0.0.1:5000/busybox:1", BASE, INDEX, "base", "0"),
                ResolvedImage("docker.io/library/alpine:3", COPYFROM, None, "copy-from", "final")],
        steps=[StepRecord("0", 2, "ARG", "ARG MY_TOKEN=tok-VALUE-123", 1.0, 1.0),
               StepRecord("0", 3, "RUN", "|1 MY_TOKEN=tok-VALUE-123 /bin/sh -c make", 1.0, 2.0,
                          "sha256:" + "5" * 64)],
        security_profile="restricted", seccomp_profile="default",
        seccomp_profile_digest="sha256:" + "e" * 64,
        snapshot_mode="full", policy_digest="sha256:" + "f" * 64, policy_decision="allow",
        policy_report=[{"rule": "base-images", "result": "pass"}],
        executor_image="127.0.0.1:5000/trustbuild/executor:0.1@" + EXEC,
        result_digest="sha256:" + "9" * 64, config_digest="sha256:" + "8" * 64,
    )
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_predicate_parses_as_slsa_v1_protobuf():
    pred = provenance_predicate(_record())
    pb = json_format.ParseDict(pred, provenance_pb2.Provenance())
    assert pb.build_definition.build_type == BUILD_TYPE
    assert pb.run_details.builder.id == DEFAULT_BUILDER_ID


def test_fields_come_from_the_record():
    pred = provenance_predicate(_record(), builder_id="https://ci.example/runner/7")
    bd = pred["buildDefinition"]
    ext, internal = bd["externalParameters"], bd["internalParameters"]
    assert ext["dockerfile"] == {"path": "Dockerfile", "digest": {"sha256": "d" * 64}}
    assert ext["context"] == {"source": "/src/app", "digest": {"sha256": "c" * 64}}
    assert ext["target"] == "final" and ext["platform"] == "linux/amd64"
    assert ext["destinations"] == ["127.0.0.1:5000/app:1"]
    assert internal["securityProfile"] == "restricted"
    assert internal["seccompProfile"]["digest"] == {"sha256": "e" * 64}
    assert internal["snapshotMode"] == "full"
    assert internal["policy"]["decision"] == "allow"
    assert internal["policy"]["digest"] == {"sha256": "f" * 64}
    deps = {d["name"]: d for d in bd["resolvedDependencies"]}
    assert deps["127.0.0.1:5000/busybox:1"]["digest"] == {"sha256": "1" * 64}
    assert deps["127.0.0.1:5000/busybox:1"]["annotations"]["indexDigest"] == INDEX
    assert deps["docker.io/library/alpine:3"]["annotations"]["role"] == "copy-from"
    assert deps["127.0.0.1:5000/trustbuild/executor:0.1"]["digest"] == {"sha256": "4" * 64}
    run = pred["runDetails"]
    assert run["builder"]["id"] == "https://ci.example/runner/7"
    assert run["metadata"] == {"invocationId": "inv-1", "startedOn": "2026-11-27T10:00:00Z",
                               "finishedOn": "2026-11-27T10:01:00Z"}
    steps = run["byproducts"][0]["annotations"]["steps"]
    assert [s["instruction"] for s in steps] == ["ARG", "RUN"]


def test_git_context_names_url_and_commit():
    pred = provenance_predicate(_record(context_source="https://git.example/app.git",
                                        git_commit="a" * 40, context_digest=""))
    ctx = pred["buildDefinition"]["externalParameters"]["context"]
    assert ctx["git"] == {"url": "https://git.example/app.git", "commit": "a" * 40}


def test_secret_values_never_appear():
    text = json.dumps(provenance_predicate(_record()))
    assert "tok-VALUE-123" not in text and "pw-VALUE-456" not in text
    args = provenance_predicate(_record())["buildDefinition"]["externalParameters"]["buildArgs"]
    assert args == {"MY_TOKEN": "<redacted>", "VERSION": "1.2", "db_password": "<redacted>"}


def test_build_secret_and_ssh_ids_only_when_used():
    assert "secrets" not in provenance_predicate(_record())["buildDefinition"][
        "externalParameters"]
    pred = provenance_predicate(_record(secrets=[{"id": "npmrc", "optional": False}],
                                        ssh=[{"id": "default", "optional": True}]))
    ext = pred["buildDefinition"]["externalParameters"]
    assert ext["secrets"] == [{"id": "npmrc", "optional": False}]
    assert ext["ssh"] == [{"id": "default", "optional": True}]
    json_format.ParseDict(pred, provenance_pb2.Provenance())


def test_builder_id_from_environment(monkeypatch):
    monkeypatch.setenv("TRUSTBUILD_BUILDER_ID", "https://ci.example/env")
    assert provenance_predicate(_record())["runDetails"]["builder"]["id"] == "https://ci.example/env"


@pytest.mark.parametrize("ref, want", [
    ("127.0.0.1:5000/busybox:1", "pkg:docker/busybox@sha256%3A" + "1" * 64
     + "?repository_url=127.0.0.1:5000/busybox"),
    ("alpine:3", "pkg:docker/library/alpine@sha256%3A" + "1" * 64),
    ("ghcr.io/org/tool", "pkg:docker/org/tool@sha256%3A" + "1" * 64
     + "?repository_url=ghcr.io/org/tool"),
])
def test_docker_purl(ref, want):
    assert docker_purl(ref, BASE) == want


def test_bad_digest_in_record_is_clear():
    from trustbuild.errors import AttestationError

    with pytest.raises(AttestationError, match="dockerfile_digest"):
        provenance_predicate(_record(dockerfile_digest="sha256:zz"))
