"""Profile one cold trustbuild build+push of a workload with cProfile.

    .venv/bin/python bench/profile.py w3-many-steps            # default snapshot mode
    .venv/bin/python bench/profile.py w2-app --snapshot-mode walk

Writes bench/work/profile-<workload>.prof (open with ``python -m pstats`` or snakeviz) and
bench/results/profile-<workload>.txt: the top functions by cumulative and by own time. Only the
builder process is profiled; time spent in RUN helper processes shows up as waiting
(``StepRunner._stream`` / ``Popen.wait``).
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bases import ROOT, WORK, emptying_trash, log, push_busybox, push_debian, registry  # noqa: E402
from run import CHANGED, WORKLOADS, prepare_context  # noqa: E402
from tools import TB_TIMED, Tool, pin_code, tb_python  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=sorted(WORKLOADS))
    p.add_argument("--snapshot-mode", default="",
                   help="trustbuild --snapshot-mode (default: its own)")
    p.add_argument("--top", type=int, default=45, help="functions listed per table")
    p.add_argument("--scenario", choices=["cold", "rebuild", "incremental"], default="cold",
                   help="rebuild/incremental: a cold build first (not profiled), then (incremental)"
                        " the workload's marker file changed, and the next build profiled")
    p.add_argument("--no-cache", action="store_true",
                   help="without --cache --cache-dir (run.py builds with both, an empty store "
                        "for a cold build)")
    p.add_argument("--code", default="HEAD", help="commit to profile (see run.py --code)")
    args = p.parse_args(argv)
    commit = pin_code(args.code)
    prof = WORK / f"profile-{args.workload}.prof"
    suffix = "" if args.scenario == "cold" else f"-{args.scenario}"
    report = ROOT / "bench" / "results" / f"profile-{args.workload}{suffix}.txt"
    with registry() as reg, emptying_trash():
        base = (push_busybox if WORKLOADS[args.workload] == "busybox" else push_debian)(reg.host)
        ctx = prepare_context(args.workload)
        argv2 = [tb_python(), "-m", "cProfile", "-o", str(prof), str(TB_TIMED), "build",
                 "--context", str(ctx), "--destination", f"{reg.host}/bench/profile:latest",
                 "--build-arg", f"BASE={base}"]
        if args.snapshot_mode:
            argv2 += ["--snapshot-mode", args.snapshot_mode]
        tool = Tool("trustbuild", "trustbuild", "")
        tool.clear()
        if not args.no_cache:
            argv2 += ["--cache", "--cache-dir", str(tool.storage / "layer-store")]
        marker = ctx / CHANGED[args.workload]
        original = marker.read_bytes()
        try:
            if args.scenario != "cold":
                if args.no_cache:
                    p.error(f"--scenario {args.scenario} needs the cache")
                log("cold build first (not profiled)")
                subprocess.run([tb_python(), *argv2[5:]], check=True, stdout=subprocess.DEVNULL,
                               env=tool.env())
                if args.scenario == "incremental":
                    marker.write_bytes(original + b"# changed\n")
            log("profiling: " + " ".join(argv2[3:]))
            t0 = time.monotonic()
            subprocess.run(argv2, check=True, stdout=subprocess.DEVNULL, env=tool.env())
            wall = time.monotonic() - t0
        finally:
            marker.write_bytes(original)
            tool.clear()
    out = io.StringIO()
    out.write(f"# cProfile of one {args.scenario} trustbuild build+push of {args.workload} "
              f"at {commit[:12]} "
              f"(snapshot mode {args.snapshot_mode or 'default'}"
              f"{', no cache' if args.no_cache else ', --cache --cache-dir'}), "
              f"wall {wall:.1f}s under the profiler\n\n## by cumulative time\n")
    st = pstats.Stats(str(prof), stream=out)
    st.strip_dirs().sort_stats("cumulative").print_stats(args.top)
    out.write("\n## by own time\n")
    st.sort_stats("tottime").print_stats(args.top)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(out.getvalue())
    log(f"wrote {report} and {prof}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
