"""The builders under test and how one build+push of each is run and measured.

Every command runs under ``/usr/bin/time -v``; wall time is measured here with a monotonic
clock around the command, peak RSS is GNU time's "Maximum resident set size" (the largest
single process of the command's tree, not a sum).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bases import ROOT, WORK, clear_buildah_storage, discard, log

# the checkout's venv, else the interpreter running the bench (a worktree without its own venv)
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():
    PYTHON = Path(sys.executable)
TB_TIMED = ROOT / "bench" / "tb_timed.py"


def installed_python() -> Path:
    """An interpreter that starts as one with trustbuild installed from its wheel would.

    The checkout's venv has trustbuild installed in editable mode, and its ``.pth`` imports
    setuptools' editable finder at every interpreter start (~10 ms of a 0.4 s rebuild), which no
    user's installation has. This venv (bench/work/venv-run, no pip) reaches the dependencies
    through one path line instead, and finds the measured trustbuild on PYTHONPATH (pin_code),
    as site-packages would hold it."""
    venv = WORK / "venv-run"
    py = venv / "bin" / "python"
    if not py.exists():
        base = subprocess.run([str(PYTHON), "-c", "import sys; print(sys.base_prefix)"],
                              check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([str(Path(base) / "bin" / "python3"), "-m", "venv", "--without-pip",
                        str(venv)], check=True)
    deps = subprocess.run([str(PYTHON), "-c", "import requests, pathlib; "
                           "print(pathlib.Path(requests.__file__).parents[1])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "trustbuild-bench-deps.pth").write_text(deps + "\n")  # a path, no import
    return py

__all__ = ["Command", "Tool", "TOOLS", "tool_by_name", "pin_code", "compile_bytecode", "tb_python"]

_CODE: dict[str, str] = {}  # "path", "commit": the trustbuild sources under test (see pin_code)


def pin_code(ref: str = "HEAD") -> str:
    """Measure a fixed commit: ``git archive`` its trustbuild/, seccomp/, policies/ and
    pyproject.toml into bench/work and put that first on PYTHONPATH for every trustbuild run
    (the shared working tree changes while a long run goes on). Returns the commit."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    dest = WORK / "code" / commit[:12]
    if not (dest / "trustbuild").is_dir():
        tmp = dest.with_suffix(".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # pyproject.toml marks the export as a checkout, so its seccomp/ and policies/ are found
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit,
                                  "trustbuild", "seccomp", "policies", "pyproject.toml"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(dest)
    compile_bytecode(dest / "trustbuild")
    _CODE.update(path=str(dest), commit=commit, python=str(installed_python()))
    return commit


def tb_python() -> str:
    """The interpreter for trustbuild runs: :func:`installed_python` once code is pinned."""
    return _CODE.get("python") or str(PYTHON)


def compile_bytecode(tree: Path) -> None:
    """Write the ``.pyc`` files of ``tree`` as an installed package has them. Without them
    (``PYTHONDONTWRITEBYTECODE`` is set in CI and on the bench machine) every trustbuild process
    compiles its ~250 modules again, about 0.2 s that an installation never pays."""
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", "-j", "0", str(tree)], check=True,
                   stdout=subprocess.DEVNULL)


@dataclass
class Command:
    """One measured command."""

    argv: list[str]
    wall: float = 0.0
    max_rss_kb: int = 0
    exit_code: int = 0
    stderr_tail: list[str] = field(default_factory=list)


def measured(argv: list[str], *, env: dict[str, str], stdout_path: Path | None = None,
             timeout: float = 3600) -> Command:
    """Run ``argv`` under ``/usr/bin/time -v``; raise with the output tail if it fails."""
    tfile = WORK / "time-v.txt"
    errfile = WORK / "stderr.txt"
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        with open(errfile, "wb") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tfile), *argv], env=env,
                                    stdout=out, stderr=err)
            # a blocking wait: subprocess.run(timeout=) polls with sleeps of up to 50 ms, which
            # added 0-50 ms to every measured command (both tools: two commands per buildah
            # build), so walls came in 50 ms steps
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            try:
                proc.wait()
            finally:
                killer.cancel()
            wall = time.monotonic() - t0
    finally:
        if stdout_path:
            out.close()  # type: ignore[union-attr]
    text = tfile.read_text(errors="replace") if tfile.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    tail = errfile.read_text(errors="replace").splitlines()[-15:]
    cmd = Command(argv=argv, wall=round(wall, 3), max_rss_kb=int(m.group(1)) if m else 0,
                  exit_code=proc.returncode, stderr_tail=tail)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exit {proc.returncode}:\n" + "\n".join(tail))
    return cmd


@dataclass
class Tool:
    """A builder configuration: ``kind`` trustbuild or buildah, plus its mode/driver."""

    name: str
    kind: str
    variant: str  # trustbuild: snapshot mode ("" = default); buildah: storage driver

    @property
    def storage(self) -> Path:
        """This tool's private state directory in bench/work (buildah root, trustbuild TMPDIR)."""
        return WORK / "storage" / self.name

    def env(self, step_log: Path | None = None) -> dict[str, str]:
        """Environment: a private TMPDIR on the same disk for every tool."""
        tmp = self.storage / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(tmp))
        env.pop("BENCH_STEP_LOG", None)
        if self.kind == "trustbuild" and _CODE:
            env["PYTHONPATH"] = _CODE["path"]
        if step_log is not None:
            env["BENCH_STEP_LOG"] = str(step_log)
        return env

    def clear(self) -> None:
        """Empty local storage and caches (before a cold build)."""
        if self.kind == "buildah":
            clear_buildah_storage(self.storage / "root", self.storage / "run")
        discard(self.storage)  # deleted after the last build (bases.discard says why)

    def build(self, *, ctx: Path, ref: str, base: str, cache: bool,
              result_dir: Path, tag: str) -> dict[str, Any]:
        """One build + push; returns wall, peak RSS, the commands, and trustbuild's record.

        Starts with ``sync`` (untimed): the previous build's dirty pages are written back now,
        not during this one (each tool's cold build wrote hundreds of MB that the kernel was
        still flushing while the next tool built)."""
        os.sync()
        if self.kind == "trustbuild":
            return self._trustbuild(ctx=ctx, ref=ref, base=base, cache=cache,
                                    result_dir=result_dir, tag=tag)
        return self._buildah(ctx=ctx, ref=ref, base=base)

    def _trustbuild(self, *, ctx: Path, ref: str, base: str, cache: bool, result_dir: Path,
                    tag: str) -> dict[str, Any]:
        out = result_dir / f"{tag}.json"
        steps_log = result_dir / f"{tag}.steps.jsonl"
        steps_log.unlink(missing_ok=True)
        argv = [tb_python(), str(TB_TIMED), "build", "--context", str(ctx), "--destination", ref,
                "--build-arg", f"BASE={base}", "--log-format", "json"]
        if self.variant:
            argv += ["--snapshot-mode", self.variant]
        if cache:
            # the step cache (registry) and the local layer store, which clear() empties
            argv += ["--cache", "--cache-dir", str(self.storage / "layer-store")]
        cmd = measured(argv, env=self.env(steps_log), stdout_path=out)
        removal = self._wait_for_removal()
        result = json.loads(out.read_text())
        rec = result.get("record", {})
        steps = [{"instruction": s["instruction"], "line": s["line"], "cached": s.get("cached"),
                  "layer": s.get("layer_digest"),
                  "seconds": round(s["finished"] - s["started"], 4)
                  if s.get("finished") else None} for s in rec.get("steps", [])]
        runs = [json.loads(line) for line in steps_log.read_text().splitlines()] \
            if steps_log.exists() else []
        out.unlink(missing_ok=True)
        steps_log.unlink(missing_ok=True)
        return {"wall": cmd.wall, "max_rss_kb": cmd.max_rss_kb, "commands": [asdict(cmd)],
                "removal_after_s": removal,
                "digest": result.get("digest"), "snapshot_mode": rec.get("snapshot_mode"),
                "steps": steps, "run_steps": runs,
                "cached_steps": sum(1 for s in steps if s["cached"]),
                "fs_steps": sum(1 for s in steps
                                if s["instruction"] in ("RUN", "COPY", "ADD", "WORKDIR"))}

    def _wait_for_removal(self, timeout: float = 600) -> float:
        """Seconds until the work dir the build handed to a detached ``rm`` is gone (untimed).

        The CLI returns once the image is pushed and leaves its work dir to ``rm``
        (trustbuild._internal.removal); the next measured build must not share the machine with
        that ``rm``, just as buildah's storage is cleared between builds outside the timing."""
        tmp = self.storage / "tmp"
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            # trustbuild._internal.removal.TRASH_PREFIX (the bench does not import the code it
            # measures: that is pinned on PYTHONPATH of the measured process only)
            if not any(p.name.startswith(".trustbuild-removing-") for p in tmp.iterdir()):
                break
            time.sleep(0.02)
        return round(time.monotonic() - t0, 3)

    def _buildah(self, *, ctx: Path, ref: str, base: str) -> dict[str, Any]:
        flags = ["--root", str(self.storage / "root"), "--runroot", str(self.storage / "run"),
                 "--storage-driver", self.variant]
        env = self.env()
        argv = ["buildah", *flags, "bud", "--isolation", "chroot", "--layers",
                "--tls-verify=false", "--build-arg", f"BASE={base}", "-t", ref, str(ctx)]
        retried = False
        try:
            bud = measured(argv, env=env)
        except RuntimeError as exc:
            # runc under buildah failing to clone its binary ("sealing memfd copy: Device or
            # resource busy"), a transient of the reference tool: once more, the steps it had
            # committed now cached (which can only flatter buildah), and the retry recorded
            if "sealing memfd copy" not in str(exc):
                raise
            log("  buildah: runc memfd transient, building again")
            bud, retried = measured(argv, env=env), True
        push = measured(["buildah", *flags, "push", "--tls-verify=false", ref], env=env)
        return {"wall": round(bud.wall + push.wall, 3), "build_wall": bud.wall,
                "push_wall": push.wall, "max_rss_kb": max(bud.max_rss_kb, push.max_rss_kb),
                "commands": [asdict(bud), asdict(push)], "retried": retried}


TOOLS = [
    Tool("trustbuild", "trustbuild", ""),
    Tool("trustbuild-walk", "trustbuild", "walk"),
    Tool("buildah-overlay", "buildah", "overlay"),
    Tool("buildah-vfs", "buildah", "vfs"),
]


def tool_by_name(name: str) -> Tool:
    """The tool called ``name``."""
    for t in TOOLS:
        if t.name == name:
            return t
    log(f"unknown tool {name!r}; known: {', '.join(t.name for t in TOOLS)}")
    raise SystemExit(2)
