"""Large SBOM attestations (well over the old 4 MiB-per-layer cap) and ``attest --replace`` with
bundle referrers, against the real registry; the bundle is checked by sigstore-js too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trustbuild.cli.main import main

pytestmark = [pytest.mark.interop]

JS = Path(__file__).resolve().parents[2] / "js"
SPDX = "https://spdx.dev/Document"


def _push(registry: Any, repo: str, content: bytes) -> tuple[str, str]:
    from tests.fixtures.registry import push_test_image

    _ref, digest = push_test_image(registry.host, repo, "1", content=content)
    return f"docker://{registry.host}/{repo}:1", digest


def _spdx(tmp_path: Path, packages: int, name: str = "big") -> Path:
    """An SPDX 2.3 document with ``packages`` packages (about 330 bytes each)."""
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": name, "documentNamespace": f"https://example.com/spdx/{name}",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": [{"SPDXID": f"SPDXRef-Package-deb-{i}", "name": f"package-{i:06d}",
                      "versionInfo": f"1.{i}.0-1+deb12u1", "downloadLocation": "NOASSERTION",
                      "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION",
                      "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                                        "referenceType": "purl",
                                        "referenceLocator": f"pkg:deb/debian/package-{i:06d}@"
                                                            f"1.{i}.0-1+deb12u1?arch=amd64"}]}
                     for i in range(packages)],
    }
    p = tmp_path / "sbom.spdx.json"
    p.write_text(json.dumps(doc))
    return p


def _verify(capsys: pytest.CaptureFixture[str], pub: Path, image: str,
            *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = main(["verify-attestation", "--key", str(pub), "--type", SPDX, "--output", "json",
               *extra, image])
    return rc, json.loads(capsys.readouterr().out)


def test_large_spdx_sbom_attestation_verifies(registry: Any, tmp_path: Path, keypair: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = keypair
    image, digest = _push(registry, "attest/large", b"large\n")
    sbom = _spdx(tmp_path, 30000)
    assert sbom.stat().st_size > 9 * 1024 * 1024  # the .att layer is ~4/3 of that: > 12 MiB
    assert main(["attest", "--key", str(key), "--predicate", str(sbom), "--type", SPDX,
                 "--bundle", image]) == 0
    rc, out = _verify(capsys, pub, image)
    assert rc == 0, out
    checks = out["attestations"]
    assert len(checks) == 2 and all(c["verified"] for c in checks), checks
    # the limit is configurable, and a refusal is a verdict naming the size
    rc, out = _verify(capsys, pub, image, "--max-attestation-size", "4MiB")
    assert rc == 1
    assert all("more than the 4194304" in c["reason"] for c in out["attestations"]), out
    # sigstore-js reads the large bundle as well
    from trustbuild.oci.digest import Digest
    from trustbuild.registry.options import StoreOptions
    from trustbuild.registry.store import RegistryStore
    from trustbuild.sign.attach import read_bundle_referrers

    store = RegistryStore(registry.host, "attest/large", StoreOptions())
    [br] = read_bundle_referrers(store, Digest.parse(digest), limit=64 * 1024 * 1024)
    assert br.bundle is not None
    (tmp_path / "b.json").write_bytes(br.bundle)
    res = subprocess.run(["node", str(JS / "verify_bundle.js"), str(tmp_path / "b.json"),
                          str(pub)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_large_keyless_spdx_bundle_verifies(registry: Any, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A keyless (Fulcio + Rekor) attestation bundle over 4 MiB is read under the same limit as a
    key-based one (``--max-attestation-size``, 64 MiB by default), not refused at 4 MiB."""
    from fixtures.fake_sigstore import FakeSigstore, identity_token

    email, issuer = "ci@fake.test", "https://issuer.fake.test"
    image, digest = _push(registry, "attest/large-keyless", b"large keyless\n")
    sbom = _spdx(tmp_path, 15000)
    assert sbom.stat().st_size > 4 * 1024 * 1024  # the bundle is ~4/3 of that: > 6 MiB
    with FakeSigstore() as fake:
        config, root = fake.write_trust_files(tmp_path)
        assert main(["attest", "--keyless", "--identity-token", identity_token(email, issuer),
                     "--sigstore-trust-config", str(config), "--predicate", str(sbom),
                     "--type", SPDX, "--bundle", image]) == 0
    keyless = ["--certificate-identity", email, "--certificate-oidc-issuer", issuer,
               "--trusted-root", str(root)]

    def verify(*extra: str) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        rc = main(["verify-attestation", *keyless, "--type", SPDX, "--output", "json", *extra,
                   image])
        return rc, json.loads(capsys.readouterr().out)

    rc, out = verify()
    bundles = [c for c in out["attestations"] if c["source"].startswith("bundle referrer")]
    assert len(bundles) == 1, out
    assert bundles[0]["verified"] and bundles[0]["signer"].startswith(email), bundles
    assert rc == 0 and all(c["verified"] for c in out["attestations"]), out
    # the same limit, the same one-line refusal as for a key-based bundle
    rc, out = verify("--max-attestation-size", "4MiB")
    assert rc == 1
    assert out["attestations"] and all("more than the 4194304" in c["reason"]
                                       for c in out["attestations"]), out
    # sigstore-js verifies the large keyless bundle too
    from trustbuild.oci.digest import Digest
    from trustbuild.registry.options import StoreOptions
    from trustbuild.registry.store import RegistryStore
    from trustbuild.sign.attach import read_bundle_referrers

    if shutil.which("node") is None or not (JS / "node_modules/@sigstore/verify").is_dir():
        pytest.skip("node or tests/js/node_modules missing (run .ci/setup.sh)")
    store = RegistryStore(registry.host, "attest/large-keyless", StoreOptions())
    [br] = read_bundle_referrers(store, Digest.parse(digest), limit=64 * 1024 * 1024)
    assert br.bundle is not None and len(br.bundle) > 4 * 1024 * 1024
    (tmp_path / "b.json").write_bytes(br.bundle)
    res = subprocess.run(["node", str(JS / "verify_keyless.js"), str(tmp_path / "b.json"),
                          str(root), email, issuer], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["content"] == "dsseEnvelope"


def test_bad_size_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify-attestation", "--key", "k.pub", "--max-attestation-size", "lots", "x"])
    assert exc.value.code == 2
    assert "'lots' is not a size" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["registry", "layout"])
def test_replace_removes_earlier_bundle_referrers(registry: Any, tmp_path: Path, keypair: Any,
                                                  capsys: pytest.CaptureFixture[str],
                                                  where: str) -> None:
    key, pub = keypair
    if where == "registry":
        image, _ = _push(registry, "attest/replace", b"replace\n")
    else:
        from tests.fixtures.registry import write_test_oci_layout

        write_test_oci_layout(tmp_path / "layout", tag="1")
        image = f"oci:{tmp_path / 'layout'}:1"
    other = tmp_path / "other.json"
    other.write_text('{"x": 1}')
    for name in ("first", "second"):  # two SPDX bundles (and .att layers), one other type
        assert main(["attest", "--key", str(key), "--predicate", str(_spdx(tmp_path, 2, name)),
                     "--type", SPDX, "--bundle", image]) == 0
    assert main(["attest", "--key", str(key), "--predicate", str(other), "--type",
                 "https://example.com/other/v1", "--bundle", image]) == 0

    def sources(ptype: str) -> list[str]:
        capsys.readouterr()
        main(["verify-attestation", "--key", str(pub), "--type", ptype, "--output", "json",
              image])
        return [a["source"] for a in json.loads(capsys.readouterr().out)["attestations"]
                if a["verified"]]

    assert sum(s.startswith("bundle referrer") for s in sources(SPDX)) == 2
    small = _spdx(tmp_path, 2, "third")
    assert main(["attest", "--key", str(key), "--predicate", str(small), "--type", SPDX,
                 "--bundle", "--replace", image]) == 0
    found = sources(SPDX)
    assert sum(s.startswith("bundle referrer") for s in found) == 1, found
    assert sum(".att layer" in s for s in found) == 1, found
    capsys.readouterr()
    assert main(["verify-attestation", "--key", str(pub), "--type", SPDX, image]) == 0
    assert '"name":"third"' in capsys.readouterr().out  # the statement printed is the new one
    # another predicate type is left alone
    assert sum(s.startswith("bundle referrer") for s in sources("https://example.com/other/v1")) \
        == 1
    # --replace without --bundle drops the SPDX bundle as well (cosign: replace = one of a type)
    assert main(["attest", "--key", str(key), "--predicate", str(small), "--type", SPDX,
                 "--replace", image]) == 0
    found = sources(SPDX)
    assert found and not any(s.startswith("bundle referrer") for s in found), found
