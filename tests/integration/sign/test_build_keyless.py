"""``build --keyless``: the pushed image is signed and attested with a Fulcio certificate.

Fulcio, the CT log and Rekor cannot run here, so a fake Sigstore on loopback
(``tests/fixtures/fake_sigstore.py``) stands in for them: it issues real certificates with a
real embedded SCT, and logs entries in a real Merkle tree with a SignedEntryTimestamp, an
inclusion proof and a signed checkpoint. The build talks to it through
``--sigstore-trust-config`` (the same code as ``sign --keyless``); ``trustbuild verify`` and
``verify-attestation`` check the result offline with the fake's trusted root, against the real
registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_sigstore import FakeSigstore, identity_token

from trustbuild.cli.main import main

pytestmark = [pytest.mark.slow]
EMAIL = "ci@fake.test"
ISSUER = "https://issuer.fake.test"


@pytest.fixture
def sigstore(tmp_path: Path) -> Iterator[tuple[FakeSigstore, Path, Path]]:
    with FakeSigstore() as fake:
        config, root = fake.write_trust_files(tmp_path)
        yield fake, config, root


@pytest.fixture
def ctx(tmp_path: Path, busybox_base: str) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text(f"FROM {busybox_base}\nCOPY app.txt /app.txt\n")
    (d / "app.txt").write_text("signed without a key\n")
    return d


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    capsys.readouterr()
    rc = main(argv)
    return rc, json.loads(capsys.readouterr().out)


def test_build_keyless_signs_and_attests(registry: Any, ctx: Path, tmp_path: Path,
                                         sigstore: tuple[FakeSigstore, Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake, config, root = sigstore
    image = f"{registry.host}/keyless/app:1"
    digest_file = tmp_path / "digest"
    token = identity_token(EMAIL, ISSUER)
    assert main(["build", "--context", str(ctx), "--destination", image, "--keyless",
                 "--identity-token", token,
                 "--sigstore-trust-config", str(config), "--attest", "provenance", "--bundle",
                 "--digest-file", str(digest_file)]) == 0
    digest = digest_file.read_text().strip()
    err = capsys.readouterr().err
    assert f"signed docker://{image}@{digest}" in err or f"@{digest} as" in err
    assert token.split(".")[1] not in err  # the token is never printed
    assert len(fake.issued) == 2  # one certificate for the signature, one for the provenance
    # the simple signature, the signature bundle, and the provenance (its .att layer and its
    # bundle carry the same DSSE signature and entry)
    assert len(fake.bodies) == 3

    flags = ["--certificate-identity", EMAIL, "--certificate-oidc-issuer", ISSUER,
             "--trusted-root", str(root)]
    rc, out = _json(capsys, ["verify", "--output", "json", *flags, image])
    assert rc == 0, out
    assert out["verdict"] == "valid" and len(out["signatures"]) == 2
    by_kind = {s["kind"]: s for s in out["signatures"]}
    assert all(s["verdict"] == "valid" for s in out["signatures"]), out
    assert {"SCT", "Rekor SET", "certificate chain"} <= set(by_kind["simple-signing"]["checks"])
    assert {"SCT", "inclusion proof", "checkpoint"} <= set(by_kind["bundle"]["checks"])

    rc, att = _json(capsys, ["verify-attestation", "--output", "json", "--type",
                             "slsaprovenance", *flags, image])
    assert rc == 0, att
    assert len(att["attestations"]) == 2 and all(a["verified"] for a in att["attestations"])
    assert all(a["signer"].startswith(EMAIL) for a in att["attestations"])
    assert token.split(".")[1] not in json.dumps(att)  # nor recorded in the provenance

    # the identity is enforced, and without the fake's root nothing verifies (the default is
    # the public-good root, which never issued these certificates)
    rc, out = _json(capsys, ["verify", "--output", "json", "--certificate-identity",
                             "someone@else.test", "--certificate-oidc-issuer", ISSUER,
                             "--trusted-root", str(root), image])
    assert rc == 1 and all("does not match" in s["reason"] for s in out["signatures"])
    rc, out = _json(capsys, ["verify", "--output", "json", "--certificate-identity", EMAIL,
                             "--certificate-oidc-issuer", ISSUER, image])
    assert rc == 1 and all(s["verdict"] == "invalid" for s in out["signatures"])


def test_build_keyless_without_a_token_fails_before_building(
        ctx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL", "GITLAB_CI", "BUILDKITE",
                "SIGSTORE_ID_TOKEN", "GOOGLE_SERVICE_ACCOUNT_NAME", "CIRCLECI"):
        monkeypatch.delenv(var, raising=False)
    layout = tmp_path / "layout"
    rc = main(["build", "--context", str(ctx), "--no-push", "--destination", "r.example/a:1",
               "--oci-layout-path", str(layout), "--keyless"])
    err = capsys.readouterr().err
    assert rc == 2 and "--keyless needs an OIDC token" in err
    assert len(err.strip().splitlines()) == 1 and not layout.exists()
    rc = main(["build", "--context", str(ctx), "--no-push", "--keyless", "--sign-key", "k",
               "--destination", "r.example/a:1"])
    assert rc == 2 and "mutually exclusive" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "{\"mediaType\": \"nope\"}"])
def test_build_keyless_with_an_unusable_trust_config_fails_before_building(
        content: str | None, ctx: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A trust config that cannot be read or is not one is refused with one line before
    anything is pulled, built or pushed (it used to fail only after the push)."""
    config = tmp_path / "trust_config.json"
    if content is not None:
        config.write_text(content)
    layout = tmp_path / "layout"
    rc = main(["build", "--context", str(ctx), "--no-push", "--destination", "r.example/a:1",
               "--oci-layout-path", str(layout), "--keyless", "--identity-token",
               identity_token(EMAIL, ISSUER), "--sigstore-trust-config", str(config)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"trustbuild: error: --sigstore-trust-config {config}: "), err
    assert ("cannot read" if content is None else "not a Sigstore ClientTrustConfig") in err
    assert len(err.strip().splitlines()) == 1 and not layout.exists(), err


def test_build_keyless_refuses_a_certificate_with_a_bad_sct(
        registry: Any, ctx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fake Fulcio embeds an SCT its CT log key did not sign: signing stops with one line
    (sigstore-python checks the SCT before using the certificate) and nothing is tagged."""
    with FakeSigstore(tamper_sct=True) as fake:
        config, _ = fake.write_trust_files(tmp_path)
        layout = tmp_path / "layout"
        rc = main(["build", "--context", str(ctx), "--destination",
                   f"{registry.host}/keyless/bad-sct:1", "--keyless", "--identity-token",
                   identity_token(EMAIL, ISSUER), "--sigstore-trust-config", str(config),
                   "--oci-layout-path", str(layout)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "keyless signing failed" in err[-1] and "SCT" in err[-1], err
    assert len(fake.issued) == 1 and not fake.bodies  # nothing was logged
    index = json.loads((layout / "index.json").read_text()) if layout.exists() else {}
    assert not [m for m in index.get("manifests", [])
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name")]
