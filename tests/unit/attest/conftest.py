"""Shared helpers for the attestation unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "attest"


@pytest.fixture
def attest_asset():
    """Path of a file in tests/assets/attest."""
    return lambda name: ASSETS / name


@pytest.fixture
def ec_key():
    """A fresh ECDSA P-256 SigningKey (trustbuild.sign.keys)."""
    from trustbuild.sign.keys import SigningKey

    return SigningKey(ec.generate_private_key(ec.SECP256R1()))
