"""Peak RSS of trustbuild as a layer grows: one RUN writing N MiB of random bytes, build + push.

    .venv/bin/python bench/big_layer.py                  # 200 MiB and 2048 MiB
    .venv/bin/python bench/big_layer.py --sizes 64,512

Issue 12's target: the peak stays flat as the image grows (a 2 GB layer under 200 MB RSS). Each
size is built cold (empty layer store) with ``--cache --cache-dir``, as bench/run.py builds, from
the busybox base on a loopback registry, under ``/usr/bin/time -v``. Prints one line per size
and writes ``bench/results/<date>-big-layer.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bases import ROOT, WORK, emptying_trash, log, push_busybox, registry  # noqa: E402
from tools import TB_TIMED, Tool, measured, pin_code, tb_python  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="200,2048", help="layer sizes in MiB, comma-separated")
    p.add_argument("--code", default="HEAD", help="commit to measure (see run.py --code)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    commit = pin_code(args.code)
    tool = Tool("trustbuild", "trustbuild", "")
    rows = []
    WORK.mkdir(parents=True, exist_ok=True)
    with registry() as reg, emptying_trash():
        base = push_busybox(reg.host)
        for mib in sizes:
            tool.clear()
            ctx = Path(tempfile.mkdtemp(prefix="big-layer-", dir=WORK))
            try:
                (ctx / "Dockerfile").write_text(
                    "ARG BASE\nFROM ${BASE}\n"
                    f"RUN head -c {mib}m /dev/urandom > /big && ls -l /big\n")
                cmd = measured([tb_python(), str(TB_TIMED), "build", "--context", str(ctx),
                                "--destination", f"{reg.host}/bench/big:{mib}",
                                "--build-arg", f"BASE={base}", "--cache",
                                "--cache-dir", str(tool.storage / "layer-store")],
                               env=tool.env())
            finally:
                shutil.rmtree(ctx, ignore_errors=True)
                tool.clear()
            rss_mb = round(cmd.max_rss_kb / 1024, 1)
            rows.append({"layer_mib": mib, "wall_s": cmd.wall, "peak_rss_mb": rss_mb})
            log(f"{mib} MiB layer: {cmd.wall:.1f} s, peak RSS {rss_mb} MB")
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    out = ROOT / "bench" / "results" / f"{day}-big-layer.json"
    out.write_text(json.dumps({"commit": commit[:12], "rows": rows,
                               "target": "peak RSS < 200 MB for a 2 GB layer"}, indent=1) + "\n")
    for r in rows:
        print(f"{r['layer_mib']:>6} MiB  {r['wall_s']:>7.1f} s  {r['peak_rss_mb']:>7.1f} MB")
    big = [r for r in rows if r["layer_mib"] >= 2048]
    if big:
        verdict = "pass" if all(r["peak_rss_mb"] < 200 for r in big) else "MISS"
        print(f"target (2 GB layer under 200 MB RSS): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
