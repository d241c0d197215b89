"""``trustbuild`` CLI with per-RUN timing: the same ``trustbuild.cli.main.main``, plus a wrapper
around ``StepRunner.run`` that appends one JSON line per RUN step to ``$BENCH_STEP_LOG``.

The builder does not put ``RunResult.snapshot_seconds`` into the build record, so the harness
reads it here instead. The wrapper is installed when the build itself first imports
``trustbuild.sandbox.runner`` (an import hook), so a build that runs no step, such as a
no-change rebuild, loads nothing more than the plain CLI does. It costs microseconds per step.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import sys
import time
from typing import Any

_RUNNER = "trustbuild.sandbox.runner"


def _wrap(runner: Any, path: str) -> None:
    original = runner.StepRunner.run

    def run(self: Any, spec: Any, layer_dest: Any) -> Any:
        t0 = time.monotonic()
        result = original(self, spec, layer_dest)
        entry = {"label": getattr(spec, "label", ""), "mode": getattr(result, "snapshot_mode", ""),
                 "seconds": getattr(result, "seconds", None),
                 "snapshot_seconds": getattr(result, "snapshot_seconds", None),
                 "wall": time.monotonic() - t0, "exit_code": getattr(result, "exit_code", None)}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        return result

    runner.StepRunner.run = run


class _Hook:
    """Finds ``trustbuild.sandbox.runner`` as usual and wraps it once it has been executed.

    A meta path finder and loader by protocol, not by subclassing ``importlib.abc``: importing
    that loads ``importlib.resources`` (2-4 ms), which the real CLI never imports."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.loader: Any = None

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _RUNNER:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        _wrap(module, self.path)


def _install() -> None:
    path = os.environ.get("BENCH_STEP_LOG")
    if path:
        sys.meta_path.insert(0, _Hook(path))


if __name__ == "__main__":
    _install()
    from trustbuild.cli.main import exit_now, main

    exit_now(main(sys.argv[1:]))
