"""Agreement of the fast protocol with the reference protocol over TRAINED models (issue 5).

::

    flock /tmp/dstudy-bench.lock python benchmarks/agreement.py --model-dir /tmp/dstudy-agree \\
        [--models 1:0,2:1,4:0,6:1,8:0,16:1] [--steps 1000] [--scale 0.1] [--downstream-num-train 10,100,1000] \\
        [--evaluations dci,downstream_task_logistic_regression,downstream_task_boosted_trees] \\
        [--representations mean] [--n-jobs 2]

trains (or loads, when ``--model-dir`` already holds them) one beta_vae model on dsprites_full per ``beta:seed``
entry for ``--steps`` steps of batch 64 (files ``beta_vae_b{beta}_s{seed}_{steps}.pt``), evaluates every model
with the reference protocol and with the fast protocol (same protocol table otherwise: ``--scale`` multiplies the
sampled sizes, the downstream training sizes are ``--downstream-num-train``), and prints per result key the Spearman
rank correlation of the two protocols across the models, the largest absolute difference, and the seconds each
protocol took per model. Nothing is written anywhere else.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.evaluation import scoring as ev  # noqa: E402
from training.vocabulary import EVALUATIONS  # noqa: E402

DEFAULT_MODELS = "1:0,2:1,4:0,6:1,8:0,16:1"
DEFAULT_EVALUATIONS = "dci,downstream_task_logistic_regression,downstream_task_boosted_trees"


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def load_or_train(model_dir: Path, dataset, beta: float, seed: int, steps: int):
    from training.engine.train import TrainedModel, train_model
    path = model_dir / f"beta_vae_b{beta:g}_s{seed}_{steps}.pt"
    if path.exists():
        return TrainedModel.load(path)
    start = time.perf_counter()
    model = train_model(dataset, "beta_vae", {"beta": beta}, seed=seed, steps=steps, batch_size=64)
    model.save(path)
    print(f"# trained beta_vae beta={beta:g} seed {seed}, {steps} steps, in {time.perf_counter() - start:.0f} s "
          f"(kl_loss {model.train_results.get('kl_loss', float('nan')):.1f})", flush=True)
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--models", default=DEFAULT_MODELS, help="beta:seed,beta:seed,...")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--downstream-num-train", default="10,100,1000")
    p.add_argument("--evaluations", default=DEFAULT_EVALUATIONS)
    p.add_argument("--representations", default="mean")
    p.add_argument("--n-jobs", type=int, default=2)
    args = p.parse_args(argv)
    from training.data import get_dataset
    dataset = get_dataset("dsprites_full")
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    specs = [(float(b), int(s)) for b, s in (item.split(":") for item in args.models.split(",") if item)]
    evaluations = [e for e in args.evaluations.split(",") if e]
    bad = [e for e in evaluations if e not in EVALUATIONS]
    if bad:
        raise SystemExit(f"unknown evaluation(s) {', '.join(bad)}")
    protocol = {"scale": args.scale, "evaluations": evaluations,
                "representations": [r for r in args.representations.split(",") if r],
                "downstream_num_train": [int(v) for v in args.downstream_num_train.split(",") if v]}
    print(f"# agreement over {len(specs)} trained models {args.models} ({args.steps} steps), protocol {protocol}, "
          f"n_jobs {args.n_jobs}, loadavg {tuple(round(x, 2) for x in os.getloadavg())}", flush=True)
    models = [load_or_train(model_dir, dataset, beta, seed, args.steps) for beta, seed in specs]
    results = {"reference": [], "fast": []}
    seconds = {"reference": 0.0, "fast": 0.0}
    for (beta, seed), model in zip(specs, models):
        for kind in ("reference", "fast"):
            start = time.perf_counter()
            records = ev.evaluate_model_records(model, dataset, None, dict(protocol, kind=kind), n_jobs=args.n_jobs)
            seconds[kind] += time.perf_counter() - start
            for r in records:
                if r.error:
                    raise SystemExit(f"{kind} {r.representation} {r.evaluation} failed: {r.error}")
            results[kind].append({(r.representation, r.evaluation, k): v for r in records for k, v in r.scores.items()})
        print(f"# beta {beta:g} seed {seed}: reference and fast done, loadavg {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'representation':<8} {'evaluation':<36} {'key':<30} {'spearman':>9} {'max_abs_diff':>13}  "
          f"reference values / fast values")
    for key in results["reference"][0]:
        ref = np.array([r[key] for r in results["reference"]])
        fast = np.array([r[key] for r in results["fast"]])
        print(f"{key[0]:<8} {key[1]:<36} {key[2]:<30} {_spearman(ref, fast):9.3f} {np.max(np.abs(ref - fast)):13.4f}"
              f"  {np.round(ref, 3).tolist()} / {np.round(fast, 3).tolist()}")
    for kind in ("reference", "fast"):
        print(f"# {kind:<9} {seconds[kind] / len(models):7.1f} s per model (wall, n_jobs {args.n_jobs})")
    print(f"# loadavg at end {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
