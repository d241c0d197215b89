"""``trustbuild`` CLI with per-RUN timing: the same ``trustbuild.cli.main.main``, plus a wrapper
around ``StepRunner.run`` that appends one JSON line per RUN step to ``$BENCH_STEP_LOG``.

The builder does not put ``RunResult.snapshot_seconds`` into the build record, so the harness
reads it here instead. The wrapper costs microseconds per step; nothing else changes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _install() -> None:
    path = os.environ.get("BENCH_STEP_LOG")
    if not path:
        return
    from trustbuild.sandbox import runner

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

    runner.StepRunner.run = run  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from trustbuild.cli.main import main

    sys.exit(main(sys.argv[1:]))
