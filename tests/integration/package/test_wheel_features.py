"""This wave's features from the installed wheel, as users run them: ``pip install``, then
``trustbuild`` from the venv, outside the checkout, without PYTHONPATH.

- An unprivileged user (tests/fixtures/rootless.py) builds rootless with a ``--secret`` and
  ``--keyless`` against the fake Sigstore (tests/fixtures/fake_sigstore.py): the re-exec into
  the user namespace must start the wheel's trustbuild again (``sys.executable -m trustbuild``
  of the venv), the sandbox helper and the seccomp profiles must come from the wheel.
- ``verify`` from the wheel accepts that image with the fake's trusted root and refuses it with
  the default one: the Sigstore public-good root shipped inside the installed sigstore-python,
  found and read offline.

The user's venv is made with a Python the user can execute (the system one when the test's own
lives under /root, mode 0700), in a world-readable directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_sigstore import FakeSigstore, identity_token
from fixtures.imagefs import fetch_dir, read_dir_image
from fixtures.rootless import RootlessUser
from fixtures.wheel import ROOT, make_wheel_venv, venv_site_packages
from fixtures.workdirs import settled_entries

pytestmark = [pytest.mark.slow, pytest.mark.privileged,
              pytest.mark.skipif(os.geteuid() != 0, reason="makes users: needs root")]
EMAIL = "wheel-ci@fake.test"
ISSUER = "https://issuer.fake.test"
SECRET = "wheel-secret-7f3a9c"
SECRET_SUM = hashlib.sha256(SECRET.encode()).hexdigest()  # the Dockerfile must not name it


@pytest.fixture(scope="module")
def user_venv(trustbuild_wheel: Path, rootless_users: dict[str, RootlessUser]) -> Path:
    """The wheel installed in a venv the rootless users can run (in their world-readable base)."""
    user = rootless_users["subuid"]
    venv = Path(str(user.base)) / "wheel-venv"
    make_wheel_venv(venv, trustbuild_wheel, python=user.python)
    probe = subprocess.run(["setpriv", "--reuid", user.name, "--regid", user.name,
                            "--init-groups", str(venv / "bin" / "python"), "-c",
                            "import trustbuild, sys; print(trustbuild.__file__, sys.prefix)"],
                           capture_output=True, text=True, env=_user_env(venv, "/", "/"),
                           cwd="/", timeout=120)
    assert probe.returncode == 0, probe.stderr
    where = Path(probe.stdout.split()[0])
    assert where.is_relative_to(venv_site_packages(venv)), where
    assert not where.is_relative_to(ROOT)
    return venv


@pytest.fixture
def sigstore(rootless_users: dict[str, RootlessUser]) -> Iterator[tuple[FakeSigstore, Path, Path]]:
    """The fake Sigstore, its trust config and trusted root (in a directory the user owns)."""
    d = rootless_users["subuid"].workdir("sigstore-")
    with FakeSigstore() as fake:
        config, root = fake.write_trust_files(d)
        rootless_users["subuid"].own(d)
        yield fake, config, root


def _user_env(venv: Path, home: str | Path, tmp: str | Path) -> dict[str, str]:
    return {"PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
            "TMPDIR": str(tmp), "LC_ALL": "C.UTF-8"}


def _as_user(user: RootlessUser, venv: Path, argv: list[str],
             env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = ["setpriv", "--reuid", user.name, "--regid", user.name, "--init-groups",
           str(venv / "bin" / "trustbuild"), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=env["TMPDIR"],
                          timeout=600)


def _verify(venv: Path, argv: list[str], cwd: Path) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRUSTBUILD_"))}
    p = subprocess.run([str(venv / "bin" / "trustbuild"), "verify", "--output", "json", *argv],
                       capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert p.stdout.strip(), p.stderr
    return p.returncode, json.loads(p.stdout)


def test_installed_wheel_rootless_secret_build_signed_keyless(
        user_venv: Path, rootless_users: dict[str, RootlessUser], registry: Any,
        busybox_base: str, sigstore: tuple[FakeSigstore, Path, Path], tmp_path: Path) -> None:
    fake, config, root = sigstore
    user = rootless_users["subuid"]
    ctx = user.workdir("ctx-")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_base}\n"
        "COPY --chown=1000:1000 app.txt /srv/app.txt\n"
        "RUN --mount=type=secret,id=tok,required=true "
        f'test "$(sha256sum < /run/secrets/tok | cut -c1-64)" = "{SECRET_SUM}" '
        "&& echo seen > /srv/secret-seen "
        "&& chown 1500 /srv/secret-seen\n")
    (ctx / "app.txt").write_text("built from the wheel, rootless\n")
    (ctx / "tok").write_text(SECRET)
    (ctx / ".dockerignore").write_text("tok\n")
    user.own(ctx)
    home, tmp = user.workdir("home-"), user.workdir("tmp-")
    image = f"{registry.host}/wheel-rootless/app:1"
    token = identity_token(EMAIL, ISSUER)
    res = _as_user(user, user_venv,
                   ["build", "--context", str(ctx), "--destination", image,
                    "--secret", f"id=tok,src={ctx / 'tok'}", "--keyless",
                    "--sigstore-trust-config", str(config), "--identity-token", token,
                    "--digest-file", str(home / "digest")],
                   _user_env(user_venv, home, tmp))
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert SECRET not in log and token.split(".")[1] not in log
    assert settled_entries(tmp) == [], settled_entries(tmp)
    assert len(fake.issued) == 1 and fake.bodies  # signed through the fake Fulcio and Rekor
    digest = (home / "digest").read_text().strip()

    img = fetch_dir(f"{registry.host}/wheel-rootless/app@{digest}", tmp_path / "img")
    owners: dict[str, tuple[int, int]] = {}
    for layer in read_dir_image(img)[0]["layers"][1:]:
        with tarfile.open(img / layer["digest"].split(":", 1)[1], "r:*") as tf:
            for ti in tf:
                owners[ti.name.removeprefix("./")] = (ti.uid, ti.gid)
                if ti.isfile():
                    f = tf.extractfile(ti)
                    assert f is not None and SECRET.encode() not in f.read(), ti.name
    assert owners["srv/app.txt"] == (1000, 1000)
    assert owners["srv/secret-seen"][0] == 1500  # a RUN chown to a mapped subordinate id
    assert not [n for n in owners if n.startswith("run/secrets/")]

    flags = ["--certificate-identity", EMAIL, "--certificate-oidc-issuer", ISSUER]
    rc, out = _verify(user_venv, [*flags, "--trusted-root", str(root), image], tmp_path)
    assert rc == 0 and out["verdict"] == "valid", out
    # the default: the public-good root shipped with the installed sigstore-python, offline
    rc, out = _verify(user_venv, [*flags, image], tmp_path)
    assert rc == 1 and out["signatures"], out
    assert all(s["verdict"] == "invalid" for s in out["signatures"]), out
    reasons = " ".join(s["reason"] for s in out["signatures"])
    assert "trusted_root.json" not in reasons and "ships no" not in reasons, reasons
    # ...which the wheel's trustbuild finds and reads (what the refusal above was checked with)
    probe = subprocess.run(
        [str(user_venv / "bin" / "python"), "-c",
         "from trustbuild.sign.trust import TrustRoots\n"
         "r = TrustRoots.public_good()\n"
         "print(r.source, len(r.ca_certs), len(r.rekor_keys))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert probe.returncode == 0, probe.stderr
    source, cas, rekors = probe.stdout.rsplit(None, 2)
    assert source.startswith("Sigstore public-good") and int(cas) > 0 and int(rekors) > 0


def _run(venv: Path, args: list[str], cwd: Path,
         ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRUSTBUILD_"))}
    env.update(HOME=str(cwd), TRUSTBUILD_PASSWORD="wheel-pw")
    p = subprocess.run([str(venv / "bin" / "trustbuild"), *args], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=300)
    if ok:
        assert p.returncode == 0, f"{args[:2]}: {p.stdout}\n{p.stderr}"
    return p


def test_installed_wheel_cosign_parity_commands_and_unshare(
        user_venv: Path, rootless_users: dict[str, RootlessUser], registry: Any,
        busybox_base: str, tmp_path: Path) -> None:
    """sign-blob / verify-blob / attest-blob, sign + tree + copy with signatures + clean
    against the registry, from the wheel; ``trustbuild unshare`` as the unprivileged user."""
    venv = user_venv
    _run(venv, ["generate-key-pair", "--output-key-prefix", "k"], tmp_path)
    blob = tmp_path / "release.tar"
    blob.write_bytes(b"release bits\n" * 100)
    _run(venv, ["sign-blob", "--key", "k.key", "--bundle", "b.json", str(blob)], tmp_path)
    _run(venv, ["verify-blob", "--key", "k.pub", "--bundle", "b.json", str(blob)], tmp_path)
    (tmp_path / "pred.json").write_text(json.dumps({"buildType": "https://example.org/x"}))
    _run(venv, ["attest-blob", "--key", "k.key", "--predicate", "pred.json", "--type",
                "slsaprovenance", "--bundle", "att.json", str(blob)], tmp_path)
    _run(venv, ["verify-blob-attestation", "--key", "k.pub", "--bundle", "att.json", "--type",
                "slsaprovenance", str(blob)], tmp_path)
    blob.write_bytes(b"changed")
    assert _run(venv, ["verify-blob", "--key", "k.pub", "--bundle", "b.json", str(blob)],
                tmp_path, ok=False).returncode == 1

    src, dst = f"{registry.host}/wheel-parity/src:1", f"{registry.host}/wheel-parity/dst:1"
    _run(venv, ["copy", "-q", busybox_base, src], tmp_path)
    _run(venv, ["sign", "--key", "k.key", src], tmp_path)
    assert "Signatures" in _run(venv, ["tree", src], tmp_path).stdout
    _run(venv, ["copy", "-q", src, dst], tmp_path)  # with its signature, as cosign copy
    # the signature names the source repository (containers/image semantics)
    identity = ["--signed-identity", f"exactRepository:{src.rsplit(':', 1)[0]}"]
    _run(venv, ["verify", "--key", "k.pub", *identity, dst], tmp_path)
    _run(venv, ["clean", "--force", dst], tmp_path)
    assert _run(venv, ["verify", "--key", "k.pub", *identity, dst], tmp_path,
                ok=False).returncode != 0

    user = rootless_users["subuid"]
    home, tmp = user.workdir("home-"), user.workdir("tmp-")
    res = _as_user(user, venv, ["unshare", "--", "sh", "-c", "id -u; cat /proc/self/uid_map"],
                   _user_env(venv, home, tmp))
    assert res.returncode == 0, res.stderr
    out = res.stdout.split("\n")
    assert out[0] == "0" and out[1].split() == ["0", str(user.uid), "1"], res.stdout
