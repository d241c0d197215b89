"""containers/image's ``sigstoreSigned`` PKI mode: a signature whose certificate chains to
configured CA roots and names a required subject (email or hostname), with no Rekor entry.

As in containers/image (``signature/pki_verify.go``): the leaf comes from the layer annotation
``dev.sigstore.cosign/certificate``; the annotation ``dev.sigstore.cosign/chain`` contributes its
certificates except the last (the root, which must come from the configuration) as
intermediates, next to the configured ones; the leaf must chain to a configured root now (any
configured certificate is an anchor), be usable for code signing by Go's ``x509.Verify`` rule
with ``KeyUsages: [codeSigning]`` (no extended key usage extension at all, or one listing
codeSigning or anyExtendedKeyUsage: containers/image's recorded ``pki-cert`` has none), and hold
``subjectEmail`` among its SAN emails and/or match ``subjectHostname`` (SAN DNS names, ``*.``
wildcards for one label, or IP addresses).

Example::

    pki = PKIPolicy.from_files("ca.pem", subject_email="release@example.com")
    key, who = pki.verify(cert_pem, chain_pem)
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from trustbuild.errors import UsageError, VerificationError
from trustbuild.sign.keys import VerifyingKey
from trustbuild.sign.trust import load_certificates, verify_chain

__all__ = ["PKIPolicy"]

_MAX_PEM = 1024 * 1024


def _hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """Go's ``Certificate.VerifyHostname`` for the SAN forms containers/image relies on."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = hostname.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    want = host.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        pattern = name.lower().rstrip(".")
        if pattern == want:
            return True
        if pattern.startswith("*.") and "." in want:
            if want.split(".", 1)[1] == pattern[2:] and want.split(".", 1)[0]:
                return True
    return False


def _read_pems(path: str | Path, what: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()[: _MAX_PEM + 1]
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    try:
        return load_certificates(data, f"{what} {path}")
    except VerificationError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class PKIPolicy:
    """CA roots (trust anchors), extra intermediates, and the subject the leaf must name."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    subject_email: str | None = None
    subject_hostname: str | None = None

    def __post_init__(self) -> None:
        if not self.roots:
            raise UsageError("PKI verification needs CA roots (--ca-roots / pki.caRoots)")
        if not self.subject_email and not self.subject_hostname:
            raise UsageError("PKI verification needs the subject: --certificate-email and/or "
                             "--certificate-hostname (pki.subjectEmail / subjectHostname)")

    @classmethod
    def from_files(cls, ca_roots: str | Path, *, ca_intermediates: str | Path | None = None,
                   subject_email: str | None = None,
                   subject_hostname: str | None = None) -> PKIPolicy:
        """From PEM bundle files (every certificate in ``ca_roots`` is a trust anchor)."""
        roots = tuple(_read_pems(ca_roots, "CA roots"))
        inter = tuple(_read_pems(ca_intermediates, "CA intermediates")) if ca_intermediates \
            else ()
        return cls(roots, inter, subject_email, subject_hostname)

    def verify(self, cert_pem: str, chain_pem: str | None, *,
               now: _dt.datetime | None = None) -> tuple[VerifyingKey, str]:
        """The leaf's key and a description of the signer; VerificationError otherwise."""
        certs = load_certificates(cert_pem.encode(), "certificate annotation")
        leaf = certs[0]
        untrusted: list[x509.Certificate] = []
        if chain_pem:
            chain = load_certificates(chain_pem.encode(), "chain annotation")
            untrusted = chain[:-1]  # the chain's root is never trusted from the signature
        verify_chain(leaf, list(self.intermediates) + untrusted, list(self.roots),
                     now or _dt.datetime.now(_dt.UTC), anchors="configured CA root",
                     eku_required=False)
        subject: list[str] = []
        if self.subject_email:
            try:
                san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                emails = san.get_values_for_type(x509.RFC822Name)
            except x509.ExtensionNotFound:
                emails = []
            if self.subject_email not in emails:
                raise VerificationError(f"required certificate email {self.subject_email!r} not "
                                        f"found (got {emails})")
            subject.append(self.subject_email)
        if self.subject_hostname:
            if not _hostname_matches(leaf, self.subject_hostname):
                raise VerificationError(f"certificate is not valid for the hostname "
                                        f"{self.subject_hostname!r}")
            subject.append(self.subject_hostname)
        key = VerifyingKey(leaf.public_key())  # type: ignore[arg-type]
        return key, f"certificate {', '.join(subject)} (PKI)"
