"""Benchmark: the transfer simulation (10,000 draws per cell) and the analysis library on a paper-scale frame.

Builds a synthetic tidy score frame with 12,600 runs x 2 representations x every key the study writes (about 3.5
million rows; tests/helpers/grids.py), then times each step. Target (issue 7): transfer_win_rates <= 5 s.
Run serialised with the other benchmarks:

    flock /tmp/dstudy-bench.lock python benchmarks/analysis_transfer.py [--scorecard] [--bootstrap]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.grids import paper_scale_scores  # noqa: E402

from analysis.frames import model_table  # noqa: E402
from analysis.transfer import transfer_win_rates  # noqa: E402


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{label:<48s} {time.perf_counter() - start:7.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorecard", action="store_true", help="also time analysis.claims.scorecard")
    parser.add_argument("--n-boot", type=int, default=100, help="seed-bootstrap replicates for the scorecard")
    parser.add_argument("--bootstrap", action="store_true", help="also time the seed-bootstrap intervals")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    scores = timed("build synthetic paper-scale frame", paper_scale_scores)
    print(f"rows: {len(scores):,}  runs: {scores['run_id'].nunique():,}")
    timed("transfer_win_rates(tidy frame, exact)", transfer_win_rates, scores)
    table = timed("model_table (pivot once)", model_table, scores)
    rates = timed("transfer_win_rates(model table, exact)", transfer_win_rates, table)
    print(rates.round(3).to_string())
    if args.bootstrap:
        from analysis import bootstrap
        from analysis.transfer import transfer_intervals
        timed("transfer_intervals(n_boot=100)", transfer_intervals, table, n_boot=100)
        timed("bootstrap_metric_correlations x7 (n_boot=1000)",
              lambda: [bootstrap.bootstrap_metric_correlations(table, d, n_boot=1000) for d in set(table["dataset"])])
        timed("bootstrap_variance_explained(n_boot=1000)", bootstrap.bootstrap_variance_explained, table,
              n_boot=1000)
    if args.scorecard:
        from analysis.claims import scorecard
        card = timed(f"scorecard(model table, n_boot={args.n_boot})", scorecard, table, n_boot=args.n_boot)
        print(card[["claim", "store", "verdict"]].to_string())
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
