"""Attestation integration fixtures: a cosign key pair, helpers to read what was attached."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "attest-test-pw"
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "attest"


@pytest.fixture
def keypair(tmp_path, monkeypatch):
    """``(key_path, pub_path)`` of a fresh encrypted cosign key; the password is in the env."""
    from trustbuild.sign.keys import generate_key_pair

    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    return generate_key_pair(str(tmp_path / "cosign"), password=PASSWORD.encode())


@pytest.fixture
def other_keypair(tmp_path):
    """A second, unrelated key pair (for bad-signature cases)."""
    from trustbuild.sign.keys import generate_key_pair

    return generate_key_pair(str(tmp_path / "other"), password=PASSWORD.encode())


def skopeo_raw(location: str) -> bytes:
    """``skopeo inspect --raw`` of a location (plain HTTP for loopback registries)."""
    tls = ["--tls-verify=false"] if location.startswith("docker://") else []
    return subprocess.run(["skopeo", "inspect", "--raw", *tls, location], check=True,
                          capture_output=True, timeout=120).stdout


def registry_blob(host: str, repo: str, digest: str) -> bytes:
    """A blob straight from the registry's HTTP API, digest-checked."""
    with urllib.request.urlopen(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30) as r:
        data = r.read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def att_manifest(host: str, repo: str, image_digest: str) -> dict[str, Any]:
    """The cosign ``sha256-<hex>.att`` manifest, fetched with skopeo."""
    tag = image_digest.replace(":", "-") + ".att"
    return json.loads(skopeo_raw(f"docker://{host}/{repo}:{tag}"))
