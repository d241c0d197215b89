"""A tiny in-memory Store for the signing tests, and a loader of the cosign vectors."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

from trustbuild.errors import NotFound
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import parse_manifest
from trustbuild.oci.store import BlobSource
from trustbuild.oci.verify import VerifyingReader, check_bytes

# A copy of shared/vectors/cosign (containers/image's cosign fixtures), kept with the tests.
VECTORS = Path(__file__).resolve().parents[2] / "assets" / "sign" / "cosign-vectors"


class MemoryStore:
    """Manifests and blobs in dicts; referrers by scanning ``subject`` (like an OCI layout)."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.manifests: dict[Digest, tuple[bytes, str]] = {}
        self.tags: dict[str, Digest] = {}

    def describe(self) -> str:
        return "memory:"

    def get_manifest(self, ref: str) -> tuple[bytes, str]:
        dg = Digest.parse(ref) if ref.startswith("sha256:") else self.tags.get(ref)
        if dg is None or dg not in self.manifests:
            raise NotFound(f"memory: no manifest {ref}")
        return self.manifests[dg]

    def has_blob(self, digest: Digest) -> bool:
        return digest in self.blobs

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        if desc.digest not in self.blobs:
            raise NotFound(f"memory: no blob {desc.digest}")
        return VerifyingReader(io.BytesIO(self.blobs[desc.digest]), desc)  # type: ignore[return-value]

    def fetch_blob(self, desc: Descriptor, dest: Path) -> None:
        dest.write_bytes(self.blobs[desc.digest])

    def put_blob(self, desc: Descriptor, source: BlobSource) -> None:
        with source() as f:
            data = f.read()
        check_bytes(data, desc)
        self.blobs[desc.digest] = data

    def put_manifest(self, raw: bytes, media_type: str, *, tags: Sequence[str] = ()) -> Descriptor:
        dg = Digest.of(raw)
        self.manifests[dg] = (raw, media_type)
        for t in tags:
            self.tags[t] = dg
        return Descriptor(media_type, dg, len(raw))

    def list_tags(self) -> list[str]:
        return list(self.tags)

    def referrers(self, digest: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        out = []
        for dg, (raw, mt) in self.manifests.items():
            obj = json.loads(raw)
            if obj.get("subject", {}).get("digest") != str(digest):
                continue
            at = obj.get("artifactType")
            if artifact_type and at != artifact_type:
                continue
            out.append(Descriptor(mt, dg, len(raw), obj.get("annotations"), artifact_type=at))
        return out

    def delete_tag(self, tag: str) -> None:
        self.tags.pop(tag, None)

    def close(self) -> None:
        pass


def load_vector(store: MemoryStore, name: str, *, tag: str = "latest") -> dict[str, Any]:
    """Put a vector's manifest under ``tag`` and its signatures under ``sha256-<hex>.sig``."""
    from trustbuild.oci.mediatype import MediaType
    from trustbuild.sign.attach import append_cosign_layer

    case = json.loads((VECTORS / name / "case.json").read_text())
    raw = (VECTORS / name / "manifest.json").read_bytes()
    mt = parse_manifest(raw).media_type
    subject = store.put_manifest(raw, mt, tags=[tag])
    signed_digest = None
    for s in json.loads((VECTORS / name / "signatures.json").read_text()):
        payload = base64.b64decode(s["payload_b64"])
        signed_digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
        # The .sig tag belongs to the digest the payload names (where cosign put it); for the
        # modified-manifest case the image digest differs, so attach to the image itself too.
        append_cosign_layer(store, subject, suffix="sig", layer_bytes=payload,
                            layer_media_type=s["mediaType"] or MediaType.COSIGN_SIMPLESIGNING,
                            annotations=s["annotations"])
    case["signed_digest"] = signed_digest
    case["subject"] = subject
    return case

