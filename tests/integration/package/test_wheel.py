"""The installed wheel works on its own: `pip install trustbuild-*.whl`, then build, sign, verify.

Issue 11: a wheel without the seccomp profiles could not run any RUN step. Here the package
comes from the wheel in a fresh venv outside the repository (no PYTHONPATH, cwd elsewhere),
and the build uses the shipped `build-default` seccomp profile and the shipped `baseline`
policy by name.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fixtures.wheel import ROOT, make_wheel_venv, venv_site_packages

pytestmark = [pytest.mark.slow, pytest.mark.privileged]
PASSWORD = "wheel-test-pw"


def test_wheel_carries_every_profile_and_policy(trustbuild_wheel: Path) -> None:
    with zipfile.ZipFile(trustbuild_wheel) as zf:
        names = set(zf.namelist())
        expected = [p for p in sorted((ROOT / "seccomp").glob("*.json"))]
        expected += [p for p in sorted((ROOT / "policies").rglob("*")) if p.is_file()]
        assert expected
        for src in expected:
            member = "trustbuild/_data/" + str(src.relative_to(ROOT))
            assert member in names, f"{member} missing from {trustbuild_wheel.name}"
            assert zf.read(member) == src.read_bytes(), member
        assert "trustbuild/policy/schema.json" in names


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "TRUSTBUILD_", "COSIGN_"))}
    env.update(HOME=str(home), TRUSTBUILD_PASSWORD=PASSWORD)
    return env


def _run(venv: Path, args: list[str], cwd: Path, env: dict[str, str]) -> str:
    p = subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{args[:2]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def _layer_files(layout: Path) -> dict[str, bytes]:
    """Regular files of every layer of the single image in an OCI layout (later wins)."""
    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as tf:
            for m in tf:
                f = tf.extractfile(m) if m.isfile() else None
                if f is not None:
                    files[m.name.lstrip("./")] = f.read()
    return files


def test_installed_wheel_builds_signs_and_verifies(trustbuild_wheel: Path, registry: Any,
                                                   busybox_base: str, tmp_path: Path) -> None:
    venv = make_wheel_venv(tmp_path / "venv", trustbuild_wheel)
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path)
    where = _run(venv, ["python", "-c", "import trustbuild; print(trustbuild.__file__)"],
                 work, env).strip()
    assert Path(where).is_relative_to(venv_site_packages(venv).resolve()), where
    assert not Path(where).is_relative_to(ROOT)

    _run(venv, ["trustbuild", "generate-key-pair", "--output-key-prefix", "cosign"], work, env)
    ctx = work / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the context\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\nCOPY hello.txt /hello.txt\n"
        "RUN tr a-z A-Z < /hello.txt > /upper.txt\n")
    dest = f"{registry.host}/wheel/out:1"
    out = _run(venv, ["trustbuild", "build", "--context", "ctx", "--destination", dest,
                      "--policy", "baseline", "--sign-key", "cosign.key",
                      "--attest", "provenance,sbom", "--digest-file", "digest"], work, env)
    digest = (work / "digest").read_text().strip()
    assert digest.startswith("sha256:"), out

    layout = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://{dest}", f"oci:{layout}"], check=True, timeout=120)
    files = _layer_files(layout)
    assert files["hello.txt"] == b"hello from the context\n"
    assert files["upper.txt"] == b"HELLO FROM THE CONTEXT\n"

    _run(venv, ["trustbuild", "verify", f"{registry.host}/wheel/out@{digest}",
                "--key", "cosign.pub"], work, env)


def test_installed_wheel_names_shipped_profiles_on_a_typo(trustbuild_wheel: Path,
                                                          tmp_path: Path) -> None:
    venv = make_wheel_venv(tmp_path / "venv", trustbuild_wheel)
    code = ("from trustbuild._internal.seccomp import find_profile\n"
            "try:\n    find_profile('build-defualt')\n"
            "except Exception as e:\n    print(e)\n")
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert "shipped: build-default" in p.stdout, p.stdout + p.stderr
