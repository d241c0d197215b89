"""``$TRUSTBUILD_LIBSECCOMP``: the relocated executor (docs/executor.md) names its own
libseccomp, because ``ctypes.util.find_library`` asks ``ldconfig``, which in container mode
reads the image being built. Each case runs in a fresh interpreter (pyseccomp binds at import).
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# find_library knows no libraries at all, as in a "/" that holds a busybox image
_SCRIPT = """
import ctypes.util, sys
ctypes.util.find_library = lambda name: None
from trustbuild._internal.seccomp import compile_bpf, load_profile
from trustbuild.errors import SandboxError
try:
    bpf = compile_bpf(load_profile("build-default"))
except SandboxError as exc:
    print("error:", exc)
    sys.exit(3)
import pyseccomp
print(pyseccomp._libseccomp._name, len(bpf))
"""


def _run(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRUSTBUILD_LIBSECCOMP"}
    env["PYTHONPATH"] = str(REPO)
    if env_value is not None:
        env["TRUSTBUILD_LIBSECCOMP"] = env_value
    return subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_named_library_is_used_without_ldconfig(tmp_path: Path) -> None:
    found = ctypes.util.find_library("seccomp")
    if found is None:
        pytest.skip("libseccomp is not installed")
    # a copy elsewhere, as /opt/trustbuild/runtime/lib/libseccomp.so.2 in the executor image
    system = next(p for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                              "/usr/lib64", "/usr/lib", "/lib")
                  if Path(p, found).exists())
    own = tmp_path / "lib" / "libseccomp.so.2"
    own.parent.mkdir()
    shutil.copy2(Path(system, found).resolve(), own)
    r = _run(str(own))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == str(own)
    assert int(r.stdout.split()[1]) > 0


def test_without_it_pyseccomp_cannot_find_the_library() -> None:
    r = _run(None)
    assert r.returncode != 0
    assert "libseccomp" in (r.stdout + r.stderr).lower()


def test_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    r = _run(str(tmp_path / "nope.so.2"))
    assert r.returncode == 3, r.stderr[-2000:]
    assert r.stdout.startswith(f"error: TRUSTBUILD_LIBSECCOMP={tmp_path / 'nope.so.2'}: no such")
