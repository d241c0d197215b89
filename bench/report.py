"""Summaries of raw benchmark results: medians, ratios to buildah-overlay, the markdown table."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["summarize", "markdown", "targets", "TARGETS"]

SCENARIOS = ("cold", "rebuild", "incremental")
REFERENCE = "buildah-overlay"

# issue 12's targets: (workload, scenario, what, limit); "ratio" is trustbuild's median wall over
# buildah-overlay's in the same run, "rss" trustbuild's median peak RSS of the cold build in MB
TARGETS = (
    ("w1-small", "rebuild", "ratio", 1.0),
    ("w2-app", "rebuild", "ratio", 1.0),
    ("w3-many-steps", "rebuild", "ratio", 1.0),
    ("w3-many-steps", "incremental", "ratio", 0.8),
    ("w2-app", "cold", "ratio", 0.7),
    ("w3-many-steps", "cold", "ratio", 0.4),
    ("w2-app", "cold", "rss", 150.0),
)
_SCENARIO_NAMES = {"cold": "cold", "rebuild": "no-change rebuild", "incremental": "incremental"}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(workload: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tool and scenario: median wall, median and max peak RSS, ratio to buildah-overlay."""
    tools: dict[str, dict[str, Any]] = {}
    for run in runs:
        for scen in SCENARIOS:
            res = run.get(scen)
            if res is None:
                continue
            t = tools.setdefault(run["tool"], {}).setdefault(scen, {"walls": [], "rss": [],
                                                                     "errors": 0, "cached": [],
                                                                     "removal": []})
            if "error" in res:
                t["errors"] += 1
                continue
            t["walls"].append(res["wall"])
            t["rss"].append(res["max_rss_kb"] / 1024)
            if res.get("removal_after_s") is not None:
                t["removal"].append(res["removal_after_s"])
            if "cached_steps" in res:
                t["cached"].append(res["cached_steps"])
                t["fs_steps"] = max(t.get("fs_steps", 0), res.get("fs_steps", 0))
    out: dict[str, Any] = {}
    for tool, scens in tools.items():
        out[tool] = {}
        for scen, t in scens.items():
            out[tool][scen] = {"median_wall_s": _median(t["walls"]), "runs": len(t["walls"]),
                               "errors": t["errors"],
                               "median_peak_rss_mb": _median(t["rss"]),
                               "max_peak_rss_mb": round(max(t["rss"]), 1) if t["rss"] else None}
            if t["removal"]:
                out[tool][scen]["median_removal_after_s"] = _median(t["removal"])
            if t["cached"]:
                out[tool][scen]["cached_steps"] = max(t["cached"])
                out[tool][scen]["fs_steps"] = t.get("fs_steps", 0)
    for scens in out.values():
        for scen, s in scens.items():
            ref = out.get(REFERENCE, {}).get(scen, {}).get("median_wall_s")
            s["ratio_to_buildah_overlay"] = (round(s["median_wall_s"] / ref, 2)
                                             if ref and s["median_wall_s"] is not None else None)
    summary: dict[str, Any] = {"workload": workload, "tools": out}
    snap = _step_stats([r for r in runs if r["tool"] == "trustbuild"])
    if snap:
        summary["trustbuild_run_steps"] = snap
    return summary


def _step_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median per-RUN-step total and snapshot time of trustbuild's default mode, cold builds."""
    totals: list[float] = []
    snaps: list[float] = []
    record_steps: list[float] = []
    modes: set[str] = set()
    for run in runs:
        cold = run.get("cold") or {}
        for s in cold.get("run_steps", []):
            if s.get("seconds") is not None:
                totals.append(s["seconds"])
            if s.get("snapshot_seconds") is not None:
                snaps.append(s["snapshot_seconds"])
            modes.add(s.get("mode", ""))
        record_steps += [s["seconds"] for s in cold.get("steps", [])
                         if s["instruction"] == "RUN" and s.get("seconds") is not None]
    if not totals and not record_steps:
        return {}
    return {"snapshot_mode": ",".join(sorted(m for m in modes if m)),
            "steps": len(totals) or len(record_steps),
            "median_step_ms": round(1000 * statistics.median(totals), 1) if totals else None,
            "median_snapshot_ms": round(1000 * statistics.median(snaps), 1) if snaps else None,
            "median_record_step_ms": round(1000 * statistics.median(record_steps), 1)
            if record_steps else None}


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:.1f}{unit}" if unit != "x" else f"{v:.2f}x"


def markdown(summaries: list[dict[str, Any]], *, meta: dict[str, Any]) -> str:
    """One table for all workloads, plus the per-step snapshot line and run metadata."""
    lines = [
        f"Measured {meta['date']} on {meta['machine']} (trustbuild {meta['commit']}, "
        f"{meta['buildah']}); {meta['runs_text']}. Median wall time in seconds (build + push), "
        "ratio = trustbuild / buildah-overlay of the same scenario in the same run, "
        "peak RSS = median over runs of the largest process.",
        "",
        "| workload | tool | cold s | ratio | no-change rebuild s | ratio | incremental s | ratio "
        "| peak RSS MB (cold) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for summ in summaries:
        for tool, scens in summ["tools"].items():
            cells = []
            for scen in ("cold", "rebuild", "incremental"):
                s = scens.get(scen)
                if s is None:
                    cells += ["n/a", ""]
                    continue
                wall = _fmt(s["median_wall_s"])
                if s["errors"]:
                    wall += f" ({s['errors']} failed)"
                ratio = _fmt(s["ratio_to_buildah_overlay"], "x") if tool != REFERENCE else "1.00x"
                cells += [wall, ratio]
                if scen != "cold" and tool.startswith("trustbuild") and s.get("cached_steps"):
                    of = f" of {s['fs_steps']}" if s.get("fs_steps") else ""
                    notes.append(f"{summ['workload']} {tool} {scen}: {s['cached_steps']}{of} "
                                 "RUN/COPY/ADD/WORKDIR steps from the `--cache` repository")
                if scen != "cold" and tool.startswith("trustbuild") and s.get("cached_steps") == 0:
                    notes.append(f"{summ['workload']} {tool} {scen}: `--cache` on, but no step "
                                 "was a cache hit: full rebuild")
            removal = (scens.get("cold") or {}).get("median_removal_after_s")
            if removal is not None:
                notes.append(f"{summ['workload']} {tool} cold: its work dir, left to a detached "
                             f"rm, was gone a median {removal:.2f} s after the command returned "
                             "(untimed; the bench waits for it before the next build)")
            rss = _fmt((scens.get("cold") or {}).get("median_peak_rss_mb"))
            lines.append(f"| {summ['workload']} | {tool} | " + " | ".join(cells) + f" | {rss} |")
        st = summ.get("trustbuild_run_steps")
        if st:
            notes.append(
                f"{summ['workload']} trustbuild ({st['snapshot_mode']}) per RUN step, cold, "
                f"{st['steps']} steps: median total {_fmt(st['median_step_ms'])} ms, of which "
                f"snapshot (diff + layer write + apply) {_fmt(st['median_snapshot_ms'])} ms")
    if notes:
        lines += [""] + [f"- {n}" for n in dict.fromkeys(notes)]
    lines += ["", "Targets (issue 12):", "", targets_markdown(summaries).rstrip("\n")]
    return "\n".join(lines) + "\n"


def targets(summaries: list[dict[str, Any]], tool: str = "trustbuild") -> list[dict[str, Any]]:
    """Each target of :data:`TARGETS` with the measured value and ``met`` (None: not measured)."""
    by_workload = {s["workload"]: s for s in summaries}
    out = []
    for workload, scen, what, limit in TARGETS:
        s = ((by_workload.get(workload) or {}).get("tools", {}).get(tool) or {}).get(scen) or {}
        value = s.get("ratio_to_buildah_overlay") if what == "ratio" else \
            s.get("median_peak_rss_mb")
        ref = (((by_workload.get(workload) or {}).get("tools", {}).get(REFERENCE) or {})
               .get(scen) or {}).get("median_wall_s")
        wall = s.get("median_wall_s")
        if what == "ratio" and value is not None and wall and ref:
            value = wall / ref  # the verdict on the exact ratio, not the rounded one
        out.append({"workload": workload, "scenario": scen, "what": what, "limit": limit,
                    "value": value, "wall_s": wall, "buildah_s": ref,
                    "met": None if value is None else value <= limit})
    return out


def targets_markdown(summaries: list[dict[str, Any]]) -> str:
    """The targets as a table: measured value, limit, met / MISSED / not measured."""
    lines = ["| target | measured | |", "|---|---|---|"]
    for t in targets(summaries):
        scen = _SCENARIO_NAMES[t["scenario"]]
        if t["what"] == "ratio":
            name = f"{t['workload']} {scen} <= {t['limit']:.1f}x buildah-overlay"
            measured = "-" if t["value"] is None else (
                f"{t['wall_s']:.2f} s vs {t['buildah_s']:.2f} s = **{t['value']:.3f}x**")
        else:
            name = f"{t['workload']} peak RSS ({scen}) <= {t['limit']:.0f} MB"
            measured = "-" if t["value"] is None else f"**{t['value']:.0f} MB**"
        verdict = {None: "not measured", True: "met", False: "MISSED"}[t["met"]]
        lines.append(f"| {name} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"
