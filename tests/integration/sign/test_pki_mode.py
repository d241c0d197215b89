"""containers/image's sigstoreSigned PKI mode: a signature with a certificate chained to
configured CA roots and naming a subject, no Rekor entry. The CA is made here with
``cryptography``; the signature is made by ``trustbuild sign --certificate --certificate-chain``
(cosign's flags) in the real registry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixtures.registry import push_test_image

from trustbuild.cli.main import main

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool,
          sans: list[x509.GeneralName] | None = None, eku: str | None = "code",
          not_after: dt.datetime | None = None) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=1))
         .not_valid_after(not_after or NOW + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca and eku:
        usage = ExtendedKeyUsageOID.CODE_SIGNING if eku == "code" else \
            ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class CA:
    """A root and an intermediate; ``leaf()`` issues code-signing certificates."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp = tmp
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert(f"{name} root", self.root_key, f"{name} root", self.root_key, ca=True)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _cert(f"{name} intermediate", self.int_key, f"{name} root", self.root_key,
                           ca=True)
        self.root_path = tmp / f"{name}-root.pem"
        self.root_path.write_bytes(_pem(self.root))

    def leaf(self, label: str, **kw: Any) -> tuple[Path, Path, Path]:
        """(private key, certificate, chain) files for a new leaf."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans = kw.pop("sans", [x509.RFC822Name("release@example.com"),
                               x509.DNSName("build.example.com")])
        cert = _cert(label, key, self.inter.subject.rfc4514_string().split("=", 1)[1], self.int_key,
                     ca=False, sans=sans, **kw)
        paths = (self.tmp / f"{label}.key", self.tmp / f"{label}.crt", self.tmp / f"{label}.chain")
        paths[0].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        paths[1].write_bytes(_pem(cert))
        paths[2].write_bytes(_pem(self.inter, self.root))
        return paths


def _verify(capsys: pytest.CaptureFixture[str], ref: str, *args: str) -> tuple[int, list[Any]]:
    capsys.readouterr()
    rc = main(["verify", "--output", "json", *args, ref])
    return rc, json.loads(capsys.readouterr().out)["signatures"]


def test_pki_signatures(registry: Any, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    ca, other = CA(tmp_path, "corp"), CA(tmp_path, "other")
    key, cert, chain = ca.leaf("release")
    ref, _ = push_test_image(registry.host, "pki/app", "v1")
    assert main(["sign", "--key", str(key), "--certificate", str(cert), "--certificate-chain",
                 str(chain), ref]) == 0
    roots = ["--ca-roots", str(ca.root_path)]

    rc, vs = _verify(capsys, ref, *roots, "--certificate-email", "release@example.com")
    assert rc == 0, vs
    assert vs[0]["signer"] == "certificate release@example.com (PKI)" and not vs[0]["tlog"]
    rc, _ = _verify(capsys, ref, *roots, "--certificate-hostname", "build.example.com")
    assert rc == 0
    rc, vs = _verify(capsys, ref, *roots, "--certificate-email", "someone@example.com")
    assert rc == 1 and "required certificate email 'someone@example.com' not found" in \
        vs[0]["reason"]
    rc, vs = _verify(capsys, ref, *roots, "--certificate-hostname", "evil.example.com")
    assert rc == 1 and "not valid for the hostname" in vs[0]["reason"]
    # the chain's own root is not trusted: only the configured roots are
    rc, vs = _verify(capsys, ref, "--ca-roots", str(other.root_path), "--certificate-email",
                     "release@example.com")
    assert rc == 1 and "does not chain to a configured CA root" in vs[0]["reason"]
    # the intermediate may come from the configuration instead of the signature
    key2, cert2, _chain2 = ca.leaf("nochain")
    ref2, _ = push_test_image(registry.host, "pki/nochain", "v1", content=b"nochain\n")
    assert main(["sign", "--key", str(key2), "--certificate", str(cert2), ref2]) == 0
    rc, vs = _verify(capsys, ref2, *roots, "--certificate-email", "release@example.com")
    assert rc == 1 and "does not chain" in vs[0]["reason"]
    (tmp_path / "inter.pem").write_bytes(_pem(ca.inter))
    rc, _ = _verify(capsys, ref2, *roots, "--ca-intermediates", str(tmp_path / "inter.pem"),
                    "--certificate-email", "release@example.com")
    assert rc == 0

    # the policy file: a pki signature entry, through verify --policy
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nspec:\n  deploy:\n"
                      "    signatures:\n"
                      f"      - pki: {{caRoots: {ca.root_path.name}, "
                      "subjectEmail: release@example.com}\n")
    assert main(["verify", "--policy", str(policy), ref]) == 0
    policy.write_text(policy.read_text().replace("release@", "other@"))
    capsys.readouterr()
    assert main(["verify", "--policy", str(policy), ref]) == 1
    assert "required certificate email" in capsys.readouterr().out


@pytest.mark.parametrize("defect", ["server-auth-only", "expired"])
def test_pki_refuses_bad_leaves(registry: Any, tmp_path: Path, defect: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    ca = CA(tmp_path, "corp")
    kw: dict[str, Any] = {"eku": "server"} if defect == "server-auth-only" else \
        {"not_after": NOW - dt.timedelta(hours=1)}
    key, cert, chain = ca.leaf(defect, **kw)
    ref, _ = push_test_image(registry.host, f"pki/{defect}", "v1", content=defect.encode())
    assert main(["sign", "--key", str(key), "--certificate", str(cert), "--certificate-chain",
                 str(chain), ref]) == 0
    rc, vs = _verify(capsys, ref, "--ca-roots", str(ca.root_path), "--certificate-email",
                     "release@example.com")
    assert rc == 1
    assert ("not a code-signing certificate" if defect == "server-auth-only"
            else "was not valid at") in vs[0]["reason"]


def test_pki_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = CA(tmp_path, "corp")
    key, cert, _ = ca.leaf("x")
    assert main(["verify", "--certificate-email", "a@b", "r.example/a:1"]) == 2
    assert "needs --ca-roots" in capsys.readouterr().err
    assert main(["verify", "--ca-roots", str(ca.root_path), "--certificate-email", "a@b",
                 "--certificate-identity", "a@b", "r.example/a:1"]) == 2
    assert "excludes the keyless" in capsys.readouterr().err
    other_key = tmp_path / "other.key"
    other_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    layout = tmp_path / "layout"
    from fixtures.registry import write_test_oci_layout
    write_test_oci_layout(layout, tag="v1")
    assert main(["sign", "--key", str(other_key), "--certificate", str(cert),
                 "--docker-reference", "r.example/a", f"oci:{layout}:v1"]) != 0
    assert "not the signing key's" in capsys.readouterr().err
    assert key.exists()


def test_pki_leaf_without_eku_is_accepted_as_go_does(registry: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Go's x509.Verify treats a leaf with no EKU extension as valid for any usage."""
    ca = CA(tmp_path, "corp")
    key, cert, chain = ca.leaf("noeku", eku=None)
    ref, _ = push_test_image(registry.host, "pki/noeku", "v1", content=b"noeku\n")
    assert main(["sign", "--key", str(key), "--certificate", str(cert), "--certificate-chain",
                 str(chain), ref]) == 0
    rc, vs = _verify(capsys, ref, "--ca-roots", str(ca.root_path), "--certificate-email",
                     "release@example.com")
    assert rc == 0, vs
