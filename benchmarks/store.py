"""Store write throughput at paper scale: 12,600 runs with every result key of the full protocol.

Writes the paper grid's runs as pending (one transaction), then records each run as the sweep driver does: one
transaction per finished run with its train_results, the scores of all nine evaluations on both representations
(the dSprites key count: 56 keys per downstream config) and the per-evaluation seconds. Prints runs/s, rows/s, the
file size, how long the analysis-side read of all scores takes, and how long opening the store takes (the
integrity check every command runs first: ``PRAGMA quick_check``).

    flock /tmp/dstudy-bench.lock python benchmarks/store.py [--runs 12600] [--store PATH]
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from training.store import RunOutcome, Store, connect_store
from training.study.definition import load_study
from training.vocabulary import DATASETS, EVALUATIONS, REPRESENTATIONS

KEYS = {
    "beta_vae_sklearn": ["train_accuracy", "eval_accuracy"],
    "factor_vae_metric": ["train_accuracy", "eval_accuracy", "num_active_dims"],
    "mig": ["discrete_mig"],
    "dci": ["informativeness_train", "informativeness_test", "disentanglement", "completeness"],
    "modularity_explicitness": ["modularity_score", "explicitness_score_train", "explicitness_score_test"],
    "sap_score": ["SAP_score"],
    "unsupervised": ["gaussian_total_correlation", "gaussian_wasserstein_correlation",
                     "gaussian_wasserstein_correlation_norm", "mutual_info_score"],
}
_DOWNSTREAM = [f"{s}:{k}" for s in (10, 100, 1000, 10000) for k in
               ["mean_train_accuracy", "mean_test_accuracy", "min_train_accuracy", "min_test_accuracy"]
               + [f"{p}_accuracy_factor_{i}" for i in range(5) for p in ("train", "test")]]
KEYS["downstream_task_logistic_regression"] = _DOWNSTREAM
KEYS["downstream_task_boosted_trees"] = _DOWNSTREAM
TRAIN_KEYS = ["reconstruction_loss", "kl_loss", "regularizer", "loss", "elbo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12600)
    parser.add_argument("--store", default=None, help="store file (default: a temporary file, removed after)")
    args = parser.parse_args()
    print(f"loadavg before: {os.getloadavg()}")
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.store) if args.store else Path(tmp.name) / "paper.sqlite"
    runs = load_study("paper").runs({d: {"kind": "benchmark"} for d in DATASETS})[: args.runs]
    rng = np.random.RandomState(0)
    outcomes = [RunOutcome(run_id=r.run_id, train_results={k: float(v) for k, v in zip(TRAIN_KEYS, rng.rand(5))},
                           scores={(rep, ev): {k: float(rng.rand()) for k in KEYS[ev]}
                                   for rep in REPRESENTATIONS for ev in EVALUATIONS},
                           evaluations={(rep, ev): (float(rng.rand()), None)
                                        for rep in REPRESENTATIONS for ev in EVALUATIONS},
                           train_seconds=1.0, eval_seconds=2.0) for r in runs]
    keys_per_run = sum(len(v) for v in outcomes[0].scores.values())
    with Store(path) as store:
        t0 = time.perf_counter()
        store.add_runs(runs)
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        for outcome in outcomes:
            store.record_outcome(outcome)
        t_rec = time.perf_counter() - t0
    n = len(runs)
    rows = n * (keys_per_run + len(TRAIN_KEYS) + 2 * len(EVALUATIONS) + 1)
    t0 = time.perf_counter()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    count = len(conn.execute("SELECT s.*, r.dataset, r.method, r.hparam_value, r.seed FROM scores s"
                             " JOIN runs r USING (run_id)").fetchall())
    conn.close()
    t_read = time.perf_counter() - t0
    print(f"runs: {n}, score keys per run: {keys_per_run}, score rows: {count}")
    print(f"add_runs (one transaction): {t_add:.2f} s ({n / t_add:,.0f} runs/s)")
    print(f"record_outcome, one transaction per run: {t_rec:.1f} s = {1000 * t_rec / n:.2f} ms/run"
          f" ({n / t_rec:,.0f} runs/s, {rows / t_rec:,.0f} rows/s)")
    print(f"read all scores joined with runs (plain SQL): {t_read:.1f} s")
    for readonly in (True, False):
        t0 = time.perf_counter()
        connect_store(path, readonly=readonly).close()
        print(f"open with integrity check ({'read-only' if readonly else 'read-write'}):"
              f" {time.perf_counter() - t0:.2f} s")
    print(f"store size: {path.stat().st_size / 2**20:.0f} MiB (+ WAL)")
    print(f"loadavg after: {os.getloadavg()}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
