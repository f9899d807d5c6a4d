"""Model-steps per second of packed training (``training.engine.packed.train_packed``) for K = 1, 2, 4, 8, 16, ...

For each K a pack of K runs (seeds 0..K-1, one hyperparameter value) is trained for ``--warmup`` untimed plus
``--steps`` timed steps; model-steps/s = K * timed steps / seconds. The baseline is the same ``--baseline-k`` runs
trained one after another with ``training.engine.train.train_model`` (its default speed settings), timed the same way.
``--ceiling`` adds ONE model trained by ``train_model`` at batch ``baseline-k`` x 64: the same matrix arithmetic as
the pack with one set of weights instead of K, in the single model's (vendor) kernels, reported in model-step
equivalents per second (images/s / batch size). Every line also gives the achieved GFLOP/s of the network's matrix
work (``training.models.flops``). ``--impls`` names the engine's impls or the comparison baselines of
``packed_baselines.py``.

On a shared or drifting machine (this project's 2-core VM drifts by 20-30 % within minutes) a single packed and a
single sequential measurement, minutes apart, give a noisy ratio. ``--pairs N`` then times N more pairs of (packed
K = baseline-k with the first implementation and worker count, sequential), alternating which of the two runs first,
and prints every pair's ratio and their median.
Prints one line per configuration, the speed-up of the packed K = baseline-k over the sequential baseline, and the
load average before and after (the CPU is shared: run it as
``flock /tmp/dstudy-bench.lock python benchmarks/train_many.py``). ``--json PATH`` also writes every number.

Examples::

    python benchmarks/train_many.py --ks 1,2,4,8 --steps 10
    python benchmarks/train_many.py --ks 8 --impls loop --workers 2 --steps 12 --warmup 2 --ceiling
    python benchmarks/train_many.py --ks 8 --impls loop --workers 2 --steps 12 --warmup 2 --pairs 6
    python benchmarks/train_many.py --device cuda --ks 1,8,32,128 --precisions fp32,tf32,bf16 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.packed_baselines import train_packed_any  # noqa: E402
from training.models.flops import tflops  # noqa: E402
from training.engine.train import train_model  # noqa: E402
from training.vocabulary import METHODS  # noqa: E402


def _timer(device, warmup: int, steps: int):
    marks: dict[int, float] = {}

    def on_step(t, losses):
        if t in (warmup - 1, warmup + steps - 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            marks[t] = time.perf_counter()

    return marks, on_step


def packed_rate(dataset, method, hparams, k, steps, warmup, batch_size, device, precision, device_data, impl=None,
                workers=None, **options):
    """(model-steps/s, seconds of the timed part) of a pack of k runs. With CPU sub-packs (``workers`` > 1) each
    sub-pack reports its steps; a mark is the time the last sub-pack finished that step. ``impl`` is the engine's or
    a comparison baseline's (``packed_baselines.ALL_IMPLS``); ``options`` go to ``train_packed`` (e.g.
    ``compile=True``)."""
    marks, on_step = _timer(device, warmup, steps)
    out = train_packed_any(dataset, method, [(dict(hparams), s) for s in range(k)], warmup + steps,
                           batch_size=batch_size, device=device, num_eval_samples=0, progress=False, on_step=on_step,
                           precision=precision, device_data=device_data, impl=impl, workers=workers, **options)
    failed = [r for r in out if isinstance(r, Exception)]
    if failed:
        raise failed[0]
    seconds = marks[warmup + steps - 1] - marks[warmup - 1]
    return k * steps / seconds, seconds


def sequential_rate(dataset, method, hparams, k, steps, warmup, batch_size, device):
    """model-steps/s of k runs trained one after another with train_model (timed steps only)."""
    total = 0.0
    for seed in range(k):
        total += _model_seconds(dataset, method, hparams, seed, steps, warmup, batch_size, device)
    return k * steps / total, total


def ceiling_rate(dataset, method, hparams, k, steps, warmup, batch_size, device):
    """model-step equivalents/s of ONE model trained with train_model at batch k * batch_size (timed steps only)."""
    seconds = _model_seconds(dataset, method, hparams, 0, steps, warmup, k * batch_size, device)
    return k * steps / seconds, seconds


def _model_seconds(dataset, method, hparams, seed, steps, warmup, batch_size, device) -> float:
    marks, on_step = _timer(device, warmup, steps)
    train_model(dataset, method, dict(hparams), seed, warmup + steps, batch_size=batch_size, device=device,
                num_eval_samples=0, progress=False, on_step=on_step)
    return marks[warmup + steps - 1] - marks[warmup - 1]


def _report(results: list, mode: str, k: int, rate: float, seconds: float, dataset, batch_size: int, unit: str,
            note: str) -> None:
    """Record and print one fp32 single-model measurement (``mode`` "sequential" or "ceiling")."""
    results.append({"mode": mode, "precision": "fp32", "k": k, "model_steps_per_s": rate, "seconds": seconds,
                    "loadavg": os.getloadavg()[0]})
    print(f"{mode:10s} fp32 K={k:4d}  {rate:10.1f} {unit}  {_gflops(rate, dataset, batch_size)}  ({note}, load "
          f"{os.getloadavg()[0]:.1f})", flush=True)


def _gflops(rate: float, dataset, batch_size: int) -> str:
    from training.engine.train import dataset_channels

    return f"{1e3 * tflops(rate, dataset_channels(dataset), batch_size):6.1f} GFLOP/s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dsprites_full")
    parser.add_argument("--method", default="beta_vae", choices=list(METHODS))
    parser.add_argument("--value", type=float, default=None, help="hyperparameter value (default: the method's 3rd)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--ks", default="1,2,4,8", help="comma-separated pack sizes")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, tf32, bf16 (CUDA)")
    parser.add_argument("--device-data", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--impls", default="auto",
                        help="comma-separated packed implementations: the engine's loop, gemm, triton or the "
                             "baselines vmap, bmm, grouped (auto: the device's default)")
    parser.add_argument("--workers", default="auto",
                        help="comma-separated CPU sub-pack counts (auto: torch's intra-op threads; 1: one pack)")
    parser.add_argument("--baseline-k", type=int, default=8, help="runs of the sequential baseline (0: skip)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also time one model at batch baseline-k x batch-size (the pack's arithmetic, one "
                             "weight set)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="then time this many alternating (packed K=baseline-k, sequential) pairs")
    parser.add_argument("--budget", type=float, default=float("inf"),
                        help="stop growing K once one configuration's timed part exceeds this many seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write all numbers to this JSON file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    from training.data import get_dataset
    from training.engine.train import resolve_device

    device = resolve_device(args.device)
    dataset = get_dataset(args.dataset)
    hname, values = METHODS[args.method]
    hparams = {hname: args.value if args.value is not None else values[2]}
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    device_data = {"auto": None, "on": True, "off": False}[args.device_data]
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "threads": torch.get_num_threads(), "dataset": args.dataset,
            "method": args.method, "hparams": hparams, "batch_size": args.batch_size, "steps": args.steps,
            "warmup": args.warmup, "loadavg_before": os.getloadavg()}
    print(f"# {info['device']} torch {info['torch']} threads {info['threads']}; {args.method} {hparams} on "
          f"{args.dataset}, batch {args.batch_size}; load average before {info['loadavg_before']}", flush=True)
    impls = [None] if args.impls == "auto" else [i.strip() for i in args.impls.split(",") if i.strip()]
    worker_counts = [None] if args.workers == "auto" else [int(w) for w in args.workers.split(",") if w.strip()]
    results = []
    for impl, workers in [(i, w) for i in impls for w in worker_counts]:
        label = (impl or "auto") + ("" if workers is None else f"/w{workers}")
        for precision in precisions:
            for k in ks:
                try:
                    rate, seconds = packed_rate(dataset, args.method, hparams, k, args.steps, args.warmup,
                                                args.batch_size, device, precision, device_data, impl, workers)
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory at large K: report, stop growing K
                    print(f"packed  {label:7s} {precision:5s} K={k:4d}  failed: {type(exc).__name__}: {exc}",
                          flush=True)
                    results.append({"mode": "packed", "impl": label, "precision": precision, "k": k,
                                    "error": str(exc)})
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    break
                results.append({"mode": "packed", "impl": label, "precision": precision, "k": k,
                                "model_steps_per_s": rate, "seconds": seconds, "loadavg": os.getloadavg()[0]})
                print(f"packed  {label:7s} {precision:5s} K={k:4d}  {rate:10.1f} model-steps/s  "
                      f"{_gflops(rate, dataset, args.batch_size)}  ({1000 * seconds / args.steps:.1f} ms per pack "
                      f"step, load {os.getloadavg()[0]:.1f})",
                      flush=True)
                if args.json:   # partial results survive a time-out
                    Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
                if seconds > args.budget:
                    break
    if args.baseline_k > 0:
        rate, seconds = sequential_rate(dataset, args.method, hparams, args.baseline_k, args.steps, args.warmup,
                                        args.batch_size, device)
        _report(results, "sequential", args.baseline_k, rate, seconds, dataset, args.batch_size,
                "model-steps/s", "train_model one run after another")
        if args.ceiling:
            one, seconds = ceiling_rate(dataset, args.method, hparams, args.baseline_k, args.steps, args.warmup,
                                        args.batch_size, device)
            _report(results, "ceiling", args.baseline_k, one, seconds, dataset, args.batch_size,
                    "model-step equivalents/s", f"train_model, ONE model at batch {args.baseline_k * args.batch_size}:"
                    f" {one / rate:.2f}x sequential")
        for r in results:
            if r["mode"] == "packed" and r["k"] == args.baseline_k and r["precision"] == "fp32" \
                    and "model_steps_per_s" in r:
                print(f"speed-up packed {r['impl']} K={args.baseline_k} / sequential: "
                      f"{r['model_steps_per_s'] / rate:.2f}x")
    if args.pairs > 0 and args.baseline_k > 0:
        ratios = []
        packed_args = (dataset, args.method, hparams, args.baseline_k, args.steps, args.warmup, args.batch_size,
                       device, "fp32", device_data, impls[0], worker_counts[0])
        sequential_args = (dataset, args.method, hparams, args.baseline_k, args.steps, args.warmup, args.batch_size,
                           device)
        for pair in range(args.pairs):
            if pair % 2 == 0:
                packed, _ = packed_rate(*packed_args)
                sequential, _ = sequential_rate(*sequential_args)
            else:
                sequential, _ = sequential_rate(*sequential_args)
                packed, _ = packed_rate(*packed_args)
            ratios.append(packed / sequential)
            results.append({"mode": "pair", "k": args.baseline_k, "packed_model_steps_per_s": packed,
                            "sequential_model_steps_per_s": sequential, "ratio": packed / sequential,
                            "loadavg": os.getloadavg()[0]})
            print(f"pair {pair + 1} ({'packed' if pair % 2 == 0 else 'sequential'} first): packed {packed:.1f}, "
                  f"sequential {sequential:.1f} model-steps/s: {packed / sequential:.2f}x", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
        print(f"speed-up over {len(ratios)} alternating pairs: median {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    info["loadavg_after"] = os.getloadavg()
    print(f"# load average after {info['loadavg_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
