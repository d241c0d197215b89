"""Id maps of rootless builds (trustbuild/sandbox/userns.py)."""

from __future__ import annotations

import os
from pathlib import Path

from trustbuild.sandbox.userns import IdMaps, build_command, plan_maps, subordinate_ranges


def test_subordinate_ranges_by_name_or_number_in_file_order(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n# comment\nbob:165536:65536\nbroken line\n"
                 "1234:300000:10\nalice:x:5\nalice:400000:0\nalice:500000:1000\n")
    assert subordinate_ranges(f, "alice", 1234) == [(100000, 65536), (300000, 10),
                                                    (500000, 1000)]
    assert subordinate_ranges(f, None, 1234) == [(300000, 10)]
    assert subordinate_ranges(f, "carol", 99) == []
    assert subordinate_ranges(tmp_path / "missing", "alice", 1) == []


def test_plan_maps_subuid_rows_follow_each_other(tmp_path: Path) -> None:
    uid = os.getuid()
    (tmp_path / "u").write_text(f"{uid}:100000:65536\n{uid}:300000:10\n")
    (tmp_path / "g").write_text(f"{uid}:200000:65536\n")
    maps = plan_maps(uid, 77, subuid=tmp_path / "u", subgid=tmp_path / "g")
    assert maps == IdMaps("subuid", ((0, uid, 1), (1, 100000, 65536), (65537, 300000, 10)),
                          ((0, 77, 1), (1, 200000, 65536)))


def test_plan_maps_without_both_ranges_is_the_single_map(tmp_path: Path) -> None:
    uid = os.getuid()
    (tmp_path / "u").write_text(f"{uid}:100000:65536\n")
    (tmp_path / "g").write_text("")
    maps = plan_maps(uid, 5, subuid=tmp_path / "u", subgid=tmp_path / "g")
    assert maps == IdMaps("single", ((0, uid, 1),), ((0, 5, 1),))


def test_build_command_runs_this_interpreter() -> None:
    import sys

    assert build_command(["build", "-c", "x"]) == [sys.executable, "-m", "trustbuild",
                                                   "build", "-c", "x"]
