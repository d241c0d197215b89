"""What is attached to an image digest, as cosign's ``tree``, ``download``, ``attach`` and
``clean`` see it: the ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` tags and OCI 1.1 referrers.

- :func:`supply_chain_tree` lists the tags (their layers' digests, media types and predicate
  types) and the referrers (artifact type, predicate type, layers) of one digest.
- :func:`signed_payloads` is ``cosign download signature``: one object per ``.sig`` layer.
- :func:`read_sbom` / :func:`attach_sbom` read and write the ``.sbom`` tag as ``cosign attach
  sbom`` does (one layer, the SBOM's bytes, media type ``text/spdx+json`` ...).
- :func:`attach_signature` adds a signature made elsewhere (``sign-blob`` over the payload of
  ``trustbuild generate``) to ``.sig``.
- :func:`clean_attachments` removes the tags and Sigstore bundle referrers (``cosign clean``).

Attestation envelopes (``download``/``attach attestation``) live in
:mod:`trustbuild.attest.envelopes`. Example::

    subject = resolve_subject(store, "1.0")
    tree = supply_chain_tree(store, subject.digest)
    print(tree.render_text("registry.example/app:1.0", store.describe()))
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from trustbuild._internal.b64 import std_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild._internal.jsontypes import JSONObject, JSONValue
from trustbuild.errors import (
    InvalidManifest,
    NotFound,
    RegistryError,
    SigningError,
    StoreError,
    UsageError,
    VerificationError,
)
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.digest import Digest
from trustbuild.oci.manifest import Index, Manifest, parse_manifest
from trustbuild.oci.mediatype import MediaType
from trustbuild.oci.store import Store
from trustbuild.sign.attach import (
    _drop_from_tag_index,
    append_cosign_layer,
    bundle_referrer_descriptors,
    cosign_tag,
    read_bundle_referrers,
    read_cosign_layers,
)
from trustbuild.sign.bundle import SIGN_PREDICATE_TYPE
from trustbuild.sign.sign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    TIMESTAMP_ANNOTATION,
)
from trustbuild.sign.simplesigning import parse_payload

__all__ = [
    "KIND_SUFFIX",
    "SBOM_TYPES",
    "MAX_SBOM_BYTES",
    "RFC3161_ANNOTATION",
    "AttachedLayer",
    "AttachedTag",
    "AttachedReferrer",
    "SupplyChainTree",
    "supply_chain_tree",
    "signed_payloads",
    "signature_bundles",
    "sbom_media_type",
    "attach_sbom",
    "read_sbom",
    "attach_signature",
    "clean_attachments",
]

KIND_SUFFIX = {"signature": "sig", "attestation": "att", "sbom": "sbom"}
"""cosign's attachment kinds and the suffix of their tag."""

SBOM_TYPES = ("spdx", "cyclonedx", "syft")
MAX_SBOM_BYTES = 64 * 1024 * 1024
RFC3161_ANNOTATION = TIMESTAMP_ANNOTATION
PREDICATE_TYPE_ANNOTATION = "predicateType"  # the .att layer annotation cosign attest sets
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
_LOOKUP = (NotFound, RegistryError, StoreError)
_MAX_REFERRERS = 256
MAX_JSON_ANNOTATION = 64 * 1024  # cosign's bundle / timestamp annotations, as sign/rekor.py


@dataclass(frozen=True)
class AttachedLayer:
    """One layer of an attachment manifest."""

    digest: Digest
    media_type: str
    size: int
    predicate_type: str | None = None

    def to_json(self) -> JSONObject:
        """``{"digest", "mediaType", "size"[, "predicateType"]}``."""
        out: JSONObject = {"digest": str(self.digest), "mediaType": self.media_type,
                               "size": self.size}
        if self.predicate_type:
            out["predicateType"] = self.predicate_type
        return out


@dataclass(frozen=True)
class AttachedTag:
    """A cosign ``sha256-<hex>.<suffix>`` tag and its layers."""

    kind: str  # signature | attestation | sbom
    tag: str
    manifest: Digest
    layers: tuple[AttachedLayer, ...]

    def to_json(self) -> JSONObject:
        """As in ``tree --output json``."""
        return {"kind": self.kind, "tag": self.tag, "manifest": str(self.manifest),
                "layers": [layer.to_json() for layer in self.layers]}


@dataclass(frozen=True)
class AttachedReferrer:
    """An OCI 1.1 referrer (a manifest whose ``subject`` is the image)."""

    digest: Digest
    artifact_type: str | None
    predicate_type: str | None
    layers: tuple[AttachedLayer, ...]
    error: str | None = None

    def to_json(self) -> JSONObject:
        """As in ``tree --output json``."""
        out: JSONObject = {"digest": str(self.digest), "artifactType": self.artifact_type,
                               "layers": [layer.to_json() for layer in self.layers]}
        if self.predicate_type:
            out["predicateType"] = self.predicate_type
        if self.error:
            out["error"] = self.error
        return out


_HEADINGS = {"signature": "🔐 Signatures", "attestation": "💾 Attestations",
             "sbom": "📦 SBOMs"}


@dataclass
class SupplyChainTree:
    """Everything attached to one image digest."""

    digest: Digest
    tags: list[AttachedTag] = field(default_factory=list)
    referrers: list[AttachedReferrer] = field(default_factory=list)

    def empty(self) -> bool:
        """True when nothing is attached."""
        return not self.tags and not self.referrers

    def to_json(self, image: str) -> JSONObject:
        """The ``tree --output json`` document."""
        return {"image": image, "digest": str(self.digest),
                "tags": [t.to_json() for t in self.tags],
                "referrers": [r.to_json() for r in self.referrers]}

    def render_text(self, image: str, where: str) -> str:
        """cosign tree's layout; ``where`` names the repository/layout the tags are in."""
        lines = [f"📦 Supply Chain Security Related artifacts for an image: {image}"]
        if self.empty():
            lines.append(f"No Supply Chain Security Related Artifacts found for image {image} "
                         f"({self.digest}); start creating one with: trustbuild sign")
            return "\n".join(lines)
        for t in self.tags:
            lines.append(f"└── {_HEADINGS[t.kind]} for an image tag: "
                         f"{where.removeprefix('docker://')}:{t.tag}")
            lines += _layer_lines(t.layers)
        for r in self.referrers:
            label = r.predicate_type or r.artifact_type or "untyped"
            lines.append(f"└── 🔗 {label} artifacts via OCI referrer: "
                         f"{where.removeprefix('docker://')}@{r.digest}")
            if r.error:
                lines.append(f"   └── ⚠ {r.error}")
            lines += _layer_lines(r.layers)
        return "\n".join(lines)


def _layer_lines(layers: tuple[AttachedLayer, ...]) -> list[str]:
    out = []
    for i, layer in enumerate(layers):
        sym = "   └──" if i == len(layers) - 1 else "   ├──"
        extra = layer.media_type + (f", {layer.predicate_type}" if layer.predicate_type else "")
        out.append(f"{sym} 🍒 {layer.digest} ({extra})")
    return out


def _manifest(store: Store, ref: str) -> Manifest | None:
    """The image manifest at ``ref`` (None if absent); VerificationError if it is not one."""
    try:
        raw, mt = store.get_manifest(ref)
    except _LOOKUP:
        return None
    try:
        m = parse_manifest(raw, mt, what=f"{store.describe()}:{ref}")
    except InvalidManifest as exc:
        raise VerificationError(f"{store.describe()}:{ref} is invalid: {exc}") from None
    if not isinstance(m, Manifest):
        raise VerificationError(f"{store.describe()}:{ref} is a {m.media_type}, not an image "
                                "manifest")
    return m


def _layers(m: Manifest, *, att: bool = False) -> tuple[AttachedLayer, ...]:
    return tuple(AttachedLayer(d.digest, d.media_type, d.size,
                               (d.annotations or {}).get(PREDICATE_TYPE_ANNOTATION) if att
                               else None) for d in m.layers)


def _referrer_descriptors(store: Store, subject: Digest) -> list[Descriptor]:
    """Every referrer of ``subject``: the store's list plus the tag-schema index."""
    try:
        refs = list(store.referrers(subject))
    except (*_LOOKUP, InvalidManifest):
        refs = []
    try:
        raw, mt = store.get_manifest(subject.tag_form)
        idx = parse_manifest(raw, mt, what=subject.tag_form)
        if isinstance(idx, Index):
            refs += list(idx.manifests)
    except (*_LOOKUP, InvalidManifest):
        pass
    return list({d.digest: d for d in refs}.values())[:_MAX_REFERRERS]


def supply_chain_tree(store: Store, subject: Digest) -> SupplyChainTree:
    """The ``.sig``/``.att``/``.sbom`` tags and the referrers of ``subject``."""
    tree = SupplyChainTree(subject)
    for kind in ("signature", "attestation", "sbom"):
        tag = cosign_tag(subject, KIND_SUFFIX[kind])
        m = _manifest(store, tag)
        if m is not None:
            tree.tags.append(AttachedTag(kind, tag, m.digest, _layers(m, att=kind ==
                                                                       "attestation")))
    for d in _referrer_descriptors(store, subject):
        try:
            m = _manifest(store, str(d.digest))
            if m is None:
                raise VerificationError("listed, but missing from the store")
            if m.subject is None or m.subject.digest != subject:
                raise VerificationError("names another subject")
        except VerificationError as exc:
            tree.referrers.append(AttachedReferrer(d.digest, d.artifact_type, None, (),
                                                   str(exc)))
            continue
        ann = m.annotations or {}
        tree.referrers.append(AttachedReferrer(
            d.digest, m.artifact_type or m.config.media_type,
            ann.get(BUNDLE_PREDICATE_ANNOTATION), _layers(m)))
    return tree


def _certificates(pem: str | None, what: str) -> list[dict[str, str]] | None:
    """PEM certificates as ``[{"Raw": base64 DER}]`` (Go's x509.Certificate ``Raw`` field)."""
    if not pem:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding

    from trustbuild.sign.trust import load_certificates

    certs = load_certificates(pem.encode(), what)
    return [{"Raw": base64.b64encode(c.public_bytes(Encoding.DER)).decode()} for c in certs]


def _json_annotation(text: str | None, what: str) -> JSONValue:
    """A JSON-object annotation (cosign's bundle, RFC 3161 timestamp), bounded like Rekor's."""
    if not text:
        return None
    value: JSONObject = load_object(text, what=what, error=VerificationError,
                                    max_bytes=MAX_JSON_ANNOTATION)
    return value


def signed_payloads(store: Store, subject: Digest) -> list[JSONObject]:
    """``cosign download signature``: per ``.sig`` layer, ``{"Base64Signature", "Payload"
    (base64), "Cert", "Chain", "Bundle", "RFC3161Timestamp"}`` (cosign's SignedPayload).

    Certificates are given as ``{"Raw": base64 DER}`` (the field of Go's x509.Certificate
    that holds the certificate). A layer that cannot be read is a VerificationError.
    """
    tag = cosign_tag(subject, "sig")
    _, layers = read_cosign_layers(store, subject, "sig")
    out = []
    for layer in layers:
        where = f"{store.describe()}:{tag} layer {layer.index}"
        if layer.payload is None:
            raise VerificationError(f"{where}: {layer.error}")
        ann = layer.annotations
        cert = _certificates(ann.get(CERTIFICATE_ANNOTATION), f"{where} certificate")
        out.append({
            "Base64Signature": ann.get(SIGNATURE_ANNOTATION, ""),
            "Payload": base64.b64encode(layer.payload).decode(),
            "Cert": cert[0] if cert else None,
            "Chain": _certificates(ann.get(CHAIN_ANNOTATION), f"{where} chain"),
            "Bundle": _json_annotation(ann.get(BUNDLE_ANNOTATION), f"{where} bundle"),
            "RFC3161Timestamp": _json_annotation(ann.get(RFC3161_ANNOTATION),
                                                 f"{where} RFC 3161 timestamp"),
        })
    return out


def signature_bundles(store: Store, subject: Digest) -> list[bytes]:
    """The Sigstore bundles attached as signature referrers (predicate type cosign/sign/v1)."""
    out = []
    for ref in read_bundle_referrers(store, subject):
        if ref.annotations.get(BUNDLE_PREDICATE_ANNOTATION) != SIGN_PREDICATE_TYPE:
            continue
        if ref.bundle is None:
            raise VerificationError(f"bundle referrer {ref.manifest_digest}: {ref.error}")
        out.append(ref.bundle)
    return out


def sbom_media_type(sbom_type: str, *, path: str = "", input_format: str | None = None) -> str:
    """cosign attach sbom's layer media type for ``--type`` / ``--input-format``.

    JSON is taken from ``--input-format json`` or a ``.json`` file name, as cosign does.
    """
    fmt = input_format or ""
    as_json = fmt == "json" or path.endswith(".json")
    if sbom_type == "spdx":
        if fmt not in ("", "json", "text"):
            raise UsageError(f"--input-format {fmt!r}: expected json or text for spdx")
        return "text/spdx+json" if as_json else "text/spdx"
    if sbom_type == "cyclonedx":
        if fmt not in ("", "json", "xml"):
            raise UsageError(f"--input-format {fmt!r}: expected json or xml for cyclonedx")
        return "application/vnd.cyclonedx+json" if as_json else "application/vnd.cyclonedx+xml"
    if sbom_type == "syft":
        if fmt not in ("", "json"):
            raise UsageError(f"--input-format {fmt!r}: expected json for syft")
        return "application/vnd.syft+json"
    raise UsageError(f"--type {sbom_type!r}: expected one of {', '.join(SBOM_TYPES)}")


def attach_sbom(store: Store, subject: Descriptor, sbom: bytes, media_type: str) -> Descriptor:
    """Write ``sha256-<hex>.sbom`` as one layer holding ``sbom`` (an earlier SBOM is replaced,
    as ``cosign attach sbom`` overwrites the tag); returns the manifest."""
    if not sbom:
        raise UsageError("--sbom: the SBOM is empty")
    if len(sbom) > MAX_SBOM_BYTES:
        raise UsageError(f"--sbom: larger than {MAX_SBOM_BYTES} bytes")
    return append_cosign_layer(store, subject, suffix="sbom", layer_bytes=sbom,
                               layer_media_type=media_type, annotations={},
                               replace=lambda _d: True)


def read_sbom(store: Store, subject: Digest) -> tuple[str, bytes, int]:
    """The media type and bytes of the ``.sbom`` tag's first layer, and how many layers it has.

    VerificationError when there is no SBOM or it cannot be read (bounded, digest-checked).
    """
    tag = cosign_tag(subject, "sbom")
    desc, layers = read_cosign_layers(store, subject, "sbom", limit=MAX_SBOM_BYTES,
                                      total_limit=4 * MAX_SBOM_BYTES)
    if desc is None or not layers:
        raise VerificationError(f"no SBOM attached to {subject} ({store.describe()} has no "
                                f"tag {tag})")
    first = layers[0]
    if first.payload is None:
        raise VerificationError(f"{store.describe()}:{tag}: {first.error}")
    return first.descriptor.media_type, first.payload, len(layers)


def attach_signature(store: Store, subject: Descriptor, payload: bytes, signature_b64: str, *,
                     certificate_pem: str | None = None,
                     chain_pem: str | None = None) -> Descriptor:
    """Append a signature made elsewhere to ``.sig`` (``cosign attach signature``).

    ``payload`` must be a simple-signing payload naming ``subject``'s digest (what ``trustbuild
    generate`` prints); ``signature_b64`` is its base64 signature (``sign-blob``'s output). With
    ``certificate_pem`` the signature must verify with the certificate's key. Nothing is
    written when a check fails.
    """
    try:
        parsed = parse_payload(payload)
    except VerificationError as exc:
        raise SigningError(f"--payload: {exc} (make it with trustbuild generate IMAGE)") from None
    if parsed.manifest_digest != subject.digest:
        raise SigningError(f"--payload names {parsed.manifest_digest}, not the image's digest "
                           f"{subject.digest}; generate it for this image")
    try:
        sig = std_b64decode(signature_b64.strip().encode())
    except ValueError:
        raise SigningError("--signature: not base64 (give the file sign-blob wrote, or its "
                           "output)") from None
    if not sig:
        raise SigningError("--signature: empty signature")
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(sig).decode()}
    if certificate_pem:
        from trustbuild.sign.keys import VerifyingKey
        from trustbuild.sign.trust import load_certificates

        try:
            cert = load_certificates(certificate_pem.encode(), "--certificate")[0]
            VerifyingKey(cert.public_key()).verify(sig, payload)  # type: ignore[arg-type]
        except VerificationError as exc:
            raise SigningError(f"--certificate: the signature does not verify with the "
                               f"certificate's key ({exc})") from None
        annotations[CERTIFICATE_ANNOTATION] = certificate_pem
        if chain_pem:
            annotations[CHAIN_ANNOTATION] = chain_pem
    return append_cosign_layer(store, subject, suffix="sig", layer_bytes=payload,
                               layer_media_type=MediaType.COSIGN_SIMPLESIGNING,
                               annotations=annotations)


def _bundle_predicate_type(store: Store, d: Descriptor) -> str | None:
    ann = d.annotations or {}
    if BUNDLE_PREDICATE_ANNOTATION not in ann:
        try:
            raw, mt = store.get_manifest(str(d.digest))
            ann = parse_manifest(raw, mt, what=f"referrer {d.digest}").annotations or {}
        except (*_LOOKUP, InvalidManifest):
            return None
    return ann.get(BUNDLE_PREDICATE_ANNOTATION)


def _deleter(store: Store, what: str) -> Callable[[Digest], object]:
    delete: object = getattr(store, "delete_manifest", None)
    if not callable(delete):
        raise SigningError(f"{store.describe()}: cannot remove {what} (this store does not "
                           "delete manifests)")
    return delete


def clean_attachments(store: Store, subject: Digest, kind: str) -> list[str]:
    """Remove what is attached to ``subject`` (``cosign clean --type``); returns what went.

    ``kind`` is ``signature`` (the ``.sig`` tag and signature bundle referrers),
    ``attestation`` (``.att`` and the other bundle referrers), ``sbom`` (``.sbom``) or ``all``.
    Tags are deleted from the store (registry ``DELETE``, layout ``index.json`` entry); bundle
    referrers are deleted and dropped from the referrers tag-schema index. Absent things are
    not an error.
    """
    kinds = list(KIND_SUFFIX) if kind == "all" else [kind]
    if any(k not in KIND_SUFFIX for k in kinds):
        raise UsageError(f"--type {kind!r}: expected signature, attestation, sbom or all")
    removed: list[str] = []
    for k in kinds:
        tag = cosign_tag(subject, KIND_SUFFIX[k])
        try:
            store.get_manifest(tag)
        except _LOOKUP:
            continue
        try:
            store.delete_tag(tag)
        except RegistryError as exc:
            raise SigningError(f"{store.describe()}: cannot delete {tag}: {exc} (is deletion "
                               "enabled on the registry?)") from None
        except StoreError as exc:
            raise SigningError(f"{store.describe()}: cannot delete {tag}: {exc}") from None
        removed.append(tag)
    gone: set[Digest] = set()
    if "signature" in kinds or "attestation" in kinds:
        for d in bundle_referrer_descriptors(store, subject, MediaType.SIGSTORE_BUNDLE):
            is_sig = _bundle_predicate_type(store, d) == SIGN_PREDICATE_TYPE
            if ("signature" if is_sig else "attestation") not in kinds:
                continue
            try:
                _deleter(store, f"bundle referrer {d.digest}")(d.digest)
            except RegistryError as exc:
                raise SigningError(f"{store.describe()}: cannot delete bundle referrer "
                                   f"{d.digest}: {exc} (is deletion enabled on the registry?)"
                                   ) from None
            gone.add(d.digest)
            removed.append(str(d.digest))
    if gone:
        _drop_from_tag_index(store, subject, gone)
        _delete_empty_tag_index(store, subject)
    return removed


def _delete_empty_tag_index(store: Store, subject: Digest) -> None:
    """Remove the referrers tag-schema index ``sha256-<hex>`` once it lists nothing."""
    tag = subject.tag_form
    try:
        raw, mt = store.get_manifest(tag)
        idx = parse_manifest(raw, mt, what=f"{store.describe()}:{tag}")
    except (*_LOOKUP, InvalidManifest):
        return
    if isinstance(idx, Index) and not idx.manifests:
        try:
            store.delete_tag(tag)
        except (RegistryError, StoreError):
            pass  # an empty index lists nothing; leaving it is harmless
