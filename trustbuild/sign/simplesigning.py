"""The cosign simple-signing payload, written byte-for-byte as cosign does, parsed as strictly as
containers/image does.

cosign (Go ``json.Marshal`` of its ``SimpleContainerImage`` struct and an annotations map) writes::

    {"critical":{"identity":{"docker-reference":"REPO"},"image":{"docker-manifest-digest":
    "sha256:..."},"type":"cosign container image signature"},"optional":null}

``optional`` is ``null`` without ``-a`` annotations, else the annotations object with sorted keys.
containers/image writes ``{"creator": ..., "timestamp": ...}`` there; both are accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONValue
from trustbuild.errors import InvalidDigest, VerificationError
from trustbuild.oci.digest import Digest

__all__ = [
    "SIMPLESIGNING_TYPE",
    "MAX_PAYLOAD_BYTES",
    "SimpleSigningPayload",
    "go_json",
    "build_payload",
    "parse_payload",
]

SIMPLESIGNING_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 128 * 1024
_MAX_REFERENCE = 512


def go_json(obj: object) -> bytes:
    """Compact JSON as Go's ``encoding/json`` writes maps: sorted keys, HTML-safe escapes."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


@dataclass(frozen=True)
class SimpleSigningPayload:
    """A parsed (still untrusted until its signature is checked) simple-signing payload."""

    docker_reference: str
    manifest_digest: Digest
    optional: dict[str, JSONValue] | None
    raw: bytes

    @property
    def annotations(self) -> dict[str, JSONValue]:
        """The ``optional`` object (empty when ``null``)."""
        return dict(self.optional or {})


def build_payload(docker_reference: str, manifest_digest: Digest | str,
                  annotations: dict[str, str] | None = None) -> bytes:
    """The payload bytes cosign would sign for this reference, digest and ``-a`` annotations."""
    if not docker_reference:
        raise VerificationError("simple-signing payload needs a docker-reference")
    dg = Digest.parse(str(manifest_digest))
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": str(dg)},
            "type": SIMPLESIGNING_TYPE,
        },
        "optional": dict(annotations) if annotations else None,
    }
    return go_json(doc)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise VerificationError(f"simple-signing payload: duplicate key {k!r}")
        out[k] = v
    return out


def _exact(obj: object, fields: set[str], where: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise VerificationError(f"simple-signing payload: {where} is not a JSON object")
    keys = set(obj)
    if keys != fields:
        extra = sorted(keys - fields)
        missing = sorted(fields - keys)
        what = (f"unexpected field(s) {extra}" if extra else "") + \
            ("; " if extra and missing else "") + (f"missing field(s) {missing}" if missing else "")
        raise VerificationError(f"simple-signing payload: {where}: {what}")
    return obj


def parse_payload(raw: bytes) -> SimpleSigningPayload:
    """Parse with containers/image's strictness; VerificationError naming the defect."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise VerificationError(f"simple-signing payload is {len(raw)} bytes "
                                f"(more than the {MAX_PAYLOAD_BYTES} allowed)")
    doc: dict[str, object] = load_object(raw, what="simple-signing payload",
                                         error=VerificationError, max_bytes=MAX_PAYLOAD_BYTES,
                                         pairs_hook=_no_duplicates)
    top = _exact(doc, {"critical", "optional"}, "top level")
    critical = _exact(top["critical"], {"type", "image", "identity"}, "critical")
    if critical["type"] != SIMPLESIGNING_TYPE:
        raise VerificationError(
            f"simple-signing payload: unrecognized signature type {critical['type']!r}")
    image = _exact(critical["image"], {"docker-manifest-digest"}, "critical.image")
    identity = _exact(critical["identity"], {"docker-reference"}, "critical.identity")
    dg_text, ref = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(dg_text, str):
        raise VerificationError("simple-signing payload: docker-manifest-digest is not a string")
    if not isinstance(ref, str) or not ref or len(ref) > _MAX_REFERENCE:
        raise VerificationError("simple-signing payload: docker-reference is not a "
                                "non-empty string")
    try:
        dg = Digest.parse(dg_text)
    except InvalidDigest as exc:
        raise VerificationError(f"simple-signing payload: {exc}") from None
    optional = top["optional"]
    if optional is not None:
        if not isinstance(optional, dict):
            raise VerificationError("simple-signing payload: optional is neither null nor "
                                    "an object")
        if "creator" in optional and not isinstance(optional["creator"], str):
            raise VerificationError("simple-signing payload: optional.creator is not a string")
        ts = optional.get("timestamp")
        if "timestamp" in optional and (isinstance(ts, bool) or not isinstance(ts, int | float)
                                        or int(ts) != ts):
            raise VerificationError("simple-signing payload: optional.timestamp is not an integer")
    return SimpleSigningPayload(ref, dg, optional, bytes(raw))
