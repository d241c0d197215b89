"""``trustbuild build`` splits its flags: the build itself (BuildOptions) and the supply chain
around it (pipeline.SupplyChainOptions: policy, keys, attestations, executor image)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from trustbuild.builder.options import BuildOptions
from trustbuild.cli.cmd_build import options_from_args, supply_chain_from_args
from trustbuild.cli.main import build_parser, main
from trustbuild.errors import UsageError
from trustbuild.pipeline import SupplyChainOptions, run


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["build", "--destination", "127.0.0.1:1/a:1", *argv])


def test_supply_chain_flags_leave_build_options() -> None:
    args = _args("--keyless", "--identity-token", "tok", "--sigstore-trust-config", "t.json",
                 "--bundle", "--attest", "provenance, sbom",
                 "--sbom-format", "cyclonedx", "--builder-id", "https://ci.example/b",
                 "--policy", "p.yaml", "--executor-image", "r.example/ex@sha256:" + "0" * 64)
    options = options_from_args(args)
    chain = supply_chain_from_args(args)
    assert chain == SupplyChainOptions(
        policy="p.yaml", keyless=True, identity_token="tok", sigstore_trust_config="t.json",
        bundle=True, attest=["provenance", "sbom"],
        sbom_format="cyclonedx", builder_id="https://ci.example/b",
        executor_image="r.example/ex@sha256:" + "0" * 64)
    names = {f.name for f in dataclasses.fields(BuildOptions)}
    assert not names & {"gate", "post_push_hooks", "sign_key", "attest", "policy",
                        "executor_image", "bundle", "sbom_format", "builder_id", "keyless",
                        "identity_token", "sigstore_trust_config"}
    assert "tok" not in repr(chain)  # the token is a secret
    assert options.destinations == ["127.0.0.1:1/a:1"]


def test_unknown_attestation_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--attest 'slsa'"):
        supply_chain_from_args(_args("--attest", "slsa"))


def test_key_and_keyless_are_refused_before_anything_is_read(tmp_path: Path) -> None:
    opts = BuildOptions(context=str(tmp_path / "missing"), destinations=["127.0.0.1:1/a:1"])
    with pytest.raises(UsageError, match="mutually exclusive"):
        run(opts, SupplyChainOptions(sign_key="k.key", keyless=True))


def test_attest_without_a_key_is_refused_before_the_build(tmp_path: Path) -> None:
    opts = BuildOptions(context=str(tmp_path / "missing"), destinations=["127.0.0.1:1/a:1"])
    with pytest.raises(UsageError, match="--attest needs --sign-key"):
        run(opts, SupplyChainOptions(attest=["provenance"]))


def test_policy_check_needs_a_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "--context", "."]) == 2
    assert "--policy FILE is required" in capsys.readouterr().err
