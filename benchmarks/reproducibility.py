"""How far a run's numbers move when it is recomputed with other threads or other CPU kernels.

Recomputes stored runs of a results store in this process (train + evaluate, exactly as a sweep worker does, with
``--threads`` torch threads) and compares every train_results key and every score with the stored value. Run it
under the kernel family to compare, e.g. an AVX2 machine's on an AVX-512 one::

    python benchmarks/reproducibility.py --store reports/mini/study.sqlite --runs 1 --threads 1
    python benchmarks/reproducibility.py --store reports/mini/study.sqlite --runs 1 --threads 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell \\
        python benchmarks/reproducibility.py --store reports/mini/study.sqlite --runs 1 --threads 1

Prints, per run, the provenance of the stored and the recomputed run, then per evaluation the largest absolute
difference and how many keys differ at all; ``--json PATH`` writes every difference.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections import defaultdict

from training.study.worker import execute_pack
from training.store import Store


def stored_numbers(conn: sqlite3.Connection, run_id: str) -> tuple[dict, dict]:
    train = {k: v for k, v in conn.execute("SELECT key, value FROM train_results WHERE run_id = ?", (run_id,))}
    scores = {(r, m, k): v for r, m, k, v in
              conn.execute("SELECT representation, metric, key, value FROM scores WHERE run_id = ?", (run_id,))}
    return train, scores


def differences(stored: dict, recomputed: dict) -> dict:
    """key -> (stored, recomputed, |difference|) for the keys of ``stored`` (None where either is missing)."""
    out = {}
    for key, old in stored.items():
        new = recomputed.get(key)
        diff = None if old is None or new is None else abs(float(new) - float(old))
        out[key] = (old, new, diff)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--runs", type=int, default=1, help="how many done runs to recompute (store order)")
    parser.add_argument("--run-id", action="append", default=[], help="recompute this run (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the recomputation")
    parser.add_argument("--json", default=None, help="write every difference to this file")
    args = parser.parse_args()
    with Store(args.store, readonly=True) as store:
        runs = [r for r in store.runs(status="done") if r["source"] == "trained"]
        provenance = store.provenance()
    if args.run_id:
        runs = [r for r in runs if r["run_id"] in set(args.run_id)]
    else:
        runs = runs[: args.runs]
    conn = sqlite3.connect(f"file:{args.store}?mode=ro", uri=True)
    report = []
    for run in runs:
        started = time.perf_counter()
        outcome = execute_pack([{"run_id": run["run_id"], "config": run["config"]}], device="cpu",
                               threads=args.threads)[0]
        if not outcome.ok:
            print(f"{run['run_id']}: failed: {outcome.error}", file=sys.stderr)
            return 1
        train, scores = stored_numbers(conn, run["run_id"])
        new_scores = {(r, m, k): v for (r, m), values in outcome.scores.items() for k, v in values.items()}
        d_train = differences({k: v for k, v in train.items() if not k.endswith("seconds")}, outcome.train_results)
        d_scores = differences(scores, new_scores)
        print(f"run {run['run_id']} ({run['method']} {run['hparam_name']}={run['hparam_value']:g} seed {run['seed']},"
              f" {time.perf_counter() - started:.0f} s)")
        old_env = provenance.get(run["run_id"], {})
        print("  stored:     " + (", ".join(f"{k}={old_env[k]}" for k in ("cpu_capability", "threads", "commit")
                                             if k in old_env) or "no provenance recorded"))
        print("  recomputed: " + ", ".join(f"{k}={outcome.provenance[k]}" for k in ("cpu_capability", "threads",
                                                                                    "commit")))
        rel = {k: (d / abs(o) if o else None) for k, (o, _, d) in d_train.items() if d is not None}
        print(f"  train_results: {sum(1 for _, _, d in d_train.values() if d)} of {len(d_train)} keys differ;"
              f" largest relative difference {max((v for v in rel.values() if v is not None), default=0):.2e}")
        by_metric = defaultdict(list)
        for (rep, metric, key), (_, _, diff) in d_scores.items():
            by_metric[(rep, metric)].append((key, diff))
        for (rep, metric), items in sorted(by_metric.items()):
            diffs = [d for _, d in items if d is not None]
            worst = max(items, key=lambda kd: kd[1] or 0)
            print(f"  {rep:<8} {metric:<38} {sum(1 for d in diffs if d):>3}/{len(items):<3} keys differ,"
                  f" largest {max(diffs, default=0):.2e} ({worst[0]})")
        report.append({"run_id": run["run_id"], "threads": args.threads, "provenance": outcome.provenance,
                       "stored_provenance": old_env,
                       "train_results": {k: list(v) for k, v in d_train.items()},
                       "scores": {"|".join(k): list(v) for k, v in d_scores.items()}})
    conn.close()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
