"""SBOMs of a root filesystem or of an image: SPDX 2.3 JSON (default) or CycloneDX 1.5 JSON.

Output is deterministic: packages sorted, ids derived from purls, the SPDX ``documentNamespace``
and CycloneDX ``serialNumber`` derived from the image digest, the time given by the caller.
Example::

    doc = sbom_document(Path("/tmp/rootfs"), image_name="127.0.0.1:5000/app",
                        image_digest="sha256:...", sbom_format="spdx",
                        created="2026-01-01T00:00:00Z")
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import tempfile
import uuid
from pathlib import Path
from typing import Literal

from trustbuild import __version__
from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.packages import Package, scan_rootfs
from trustbuild.attest.statement import CYCLONEDX_BOM, SPDX_DOCUMENT
from trustbuild.errors import AttestationError, UsageError
from trustbuild.oci.digest import Digest
from trustbuild.oci.store import Store

__all__ = [
    "SBOM_FORMATS", "sbom_document", "spdx_document", "cyclonedx_document", "sbom_predicate_type",
    "sbom_of_image", "SbomFormat",
]

SbomFormat = Literal["spdx", "spdxjson", "cyclonedx"]  # --sbom-format (spdxjson: cosign's name)

SBOM_FORMATS = {"spdx": SPDX_DOCUMENT, "spdxjson": SPDX_DOCUMENT, "cyclonedx": CYCLONEDX_BOM}
_NAMESPACE_BASE = "https://trustbuild.dev/spdx"
_SIMPLE_LICENSE = re.compile(
    r"^(?:LicenseRef-)?[A-Za-z0-9.+-]+(?: (?:AND|OR|WITH) (?:LicenseRef-)?[A-Za-z0-9.+-]+)*$")


def sbom_predicate_type(sbom_format: str) -> str:
    """The predicate type for ``spdx`` or ``cyclonedx`` (UsageError otherwise)."""
    try:
        return SBOM_FORMATS[sbom_format]
    except KeyError:
        raise UsageError(f"--sbom-format {sbom_format!r}: use spdx or cyclonedx") from None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _norm_time(created: str | None) -> str:
    """RFC 3339 UTC with seconds precision and ``Z`` (what the SPDX schema's pattern wants)."""
    if not created:
        return _now()
    try:
        t = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise AttestationError(f"SBOM: created time {created!r} is not RFC 3339") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spdx_id(pkg: Package) -> str:
    h = hashlib.sha256(pkg.purl.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", pkg.name).strip("-")[:48] or "pkg"
    return f"SPDXRef-Package-{pkg.type}-{safe}-{h}"


def _license(text: str) -> str:
    return text if text and _SIMPLE_LICENSE.match(text) else "NOASSERTION"


def spdx_document(packages: list[Package], *, image_name: str, image_digest: str,
                  created: str | None = None) -> JSONObject:
    """An SPDX 2.3 JSON document describing the image and the packages in it."""
    d = Digest.parse(image_digest)
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", image_name).strip("-") or "image"
    image_pkg: JSONObject = {
        "SPDXID": "SPDXRef-Image",
        "name": image_name,
        "versionInfo": str(d),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": d.algorithm.upper(), "checksumValue": d.hex}],
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    }
    pkgs = [image_pkg]
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": "SPDXRef-Image"}]
    for p in packages:
        sid = _spdx_id(p)
        entry: JSONObject = {
            "SPDXID": sid,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": _license(p.license),
            "copyrightText": "NOASSERTION",
            "sourceInfo": "found in " + ", ".join(p.locations),
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": p.purl}],
        }
        if p.type in ("deb", "apk"):
            entry["primaryPackagePurpose"] = "INSTALL"
        else:
            entry["primaryPackagePurpose"] = "LIBRARY"
        pkgs.append(entry)
        rels.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                     "relatedSpdxElement": sid})
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image_name}@{d}",
        "documentNamespace": f"{_NAMESPACE_BASE}/{slug}/{d.algorithm}-{d.hex}",
        "creationInfo": {"created": _norm_time(created),
                         "creators": [f"Tool: trustbuild-{__version__}"]},
        "packages": pkgs,
        "relationships": rels,
    }


def cyclonedx_document(packages: list[Package], *, image_name: str, image_digest: str,
                       created: str | None = None) -> JSONObject:
    """A CycloneDX 1.5 JSON BOM describing the image and the packages in it."""
    d = Digest.parse(image_digest)
    comps = []
    for p in packages:
        c: JSONObject = {"type": "library", "bom-ref": p.purl, "name": p.name,
                             "version": p.version, "purl": p.purl}
        if p.license:
            lic = _license(p.license)
            c["licenses"] = ([{"expression": lic}] if lic != "NOASSERTION"
                             else [{"license": {"name": p.license}}])
        c["properties"] = [{"name": "trustbuild:location", "value": loc} for loc in p.locations]
        comps.append(c)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{image_name}@{d}')}",
        "version": 1,
        "metadata": {
            "timestamp": _norm_time(created),
            "tools": {"components": [{"type": "application", "name": "trustbuild",
                                      "version": __version__}]},
            "component": {"type": "container", "bom-ref": f"{image_name}@{d}", "name": image_name,
                          "version": str(d),
                          "hashes": ([{"alg": "SHA-256", "content": d.hex}]
                                     if d.algorithm == "sha256" else [])},
        },
        "components": comps,
    }


def sbom_document(rootfs: Path, *, image_name: str, image_digest: str, sbom_format: str = "spdx",
                  created: str | None = None) -> JSONObject:
    """Scan ``rootfs`` and render the SBOM in ``sbom_format`` (``spdx`` or ``cyclonedx``)."""
    sbom_predicate_type(sbom_format)
    pkgs = scan_rootfs(Path(rootfs))
    render = cyclonedx_document if sbom_format == "cyclonedx" else spdx_document
    return render(pkgs, image_name=image_name, image_digest=image_digest, created=created)


def sbom_of_image(store: Store, manifest_digest: str, *, image_name: str, sbom_format: str = "spdx",
                  created: str | None = None) -> JSONObject:
    """Extract an image's layers (verified, whiteouts applied) into a temporary rootfs and scan it.

    ``store`` is a :class:`~trustbuild.oci.store.Store`; the digest must name an image manifest
    (for an index, give the platform manifest's digest).
    """
    from trustbuild.oci.extract import extract_layer
    from trustbuild.oci.manifest import Manifest, parse_manifest

    raw, media_type = store.get_manifest(manifest_digest)
    m = parse_manifest(raw, media_type, what=f"{store.describe()}@{manifest_digest}")
    if not isinstance(m, Manifest):
        raise AttestationError(f"SBOM: {manifest_digest} is an index; give the digest of one "
                               "platform's manifest")
    with tempfile.TemporaryDirectory(prefix="trustbuild-sbom-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        for layer in m.layers:
            with store.open_blob(layer) as f:
                extract_layer(f, root, allow_devices=False, same_owner=False,
                              what=f"layer {layer.digest}")
        return sbom_document(root, image_name=image_name, image_digest=manifest_digest,
                             sbom_format=sbom_format, created=created)
