"""SBOM of a root filesystem: packages, purls, SPDX 2.3 schema, CycloneDX 1.5, determinism."""

from __future__ import annotations

import json
import os
import shutil

import jsonschema
import pytest

from trustbuild.attest.packages import scan_rootfs
from trustbuild.attest.sbom import sbom_document

DIGEST = "sha256:" + "ab" * 32
CREATED = "2026-11-27T10:01:00Z"


@pytest.fixture
def rootfs(tmp_path, attest_asset):
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    shutil.copy(attest_asset("dpkg-status"), root / "var/lib/dpkg/status")
    (root / "lib/apk/db").mkdir(parents=True)
    shutil.copy(attest_asset("apk-installed"), root / "lib/apk/db/installed")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    site = root / "usr/lib/python3/dist-packages"
    (site / "Requests-2.31.0.dist-info").mkdir(parents=True)
    (site / "Requests-2.31.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: Requests\nVersion: 2.31.0\nLicense: Apache-2.0\n\nbody\n")
    (site / "zope.interface-6.0.egg-info").mkdir()
    (site / "zope.interface-6.0.egg-info/PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: zope.interface\nVersion: 6.0\nLicense: ZPL 2.1\n")
    nm = root / "app/node_modules"
    (nm / "lodash").mkdir(parents=True)
    (nm / "lodash/package.json").write_text(json.dumps({"name": "lodash", "version": "4.17.21",
                                                       "license": "MIT"}))
    (nm / "@babel/core").mkdir(parents=True)
    (nm / "@babel/core/package.json").write_text(json.dumps({"name": "@babel/core",
                                                            "version": "7.23.0"}))
    (nm / "lodash/test").mkdir()
    (nm / "lodash/test/package.json").write_text('{"name":"not-a-package","version":"0"}')
    return root


def test_packages_found_with_purls(rootfs):
    pkgs = scan_rootfs(rootfs)
    purls = [p.purl for p in pkgs]
    assert [p.sort_key for p in pkgs] == sorted(p.sort_key for p in pkgs)
    assert set(purls) == {
        "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64",
        "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64",
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
        "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all",
        "pkg:npm/%40babel/core@7.23.0",
        "pkg:npm/lodash@4.17.21",
        "pkg:pypi/requests@2.31.0",
        "pkg:pypi/zope-interface@6.0",
    }


def test_alpine_namespace_from_os_release(tmp_path, attest_asset):
    root = tmp_path / "r"
    (root / "lib/apk/db").mkdir(parents=True)
    shutil.copy(attest_asset("apk-installed"), root / "lib/apk/db/installed")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text("ID=alpine\n")
    pkgs = scan_rootfs(root)
    assert [p.purl for p in pkgs] == ["pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64",
                                      "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"]
    assert pkgs[0].license == "GPL-2.0-only"


def test_symlinked_database_outside_rootfs_is_not_read(tmp_path, attest_asset):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(attest_asset("dpkg-status"), outside / "status")
    root = tmp_path / "r"
    (root / "var/lib").mkdir(parents=True)
    os.symlink(outside, root / "var/lib/dpkg")
    (root / "node_modules").mkdir()
    os.symlink(outside, root / "node_modules/evil")
    assert scan_rootfs(root) == []


def test_spdx_validates_against_official_schema(rootfs, attest_asset):
    doc = sbom_document(rootfs, image_name="127.0.0.1:5000/app", image_digest=DIGEST,
                        created=CREATED)
    schema = json.loads(attest_asset("spdx-schema-2.3.json").read_text())
    jsonschema.Draft201909Validator(schema).validate(doc)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["documentNamespace"].endswith("/sha256-" + "ab" * 32)
    refs = [r["referenceLocator"] for p in doc["packages"] for r in p.get("externalRefs", [])]
    assert "pkg:pypi/requests@2.31.0" in refs
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) == 10


def test_spdx_schema_catches_a_broken_document(rootfs, attest_asset):
    doc = sbom_document(rootfs, image_name="x", image_digest=DIGEST, created=CREATED)
    del doc["documentNamespace"]
    schema = json.loads(attest_asset("spdx-schema-2.3.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(doc)


def test_output_is_deterministic(rootfs):
    a = sbom_document(rootfs, image_name="x", image_digest=DIGEST, created=CREATED)
    b = sbom_document(rootfs, image_name="x", image_digest=DIGEST, created=CREATED)
    assert json.dumps(a) == json.dumps(b)
    c = sbom_document(rootfs, image_name="x", image_digest=DIGEST, sbom_format="cyclonedx",
                      created=CREATED)
    assert json.dumps(c) == json.dumps(sbom_document(
        rootfs, image_name="x", image_digest=DIGEST, sbom_format="cyclonedx", created=CREATED))


def test_cyclonedx_document(rootfs):
    doc = sbom_document(rootfs, image_name="127.0.0.1:5000/app", image_digest=DIGEST,
                        sbom_format="cyclonedx", created=CREATED)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    assert doc["metadata"]["component"]["type"] == "container"
    purls = [c["purl"] for c in doc["components"]]
    assert "pkg:npm/lodash@4.17.21" in purls and len(purls) == len(set(purls)) == 9
    lodash = next(c for c in doc["components"] if c["name"] == "lodash")
    assert lodash["licenses"] == [{"expression": "MIT"}]


def test_unknown_format_is_usage_error(rootfs):
    from trustbuild.errors import UsageError

    with pytest.raises(UsageError, match="spdx or cyclonedx"):
        sbom_document(rootfs, image_name="x", image_digest=DIGEST, sbom_format="xml")


def test_cyclonedx_validates_against_the_1_5_schema(rootfs, attest_asset):
    from referencing import Registry, Resource

    base = attest_asset("cyclonedx")
    resources = []
    for name, uri in (("spdx.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json"),
                      ("jsf-0.82.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")):
        doc = json.loads((base / name).read_text())
        resources += [(uri, Resource.from_contents(doc)),
                      ("http://cyclonedx.org/schema/" + uri, Resource.from_contents(doc))]
    schema = json.loads((base / "bom-1.5.SNAPSHOT.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, registry=Registry().with_resources(resources))
    doc = sbom_document(rootfs, image_name="127.0.0.1:5000/app", image_digest=DIGEST,
                        sbom_format="cyclonedx", created=CREATED)
    validator.validate(doc)
    doc["components"][0]["type"] = "not-a-type"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)


def test_deeply_nested_package_json_is_skipped_not_a_crash(tmp_path):
    """A package.json in the image is untrusted: one nested past json's recursion limit is not
    a package (no RecursionError out of the SBOM scan); its well-formed neighbour still is."""
    mods = tmp_path / "usr/lib/node_modules"
    (mods / "evil").mkdir(parents=True)
    (mods / "evil/package.json").write_text('{"name": "evil", "x": ' + "[" * 5000 + "]" * 5000
                                            + ', "version": "1.0.0"}')
    (mods / "good").mkdir()
    (mods / "good/package.json").write_text('{"name": "good", "version": "2.0.0"}')
    assert [p.purl for p in scan_rootfs(tmp_path)] == ["pkg:npm/good@2.0.0"]
