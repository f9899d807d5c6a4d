"""Benchmark: `dstudy report` on a synthetic store at paper scale (target: <= 3 minutes on 2 cores).

Builds (or reuses) a synthetic store with the whole paper grid -- 7 datasets x 6 methods x 6 values x 50 seeds =
12,600 runs, every key of every evaluation on both representations (~3.5 million score rows) -- then times
``dstudy report`` on it, as a subprocess, the way a user runs it. Prints the store size, the wall time of each phase
and of every page, and ``os.getloadavg()`` (the machine is shared: compare timings only at similar load).

    flock /tmp/dstudy-bench.lock python benchmarks/report.py [--store PATH] [--out DIR] [--seeds 50] [--rebuild]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis import synthetic  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "dstudy-bench" / "paper.sqlite")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "dstudy-bench" / "report")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per configuration (paper: 50)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the store even if it exists")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    if args.rebuild or not args.store.exists():
        args.store.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        synthetic.build_synthetic_store(args.store, seeds=args.seeds, overwrite=True)
        print(f"built synthetic store: {time.perf_counter() - start:.1f} s, "
              f"{args.store.stat().st_size / 1e6:.0f} MB ({7 * 36 * args.seeds} runs)")
    else:
        print(f"reusing {args.store} ({args.store.stat().st_size / 1e6:.0f} MB); --rebuild to rebuild")

    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "training.cli", "report", "--store", str(args.store),
                           "--out", str(args.out), "--workers", str(args.workers)], cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pages = json.loads((args.out / "pages.json").read_text()) if (args.out / "pages.json").exists() else []
    for page in pages:
        print(f"  {page['notebook']:<36} {'ok' if page['ok'] else 'FAILED'} {page['seconds']:6.1f} s"
              + ("" if page["ok"] else f"  {page['error']}"))
    failed = sum(not p["ok"] for p in pages)
    print(f"dstudy report: {wall:.1f} s wall (target <= 180 s), exit status {proc.returncode}, "
          f"{len(pages)} pages, {failed} failed")
    # CPU seconds of the whole process tree (report, its workers, their kernels): on an otherwise idle machine with
    # two cores the wall time cannot be less than cpu / 2, and is close to it when both workers stay busy
    print(f"CPU time of dstudy report and all its processes: {cpu:.1f} s (cpu / 2 cores = {cpu / 2:.1f} s)")
    print(f"load average at end: {os.getloadavg()}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
