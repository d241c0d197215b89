"""The ``Literal`` mode types (issue 14) and the values the CLI lets in: every choice of
``trustbuild build`` is a value of the type its option field has."""

from __future__ import annotations

import argparse
from typing import get_args

from trustbuild.attest.sbom import SBOM_FORMATS, SbomFormat
from trustbuild.builder.options import BuildMode, ImageFormat, LogFormat
from trustbuild.cli.kaniko_compat import SNAPSHOT_MODES
from trustbuild.cli.main import build_parser
from trustbuild.oci.compression import WRITABLE, Compression
from trustbuild.sandbox.profiles import PROFILES
from trustbuild.sandbox.runner import SNAPSHOT_MODES as RUNNER_SNAPSHOT_MODES
from trustbuild.sandbox.spec import ProfileName, SnapshotMode


def _choices() -> dict[str, set[str]]:
    parser = build_parser("build")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: set(a.choices) for a in sub.choices["build"]._actions if a.choices}


def test_build_choices_are_values_of_the_option_types() -> None:
    choices = _choices()
    assert choices["compression"] <= set(get_args(Compression))
    assert choices["image_format"] == set(get_args(ImageFormat))
    assert choices["log_format"] - {"color"} == set(get_args(LogFormat))  # color -> text
    assert choices["mode"] == set(get_args(BuildMode))
    assert choices["sbom_format"] <= set(get_args(SbomFormat))


def test_runtime_checks_accept_exactly_the_literal_values() -> None:
    assert set(SNAPSHOT_MODES.values()) <= set(get_args(SnapshotMode)) <= set(SNAPSHOT_MODES)
    assert RUNNER_SNAPSHOT_MODES == get_args(SnapshotMode)
    assert PROFILES == get_args(ProfileName)
    assert WRITABLE == get_args(Compression)
    assert set(SBOM_FORMATS) == set(get_args(SbomFormat))
