"""Keyless signing through Sigstore (Fulcio certificate + Rekor entry) with sigstore-python.

The simple-signing layer carries what cosign stores for a keyless signature: the signature, the
Fulcio certificate (``dev.sigstore.cosign/certificate``), its chain (``dev.sigstore.cosign/chain``)
and the Rekor SET (``dev.sigstore.cosign/bundle``). With ``bundle=True`` a DSSE Sigstore bundle is
attached as a referrer too. This needs the Sigstore public-good services; every failure to reach
them is one SigningError line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from trustbuild._internal.b64 import proto_b64decode
from trustbuild.errors import SigningError
from trustbuild.oci.descriptor import Descriptor
from trustbuild.oci.store import Store
from trustbuild.sign.attach import append_cosign_layer, attach_bundle_referrer
from trustbuild.sign.bundle import SIGN_PREDICATE_TYPE, image_statement
from trustbuild.sign.sign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SignResult,
    bundle_manifest_annotations,
    resolve_subject,
)
from trustbuild.sign.simplesigning import build_payload

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import Signer, SigningContext

    from trustbuild.sign.blob import BlobSignature

__all__ = ["ambient_token", "keyless_sign_image", "keyless_sign_blob", "keyless_signer",
           "load_trust_config", "rekor_annotation_from_bundle"]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def ambient_token() -> str | None:
    """The CI's ambient OIDC token (GitHub Actions, GitLab, Buildkite, GCP...) via ``id``."""
    try:
        from sigstore.oidc import detect_credential

        return detect_credential()
    except Exception as exc:  # the id package raises its own error types
        raise SigningError(f"cannot get an ambient OIDC token: {_one_line(exc)}") from exc


def _field(node: object, *path: str | int) -> object:
    """``node[path[0]][path[1]]...`` through JSON objects and arrays; KeyError if absent."""
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise KeyError(key)
    return node


def rekor_annotation_from_bundle(bundle_json: object) -> str:
    """cosign's ``dev.sigstore.cosign/bundle`` JSON from a Sigstore bundle's first tlog entry."""
    try:
        entry = _field(bundle_json, "verificationMaterial", "tlogEntries", 0)
        key_id, body = _field(entry, "logId", "keyId"), _field(entry, "canonicalizedBody")
        set_b64 = _field(entry, "inclusionPromise", "signedEntryTimestamp")
        itime, index = _field(entry, "integratedTime"), _field(entry, "logIndex")
        if not (isinstance(key_id, str) and isinstance(body, str) and isinstance(set_b64, str)
                and isinstance(itime, str | int) and isinstance(index, str | int)):
            raise TypeError("tlog entry fields have unexpected types")
        doc = {
            "SignedEntryTimestamp": set_b64,
            "Payload": {
                "body": body,
                "integratedTime": int(itime),
                "logIndex": int(index),
                "logID": proto_b64decode(key_id).hex(),
            },
        }
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SigningError(f"Rekor returned no usable entry ({_one_line(exc)})") from None
    return json.dumps(doc, separators=(",", ":"))


def _with_urls(config: ClientTrustConfig, fulcio_url: str | None,
               rekor_url: str | None) -> ClientTrustConfig:
    """``config`` with its signing config's Fulcio / Rekor (v1 API) service replaced, as
    cosign's ``--fulcio-url`` / ``--rekor-url`` do; the trusted root is kept."""
    from sigstore.models import ClientTrustConfig

    doc = json.loads(config._inner.to_json())
    signing = doc["signingConfig"]
    for url, key in ((fulcio_url, "caUrls"), (rekor_url, "rekorTlogUrls")):
        if url is not None:
            if not url.startswith(("https://", "http://")):
                raise SigningError(f"{url!r} is not an http(s) URL")
            signing[key] = [{"url": url.rstrip("/"), "majorApiVersion": 1,
                             "validFor": {"start": "1970-01-01T00:00:00Z"},
                             "operator": "command line"}]
    if rekor_url is not None:
        signing["rekorTlogConfig"] = {"selector": "ANY"}
    return ClientTrustConfig.from_json(json.dumps(doc))


def load_trust_config(path: str | Path) -> ClientTrustConfig:
    """The Sigstore ClientTrustConfig JSON at ``path``; one SigningError line if it cannot be
    read or is not one (checked before a build, so a typo does not cost the build)."""
    from sigstore.models import ClientTrustConfig

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return ClientTrustConfig.from_json(text)
    except Exception as exc:  # pydantic / protobuf / JSON errors from sigstore-python
        raise SigningError(f"{path}: not a Sigstore ClientTrustConfig: "
                           f"{_one_line(exc)}") from None


@contextmanager
def keyless_signer(identity_token: str | None, trust_config: str | Path | None, *,
                   what: str = "signing", fulcio_url: str | None = None,
                   rekor_url: str | None = None) -> Iterator[tuple[Signer, str]]:
    """A sigstore-python signer for ``identity_token`` (or the ambient CI token) and the Fulcio
    chain PEM; every failure (token, TUF, Fulcio, Rekor) becomes one SigningError line.

    ``trust_config`` is a Sigstore ClientTrustConfig JSON (trusted root + signing config, e.g. a
    private Sigstore deployment); without it the public-good instance is used through TUF.
    ``fulcio_url`` / ``rekor_url`` replace its services (the trusted root must still hold the
    CA, CT log and Rekor keys of the instances named, or signing fails on their answers).
    """
    token = identity_token or ambient_token()
    if not token:
        raise SigningError(f"keyless {what} needs an OIDC token: pass --identity-token or run "
                           "in a CI job that provides one")
    try:
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        identity = IdentityToken(token)
    except Exception as exc:
        raise SigningError(f"invalid identity token: {_one_line(exc)}") from exc
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # one line on failure, not retry noise
    try:
        if trust_config is not None:
            config = load_trust_config(trust_config)
        else:
            config = ClientTrustConfig.production()
        if fulcio_url is not None or rekor_url is not None:
            config = _with_urls(config, fulcio_url, rekor_url)
        ctx = SigningContext.from_trust_config(config)
        with ctx.signer(identity) as signer:
            yield signer, _fulcio_chain(ctx)
    except SigningError:
        raise
    except Exception as exc:  # network, TUF, Fulcio and Rekor failures from sigstore-python
        raise SigningError(f"keyless {what} failed (Sigstore services unreachable or refused): "
                           f"{_one_line(exc)}") from exc


def keyless_sign_image(store: Store, ref: str | None, *, identity_token: str | None,
                       docker_reference: str, annotations: dict[str, str] | None = None,
                       bundle: bool = False, simple: bool = True,
                       trust_config: str | Path | None = None,
                       subject: Descriptor | None = None) -> SignResult:
    """Sign with a Fulcio certificate for ``identity_token`` (or the ambient CI token).

    ``trust_config``: see :func:`keyless_signer`. ``subject`` skips resolving ``ref`` (the
    build passes the descriptor it pushed).
    """
    from sigstore import dsse

    subj = subject or resolve_subject(store, ref)
    sig_desc = bundle_desc = None
    payload = None
    with keyless_signer(identity_token, trust_config, what="signing") as (signer, chain):
        if simple:
            payload = build_payload(docker_reference, subj.digest, annotations)
            b = signer.sign_artifact(payload)
            doc = json.loads(b.to_json())
            cert = b.signing_certificate.public_bytes(serialization.Encoding.PEM).decode()
            layer_ann = {
                SIGNATURE_ANNOTATION: doc["messageSignature"]["signature"],
                CERTIFICATE_ANNOTATION: cert,
                BUNDLE_ANNOTATION: rekor_annotation_from_bundle(doc),
            }
            if chain:
                layer_ann[CHAIN_ANNOTATION] = chain
            sig_desc = append_cosign_layer(store, subj, suffix="sig", layer_bytes=payload,
                                           layer_media_type="application/vnd.dev.cosign."
                                                            "simplesigning.v1+json",
                                           annotations=layer_ann)
        if bundle:
            statement = dsse.Statement(image_statement(docker_reference, subj.digest,
                                                       annotations))
            raw = signer.sign_dsse(statement).to_json().encode()
            bundle_desc = attach_bundle_referrer(
                store, subj, raw, annotations=bundle_manifest_annotations(SIGN_PREDICATE_TYPE))
    return SignResult(subj.digest, docker_reference, sig_desc, bundle_desc, payload)

def keyless_sign_blob(blob: Path, *, identity_token: str | None,
                      trust_config: str | Path | None = None, fulcio_url: str | None = None,
                      rekor_url: str | None = None) -> BlobSignature:
    """Sign a file's bytes with a Fulcio certificate and log it in Rekor (``hashedrekord``), as
    ``cosign sign-blob`` does without ``--key``; the result carries the Sigstore bundle v0.3
    (certificate, tlog entry with SET and inclusion proof) and the certificate PEM."""
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    from trustbuild.sign.blob import BlobSignature, sha256_file

    # signed prehashed, as cosign does: the file is read once, in chunks, not held in memory
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=sha256_file(blob))
    with keyless_signer(identity_token, trust_config, what="signing", fulcio_url=fulcio_url,
                        rekor_url=rekor_url) as (signer, _chain):
        b = signer.sign_artifact(hashed)
    doc = json.loads(b.to_json())
    try:
        signature = proto_b64decode(doc["messageSignature"]["signature"])
    except (KeyError, TypeError, ValueError):
        raise SigningError("Sigstore returned a bundle without a message signature") from None
    cert = b.signing_certificate.public_bytes(serialization.Encoding.PEM).decode()
    return BlobSignature(signature, json.dumps(doc, separators=(",", ":")).encode(), cert)


def _fulcio_chain(ctx: SigningContext) -> str:
    """The Fulcio intermediate and root PEMs from the signing context's trusted root."""
    try:
        certs = ctx._trusted_root.get_fulcio_certs()
    except Exception:
        return ""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
