"""Sandboxed RUN steps: namespaces, pivot_root, capabilities, seccomp, and snapshotters.

Usage::

    from trustbuild.sandbox import RunSpec, StepRunner

    with StepRunner(rootfs, scratch, snapshot_mode="auto", mtime=epoch) as runner:
        res = runner.run(RunSpec(["/bin/sh", "-c", "apk add curl"], env=env,
                                 security_profile="baseline", label="[2/5] RUN apk add curl"),
                         scratch / "layer.tar.gz")
        if res.exit_code != 0:
            ...  # "Dockerfile:LINE RUN ...: exit code N" + res.output_tail
        layer_info = res.layer

See docs/sandbox.md and docs/seccomp.md.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the RUN helper)

if TYPE_CHECKING:
    from trustbuild.sandbox.container import detect_container, kaniko_ignore_list
    from trustbuild.sandbox.profiles import SecurityProfile, resolve_profile
    from trustbuild.sandbox.runner import MODES, SNAPSHOT_MODES, StepRunner
    from trustbuild.sandbox.spec import Runner, RunResult, RunSpec

__all__ = [
    "RunSpec", "RunResult", "Runner", "StepRunner", "SecurityProfile", "resolve_profile",
    "detect_container", "kaniko_ignore_list", "MODES", "SNAPSHOT_MODES",
]

# Lazy re-exports: the helper process imports trustbuild.sandbox._linux and must start fast.
_WHERE = {
    "RunSpec": "spec", "RunResult": "spec", "Runner": "spec", "StepRunner": "runner",
    "MODES": "runner", "SNAPSHOT_MODES": "runner", "SecurityProfile": "profiles",
    "resolve_profile": "profiles",
    "detect_container": "container", "kaniko_ignore_list": "container",
}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"trustbuild.sandbox.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'trustbuild.sandbox' has no attribute {name!r}")
