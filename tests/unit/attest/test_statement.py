"""in-toto Statement v1, cosign's short names and predicate wrapping."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as ItStatement

from trustbuild.attest.statement import (
    COSIGN_CUSTOM,
    SLSA_PROVENANCE_V1,
    InvalidStatement,
    Statement,
    make_predicate,
    predicate_type_uri,
)
from trustbuild.errors import AttestationError, UsageError

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("name, uri", [
    ("slsaprovenance", "https://slsa.dev/provenance/v1"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("https://example.com/my/v1", "https://example.com/my/v1"),
])
def test_predicate_type_names(name, uri):
    assert predicate_type_uri(name) == uri


def test_unknown_short_name_is_usage_error():
    with pytest.raises(UsageError, match="invalid predicate type 'sbom'"):
        predicate_type_uri("sbom")


def test_custom_predicate_is_wrapped_like_cosign():
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert make_predicate(b"hello\n", COSIGN_CUSTOM, now=now) == \
        {"Data": "hello\n", "Timestamp": "2026-01-02T03:04:05Z"}


def test_typed_predicate_must_be_json_object():
    assert make_predicate(b'{"a": 1}', SLSA_PROVENANCE_V1) == {"a": 1}
    with pytest.raises(AttestationError, match="not valid JSON"):
        make_predicate(b"{nope", SLSA_PROVENANCE_V1)
    with pytest.raises(AttestationError, match="expected a JSON object"):
        make_predicate(b"[1]", SLSA_PROVENANCE_V1)


def test_statement_validates_with_in_toto_attestation_bindings():
    stmt = Statement.for_image("127.0.0.1:5000/app", DIGEST, SLSA_PROVENANCE_V1, {"x": 1})
    pb = json_format.Parse(stmt.to_json(), statement_pb2.Statement())
    ItStatement.copy_from_pb(pb).validate()
    d = json.loads(stmt.to_json())
    assert d["_type"] == "https://in-toto.io/Statement/v1"
    assert d["subject"] == [{"name": "127.0.0.1:5000/app", "digest": {"sha256": "ab" * 32}}]


def test_statement_roundtrip_and_subject_digests():
    stmt = Statement.for_image("r/app", DIGEST, "https://example.com/t", {"k": "v"})
    again = Statement.from_json(stmt.to_json())
    assert again == stmt
    assert again.subject_digests() == {DIGEST}


@pytest.mark.parametrize("doc, words", [
    (b"{", "not valid JSON"),
    (b'{"_type":"https://example.com/x"}', "_type"),
    (b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}', "non-empty"),
    (b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}]}', "digest"),
    (b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"aa"}}],'
     b'"predicate":{}}', "predicateType"),
    (b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"aa"}}],'
     b'"predicateType":"t"}', "missing predicate"),
])
def test_bad_statements(doc, words):
    with pytest.raises(InvalidStatement, match=words):
        Statement.from_json(doc)


def test_cosign_v01_statements_are_read():
    doc = {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": COSIGN_CUSTOM,
           "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
           "predicate": {"Data": "d", "Timestamp": "t"}}
    assert Statement.from_json(json.dumps(doc).encode()).predicate_type == COSIGN_CUSTOM
