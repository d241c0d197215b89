"""Benchmark harness: trustbuild vs buildah (overlay, vfs) on the shared workloads.

    .venv/bin/python bench/run.py                 # all workloads, 3 runs each
    .venv/bin/python bench/run.py --quick         # smoke run: w1-small, 1 run
    .venv/bin/python bench/run.py --workloads w3-many-steps --runs 5 \
        --tools trustbuild,buildah-overlay

Raw results: bench/results/<date>-<workload>.json; table: bench/results/latest.md
(``--quick`` writes to bench/work/results-quick instead). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bases import ROOT, WORK, emptying_trash, log, push_busybox, push_debian, registry  # noqa: E402
from report import markdown, summarize  # noqa: E402
from tools import TOOLS, Tool, compile_bytecode, pin_code, tool_by_name  # noqa: E402

# the workloads: ../shared/bench next to the checkout, or $TRUSTBUILD_BENCH_WORKLOADS (a git
# worktree elsewhere)
SHARED = Path(os.environ.get("TRUSTBUILD_BENCH_WORKLOADS") or ROOT.parent / "shared" / "bench")
# every workload builds on the same Debian base (issue 12); --base busybox for a smaller smoke run
WORKLOADS = {"w1-small": "debian", "w2-app": "debian", "w3-many-steps": "debian"}
# the file each workload's incremental build changes (one line appended): w3's marker.txt is
# copied at step 16 of 31, w2's module is one of the 5000 files of the big COPY, w1's script is
# the first instruction's only source
CHANGED = {"w1-small": "app.sh", "w2-app": "src/pkg49/mod99.py", "w3-many-steps": "marker.txt"}


def prepare_context(workload: str) -> Path:
    """A writable copy of the workload in bench/work/ctx (w2's generated files included)."""
    src = SHARED / workload
    if not src.is_dir():
        raise SystemExit(f"workload {workload}: {src} not found (is ../shared/bench there?)")
    dst = WORK / "ctx" / workload
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    gen = dst / "gen_context.py"
    if gen.exists():
        subprocess.run([sys.executable, str(gen), str(dst)], check=True)
        gen.unlink()  # not part of the image's context in either tool
    return dst


def one_build(tool: Tool, **kw: Any) -> dict[str, Any]:
    """A build, or ``{"error": ...}`` so one failure does not end the whole run."""
    try:
        return tool.build(**kw)
    except Exception as exc:  # noqa: BLE001 - recorded in the results, the run goes on
        log(f"  {tool.name}: FAILED: {str(exc).splitlines()[0]}")
        return {"error": str(exc)[-3000:]}


def bench_workload(workload: str, *, base: str, host: str, runs: int, tools: list[Tool],
                   tmp_results: Path) -> list[dict[str, Any]]:
    """All runs of one workload: per run, every tool (order rotated) cold, rebuild, incremental."""
    ctx = prepare_context(workload)
    marker = ctx / CHANGED[workload]
    original = marker.read_bytes() if marker.exists() else None
    results: list[dict[str, Any]] = []
    for n in range(runs):
        order = tools[n % len(tools):] + tools[:n % len(tools)]
        for tool in order:
            if original is not None:
                marker.write_bytes(original)
            tool.clear()
            ref = f"{host}/bench/{workload}/{tool.name}-{n}:latest"
            kw = dict(ctx=ctx, ref=ref, base=base, cache=True, result_dir=tmp_results)
            entry: dict[str, Any] = {"tool": tool.name, "run": n}
            log(f"{workload} run {n + 1}/{runs} {tool.name}: cold")
            entry["cold"] = one_build(tool, tag="cold", **kw)
            if "error" not in entry["cold"]:
                log(f"{workload} run {n + 1}/{runs} {tool.name}: no-change rebuild "
                    f"(cold {entry['cold']['wall']:.1f}s)")
                entry["rebuild"] = one_build(tool, tag="rebuild", **kw)
                if original is not None:
                    marker.write_bytes(original + f"# changed in run {n}\n".encode())
                    log(f"{workload} run {n + 1}/{runs} {tool.name}: incremental "
                        f"({CHANGED[workload]} changed)")
                    entry["incremental"] = one_build(tool, tag="incremental", **kw)
            results.append(entry)
            tool.clear()
    if original is not None:
        marker.write_bytes(original)
    return results


def _version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "missing"


def machine_meta(runs_text: str, commit: str) -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {mem_kb // 1024 // 1024} GB RAM, "
                       f"Linux {platform.release()}",
            "commit": commit, "buildah": _version(["buildah", "--version"]),
            "python": platform.python_version(), "runs_text": runs_text}


def table_only(day: str, workloads: list[str]) -> int:
    """Re-summarize stored raw results (e.g. after a change to report.py)."""
    res_dir = ROOT / "bench" / "results"
    docs = [json.loads((res_dir / f"{day}-{w}.json").read_text()) for w in workloads
            if (res_dir / f"{day}-{w}.json").exists()]
    if not docs:
        raise SystemExit(f"no results for {day} in {res_dir}")
    table = markdown([summarize(d["workload"], d["runs"]) for d in docs], meta=docs[0]["meta"])
    (res_dir / "latest.md").write_text(table)
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="trustbuild vs buildah benchmark (see docs/benchmarks.md)")
    p.add_argument("--quick", action="store_true", help="smoke run: w1-small, 1 run, results in "
                   "bench/work/results-quick")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list (default: all)")
    p.add_argument("--runs", type=int, default=3, help="runs per workload (default 3)")
    p.add_argument("--runs-for", action="append", default=[], metavar="WORKLOAD=N",
                   help="override --runs for one workload (repeatable), e.g. w2-app=2")
    p.add_argument("--tools", default=",".join(t.name for t in TOOLS), help="comma list")
    p.add_argument("--code", default="HEAD", metavar="COMMIT|worktree",
                   help="trustbuild sources to measure: a commit, exported to bench/work/code "
                        "(default HEAD), or 'worktree' for the live, possibly uncommitted tree")
    p.add_argument("--base", choices=["debian", "busybox"], default=None,
                   help="base image of every workload (default: Debian, as the targets assume)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write results there instead of bench/results (experiments)")
    p.add_argument("--table-only", metavar="DATE",
                   help="only rewrite latest.md from bench/results/DATE-<workload>.json")
    args = p.parse_args(argv)
    if args.table_only:
        return table_only(args.table_only, [w for w in args.workloads.split(",") if w])
    workloads = ["w1-small"] if args.quick else [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; known: {', '.join(WORKLOADS)}")
    base_of = {w: args.base or WORKLOADS[w] for w in workloads}
    runs = {w: 1 if args.quick else args.runs for w in workloads}
    for item in args.runs_for:
        w, _, n = item.partition("=")
        if w not in runs or not n.isdigit():
            p.error(f"--runs-for {item!r}: expected WORKLOAD=N for a selected workload")
        runs[w] = int(n)
    tools = [tool_by_name(t) for t in args.tools.split(",") if t]
    out_dir = WORK / "results-quick" if args.quick else ROOT / "bench" / "results"
    if args.out:
        out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_results = WORK / "raw"
    tmp_results.mkdir(parents=True, exist_ok=True)
    runs_text = ", ".join(f"{w} {n} run{'s' if n != 1 else ''}" for w, n in runs.items())
    if args.code == "worktree":
        commit = "worktree of " + _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        compile_bytecode(ROOT / "trustbuild")
    else:
        commit = pin_code(args.code)[:12]
    meta = machine_meta(runs_text, commit)
    day = dt.date.today().isoformat()
    summaries = []
    t0 = time.monotonic()
    with registry() as reg, emptying_trash():
        bases: dict[str, str] = {}
        log(f"registry on {reg.host}; building base images")
        if "busybox" in base_of.values():
            bases["busybox"] = push_busybox(reg.host)
        if "debian" in base_of.values():
            bases["debian"] = push_debian(reg.host)
        for w in workloads:
            results = bench_workload(w, base=bases[base_of[w]], host=reg.host, runs=runs[w],
                                     tools=tools, tmp_results=tmp_results)
            summ = summarize(w, results)
            summaries.append(summ)
            doc = {"workload": w, "base": bases[base_of[w]].split("/", 1)[1], "meta": meta,
                   "summary": summ, "runs": results}
            (out_dir / f"{day}-{w}.json").write_text(json.dumps(doc, indent=1) + "\n")
            log(f"{w}: wrote {out_dir / f'{day}-{w}.json'}")
        table = markdown(summaries, meta=meta)
        (out_dir / "latest.md").write_text(table)
        print(table)
        log(f"done in {time.monotonic() - t0:.0f}s; table in {out_dir / 'latest.md'}; "
            "deleting the tools' storage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
