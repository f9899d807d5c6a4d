"""Sweep driver overhead per run: a study of trivial runs (no training, no evaluation) through the real driver,
Dask LocalCluster and store, so the time measured is the driver's bookkeeping, Dask round trips and the store's
transactions. Reports the cluster start-up separately.

    flock /tmp/dstudy-bench.lock python benchmarks/sweep.py [--runs 600] [--workers 2] [--pack 1]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from training.study.driver import sweep
from training.store import RunOutcome
from training.study.definition import study_from_dict
from training.vocabulary import EVALUATIONS, METHODS, REPRESENTATIONS


def trivial_pack(pack, device=None, threads=None, artifacts_dir=None):
    """One outcome per run with a realistic number of keys (2 per evaluation), computed by nothing."""
    return [RunOutcome(run_id=item["run_id"], train_results={"loss": 1.0, "elbo": -1.0},
                       scores={(r, e): {"a": 0.5, "b": 0.25} for r in REPRESENTATIONS for e in EVALUATIONS},
                       evaluations={(r, e): (0.0, None) for r in REPRESENTATIONS for e in EVALUATIONS},
                       train_seconds=0.0, eval_seconds=0.0) for item in pack]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600, help="number of runs (multiple of 36)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pack", type=int, default=1)
    args = parser.parse_args()
    seeds = max(1, args.runs // 36)
    study = study_from_dict({"name": "bench", "datasets": ["dsprites_full"], "seeds": seeds, "steps": 1,
                             "methods": {m: list(v[1]) for m, v in METHODS.items()}})
    print(f"loadavg before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.sqlite"
        # Empty sweep first: measures cluster start-up + shutdown + expansion with nothing to run.
        small = study_from_dict({"name": "empty", "datasets": ["dsprites_full"], "seeds": 1, "steps": 1,
                                 "methods": {"beta_vae": [1.0]}})
        t0 = time.perf_counter()
        sweep(small, store, workers=args.workers, run_fn=trivial_pack, data_sources=lambda d: {}, progress=False)
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = sweep(study, store, workers=args.workers, run_fn=trivial_pack, data_sources=lambda d: {},
                        progress=False, pack=args.pack)
        total = time.perf_counter() - t0
    n = summary.done
    print(f"sweep of one trivial run (cluster start-up + shutdown): {startup:.1f} s")
    print(f"sweep of {n} trivial runs, {args.workers} workers, pack {args.pack}: {total:.1f} s")
    print(f"driver overhead per run (excluding start-up): {1000 * (total - startup) / n:.1f} ms")
    print(f"loadavg after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
