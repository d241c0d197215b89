"""containers/image signedIdentity modes on real signatures made by trustbuild in the registry,
through `trustbuild verify --signed-identity`, the policy file and `verify --policy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import push_test_image

from trustbuild.cli.main import main

PASSWORD = "identity"


@pytest.fixture
def keypair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    return tmp_path / "k.key", tmp_path / "k.pub"


def _verify(capsys: pytest.CaptureFixture[str], pub: Path, ref: str,
            *extra: str) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    rc = main(["verify", "--key", str(pub), "--output", "json", *extra, ref])
    return rc, json.loads(capsys.readouterr().out)["signatures"]


def test_signed_identity_modes_on_trustbuild_signatures(
        registry: Any, keypair: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    host = registry.host
    ref, digest = push_test_image(host, "ident/app", "v1")
    push_test_image(host, "ident/app", "v2")  # same content: same digest, another tag
    # containers/image-style: the payload names repo:v1 exactly (skopeo --sign-identity)
    capsys.readouterr()
    assert main(["sign", "--key", str(key), "--sign-identity", ref, ref]) == 0
    assert capsys.readouterr().out.strip() == digest

    rc, vs = _verify(capsys, pub, ref)  # default: matchRepository, as cosign
    assert rc == 0 and vs[0]["docker_reference"] == f"{host}/ident/app:v1"
    rc, vs = _verify(capsys, pub, ref, "--signed-identity", "matchRepoDigestOrExact")
    assert rc == 0, vs
    # a signature for :v1 does not verify :v2, although the digest is the same
    rc, vs = _verify(capsys, pub, f"{host}/ident/app:v2", "--signed-identity",
                     "matchRepoDigestOrExact")
    assert rc == 1 and "does not match" in vs[0]["reason"]
    assert "matchRepoDigestOrExact" in vs[0]["reason"]
    # the library API takes the same specification
    from trustbuild.api import verify

    assert verify(ref, key=pub, signed_identity="matchRepoDigestOrExact").ok
    assert not verify(f"{host}/ident/app:v2", key=pub, signed_identity="matchRepoDigestOrExact").ok
    # by digest the repository is enough
    rc, _ = _verify(capsys, pub, f"{host}/ident/app@{digest}", "--signed-identity",
                    "matchRepoDigestOrExact")
    assert rc == 0
    rc, _ = _verify(capsys, pub, f"{host}/ident/app:v2", "--signed-identity",
                    json.dumps({"type": "exactReference", "dockerReference": ref}))
    assert rc == 0
    rc, _ = _verify(capsys, pub, f"{host}/ident/app:v2", "--signed-identity",
                    f"exactRepository:{host}/other")
    assert rc == 1

    # cosign-style (repository only) signature: matchRepository yes, matchRepoDigestOrExact no
    cref, cdigest = push_test_image(host, "ident/cosign", "v1", content=b"cosign\n")
    assert main(["sign", "--key", str(key), cref]) == 0
    rc, vs = _verify(capsys, pub, cref, "--signed-identity", "matchRepoDigestOrExact")
    assert rc == 1 and "cosign signatures need matchRepository" in vs[0]["reason"]
    rc, _ = _verify(capsys, pub, cref, "--signed-identity", "matchRepository")
    assert rc == 0
    rc, _ = _verify(capsys, pub, cref, "--signed-identity", f"exactRepository:{host}/ident/cosign")
    assert rc == 0

    # a mirror: signed as prod/app:v1, pulled as mirror/app:v1
    mref, _ = push_test_image(host, "mirror/app", "v1")
    assert main(["sign", "--key", str(key), "--sign-identity", f"{host}/prod/app:v1", mref]) == 0
    rc, _ = _verify(capsys, pub, mref, "--signed-identity", "matchRepoDigestOrExact")
    assert rc == 1
    rc, vs = _verify(capsys, pub, mref, "--signed-identity",
                     f"remapIdentity:{host}/mirror={host}/prod")
    assert rc == 0, vs
    rc, _ = _verify(capsys, pub, mref, "--signed-identity",
                    f"remapIdentity:{host}/mirror={host}/staging")
    assert rc == 1

    # the policy file: signedIdentity on a signature entry, via verify --policy
    policy = tmp_path / "policy.yaml"

    def deploy(identity: dict[str, str]) -> int:
        policy.write_text(
            "apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nspec:\n  deploy:\n"
            f"    signatures:\n      - key: {pub}\n"
            f"        signedIdentity: {json.dumps(identity)}\n")
        capsys.readouterr()
        return main(["verify", "--policy", str(policy), mref])

    assert deploy({"type": "remapIdentity", "prefix": f"{host}/mirror",
                   "signedPrefix": f"{host}/prod"}) == 0
    assert deploy({"type": "matchRepoDigestOrExact"}) == 1
    assert "does not match" in capsys.readouterr().out
    assert deploy({"type": "matchRepository"}) == 1  # prod/app is not mirror/app


def test_bad_signed_identity_is_a_usage_error(registry: Any, keypair: tuple[Path, Path],
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _key, pub = keypair
    ref, _ = push_test_image(registry.host, "ident/bad", "v1")
    capsys.readouterr()
    assert main(["verify", "--key", str(pub), "--signed-identity", "exactReference", ref]) == 2
    assert "expected exactReference:REF" in capsys.readouterr().err
    assert main(["sign", "--key", str(pub), "--sign-identity", "r.example/app", ref]) == 2
    assert "give repository:tag" in capsys.readouterr().err
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nspec:\n  deploy:\n"
                      f"    signatures:\n      - key: {pub}\n"
                      "        signedIdentity: {type: exactRepository}\n")
    assert main(["verify", "--policy", str(policy), ref]) != 0
    err = capsys.readouterr().err
    assert "spec.deploy.signatures[0].signedIdentity" in err and "dockerRepository" in err
    policy.write_text("apiVersion: trustbuild.dev/v1alpha1\nkind: Policy\nspec:\n  deploy:\n"
                      f"    signatures:\n      - key: {pub}\n"
                      "        signedIdentity: {type: matchAnything}\n")
    assert main(["verify", "--policy", str(policy), ref]) != 0
    assert "matchAnything" in capsys.readouterr().err
