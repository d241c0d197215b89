"""DSSE attestation envelopes attached to an image: ``cosign download attestation`` and
``cosign attach attestation``.

- :func:`attestation_envelopes` returns the envelopes of the ``sha256-<hex>.att`` layers and of
  the attestation bundle referrers (one per distinct envelope), optionally only those of one
  predicate type.
- :func:`attach_attestations` attaches envelopes signed elsewhere (``attest-blob
  --output-attestation``, a stream of envelopes as cosign reads, or a Sigstore bundle holding
  one). Each statement must name the image digest among its subjects, else
  ``verify-attestation`` would refuse it; every envelope is checked before anything is written.

Example::

    subject = resolve_subject(store, "1.0")
    attach_attestations(store, subject, Path("env.json").read_bytes(), name="env.json")
    for env in attestation_envelopes(store, subject.digest, predicate_type=None):
        print(json.dumps(env))
"""

from __future__ import annotations

import json

from trustbuild._internal.jsontypes import JSONObject
from trustbuild.attest.bundle import BUNDLE_MEDIA_TYPES, envelope_from_bundle
from trustbuild.attest.dsse import DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, Envelope
from trustbuild.attest.statement import PREDICATE_TYPE_ANNOTATION, Statement
from trustbuild.errors import AttestationError, TrustbuildError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.store import Store
from trustbuild.sign.attach import (
    append_cosign_layer,
    attach_bundle_referrer,
    cosign_tag,
    read_bundle_referrers,
    read_cosign_layers,
)
from trustbuild.sign.bundle import SIGN_PREDICATE_TYPE
from trustbuild.sign.sign import SIGNATURE_ANNOTATION, bundle_manifest_annotations

__all__ = ["MAX_ATTESTATION_BYTES", "attestation_envelopes", "attach_attestations"]

MAX_ATTESTATION_BYTES = 64 * 1024 * 1024
_MAX_ENVELOPES = 64


def _predicate_type(env: Envelope, where: str) -> str:
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(f"{where}: payloadType {env.payload_type!r} is not "
                               f"{IN_TOTO_PAYLOAD_TYPE}")
    try:
        return Statement.from_json(env.payload).predicate_type
    except TrustbuildError as exc:
        raise AttestationError(f"{where}: {exc}") from None


def attestation_envelopes(store: Store, subject: Digest, *,
                          predicate_type: str | None = None) -> list[JSONObject]:
    """The DSSE envelopes attached to ``subject`` (``.att`` layers, then bundle referrers),
    each once, as ``{"payloadType", "payload", "signatures"}`` objects.

    With ``predicate_type`` (a URI) only statements of that type are returned. Signatures are
    not checked here (``verify-attestation`` does). An unreadable or malformed attestation is
    an AttestationError naming it.
    """
    tag = cosign_tag(subject, "att")
    _, layers = read_cosign_layers(store, subject, "att", limit=MAX_ATTESTATION_BYTES,
                                   total_limit=4 * MAX_ATTESTATION_BYTES)
    found: list[tuple[str, Envelope]] = []
    for layer in layers:
        where = f"{store.describe()}:{tag} layer {layer.index}"
        if layer.payload is None:
            raise AttestationError(f"{where}: {layer.error}")
        try:
            found.append((where, Envelope.from_json(layer.payload)))
        except TrustbuildError as exc:
            raise AttestationError(f"{where}: {exc}") from None
    for ref in read_bundle_referrers(store, subject, limit=MAX_ATTESTATION_BYTES,
                                     total_limit=4 * MAX_ATTESTATION_BYTES):
        if ref.annotations.get("dev.sigstore.bundle.predicateType") == SIGN_PREDICATE_TYPE:
            continue  # an image signature, not an attestation
        where = f"bundle referrer {ref.manifest_digest}"
        if ref.bundle is None:
            raise AttestationError(f"{where}: {ref.error}")
        try:
            env, _material = envelope_from_bundle(ref.bundle, max_bytes=MAX_ATTESTATION_BYTES)
        except TrustbuildError as exc:
            raise AttestationError(f"{where}: {exc}") from None
        found.append((where, env))
    out: list[JSONObject] = []
    seen: set[tuple[bytes, tuple[bytes, ...]]] = set()
    for where, env in found:
        key = (env.payload, tuple(s.sig for s in env.signatures))
        if key in seen:
            continue  # the same envelope as .att layer and as bundle (attest --bundle)
        seen.add(key)
        if predicate_type and _predicate_type(env, where) != predicate_type:
            continue
        out.append(env.to_dict())
    return out


def _parse_stream(raw: bytes, name: str) -> list[JSONObject]:
    """One or more JSON objects one after another (cosign's ``json.Decoder`` loop)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AttestationError(f"{name}: not UTF-8 JSON") from None
    dec = json.JSONDecoder()
    docs: list[JSONObject] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        if len(docs) >= _MAX_ENVELOPES:
            raise AttestationError(f"{name}: more than {_MAX_ENVELOPES} envelopes")
        try:
            doc, pos = dec.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            raise AttestationError(f"{name}: envelope {len(docs) + 1} is not valid JSON "
                                   f"({exc})") from None
        if not isinstance(doc, dict):
            raise AttestationError(f"{name}: envelope {len(docs) + 1} is not a JSON object")
        docs.append(doc)
    if not docs:
        raise AttestationError(f"{name}: no DSSE envelope in the file")
    return docs


def _check_envelope(env: Envelope, subject: Digest, where: str) -> str:
    """The predicate type; AttestationError unless ``env`` is a signed statement about
    ``subject``."""
    if not env.signatures:
        raise AttestationError(f"{where}: the envelope has no signatures")
    ptype = _predicate_type(env, where)
    digests = Statement.from_json(env.payload).subject_digests()
    if str(subject) not in digests:
        names = ", ".join(sorted(digests)) or "none"
        raise AttestationError(
            f"{where}: the statement's subject ({names}) is not the image digest {subject}; "
            "attest the image (trustbuild attest) or make a statement whose subject is it")
    return ptype


def attach_attestations(store: Store, subject: Descriptor, raw: bytes, *,
                        name: str = "attestation") -> list[Descriptor]:
    """Attach the DSSE envelopes in ``raw`` to ``subject``; returns the manifests written.

    ``raw`` is one envelope, several one after another, or a Sigstore bundle with a
    ``dsseEnvelope`` (attached as a bundle referrer, as cosign attaches bundles). Each becomes
    one ``.att`` layer (annotations ``predicateType`` and an empty cosign signature, as
    ``cosign attest`` writes them); an identical layer is not added twice.
    """
    if len(raw) > MAX_ATTESTATION_BYTES:
        raise AttestationError(f"{name}: larger than {MAX_ATTESTATION_BYTES} bytes")
    docs = _parse_stream(raw, name)
    if len(docs) == 1 and docs[0].get("mediaType") in BUNDLE_MEDIA_TYPES:
        try:
            env, _material = envelope_from_bundle(raw, max_bytes=MAX_ATTESTATION_BYTES)
        except TrustbuildError as exc:
            raise AttestationError(f"{name}: {exc}") from None
        ptype = _check_envelope(env, subject.digest, name)
        return [attach_bundle_referrer(store, subject, raw.strip(),
                                       annotations=bundle_manifest_annotations(ptype))]
    checked: list[tuple[Envelope, str]] = []
    for i, doc in enumerate(docs):
        where = name if len(docs) == 1 else f"{name} envelope {i + 1}"
        if "mediaType" in doc:
            raise AttestationError(f"{where}: a Sigstore bundle among envelopes; attach it "
                                   "on its own")
        try:
            env = Envelope.from_dict(doc)
        except TrustbuildError as exc:
            raise AttestationError(f"{where}: {exc}") from None
        checked.append((env, _check_envelope(env, subject.digest, where)))
    out = []
    for env, ptype in checked:
        out.append(append_cosign_layer(
            store, subject, suffix="att", layer_bytes=env.to_json(),
            layer_media_type=DSSE_MEDIA_TYPE,
            annotations={SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: ptype}))
    return out
