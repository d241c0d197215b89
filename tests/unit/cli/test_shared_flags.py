"""Flag groups several commands share are defined once (cli/common.py): same names, same help."""

from __future__ import annotations

import argparse

import pytest

from trustbuild.cli.main import build_parser


def _flags(command: str, names: tuple[str, ...]) -> dict[str, tuple[str | None, str | None]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    out = {}
    for action in parser._actions:
        for name in action.option_strings:
            if name in names:
                out[name] = (action.metavar, action.help)
    return out


KEYLESS_SIGN = ("--keyless", "--identity-token", "--sigstore-trust-config")
KEYLESS_VERIFY = ("--certificate-identity", "--certificate-identity-regexp",
                  "--certificate-oidc-issuer", "--certificate-oidc-issuer-regexp",
                  "--trusted-root")


@pytest.mark.parametrize("names, commands", [
    (KEYLESS_SIGN, ("sign", "attest", "build", "sign-blob", "attest-blob")),
    (KEYLESS_VERIFY, ("verify", "verify-attestation", "verify-blob",
                      "verify-blob-attestation")),
])
def test_keyless_flags_are_the_same_everywhere(names: tuple[str, ...],
                                              commands: tuple[str, ...]) -> None:
    got = {c: _flags(c, names) for c in commands}
    first = got[commands[0]]
    assert sorted(first) == sorted(names)
    for c in commands[1:]:
        assert sorted(got[c]) == sorted(names), c
        # --keyless says what it signs (and build's takes =true|false, as Kaniko's flags)
        for name in names:
            if name != "--keyless":
                assert got[c][name] == first[name], (c, name)
