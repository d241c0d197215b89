"""`--policy NAME` names a policy shipped with trustbuild; files still win; typos are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbuild._internal.data import data_dirs, find_data
from trustbuild.errors import PolicyError
from trustbuild.policy.model import load_policy

ROOT = Path(__file__).resolve().parents[3]


def test_bare_name_loads_the_shipped_policy_with_its_keys(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = load_policy("restricted")
    assert p.name == "restricted"
    # key paths resolve next to the shipped file, not in the cwd
    assert p.executor is not None and p.executor.signatures[0].key_pem
    assert load_policy("baseline").name == "baseline"


def test_a_file_of_that_name_in_the_cwd_wins(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "baseline").write_text((ROOT / "policies" / "restricted.yaml").read_text()
                                       .replace("keys/", str(ROOT / "policies" / "keys") + "/"))
    assert load_policy("baseline").name == "restricted"


def test_unknown_name_lists_the_shipped_policies(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError, match=r"restricd: .*shipped: baseline, restricted"):
        load_policy("restricd")
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy("missing.yaml")


def test_lookup_never_leaves_the_data_directories() -> None:
    assert find_data("policies", "../pyproject.toml") is None
    assert find_data("seccomp", "..") is None
    assert find_data("seccomp", "build-default.json") == ROOT / "seccomp" / "build-default.json"


def test_env_directory_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTBUILD_SECCOMP_DIR", str(tmp_path))
    (tmp_path / "build-default.json").write_text("{}")
    assert data_dirs("seccomp")[0] == tmp_path
    assert find_data("seccomp", "build-default.json") == tmp_path / "build-default.json"
