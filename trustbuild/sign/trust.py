"""Offline trust material for keyless verification: Fulcio CAs, Rekor and CT log keys, TSAs, and
the one identity policy (:class:`KeylessPolicy`).

Trust comes from ``--trusted-root trusted_root.json`` (the Sigstore ``TrustedRoot`` JSON), from
``--ca-roots PEM`` plus ``--rekor-key PEM``, or by default from the Sigstore public-good trusted
root that sigstore-python ships (:meth:`TrustRoots.public_good`). Nothing is fetched: no TUF
refresh, so a root rotated after the installed sigstore-python release needs ``--trusted-root``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustbuild._internal.b64 import proto_b64decode
from trustbuild._internal.jsonload import load_object
from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey, load_verifying_key

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot

__all__ = [
    "OID_ISSUER_V1",
    "OID_ISSUER_V2",
    "KeylessPolicy",
    "TrustRoots",
    "cert_identities",
    "cert_issuer",
    "public_good_root_path",
    "verify_chain",
]

OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_MAX_CHAIN = 6
MAX_TRUSTED_ROOT_BYTES = 4 << 20  # the public-good trusted_root.json is ~10 KiB


@dataclass(frozen=True)
class KeylessPolicy:
    """Which certificate identities are accepted (cosign's --certificate-* flags)."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None

    def check(self, cert: x509.Certificate) -> str:
        """The matching identity; VerificationError naming what the certificate holds otherwise."""
        ids = cert_identities(cert)
        issuer = cert_issuer(cert)
        if self.identity is not None and self.identity not in ids:
            raise VerificationError(f"certificate identity {ids} does not match {self.identity!r}")
        if self.identity_regexp is not None and not any(
                re.search(self.identity_regexp, i) for i in ids):
            raise VerificationError(f"certificate identity {ids} does not match the regexp "
                                    f"{self.identity_regexp!r}")
        if self.issuer is not None and issuer != self.issuer:
            raise VerificationError(f"certificate OIDC issuer {issuer!r} is not {self.issuer!r}")
        if self.issuer_regexp is not None and (issuer is None
                                               or not re.search(self.issuer_regexp, issuer)):
            raise VerificationError(f"certificate OIDC issuer {issuer!r} does not match the regexp "
                                    f"{self.issuer_regexp!r}")
        return f"{ids[0] if ids else '?'} ({issuer})"


def cert_identities(cert: x509.Certificate) -> list[str]:
    """SAN emails, URIs and other names of a Fulcio certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = []
    out += san.get_values_for_type(x509.RFC822Name)
    out += san.get_values_for_type(x509.UniformResourceIdentifier)
    out += san.get_values_for_type(x509.DNSName)
    return out


def _der_utf8(value: bytes) -> str | None:
    if len(value) < 2 or value[0] != 0x0C:
        return None
    n = value[1]
    body = value[2:]
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 2 or len(value) < 2 + k:
            return None
        n = int.from_bytes(value[2:2 + k], "big")
        body = value[2 + k:]
    if len(body) != n:
        return None
    return body.decode("utf-8", errors="replace")


def cert_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer from Fulcio's extension (``.1.8`` DER UTF8String, else legacy ``.1.1``)."""
    v1 = v2 = None
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        raw = getattr(ext.value, "value", None)
        if not isinstance(raw, bytes):
            continue
        if oid == OID_ISSUER_V2:
            v2 = _der_utf8(raw)
        elif oid == OID_ISSUER_V1:
            v1 = raw.decode("utf-8", errors="replace")
    return v2 or v1


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 roots: list[x509.Certificate], at: _dt.datetime, *,
                 anchors: str = "trusted Fulcio root", eku_required: bool = True
                 ) -> list[x509.Certificate]:
    """Check that ``leaf`` chains to one of ``roots`` at time ``at``; VerificationError if not.

    Returns the issuers from the leaf's own issuer up to the root (what an SCT check needs).

    Signatures, validity windows, CA basic constraints and the leaf's codeSigning EKU are checked.
    ``eku_required=False`` is Go's ``x509.Verify``: a leaf without the EKU extension is fine
    (any usage), one with EKUs must list codeSigning (or anyExtendedKeyUsage).
    """
    if not roots:
        raise VerificationError("no Fulcio CA roots to check the certificate against "
                                "(pass --ca-roots or --trusted-root)")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku and (
                eku_required or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku):
            raise VerificationError("certificate is not a code-signing certificate")
    except x509.ExtensionNotFound:
        if eku_required:
            raise VerificationError("certificate has no extended key usage") from None

    def valid_at(c: x509.Certificate) -> None:
        if not (c.not_valid_before_utc <= at <= c.not_valid_after_utc):
            raise VerificationError(
                f"certificate {c.subject.rfc4514_string() or '(leaf)'} was not valid at "
                f"{at.isoformat()} (valid {c.not_valid_before_utc.isoformat()} to "
                f"{c.not_valid_after_utc.isoformat()})")

    root_ders = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    pool = intermediates + roots
    current = leaf
    path: list[x509.Certificate] = []
    valid_at(leaf)
    for _ in range(_MAX_CHAIN):
        if current.public_bytes(serialization.Encoding.DER) in root_ders and current is not leaf:
            return path
        issuer = None
        for cand in pool:
            if cand.subject != current.issuer:
                continue
            try:
                current.verify_directly_issued_by(cand)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            issuer = cand
            break
        if issuer is None or (issuer.subject == issuer.issuer and issuer.public_bytes(
                serialization.Encoding.DER) not in root_ders):
            raise VerificationError(f"certificate does not chain to a {anchors}")
        try:
            bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
            if not bc.ca:
                raise VerificationError("an issuing certificate in the chain is not a CA")
        except x509.ExtensionNotFound:
            raise VerificationError("an issuing certificate has no basic constraints") from None
        valid_at(issuer)
        path.append(issuer)
        if issuer.public_bytes(serialization.Encoding.DER) in root_ders:
            return path
        current = issuer
    raise VerificationError("certificate chain is too long")


def load_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; VerificationError if none or malformed."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise VerificationError(f"{where}: not a valid PEM certificate bundle") from None
    return certs


_TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_PUBLIC_GOOD_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


def public_good_root_path() -> Path:
    """The public-good ``trusted_root.json`` shipped inside the installed sigstore-python."""
    import sigstore._store as store

    return Path(store.__file__).parent / _PUBLIC_GOOD_DIR / "trusted_root.json"


def _key_details(key: VerifyingKey) -> str:
    """The protobuf-specs ``PublicKeyDetails`` name of a Rekor key given as PEM."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    pub = key.key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384",
                "secp521r1": "PKIX_ECDSA_P521_SHA_512"}.get(pub.curve.name,
                                                           "PKIX_ECDSA_P256_SHA_256")
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(pub, rsa.RSAPublicKey):
        return f"PKIX_RSA_PKCS1V15_{max(2048, min(pub.key_size, 4096))}_SHA256"
    raise VerificationError(f"Rekor key type {type(pub).__name__} is not supported")


@dataclass
class TrustRoots:
    """Fulcio CA certificates, Rekor keys (by log ID), CT log keys and timestamp authorities.

    ``doc`` is the Sigstore trusted root JSON this came from (None for ``--ca-roots`` /
    ``--rekor-key``, which carry no CT log or TSA); :meth:`sigstore_root` hands it to
    sigstore-python's SCT, checkpoint and RFC 3161 checks.
    """

    ca_certs: list[x509.Certificate] = field(default_factory=list)
    rekor_keys: dict[str, VerifyingKey] = field(default_factory=dict)
    source: str = "--ca-roots/--rekor-key"
    doc: dict[str, object] | None = None

    @staticmethod
    def log_id(key: VerifyingKey) -> str:
        """Rekor's log ID: sha256 hex of the DER public key."""
        return hashlib.sha256(key.public_der()).hexdigest()

    @classmethod
    def from_pems(cls, *, ca_roots: str | Path | None = None,
                  rekor_keys: list[str | Path] | None = None) -> TrustRoots:
        """From ``--ca-roots`` (PEM bundle, roots and intermediates) and ``--rekor-key`` files."""
        roots = cls()
        if ca_roots is not None:
            try:
                data = Path(ca_roots).read_bytes()
            except OSError as exc:
                raise VerificationError(f"{ca_roots}: cannot read: {exc.strerror}") from None
            roots.ca_certs = load_certificates(data, str(ca_roots))
        for path in rekor_keys or []:
            k = load_verifying_key(path)
            roots.rekor_keys[cls.log_id(k)] = k
        return roots

    @classmethod
    def public_good(cls) -> TrustRoots:
        """The Sigstore public-good trusted root shipped with sigstore-python, read offline."""
        path = public_good_root_path()
        if not path.is_file():
            raise VerificationError(f"{path}: the installed sigstore-python ships no public-good "
                                    "trusted root; pass --trusted-root FILE")
        roots = cls.from_trusted_root(path)
        from importlib.metadata import version

        roots.source = f"Sigstore public-good (sigstore-python {version('sigstore')}, offline)"
        return roots

    @classmethod
    def from_trusted_root(cls, path: str | Path) -> TrustRoots:
        """From a Sigstore ``trusted_root.json`` (certificateAuthorities, tlogs, ctlogs, TSAs)."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise VerificationError(f"{path}: cannot read: {exc.strerror}") from None
        doc = load_object(raw, what=str(path), error=VerificationError,
                          max_bytes=MAX_TRUSTED_ROOT_BYTES)
        if doc.get("mediaType") != _TRUSTED_ROOT_MEDIA_TYPE:
            raise VerificationError(f"{path}: not a Sigstore trusted root (mediaType "
                                    f"{doc.get('mediaType')!r} is not "
                                    f"{_TRUSTED_ROOT_MEDIA_TYPE})")
        roots = cls(source=str(path), doc=doc)
        try:
            for ca in doc.get("certificateAuthorities", []):
                for c in ca["certChain"]["certificates"]:
                    roots.ca_certs.append(x509.load_der_x509_certificate(
                        proto_b64decode(c["rawBytes"])))
            for tl in doc.get("tlogs", []):
                der = proto_b64decode(tl["publicKey"]["rawBytes"])
                k = VerifyingKey(serialization.load_der_public_key(der))  # type: ignore[arg-type]
                roots.rekor_keys[cls.log_id(k)] = k
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VerificationError(f"{path}: not a Sigstore trusted root ({exc})") from None
        return roots

    def sigstore_root(self) -> TrustedRoot:
        """This trust material as sigstore-python's ``TrustedRoot`` (built from the PEMs if it
        did not come from a trusted_root.json); VerificationError if sigstore refuses it."""
        from sigstore.models import TrustedRoot
        from sigstore_models.trustroot import v1

        doc = self.doc if self.doc is not None else self._synthesized()
        try:
            return TrustedRoot(v1.TrustedRoot.from_json(json.dumps(doc)))
        except Exception as exc:  # pydantic and sigstore raise their own types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise VerificationError(f"{self.source}: not a usable Sigstore trusted root "
                                    f"({first})") from None

    def _synthesized(self) -> dict[str, object]:
        import base64

        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        tlogs = [{"baseUrl": "https://rekor.invalid", "hashAlgorithm": "SHA2_256",
                  "publicKey": {"rawBytes": b64(k.public_der()), "keyDetails": _key_details(k),
                                "validFor": {"start": "1970-01-01T00:00:00Z"}},
                  "logId": {"keyId": b64(bytes.fromhex(log_id))}}
                 for log_id, k in self.rekor_keys.items()]
        return {"mediaType": _TRUSTED_ROOT_MEDIA_TYPE, "tlogs": tlogs,
                "certificateAuthorities": [], "ctlogs": [], "timestampAuthorities": []}

    @property
    def has_ct_logs(self) -> bool:
        """True when the trust material names CT logs (then every certificate needs an SCT)."""
        return bool(self.doc and self.doc.get("ctlogs"))

    @property
    def has_timestamp_authorities(self) -> bool:
        """True when RFC 3161 timestamps can be checked."""
        return bool(self.doc and self.doc.get("timestampAuthorities"))

    def roots(self) -> list[x509.Certificate]:
        """The self-signed certificates (trust anchors)."""
        return [c for c in self.ca_certs if c.issuer == c.subject]

    def intermediates(self) -> list[x509.Certificate]:
        """The other CA certificates."""
        return [c for c in self.ca_certs if c.issuer != c.subject]
