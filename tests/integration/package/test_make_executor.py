"""`make executor` passes EXECUTOR_DEST / EXECUTOR_SIGN_KEY / EXECUTOR_POLICY on.

They reach executor/build.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fixtures.wheel import ROOT


def _dry_run(*assignments: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "executor", *assignments],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    out = out.replace("\\\n", " ")  # join continuation lines
    return next(line for line in out.splitlines() if "executor/build.py" in line)


def test_default_is_an_oci_layout_in_the_cache() -> None:
    line = _dry_run()
    assert "--cache-dir .cache/executor" in line
    assert "--destination" not in line and "--sign-key" not in line


def test_destination_key_and_policy_are_passed_through() -> None:
    line = _dry_run("EXECUTOR_DEST=127.0.0.1:5000/tb/executor:1", "EXECUTOR_SIGN_KEY=k.key",
                    "EXECUTOR_POLICY=restricted")
    assert "--destination 127.0.0.1:5000/tb/executor:1" in line
    assert "--sign-key k.key" in line and "--policy restricted" in line
