"""The ``tb`` fixture: run the trustbuild CLI in-process and capture its output."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from trustbuild.cli.main import main


@dataclass
class Result:
    """Exit code and captured output of one CLI run."""

    code: int
    out: str
    err: str


@pytest.fixture
def tb(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201
    """Run ``trustbuild ARGS...`` in-process; returns a :class:`Result`."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run
