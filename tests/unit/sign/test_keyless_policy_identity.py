"""Issue 10 item 5: a policy's keyless rule names an identity, and its regexps match whole values.

Checked against the real keyless cosign vector (issuer https://github.com/login/oauth, identity
mitr@redhat.com) through the policy verifier the gate and the deploy check use.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sign_memstore import VECTORS, MemoryStore, load_vector

from trustbuild.cli.main import main
from trustbuild.errors import PolicyError
from trustbuild.oci.digest import Digest
from trustbuild.policy.model import parse_policy
from trustbuild.policy.verifier import signed_in

HEAD = "apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\nspec:\n"


def _trusted_root(tmp_path: Path) -> Path:
    cert = x509.load_pem_x509_certificate((VECTORS / "keys/fulcio_v1.crt.pem").read_bytes())
    rekor = serialization.load_pem_public_key((VECTORS / "keys/rekor.pub").read_bytes())
    der = rekor.public_bytes(serialization.Encoding.DER,
                             serialization.PublicFormat.SubjectPublicKeyInfo)
    doc = {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
           "tlogs": [{"publicKey": {"rawBytes": base64.b64encode(der).decode()}}],
           "certificateAuthorities": [{"certChain": {"certificates": [
               {"rawBytes": base64.b64encode(cert.public_bytes(
                   serialization.Encoding.DER)).decode()}]}}]}
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(doc))
    return path


def _rule(tmp_path: Path, identity: str) -> str:
    root = _trusted_root(tmp_path)
    return (HEAD + "  deploy:\n    signatures:\n      - keyless: {" + identity
            + f", trustedRoot: {root}}}\n")


@pytest.mark.parametrize("section", [
    "  baseImages:\n    signatures:\n      - keyless: {issuer: https://github.com/login/oauth}\n",
    "  executor:\n    image: r.example/x\n    signatures:\n"
    "      - keyless: {issuerRegExp: 'https://github\\.com/.*'}\n",
    "  deploy:\n    signatures:\n      - keyless: {issuer: https://github.com/login/oauth}\n",
    "  deploy:\n    attestations:\n"
    "      - {type: slsaprovenance, keyless: {issuer: https://github.com/login/oauth}}\n",
])
def test_keyless_rule_without_identity_is_refused(section: str) -> None:
    with pytest.raises(PolicyError, match="give subject or subjectRegExp") as err:
        parse_policy((HEAD + section).encode(), path="p.yaml")
    assert "\n" not in str(err.value) and str(err.value).startswith("p.yaml: spec.")


def test_empty_identity_is_refused() -> None:
    with pytest.raises(PolicyError, match="subjectRegExp: '' should be non-empty"):
        parse_policy((HEAD + "  baseImages:\n    signatures:\n      - keyless: "
                      "{issuer: https://github.com/login/oauth, subjectRegExp: ''}\n").encode())


def test_policy_validate_cli_refuses_issuer_only(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + "  deploy:\n    signatures:\n"
                 "      - keyless: {issuer: https://token.actions.githubusercontent.com}\n")
    assert main(["policy", "validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert "spec.deploy.signatures[0].keyless: give subject or subjectRegExp" in err


@pytest.mark.parametrize(("identity", "ok"), [
    ("issuer: https://github.com/login/oauth, subject: mitr@redhat.com", True),
    (r"issuer: https://github.com/login/oauth, subjectRegExp: 'mitr@redhat\.com'", True),
    (r"issuerRegExp: 'https://github\.com/.*', subjectRegExp: '[a-z]+@redhat\.com'", True),
    # partial matches: accepted before (unanchored re.search), refused now
    ("issuer: https://github.com/login/oauth, subjectRegExp: redhat", False),
    ("issuer: https://github.com/login/oauth, subjectRegExp: 'mitr@redhat\\.co'", False),
    ("issuerRegExp: github, subject: mitr@redhat.com", False),
    ("issuer: https://github.com/login/oauth, subjectRegExp: 'mitr@redhat\\.com|nobody'", True),
    ("issuer: https://github.com/login/oauth, subjectRegExp: 'nobody|redhat'", False),
])
def test_keyless_regexps_match_the_whole_value(tmp_path: Path, memstore: MemoryStore,
                                               identity: str, ok: bool) -> None:
    case = load_vector(memstore, "fulcio-rekor-valid")
    pol = parse_policy(_rule(tmp_path, identity).encode(), path=str(tmp_path / "p.yaml"))
    raw, _mt = memstore.get_manifest("latest")
    verdict, reason = signed_in(memstore, str(Digest.of(raw)), case["docker_reference"],
                                pol.deploy.signatures)
    assert verdict is ok, reason
    kl = pol.deploy.signatures[0].keyless
    assert kl is not None
    for rx in (kl.issuer_regexp, kl.subject_regexp):
        assert rx is None or (rx.startswith("^(?:") and rx.endswith(")$"))
