"""Issue 10 item 7: nothing unsigned is ever tagged.

A build that signs pushes its manifest by digest, signs (and attests), and only then sets the
tags. Against the real registry: when signing fails after the push (the registry refuses the
signature manifest), the tag is not there (skopeo list-tags), nor in the OCI layout, and no
tarball or digest file is written; when signing succeeds, the tag is there and verifies.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fixtures.registry import FaultProxy

from trustbuild.cli.main import main
from trustbuild.sign.keys import generate_key_pair

pytestmark = [pytest.mark.slow]
PASSWORD = "no-unsigned-tag"


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    priv, pub = generate_key_pair(str(tmp_path / "cosign"), password=PASSWORD.encode())
    return Path(priv), Path(pub)


@pytest.fixture
def ctx(tmp_path: Path, busybox_base: str) -> Path:
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "Dockerfile").write_text(f"FROM {busybox_base}\nCOPY app.txt /app.txt\n")
    (d / "app.txt").write_text("signed or untagged\n")
    return d


def _tags(host: str, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:  # the repository does not exist (no tag was ever pushed)
        assert "unknown" in proc.stderr.lower() or "not found" in proc.stderr.lower(), proc.stderr
        return []
    return list(json.loads(proc.stdout)["Tags"] or [])


def _layout_tags(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return [m.get("annotations", {}).get("org.opencontainers.image.ref.name")
            for m in index["manifests"] if m.get("annotations", {}).get(
                "org.opencontainers.image.ref.name")]


def test_failed_signing_leaves_no_tag(registry_proxy: FaultProxy, ctx: Path, tmp_path: Path,
                                      key: tuple[Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    registry_proxy.fail(403, 100, match="/manifests/sha256-")  # the signature manifest
    layout, tar, digest_file = tmp_path / "layout", tmp_path / "image.tar", tmp_path / "digest"
    rc = main(["build", "--context", str(ctx), "--destination",
               f"{registry_proxy.host}/unsigned/app:1", "--sign-key", str(key[0]),
               "--oci-layout-path", str(layout), "--tar-path", str(tar),
               "--digest-file", str(digest_file)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip().splitlines()[-1].startswith("trustbuild: error: ")
    assert "403" in err.strip().splitlines()[-1]
    # the manifest went up by digest, the tag never did
    puts = [p for m, p, _s in registry_proxy.log if m == "PUT" and "/manifests/" in p]
    assert puts and all("/manifests/sha256:" in p or "/manifests/sha256-" in p for p in puts)
    assert _tags(registry_proxy.upstream.host, "unsigned/app") == []
    assert _layout_tags(layout) == []
    assert not tar.exists() and not digest_file.exists()


def test_signed_build_is_tagged_and_verifies(registry_proxy: FaultProxy, ctx: Path,
                                             tmp_path: Path, key: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    host = registry_proxy.upstream.host
    layout, digest_file = tmp_path / "layout", tmp_path / "digest"
    rc = main(["build", "--context", str(ctx), "--destination", f"{host}/signed/app:1",
               "--destination", f"{host}/signed/app:stable", "--sign-key", str(key[0]),
               "--oci-layout-path", str(layout), "--digest-file", str(digest_file)])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    assert sorted(t for t in _tags(host, "signed/app") if not t.startswith("sha256-")) == \
        ["1", "stable"]
    assert [t for t in _layout_tags(layout) if not t.startswith("sha256-")] == ["1"]
    digest = digest_file.read_text()
    for ref in (f"docker://{host}/signed/app:1", f"docker://{host}/signed/app:stable",
                f"oci:{layout}:1"):
        assert main(["verify", "--key", str(key[1]), "--docker-reference",
                     f"{host}/signed/app", ref]) == 0, capsys.readouterr().err
    assert digest in capsys.readouterr().out + digest
