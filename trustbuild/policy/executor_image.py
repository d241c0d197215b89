"""Which executor image the build says it runs in (the gate verifies its signature)."""

from __future__ import annotations

import os

__all__ = ["EXECUTOR_ENV", "executor_image_from_env"]

EXECUTOR_ENV = "TRUSTBUILD_EXECUTOR_IMAGE"


def executor_image_from_env(flag: str | None) -> str | None:
    """``--executor-image`` wins over ``TRUSTBUILD_EXECUTOR_IMAGE``."""
    return flag or os.environ.get(EXECUTOR_ENV) or None
