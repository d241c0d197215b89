"""attest_build after a push: provenance names the registry's digests, SBOM valid, no secrets."""

from __future__ import annotations

import base64
import json
import shutil

import jsonschema
import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as ItStatement

from tests.integration.attest.conftest import ASSETS, att_manifest, registry_blob, skopeo_raw
from trustbuild.builder.record import BuildRecord, ResolvedImage, StepRecord
from trustbuild.cli.main import main

pytestmark = [pytest.mark.interop]

SECRET = "tok-SHOULD-NOT-LEAK-9911"


@pytest.fixture
def pushed(registry):
    """A base image and a 'built' image in the registry, pushed by skopeo."""
    from tests.fixtures.registry import push_test_image

    _, base = push_test_image(registry.host, "attest/base", "1", content=b"base\n")
    _, built = push_test_image(registry.host, "attest/built", "1", content=b"built\n")
    return base, built


def _record(host, base, built):
    return BuildRecord(
        invocation_id="inv-42", started_on="2026-11-27T10:00:00Z",
        finished_on="2026-11-27T10:00:09Z",
        trustbuild_version="0.1.0", dockerfile_path="Dockerfile",
        dockerfile_digest="sha256:" + "d" * 64, context_source="/src",
        context_digest="sha256:" + "c" * 64, build_args={"MY_TOKEN": SECRET, "VERSION": "2"},
        platform="linux/amd64", destinations=[f"{host}/attest/built:1"],
        images=[ResolvedImage(f"{host}/attest/base:1", base, None, "base", "0")],
        steps=[StepRecord("0", 1, "FROM", f"FROM {host}/attest/base:1"),
               StepRecord("0", 3, "RUN", f"|1 MY_TOKEN={SECRET} /bin/sh -c true", 1.0, 2.0)],
        seccomp_profile="default", seccomp_profile_digest="sha256:" + "e" * 64,
        snapshot_mode="full", result_digest=built,
    )


def _statements(host, repo, digest):
    out = {}
    for layer in att_manifest(host, repo, digest)["layers"]:
        env = json.loads(registry_blob(host, repo, layer["digest"]))
        stmt_bytes = base64.b64decode(env["payload"])
        out[layer["annotations"]["predicateType"]] = (stmt_bytes, json.loads(stmt_bytes))
    return out


def test_attest_build_provenance_and_sbom(registry, pushed, tmp_path, keypair, capsys):
    from trustbuild.attest.attach import attest_build, resolve_subject
    from trustbuild.registry.options import StoreOptions
    from trustbuild.registry.store import RegistryStore
    from trustbuild.sign.keys import load_signing_key

    base, built = pushed
    key, pub = keypair
    rootfs = tmp_path / "rootfs"
    (rootfs / "var/lib/dpkg").mkdir(parents=True)
    shutil.copy(ASSETS / "dpkg-status", rootfs / "var/lib/dpkg/status")
    store = RegistryStore(registry.host, "attest/built", StoreOptions())
    try:
        subject = resolve_subject(store, "1")
        descs = attest_build(store, subject, _record(registry.host, base, built),
                             key=load_signing_key(key), kinds=["provenance", "sbom"],
                             rootfs=rootfs, builder_id="https://ci.example/builder")
    finally:
        store.close()
    assert len(descs) == 2
    stmts = _statements(registry.host, "attest/built", built)
    raw_prov, prov = stmts["https://slsa.dev/provenance/v1"]
    # the subject and the dependency are the digests the registry really serves (skopeo's view)
    import hashlib

    real_built = "sha256:" + hashlib.sha256(skopeo_raw(
        f"docker://{registry.host}/attest/built:1")).hexdigest()
    real_base = "sha256:" + hashlib.sha256(skopeo_raw(
        f"docker://{registry.host}/attest/base:1")).hexdigest()
    assert prov["subject"][0]["digest"] == {"sha256": real_built.split(":")[1]}
    [dep] = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert dep["digest"] == {"sha256": real_base.split(":")[1]}
    assert dep["uri"].startswith("pkg:docker/attest/base@sha256%3A")
    assert prov["predicate"]["runDetails"]["builder"]["id"] == "https://ci.example/builder"
    # independent validation: in-toto-attestation statement + SLSA v1 protobuf
    ItStatement.copy_from_pb(json_format.Parse(raw_prov, statement_pb2.Statement())).validate()
    json_format.ParseDict(prov["predicate"], provenance_pb2.Provenance())
    # no secret anywhere in what was attached
    for raw, _ in stmts.values():
        assert SECRET.encode() not in raw
    # SBOM: SPDX 2.3 schema, the dpkg packages, namespace from the image digest
    _, sbom = stmts["https://spdx.dev/Document"]
    schema = json.loads((ASSETS / "spdx-schema-2.3.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(sbom["predicate"])
    names = {p["name"] for p in sbom["predicate"]["packages"]}
    assert {"base-files", "libc6", "tzdata"} <= names
    assert sbom["predicate"]["documentNamespace"].endswith(built.replace(":", "-"))
    # verify-attestation accepts both types
    for t in ("slsaprovenance", "spdxjson"):
        capsys.readouterr()
        assert main(["verify-attestation", "--key", str(pub), "--type", t,
                     f"docker://{registry.host}/attest/built:1"]) == 0


def test_attest_build_sbom_from_image_layers_cyclonedx(registry, pushed, keypair):
    from trustbuild.attest.attach import attest_build, resolve_subject
    from trustbuild.registry.options import StoreOptions
    from trustbuild.registry.store import RegistryStore
    from trustbuild.sign.keys import load_signing_key

    base, built = pushed
    key, _pub = keypair
    store = RegistryStore(registry.host, "attest/built", StoreOptions())
    try:
        subject = resolve_subject(store, "1")
        attest_build(store, subject, _record(registry.host, base, built), key=load_signing_key(key),
                     kinds=["sbom"], sbom_format="cyclonedx")
    finally:
        store.close()
    stmts = _statements(registry.host, "attest/built", built)
    _, bom = stmts["https://cyclonedx.org/bom"]
    assert bom["predicate"]["bomFormat"] == "CycloneDX"
    assert bom["predicate"]["components"] == []  # the test image holds only hello.txt


def test_attest_build_refuses_a_record_of_another_image(registry, pushed, keypair):
    from trustbuild.attest.attach import attest_build, resolve_subject
    from trustbuild.errors import AttestationError
    from trustbuild.registry.options import StoreOptions
    from trustbuild.registry.store import RegistryStore
    from trustbuild.sign.keys import load_signing_key

    base, built = pushed
    key, _pub = keypair
    store = RegistryStore(registry.host, "attest/built", StoreOptions())
    try:
        subject = resolve_subject(store, "1")
        with pytest.raises(AttestationError, match="build record names"):
            attest_build(store, subject, _record(registry.host, base, base),
                         key=load_signing_key(key), kinds=["provenance"])
    finally:
        store.close()
