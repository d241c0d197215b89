"""Offline trust material for keyless verification: Fulcio CA roots, Rekor keys, identity policy.

Trust comes from ``--trusted-root trusted_root.json`` (the Sigstore ``TrustedRoot`` JSON) or from
``--ca-roots PEM`` plus ``--rekor-key PEM``. Nothing is fetched.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from trustbuild._internal.b64 import proto_b64decode
from trustbuild.errors import VerificationError
from trustbuild.sign.keys import VerifyingKey, load_verifying_key

__all__ = [
    "OID_ISSUER_V1",
    "OID_ISSUER_V2",
    "KeylessPolicy",
    "TrustRoots",
    "cert_identities",
    "cert_issuer",
    "verify_chain",
]

OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_MAX_CHAIN = 6


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
                 anchors: str = "trusted Fulcio root", eku_required: bool = True) -> None:
    """Check that ``leaf`` chains to one of ``roots`` at time ``at``; VerificationError if not.

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
    valid_at(leaf)
    for _ in range(_MAX_CHAIN):
        if current.public_bytes(serialization.Encoding.DER) in root_ders and current is not leaf:
            return
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
        if issuer.public_bytes(serialization.Encoding.DER) in root_ders:
            return
        current = issuer
    raise VerificationError("certificate chain is too long")


def load_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; VerificationError if none or malformed."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise VerificationError(f"{where}: not a valid PEM certificate bundle") from None
    return certs


@dataclass
class TrustRoots:
    """Fulcio CA certificates and Rekor public keys (by log ID) used for keyless verification."""

    ca_certs: list[x509.Certificate] = field(default_factory=list)
    rekor_keys: dict[str, VerifyingKey] = field(default_factory=dict)

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
    def from_trusted_root(cls, path: str | Path) -> TrustRoots:
        """From a Sigstore ``trusted_root.json`` (certificateAuthorities and tlogs)."""
        try:
            raw = Path(path).read_bytes()
            doc = json.loads(raw)
        except OSError as exc:
            raise VerificationError(f"{path}: cannot read: {exc.strerror}") from None
        except (ValueError, UnicodeDecodeError):
            raise VerificationError(f"{path}: not valid JSON") from None
        roots = cls()
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

    def roots(self) -> list[x509.Certificate]:
        """The self-signed certificates (trust anchors)."""
        return [c for c in self.ca_certs if c.issuer == c.subject]

    def intermediates(self) -> list[x509.Certificate]:
        """The other CA certificates."""
        return [c for c in self.ca_certs if c.issuer != c.subject]
