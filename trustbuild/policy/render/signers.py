"""What the cosign-based targets (Kyverno, policy-controller) can check of a signature rule.

Both verify with cosign's library: the key or certificate, the digest in the payload, for
certificates the SAN identity and the OIDC issuer. They never read the payload's
``docker-reference``, so a ``signedIdentity`` (containers/image) is not checked there, and
neither reads a Sigstore ``trusted_root.json``. The functions here turn a rule into those
terms and say, in one line each, what a bundle leaves out.
"""

from __future__ import annotations

import ipaddress
import re

from cryptography.hazmat.primitives.serialization import Encoding

from trustbuild.policy.model import SignatureRule
from trustbuild.sign.pki import PKIPolicy

__all__ = ["identity_warning", "trusted_root_warning", "roots_pem", "hostname_regexp"]


def identity_warning(rule: SignatureRule, where: str, target: str) -> str | None:
    """The warning for a ``signedIdentity`` other than the default ``matchRepository``."""
    ident = rule.signed_identity
    if ident is None or ident.type == "matchRepository":
        return None
    detail = ", ".join(f"{k}={v}" for k, v in ident.to_json().items() if k != "type")
    return (f"{where}.signedIdentity {ident.type}{f' ({detail})' if detail else ''} is not "
            f"checked by {target} (cosign verifies the key and the digest, never the signed "
            "docker-reference): enforce it with the trustbuild webhook")


def trusted_root_warning(rule: SignatureRule, where: str, target: str) -> str | None:
    """The warning for a keyless rule with its own ``trustedRoot`` (a private Sigstore)."""
    if rule.keyless is None or rule.keyless.trusted_root is None:
        return None
    return (f"{where}.keyless.trustedRoot is not used by {target}: the bundle trusts the public "
            "Sigstore instance (Fulcio, Rekor) for this identity instead")


def roots_pem(pki: PKIPolicy) -> str:
    """The CA roots as one PEM bundle."""
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in pki.roots)


def hostname_regexp(hostname: str) -> str:
    """An anchored RE2/Python regexp over SAN values that accepts what Go's
    ``Certificate.VerifyHostname`` (containers/image ``subjectHostname``) accepts: the host
    itself in any case, or the ``*.`` wildcard of its first label; an IP address as written
    in canonical form."""
    host = hostname.strip("[]")
    try:
        return f"^(?:{re.escape(str(ipaddress.ip_address(host)))})$"
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    alts = [re.escape(name)]
    if "." in name:
        alts.append(re.escape("*." + name.split(".", 1)[1]))
    return f"^(?i:{'|'.join(alts)})$"
