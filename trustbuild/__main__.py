"""``python -m trustbuild``."""

from __future__ import annotations

from trustbuild.cli.main import run

run()
