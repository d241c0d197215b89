"""in-toto Statement v1 and cosign's predicate short names.

Example::

    uri = predicate_type_uri("slsaprovenance")           # https://slsa.dev/provenance/v1
    stmt = Statement.for_image("127.0.0.1:5000/app", digest, uri, predicate_dict)
    payload = stmt.to_json()                             # the DSSE payload
    again = Statement.from_json(payload)                 # strict parsing
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONObject, JSONValue
from trustbuild.errors import AttestationError, UsageError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest

__all__ = [
    "PREDICATE_TYPE_ANNOTATION", "same_predicate_type",
    "STATEMENT_V1", "STATEMENT_V01", "SLSA_PROVENANCE_V1", "SLSA_PROVENANCE_V02", "SPDX_DOCUMENT",
    "CYCLONEDX_BOM", "COSIGN_CUSTOM", "COSIGN_VULN", "IN_TOTO_LINK", "OPENVEX",
    "PREDICATE_TYPES", "predicate_type_uri", "make_predicate", "Subject", "Statement",
    "InvalidStatement", "MAX_PREDICATE_BYTES",
]

PREDICATE_TYPE_ANNOTATION = "predicateType"
"""The layer annotation cosign puts on an attestation: the statement's predicate type."""


def same_predicate_type(predicate_type: str) -> Callable[[Descriptor], bool]:
    """A test for attestation layers of ``predicate_type`` (what ``--replace`` removes)."""
    return lambda d: (d.annotations or {}).get(PREDICATE_TYPE_ANNOTATION) == predicate_type


STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"  # what cosign writes; accepted when reading
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
SPDX_DOCUMENT = "https://spdx.dev/Document"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
COSIGN_CUSTOM = "https://cosign.sigstore.dev/attestation/v1"
COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
IN_TOTO_LINK = "https://in-toto.io/Link/v1"
OPENVEX = "https://openvex.dev/ns"
MAX_PREDICATE_BYTES = 64 * 1024 * 1024  # well above large SPDX SBOMs of full distributions

# cosign's ``--type`` short names. Deviation: cosign maps plain ``slsaprovenance`` to v0.2;
# trustbuild only writes SLSA v1, so here it means v1 (``slsaprovenance02`` selects v0.2).
PREDICATE_TYPES: dict[str, str] = {
    "slsaprovenance": SLSA_PROVENANCE_V1,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "spdx": SPDX_DOCUMENT,
    "spdxjson": SPDX_DOCUMENT,
    "cyclonedx": CYCLONEDX_BOM,
    "custom": COSIGN_CUSTOM,
    "vuln": COSIGN_VULN,
    "link": IN_TOTO_LINK,
    "openvex": OPENVEX,
}
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$")


class InvalidStatement(AttestationError):
    """A payload that is not a well-formed in-toto Statement."""


def predicate_type_uri(name: str) -> str:
    """The predicate type URI for a cosign short name or a URI (UsageError otherwise)."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if _URI.match(name):
        return name
    names = "|".join(PREDICATE_TYPES)
    raise UsageError(f"invalid predicate type {name!r}: use {names} or a URI")


def make_predicate(raw: bytes | Mapping[str, object], predicate_type: str, *,
                   now: _dt.datetime | None = None) -> JSONObject:
    """The predicate object as cosign builds it from a predicate file's bytes.

    ``custom`` (``https://cosign.sigstore.dev/attestation/v1``) wraps the raw text as
    ``{"Data": text, "Timestamp": RFC3339}``; every other type must be a JSON object.
    """
    if isinstance(raw, Mapping):  # from the library API: it must be a JSON document
        try:
            text = json.dumps(raw, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise AttestationError(f"predicate: not a JSON document ({exc})") from None
        if predicate_type != COSIGN_CUSTOM:
            doc: JSONObject = json.loads(text)
            return doc
        raw = text.encode()
    if predicate_type == COSIGN_CUSTOM:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AttestationError("predicate: custom predicates must be UTF-8 text") from None
        stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"Data": text, "Timestamp": stamp}
    if len(raw) > MAX_PREDICATE_BYTES:
        raise AttestationError(f"predicate: larger than {MAX_PREDICATE_BYTES} bytes")
    obj: JSONObject = load_object(raw, what=f"predicate (type {predicate_type})",
                                  error=AttestationError, max_bytes=MAX_PREDICATE_BYTES)
    return obj


@dataclass(frozen=True)
class Subject:
    """A statement subject: a name and its digests (``{"sha256": hex}``)."""

    name: str
    digest: dict[str, str]

    def to_json(self) -> JSONObject:
        """As ``{"name", "digest"}``."""
        return {"name": self.name, "digest": dict(self.digest)}


@dataclass(frozen=True)
class Statement:
    """A checked in-toto Statement (v1 when written; v0.1 also read)."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: JSONValue
    type: str = STATEMENT_V1
    extra: JSONObject = field(default_factory=dict, compare=False)

    @classmethod
    def for_image(cls, name: str, digest: Digest | str, predicate_type: str,
                  predicate: JSONObject) -> Statement:
        """A v1 statement about one image manifest digest."""
        d = digest if isinstance(digest, Digest) else Digest.parse(digest)
        return cls((Subject(name, {d.algorithm: d.hex}),), predicate_type, predicate)

    def subject_digests(self) -> set[str]:
        """Every subject digest as ``algo:hex``."""
        return {f"{a}:{h}" for s in self.subjects for a, h in s.digest.items()}

    def to_dict(self) -> JSONObject:
        """As the statement JSON object."""
        d: JSONObject = {
            "_type": self.type,
            "subject": [s.to_json() for s in self.subjects],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }
        d.update(self.extra)
        return d

    def to_json(self) -> bytes:
        """Compact JSON bytes (the DSSE payload)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, max_bytes: int = MAX_PREDICATE_BYTES) -> Statement:
        """Parse and check a statement payload (at most ``max_bytes``)."""
        d = load_object(raw, what="statement", error=InvalidStatement, max_bytes=max_bytes)
        typ = d.get("_type")
        if typ not in (STATEMENT_V1, STATEMENT_V01):
            raise InvalidStatement(f"statement: _type {typ!r} is not {STATEMENT_V1}")
        subs = d.get("subject")
        if not isinstance(subs, list) or not subs:
            raise InvalidStatement("statement: subject must be a non-empty list")
        subjects = []
        for i, s in enumerate(subs):
            dg = s.get("digest") if isinstance(s, dict) else None
            if not isinstance(dg, dict) or not dg or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in dg.items()):
                raise InvalidStatement(f"statement: subject[{i}].digest must map algorithms to hex")
            name = s.get("name", "")
            subjects.append(Subject(name if isinstance(name, str) else "", dict(dg)))
        ptype = d.get("predicateType")
        if not isinstance(ptype, str) or not ptype:
            raise InvalidStatement("statement: missing predicateType")
        if "predicate" not in d:
            raise InvalidStatement("statement: missing predicate")
        known = ("_type", "subject", "predicateType", "predicate")
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(tuple(subjects), ptype, d["predicate"], typ, extra)
