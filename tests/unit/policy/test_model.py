"""Policy files: schema validation with field paths, key loading, repository globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild.cli.main import main
from trustbuild.errors import PolicyError
from trustbuild.policy.model import load_policy, parse_policy, repository_matches

REPO = Path(__file__).resolve().parents[3]
HEAD = "apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nmetadata: {name: t}\n"


def test_shipped_policies_load() -> None:
    base = load_policy(REPO / "policies/baseline.yaml")
    assert base.output.sign and set(base.output.attestations) == {"provenance", "sbom"}
    assert base.build.security_profile == "baseline"
    restricted = load_policy(REPO / "policies/restricted.yaml")
    assert restricted.base_images.require_digest
    assert restricted.base_images.signatures[0].key_pem.startswith(b"-----BEGIN PUBLIC KEY")
    assert restricted.executor.image and restricted.executor.signatures
    assert restricted.build.security_profile == "restricted"
    assert all(v == "deny" for v in restricted.rules.values())


@pytest.mark.parametrize(("body", "message"), [
    ("spec:\n  baseImages:\n    requireDigest: yes please\n",
     "spec.baseImages.requireDigest: expected boolean"),
    ("spec:\n  baseImages:\n    allowedRepos: []\n",
     "spec.baseImages: unknown field 'allowedRepos'"),
    ("spec:\n  build:\n    securityProfile: lax\n",
     "spec.build.securityProfile: 'lax' is not one of"),
    ("spec:\n  baseImages:\n    signatures: [{}]\n",
     "spec.baseImages.signatures[0]: give exactly one of key, keyData, keyless or pki"),
    ("spec:\n  dockerfile:\n    rules: {no-such-rule: deny}\n",
     "spec.dockerfile.rules.no-such-rule: unknown rule id"),
    ("spec:\n  dockerfile:\n    rules: {pipe-to-shell: maybe}\n",
     "spec.dockerfile.rules.pipe-to-shell: 'maybe' is not one of deny, warn, off"),
    ("spec:\n  executor:\n    signatures: [{keyData: x}]\n", "not a PEM public key"),
    ("spec:\n  baseImages:\n    signatures: [{key: missing.pub}]\n",
     "spec.baseImages.signatures[0].key: cannot read"),
    ("spec:\n  baseImages: [\n", "invalid YAML"),
    ("spec: {}\nextra: 1\n", "(top level): unknown field 'extra'"),
])
def test_bad_policies_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + body)
    with pytest.raises(PolicyError) as err:
        load_policy(f)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(f) in str(err.value)


def test_wrong_api_version() -> None:
    with pytest.raises(PolicyError, match="apiVersion"):
        parse_policy(b"apiVersion: v2\nkind: Policy\nspec: {}\n")


def test_key_paths_are_relative_to_the_policy(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    pub = (REPO / "policies/keys/base.pub").read_bytes()
    (tmp_path / "keys/k.pub").write_bytes(pub)
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + "spec:\n  baseImages:\n    signatures: [{key: keys/k.pub}]\n")
    assert load_policy(f).base_images.signatures[0].key_pem == pub


@pytest.mark.parametrize(("name", "patterns", "want"), [
    ("registry.example.com/base/debian", ["registry.example.com/base/*"], True),
    ("registry.example.com/base/team/debian", ["registry.example.com/base/*"], False),
    ("registry.example.com/base/team/debian", ["registry.example.com/base/**"], True),
    ("127.0.0.1:5000/conformance/busybox", ["127.0.0.1:*/**"], True),
    ("evil.example.com/127.0.0.1:5000/x", ["127.0.0.1:*/**"], False),
    ("docker.io/library/alpine", ["docker.io/library/*"], True),
    ("docker.io/library/alpine", ["**"], True),
])
def test_repository_globs(name: str, patterns: list[str], want: bool) -> None:
    assert repository_matches(name, patterns) is want


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "validate", str(REPO / "policies/baseline.yaml")]) == 0
    assert "valid policy 'baseline'" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "spec:\n  output:\n    sign: sometimes\n")
    assert main(["policy", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "spec.output.sign: expected boolean" in err and "Traceback" not in err
