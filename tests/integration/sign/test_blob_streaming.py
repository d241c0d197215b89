"""verify-blob and sign-blob stream the file: ECDSA and RSA sign and check its SHA-256
(prehashed), so a large file is not held in memory; Ed25519, which signs the bytes themselves,
is bounded by MAX_ED25519_BLOB_BYTES with a one-line error above it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trustbuild.cli.main import main
from trustbuild.sign import blob as blob_mod
from trustbuild.sign.keys import VerifyingKey

PASSWORD = "stream"
REPO = Path(__file__).resolve().parents[3]

# Runs in a fresh interpreter: the peak RSS before and after one CLI command.
MEASURE = """
import json, resource, sys
from trustbuild.cli.main import main
import trustbuild.sign.blob, trustbuild.sign.keys, trustbuild.cli.cmd_blob  # imported before
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rc = main(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rc": rc, "growth_kib": after - before}))
"""


def _measure(*args: str) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRUSTBUILD_PASSWORD": PASSWORD}
    res = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out: dict[str, int] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTBUILD_PASSWORD", PASSWORD)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)


def _import(tmp_path: Path, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
            name: str) -> tuple[Path, Path]:
    pem = tmp_path / f"{name}.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    prefix = tmp_path / name
    assert main(["import-key-pair", "--key", str(pem), "--output-key-prefix", str(prefix)]) == 0
    return prefix.with_suffix(".key"), prefix.with_suffix(".pub")


def test_a_200_mb_file_signs_and_verifies_without_being_read_into_memory(
        tmp_path: Path) -> None:
    assert main(["generate-key-pair", "--output-key-prefix", str(tmp_path / "k")]) == 0
    big = tmp_path / "big.img"
    with open(big, "wb") as f:  # sparse: 200 MB of zeros and a tail
        f.truncate(200 * 1024 * 1024)
        f.seek(0, os.SEEK_END)
        f.write(b"tail\n")
    bundle = tmp_path / "big.bundle"
    signed = _measure("sign-blob", "--key", str(tmp_path / "k.key"), "--bundle", str(bundle),
                      str(big))
    assert signed["rc"] == 0
    verified = _measure("verify-blob", "--key", str(tmp_path / "k.pub"), "--bundle", str(bundle),
                        str(big))
    assert verified["rc"] == 0
    for what, got in (("sign-blob", signed), ("verify-blob", verified)):
        assert got["growth_kib"] < 50 * 1024, (what, got)
    # and it is the file's signature: one byte more does not verify
    with open(big, "ab") as f:
        f.write(b"x")
    assert main(["verify-blob", "--key", str(tmp_path / "k.pub"), "--bundle", str(bundle),
                 str(big)]) == 1


def test_ed25519_is_bounded_with_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _import(tmp_path, ed25519.Ed25519PrivateKey.generate(), "ed")
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"a" * 1000)
    large.write_bytes(b"a" * 1001)
    monkeypatch.setattr(blob_mod, "MAX_ED25519_BLOB_BYTES", 1000)
    assert main(["sign-blob", "--key", str(key), "--bundle", str(tmp_path / "s.b"),
                 str(small)]) == 0
    assert main(["verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "s.b"),
                 str(small)]) == 0
    capsys.readouterr()
    assert main(["sign-blob", "--key", str(key), str(large)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "larger than 1000 bytes" in err[0] and "Ed25519" in err[0]
    # a signature made where the bound was higher: verify-blob names the bound, not "invalid"
    monkeypatch.setattr(blob_mod, "MAX_ED25519_BLOB_BYTES", 2000)
    assert main(["sign-blob", "--key", str(key), "--bundle", str(tmp_path / "l.b"),
                 str(large)]) == 0
    monkeypatch.setattr(blob_mod, "MAX_ED25519_BLOB_BYTES", 1000)
    capsys.readouterr()
    assert main(["verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "l.b"),
                 str(large)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "larger than 1000 bytes" in err[0] and "Ed25519" in err[0]


def test_p384_signature_over_sha384_still_verifies_prehashed(tmp_path: Path) -> None:
    """cosign's LoadDefaultSignerVerifier signs P-384 over SHA-384: accepted, as before."""
    priv = ec.generate_private_key(ec.SECP384R1())
    _, pub = _import(tmp_path, priv, "p384")
    f = tmp_path / "f"
    f.write_bytes(b"payload " * 1000)
    sig = tmp_path / "sig"
    sig.write_bytes(priv.sign(f.read_bytes(), ec.ECDSA(hashes.SHA384())))
    assert main(["verify-blob", "--key", str(pub), "--signature", str(sig), str(f)]) == 0
    other = ec.generate_private_key(ec.SECP384R1())
    sig.write_bytes(other.sign(f.read_bytes(), ec.ECDSA(hashes.SHA384())))
    assert main(["verify-blob", "--key", str(pub), "--signature", str(sig), str(f)]) == 1
    assert VerifyingKey(priv.public_key()).prehash_algorithms == ("sha256", "sha384")
