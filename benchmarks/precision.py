"""The effect of bf16 mixed precision on trained models: the same runs trained in fp32 and in bf16, compared.

Trains ``--seeds`` runs of one method and hyperparameter value as a pack (``training.engine.packed.train_packed``, the
same ``--impl`` for every precision: the engine's or a comparison baseline of ``packed_baselines.py``), once per
precision in ``--precisions``, then scores every model: the final train_results (ELBO, reconstruction, KL on fresh
samples) and MIG of the mean representation. It prints one row per run and precision, and per quantity: the mean
difference bf16 - fp32 of the same seed next to the spread across seeds (the standard deviation over the fp32 runs),
i.e. whether bf16 moves a model further than another seed would.

On CUDA this is the real measurement (bf16 autocast on the GPU). On the CPU, bf16 runs under CPU autocast: the same
rounding of activations and weights to bf16 with float32 accumulation, so a proxy for the GPU's numbers, but slow on
CPUs without bf16 instructions (use the baseline ``--impl vmap`` there: the loop's oneDNN bf16 kernels are ~10x
slower on AVX2).

    python benchmarks/precision.py --device cpu --impl vmap --seeds 4 --steps 2500
    python benchmarks/precision.py --device cuda --dataset dsprites_subgrid --seeds 16 --steps 6000 --json p.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data import get_dataset  # noqa: E402
from training.evaluation.metrics import run_metric  # noqa: E402
from benchmarks.packed_baselines import ALL_IMPLS, train_packed_any  # noqa: E402
from training.vocabulary import METHODS  # noqa: E402

QUANTITIES = ("elbo", "reconstruction_loss", "kl_loss", "mig")


def score(model, dataset, mig_points: int) -> dict:
    """The compared quantities of one trained model."""
    mig = run_metric("mig", dataset, model.representation_fn("mean"), np.random.RandomState(0), num_train=mig_points)
    return {"elbo": model.train_results["elbo"], "reconstruction_loss": model.train_results["reconstruction_loss"],
            "kl_loss": model.train_results["kl_loss"], "mig": float(mig["discrete_mig"])}


def compare(results: dict, reference: str = "fp32") -> dict:
    """Per precision other than ``reference`` and per quantity: mean and max |difference| to the same seed's
    reference run, and the reference runs' standard deviation across seeds."""
    out = {}
    base = results[reference]["runs"]
    for precision, entry in results.items():
        if precision == reference:
            continue
        out[precision] = {}
        for q in QUANTITIES:
            diffs = np.array([r[q] - b[q] for r, b in zip(entry["runs"], base)])
            out[precision][q] = {"mean_diff": float(diffs.mean()), "max_abs_diff": float(np.abs(diffs).max()),
                                 "seed_sd": float(np.std([b[q] for b in base], ddof=1)) if len(base) > 1 else None}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dsprites_full",
                        help="a dataset name, or dsprites_subgrid (benchmarks/subgrid.py: rendered in seconds)")
    parser.add_argument("--method", default="beta_vae", choices=list(METHODS))
    parser.add_argument("--hparam", type=float, default=16.0, help="value of the method's hyperparameter")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--impl", default=None, choices=ALL_IMPLS,
                        help="packed implementation, the engine's or a baseline (default: the device's)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--mig-points", type=int, default=10000)
    parser.add_argument("--num-eval-samples", type=int, default=10000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.dataset == "dsprites_subgrid":   # the GPU benchmarks' quickly rendered device-resident sub-grid
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from subgrid import DSpritesSubgrid
        dataset = DSpritesSubgrid()
    else:
        dataset = get_dataset(args.dataset)
    hparams = {METHODS[args.method][0]: args.hparam}
    runs = [(dict(hparams), seed) for seed in range(args.seeds)]
    results = {}
    print(f"# {args.method} {hparams} on {args.dataset}, {args.seeds} seeds x {args.steps} steps of batch "
          f"{args.batch_size}, device {args.device}, impl {args.impl or 'default'}", flush=True)
    for precision in args.precisions.split(","):
        t0 = time.perf_counter()
        models = train_packed_any(dataset, args.method, runs, args.steps, batch_size=args.batch_size,
                                  device=args.device, precision=precision, impl=args.impl,
                                  num_eval_samples=args.num_eval_samples, progress=False)
        seconds = time.perf_counter() - t0
        failed = [m for m in models if isinstance(m, Exception)]
        if failed:
            raise failed[0]
        rows = [dict(seed=m.seed, **score(m, dataset, args.mig_points)) for m in models]
        results[precision] = {"train_seconds": seconds, "runs": rows}
        for r in rows:
            print(f"{precision:<5} seed {r['seed']}: elbo {r['elbo']:9.3f}  reconstruction "
                  f"{r['reconstruction_loss']:9.3f}  kl {r['kl_loss']:7.3f}  MIG {r['mig']:.4f}", flush=True)
        print(f"# {precision}: trained in {seconds:.0f} s", flush=True)
    summary = compare(results) if "fp32" in results else {}
    for precision, per_q in summary.items():
        for q, s in per_q.items():
            sd = "n/a" if s["seed_sd"] is None else f"{s['seed_sd']:.4f}"
            print(f"{precision} - fp32, {q:<20}: mean {s['mean_diff']:+.4f}, max |diff| {s['max_abs_diff']:.4f}; "
                  f"fp32 seed-to-seed sd {sd}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "summary": summary},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
