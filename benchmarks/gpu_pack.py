"""Packed training on one GPU, time-boxed for a lent device: implementations x precisions x pack sizes, a profile.

Phases (``--phases``, in this order; every result is appended to ``--json`` as soon as it exists):

* ``ceiling``: ONE model trained at batch 64·K (``--ceiling-configs``), with the vendor's kernels (``nn.Conv2d`` /
  ``nn.ConvTranspose2d`` on cuDNN, channels-last, fused Adam; optionally compiled): exactly the matrix arithmetic of a
  pack of K runs at batch 64, with one set of weights instead of K. Reported in model-step equivalents per second
  (images/s / 64) and TFLOP/s (``training.models.flops``), it is the speed the packed implementations are measured
  against: a pack of K separate models does the same work in the same shapes with K times the weights;
* ``agree``: the same 4 runs trained 30 steps in fp32, then bf16, with each impl of ``--agree`` (default gemm,
  triton: the fused Triton kernels checked against the measured default before they are timed): largest weight
  difference (Adam moves a weight whose gradient is ~0 by up to the learning rate per step on rounding noise
  alone), relative L2 difference of all weights, and final ELBO per run;
* ``speed``: model-steps/s of beta_vae at batch 64 for each (impl, precision, K) of ``--configs`` (an impl of the
  engine or a comparison baseline of ``packed_baselines.py``; one training run per configuration through
  ``training.engine.packed.train_packed``, ``--warmup`` untimed and ``--steps`` timed steps, device-resident
  batches), with the peak GPU memory. Configurations are tried in the given order until ``--budget`` seconds have
  passed;
* ``profile``: the fastest configuration again, step by step outside ``train_packed``: the host time to issue a
  step (data draw, noise, forward, backward, Adam) against the GPU time per step, and the host's own cost (the
  same pack at batch 2, where the GPU's work is negligible: while the launch queue is full, the issue time also
  counts waiting for the GPU), i.e. whether the pack is bound by the host or by the device; then the top CUDA
  kernels of 5 profiled steps (``torch.profiler``);
* ``encode``: images/s of one encoder (the evaluation's work) at batch 4096, fp32 and bf16, for the projection of
  the code table (all 737,280 dSprites images per model).

The batches come from a dSprites *sub-grid* held on the device (``subgrid.DSpritesSubgrid``: 46,080 real frames,
rendered in seconds) instead of the whole 737,280-image table, whose first rendering takes minutes: a step costs
the same. Example (on the lent machine; ``OUT`` is its result folder)::

    python benchmarks/gpu_pack.py --json $OUT/gpu_pack.json --budget 300 \\
        --configs triton:bf16:128,512 gemm:bf16:512 gemm:bf16:512:compile
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from subgrid import DSpritesSubgrid  # noqa: E402
from train_many import packed_rate  # noqa: E402

HPARAMS = {"beta": 4.0}


def _cuda(device) -> bool:
    return device.type == "cuda"


def _sync(device) -> None:
    if _cuda(device):
        torch.cuda.synchronize(device)


class Record:
    """The results so far, rewritten to ``path`` after every addition."""

    def __init__(self, path: str | None, **head):
        self.path = path
        self.data = dict(head)

    def add(self, phase: str, row: dict) -> None:
        self.data.setdefault(phase, []).append(row)
        if self.path:
            Path(self.path).write_text(json.dumps(self.data, indent=1))


def parse_configs(specs: list[str]) -> list[tuple[str, str, int, bool]]:
    """``impl:precision:k1,k2,...[:compile]`` -> [(impl, precision, k, compile), ...] in the given order."""
    out = []
    for spec in specs:
        impl, precision, ks, *flag = spec.split(":")
        out += [(impl, precision, int(k), flag == ["compile"]) for k in ks.split(",")]
    return out


def label(impl: str, compiled: bool) -> str:
    return f"{impl + ('+compile' if compiled else ''):14s}"


def _peak_and_tflops(device, rate: float, batch_size: int) -> tuple[float, float]:
    """(peak GPU memory in GiB, NaN without CUDA; achieved TFLOP/s of the VAE's matrix work at ``rate``
    model-steps/s)."""
    from training.models.flops import tflops

    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if _cuda(device) else float("nan")
    return peak, tflops(rate, batch_size=batch_size)


def speed(dataset, device, configs, steps, warmup, budget, batch_size, record) -> None:
    start = time.perf_counter()
    for impl, precision, k, compiled in configs:
        if time.perf_counter() - start > budget:
            print(f"speed: budget of {budget:.0f} s reached", flush=True)
            return
        if _cuda(device):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        try:
            rate, seconds = packed_rate(dataset, "beta_vae", HPARAMS, k, steps, warmup, batch_size, device,
                                        precision, True, impl=impl, workers=1, compile=compiled)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record it, go on
            print(f"{label(impl, compiled)} {precision:5s} K={k:4d}: failed: {type(exc).__name__}: {str(exc)[:300]}",
                  flush=True)
            record.add("speed", {"impl": impl, "compile": compiled, "precision": precision, "k": k,
                                 "error": str(exc)[:500]})
            continue
        peak, achieved = _peak_and_tflops(device, rate, batch_size)
        print(f"{label(impl, compiled)} {precision:5s} K={k:4d}: {rate:9.0f} model-steps/s, "
              f"{achieved:6.1f} TFLOP/s, {1e3 * seconds / steps:7.2f} ms/step, "
              f"peak {peak:5.1f} GiB ({time.perf_counter() - t0:.0f} s with set-up)", flush=True)
        record.add("speed", {"impl": impl, "compile": compiled, "precision": precision, "k": k,
                             "model_steps_per_s": rate, "tflops": achieved,
                             "seconds_with_set_up": time.perf_counter() - t0,
                             "ms_per_step": 1e3 * seconds / steps, "peak_gib": peak})


def ceiling(dataset, device, configs, steps, warmup, batch_size, record) -> None:
    """One beta_vae model trained at batch ``batch_size * K`` for each (precision, K, compile) of ``configs`` (the
    ``impl`` field of a config is ignored): model-step equivalents/s = K * steps / seconds, as a pack's."""
    from contextlib import nullcontext

    from training.engine.train import Trainer

    table, scale = dataset.device_table()
    images = torch.from_numpy(table).to(device)
    tf32_before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for _impl, precision, k, compiled in configs:
        n = batch_size * k
        if _cuda(device):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision != "fp32"
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        t0 = time.perf_counter()
        try:
            trainer = Trainer("beta_vae", dict(HPARAMS), 0, 1, device, compile=compiled)
            draws = torch.Generator(device).manual_seed(0)
            # the latent noise drawn on the device too (the trainer's host draw of 64*K x 10 values and its copy
            # from pageable memory would make the host wait for the device every step)
            trainer.noise = lambda num: (torch.randn((num, 10), device=device, generator=draws), None)
            for t in range(warmup + steps):
                if t == warmup:
                    _sync(device)
                    start = time.perf_counter()
                rows = torch.randint(len(images), (n,), device=device, generator=draws)
                batch = images[rows].unsqueeze(-1).float() * scale
                with autocast:
                    trainer.step(batch, t)
            _sync(device)
            seconds = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory: record it, go on
            print(f"ceiling {precision:5s} batch {n:6d}{' compiled' if compiled else ''}: failed: "
                  f"{type(exc).__name__}: {str(exc)[:300]}", flush=True)
            record.add("ceiling", {"precision": precision, "k": k, "compile": compiled, "error": str(exc)[:500]})
            continue
        rate = k * steps / seconds
        peak, achieved = _peak_and_tflops(device, rate, batch_size)
        print(f"ceiling {precision:5s} one model at batch {n:6d} (= K {k:4d}){' compiled' if compiled else ''}: "
              f"{rate:9.0f} model-step equivalents/s, {achieved:6.1f} TFLOP/s, {1e3 * seconds / steps:7.2f} "
              f"ms/step, peak {peak:5.1f} GiB ({time.perf_counter() - t0:.0f} s with set-up)", flush=True)
        record.add("ceiling", {"precision": precision, "k": k, "compile": compiled, "model_steps_per_s": rate,
                               "tflops": achieved, "ms_per_step": 1e3 * seconds / steps, "peak_gib": peak})
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_before


def agree(dataset, device, impls, k, steps, batch_size, num_eval_samples, record, precision="fp32") -> None:
    """The same k runs trained with each of ``impls`` (the engine's or the baselines') at ``precision`` (fp32: no
    TF32), the same device data: each run's weight differences and train_results ELBO against the first impl's."""
    from benchmarks.packed_baselines import train_packed_any

    runs = [(dict(HPARAMS), seed) for seed in range(k)]
    trained = {}
    for impl in impls:
        t0 = time.perf_counter()
        try:
            trained[impl] = train_packed_any(dataset, "beta_vae", runs, steps, batch_size=batch_size, device=device,
                                             num_eval_samples=num_eval_samples, progress=False, precision=precision,
                                             device_data=True, impl=impl, workers=1)
        except Exception as exc:  # noqa: BLE001
            print(f"agree: {impl} {precision} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            record.add("agree", {"impl": impl, "precision": precision, "error": str(exc)[:500]})
            continue
        print(f"agree: {impl} {precision} trained {k} runs x {steps} steps in {time.perf_counter() - t0:.0f} s",
              flush=True)
    reference = impls[0]
    for impl in impls[1:]:
        if reference not in trained or impl not in trained:
            continue
        for seed, (a, b) in enumerate(zip(trained[reference], trained[impl])):
            if isinstance(a, Exception) or isinstance(b, Exception):
                failure = a if isinstance(a, Exception) else b
                print(f"agree: {impl} vs {reference} ({precision}), seed {seed}: {failure}", flush=True)
                continue
            flat_a = torch.cat([v.flatten() for v in a.vae.state_dict().values()])
            flat_b = torch.cat([v.flatten() for v in b.vae.state_dict().values()])
            max_abs = float((flat_a - flat_b).abs().max())
            rel_l2 = float((flat_a - flat_b).norm() / flat_a.norm())
            elbo_a, elbo_b = a.train_results["elbo"], b.train_results["elbo"]
            print(f"agree: {impl} vs {reference} ({precision}), seed {seed}: weights max abs diff {max_abs:.2e} "
                  f"(lr 1e-4), relative L2 {rel_l2:.2e}; ELBO {elbo_b:.3f} vs {elbo_a:.3f}", flush=True)
            record.add("agree", {"impl": impl, "reference": reference, "precision": precision, "seed": seed,
                                 "steps": steps,
                                 "weights_max_abs_diff": max_abs, "weights_rel_l2": rel_l2, "elbo": elbo_b,
                                 "elbo_reference": elbo_a})


def profile(dataset, device, impl, precision, k, batch_size, record, steps: int = 20,
            compiled: bool = False) -> None:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from benchmarks.packed_baselines import models_for
    from training.engine.device_data import DeviceBatches, device_sampler
    from training.engine.packed import NoiseBlocks
    from training.engine.train import Trainer

    if _cuda(device):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision != "fp32"
    trainers = [Trainer("beta_vae", dict(HPARAMS), s, 1, device, channels_last=False, fused_adam=False)
                for s in range(k)]
    packed = models_for(impl)(trainers, device, 1e-4, 1e-4, precision=precision, impl=impl, compile=compiled)
    rows = list(range(k))
    sampler = device_sampler(dataset, device)
    source = DeviceBatches(sampler, batch_size, {i: i for i in rows})
    parts = {"data": 0.0, "noise": 0.0, "step": 0.0}
    by_row = {i: trainers[i] for i in rows}
    noise = {n: NoiseBlocks(by_row, rows, n, device, steps=10 ** 6) for n in (batch_size, 2)}   # as training draws it

    def one(t, timed, src=source, n=batch_size):
        t0 = time.perf_counter()
        x = src.next(rows).permute(0, 1, 4, 2, 3)
        t1 = time.perf_counter()
        eps, perm = noise[n].next(rows)
        t2 = time.perf_counter()
        packed.step(x, eps, perm, t)
        t3 = time.perf_counter()
        if timed:
            parts["data"] += t1 - t0
            parts["noise"] += t2 - t1
            parts["step"] += t3 - t2

    t_first = time.perf_counter()
    for t in range(5):
        one(t, False)
    _sync(device)
    first = time.perf_counter() - t_first
    if compiled:   # the compiled losses against the eager ones, same parameters and batch
        x = source.next(rows).permute(0, 1, 4, 2, 3)
        eps, perm = noise[batch_size].next(rows)
        got = packed.losses(x, eps, perm, 5.0)
        want = packed._losses(x, eps, perm, 5.0, packed.varying_hparams)
        diffs = {key: (float((got[key] - want[key]).detach().abs().max()), float(want[key].detach().abs().max()))
                 for key in sorted(want)}
        print("compiled - eager losses, max |diff|: "
              + ", ".join(f"{key} {d:.3g} (of {w:.4g})" for key, (d, w) in diffs.items()), flush=True)
    if _cuda(device):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
    wall = time.perf_counter()
    for t in range(steps):
        one(5 + t, True)
    issued = time.perf_counter() - wall
    if _cuda(device):
        end.record()
    _sync(device)
    wall = time.perf_counter() - wall
    gpu = begin.elapsed_time(end) / steps if _cuda(device) else float("nan")
    row = {"impl": impl, "compile": compiled, "precision": precision, "k": k, "steps": steps,
           "first_5_steps_s": first,
           "wall_ms_per_step": 1e3 * wall / steps, "gpu_ms_per_step": gpu,
           "host_issue_ms_per_step": 1e3 * issued / steps,
           **{f"host_{name}_ms_per_step": 1e3 * v / steps for name, v in parts.items()}}
    if not compiled:
        # the host's own cost: the same pack and kernels at batch 2, where the device's work is negligible (with
        # compile a new batch size would be a new graph)
        tiny = DeviceBatches(sampler, 2, {i: i for i in rows})
        for t in range(3):
            one(t, False, tiny, 2)
        _sync(device)
        wall = time.perf_counter()
        for t in range(steps):
            one(t, False, tiny, 2)
        _sync(device)
        row["host_floor_ms_per_step"] = 1e3 * (time.perf_counter() - wall) / steps
    print("profile: " + ", ".join(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
                                  for key, value in row.items()), flush=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if _cuda(device) else [])
    with torch_profile(activities=activities) as prof:
        for t in range(5):
            one(100 + t, False)
        _sync(device)
    table = prof.key_averages().table(sort_by="cuda_time_total" if _cuda(device) else "cpu_time_total",
                                      row_limit=25, max_name_column_width=60)
    print(table, flush=True)
    row["top_kernels"] = table
    record.add("profile", row)


def encode(device, batch_size, record) -> None:
    from training.models.architecture import Encoder

    encoder = Encoder(1).to(device).eval()
    x = torch.rand(batch_size, 1, 64, 64, device=device).round()
    for precision in ("fp32", "bf16"):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.no_grad()
        with torch.no_grad(), ctx:
            for _ in range(3):
                encoder(x)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(20):
                encoder(x)
            _sync(device)
        rate = 20 * batch_size / (time.perf_counter() - t0)
        print(f"encode {precision}: {rate:,.0f} images/s; a 737,280-image code table in {737280 / rate:.1f} s",
              flush=True)
        record.add("encode", {"precision": precision, "images_per_s": rate, "table_seconds": 737280 / rate})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="ceiling,agree,speed,profile,encode")
    parser.add_argument("--agree", default="gemm,triton",
                        help="impls whose trained weights are compared (the first is the reference)")
    parser.add_argument("--agree-precisions", default="fp32,bf16")
    parser.add_argument("--configs", nargs="+",
                        default=["triton:bf16:128,512", "gemm:bf16:512", "triton:tf32:512", "triton:bf16:1024",
                                 "gemm:bf16:512:compile"],
                        help="impl:precision:K1,K2,...[:compile] ... (tried in this order)")
    parser.add_argument("--ceiling-configs", nargs="+", default=["cudnn:bf16:128,512", "cudnn:bf16:512:compile",
                                                                  "cudnn:tf32:512"],
                        help="ceiling phase: cudnn:precision:K1,K2,...[:compile] (one model at batch 64*K)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget", type=float, default=200.0, help="seconds for the speed phase")
    parser.add_argument("--profile", default=None,
                        help="impl:precision:K to profile, or the JSON of an earlier speed phase to profile its "
                             "fastest configuration (default: the fastest of this call's speed phase)")
    parser.add_argument("--launch", default=None,
                        help="a triton_tune.py JSON: install its best launch configurations and per-layer choices "
                             "(fused kernels or gemm's) for impl triton")
    parser.add_argument("--json", default=None)
    parser.add_argument("--tiny", action="store_true", help="a CPU dry run of the script (batch 4, tiny steps)")
    args = parser.parse_args(argv)
    batch_size, encode_batch = (4, 16) if args.tiny else (64, 4096)
    if args.tiny:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("no CUDA device (--tiny runs the script on the CPU)", flush=True)
        return 2
    else:
        device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0) if _cuda(device) else "cpu"
    record = Record(args.json, device=name, torch=torch.__version__,
                    cuda=torch.version.cuda, method="beta_vae", batch_size=64, hparams=HPARAMS, launch=args.launch)
    if args.launch:
        from training.kernels.triton_layers import set_launch_configs, set_layer_impls

        tuned = json.loads(Path(args.launch).read_text())
        print(f"{set_launch_configs(tuned['best'])} launch configurations from {args.launch}; "
              f"{set_layer_impls(tuned.get('layers', []))} layers run gemm's kernels under impl triton", flush=True)
    print(f"{record.data['device']}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    t0 = time.perf_counter()
    dataset = DSpritesSubgrid()
    phases = args.phases.split(",")
    if "ceiling" in phases:
        ceiling(dataset, device, parse_configs(args.ceiling_configs), 3 if args.tiny else 10,
                1 if args.tiny else 3, batch_size, record)
    if "agree" in phases:
        for precision in args.agree_precisions.split(","):
            agree(dataset, device, args.agree.split(","), 2 if args.tiny else 4, 2 if args.tiny else 30, batch_size,
                  8 if args.tiny else 1000, record, precision)
    if "speed" in phases:
        speed(dataset, device, parse_configs(args.configs), args.steps, args.warmup, args.budget, batch_size,
              record)
    if "profile" in phases:
        if args.profile and not args.profile.endswith(".json"):
            impl, precision, k, *flag = args.profile.split(":")
            compiled = flag == ["compile"]
        else:
            rows = record.data.get("speed", [])
            if args.profile:   # the speed results of an earlier call of this script
                earlier = Path(args.profile)
                rows = json.loads(earlier.read_text()).get("speed", []) if earlier.exists() else []
            ok = [r for r in rows if "model_steps_per_s" in r]
            best = max(ok, key=lambda r: r["model_steps_per_s"]) if ok else {"impl": "gemm", "precision": "bf16",
                                                                              "k": 128}
            impl, precision, k = best["impl"], best["precision"], best["k"]
            compiled = bool(best.get("compile"))
        try:
            profile(dataset, device, impl, precision, int(k), batch_size, record, steps=3 if args.tiny else 20,
                    compiled=compiled)
        except Exception as exc:  # noqa: BLE001
            print(f"profile failed: {type(exc).__name__}: {exc}", flush=True)
    if "encode" in phases:
        encode(device, encode_batch, record)
    print(f"gpu_pack done in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
