"""Training-step speed of the six methods, end to end through ``train_model`` (data sampling included).

For each method at batch 64 on 64x64x1 (dsprites_full) and 64x64x3 (color_dsprites), prints ms per step, GFLOP
per step (forward + backward of convolutions and matrix products, counted with torch's FlopCounterMode; the Adam
update is not counted), the achieved GFLOP/s, and that as a percentage of the fp32 GEMM throughput of this machine
measured in the same run (a 2048^3 matmul, best of a few repetitions, measured before and after the runs).

    flock /tmp/dstudy-bench.lock python benchmarks/train_step.py                 # all methods, both channel counts
    flock /tmp/dstudy-bench.lock python benchmarks/train_step.py --explore       # speed options on beta_vae, C=1
    python benchmarks/train_step.py --methods beta_vae --channels 1 --steps 40 --threads 1

Timing: ``train_model(..., on_step=...)`` records a timestamp after each update; ms/step is the mean over the steps
after ``--warmup`` (so one-off costs such as oneDNN primitive creation or torch.compile are excluded, and reported
separately as the time to the first measured step). Machine load (``os.getloadavg``) is printed with the numbers:
on a shared machine, compare rows of the same run (the GEMM is measured in that run too).

This VM's speed drifts by 20-30 % within a minute (the same step measured 60-95 ms minutes apart), so each row also
gives its rate against single GEMMs timed between its own steps (``--gemm-every``): the same minutes, the same
drift. The summary at the end keeps the conservative figure (against the best GEMM before or after all runs).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.engine.train import Trainer, sample_batch_batched, train_model  # noqa: E402
from training.vocabulary import METHODS  # noqa: E402

HPARAMS = {"beta_vae": 4.0, "factor_vae": 10.0, "dip_vae_i": 2.0, "dip_vae_ii": 2.0, "beta_tc_vae": 4.0,
           "annealed_vae": 25.0}


class SyntheticDataset:
    """Stand-in with the dataset interface when the real generator is unavailable: random axis-aligned squares."""

    def __init__(self, channels):
        self.observation_shape = (64, 64, channels)
        self.num_factors, self.factors_num_values, self.factor_names = 2, [56, 56], ["x", "y"]

    def sample_observations(self, num, random_state):
        out = np.zeros((num,) + self.observation_shape, np.float32)
        pos = random_state.randint(56, size=(num, 2))
        for i, (a, b) in enumerate(pos):
            out[i, a:a + 8, b:b + 8] = 1.0
        return out


def get_data(channels: int, synthetic: bool):
    if not synthetic:
        try:
            from training.data import get_dataset
            return get_dataset("dsprites_full" if channels == 1 else "color_dsprites"), \
                "dsprites_full" if channels == 1 else "color_dsprites"
        except Exception as exc:  # noqa: BLE001 - the benchmark falls back and says so
            print(f"# real dataset unavailable ({exc.__class__.__name__}: {exc}); using synthetic squares")
    return SyntheticDataset(channels), "synthetic"


def gemm_gflops(n: int = 2048, reps: int = 10, device: str = "cpu") -> float:
    """Best of ``reps`` timed 2048^3 matmuls (after one untimed), GFLOP/s."""
    a, b = _gemm_operands(n, device)
    torch.mm(a, b)
    return max(_gemm_once(a, b, device) for _ in range(reps if device == "cpu" else 20))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_gflop(method: str, channels: int, batch_size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    trainer = Trainer(method, {METHODS[method][0]: HPARAMS[method]}, 0, channels, torch.device("cpu"),
                      channels_last=False)
    batch = torch.from_numpy(sample_batch_batched(SyntheticDataset(channels), batch_size, np.random.RandomState(0)))
    # count the plain computation: torch's counter has no formula for the CPU kernels that compute the same layers
    # differently (oneDNN's fused convolution + ReLU, which it would skip; the output layer's phase-wise forward
    # pass, which also computes a one-pixel border of phase outputs that it then drops)
    from training.kernels.cpu import use_reference_layers
    use_reference_layers(trainer.vae)
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step(batch, 0)
    return counter.get_total_flops() / 1e9


def time_train_model(dataset, method, channels, steps, warmup, batch_size, device="cpu", gemm_every=0,
                     **options):
    """(ms per step after warmup, seconds until the first measured step, GEMM GFLOP/s measured between the steps).

    With ``gemm_every`` = k > 0, one 2048^3 matmul runs after every k-th measured step (inside ``on_step``, after a
    50 ms pause in which the data thread finishes its next batch); its time is excluded from the step times, and
    the mean of those GEMM rates is the machine's speed in the same minutes as the steps (None when ``gemm_every``
    is 0).
    """
    durations, gemm = [], []
    marks = {}
    operands = _gemm_operands(device=device) if gemm_every else None

    def stamp(t, losses):
        if t >= warmup - 1:  # synchronise only around the measured steps
            _sync(device)
        now = time.perf_counter()
        if t == warmup - 1:
            marks["first"] = now
        if t >= warmup:
            durations.append(now - marks["last"])
            if gemm_every and (t - warmup) % gemm_every == gemm_every - 1:
                time.sleep(0.05)  # the data thread first refills its queue: the GEMM gets both cores to itself
                gemm.append(_gemm_once(*operands, device=device))
                now = time.perf_counter()
        marks["last"] = now

    t0 = time.perf_counter()
    train_model(dataset, method, {METHODS[method][0]: HPARAMS[method]}, seed=0, steps=warmup + steps,
                batch_size=batch_size, device=device, num_eval_samples=0, progress=False, on_step=stamp, **options)
    return 1000 * float(np.mean(durations)), marks["first"] - t0, (float(np.mean(gemm)) if gemm else None)


def _gemm_operands(n: int = 2048, device: str = "cpu"):
    return torch.randn(n, n, device=device), torch.randn(n, n, device=device)


def _gemm_once(a, b, device: str = "cpu") -> float:
    """GFLOP/s of one ``a @ b`` (square operands)."""
    _sync(device)
    t = time.perf_counter()
    torch.mm(a, b)
    _sync(device)
    return 2 * a.shape[0] ** 3 / (time.perf_counter() - t) / 1e9


def layer_report(gemm: float, batch_size: int) -> None:
    """Forward + backward time of each convolution alone (input gradient only where training needs it)."""
    from torch import nn
    layers = [("conv1 1->32 k4 (64->32)", nn.Conv2d(1, 32, 4, 2, 1), (1, 64), False),
              ("conv2 32->32 k4 (32->16)", nn.Conv2d(32, 32, 4, 2, 1), (32, 32), True),
              ("conv3 32->64 k2 (16->8)", nn.Conv2d(32, 64, 2, 2, 0), (32, 16), True),
              ("conv4 64->64 k2 (8->4)", nn.Conv2d(64, 64, 2, 2, 0), (64, 8), True),
              ("deconv1 64->64 k4 (4->8)", nn.ConvTranspose2d(64, 64, 4, 2, 1), (64, 4), True),
              ("deconv2 64->32 k4 (8->16)", nn.ConvTranspose2d(64, 32, 4, 2, 1), (64, 8), True),
              ("deconv3 32->32 k4 (16->32)", nn.ConvTranspose2d(32, 32, 4, 2, 1), (32, 16), True),
              ("deconv4 32->1 k4 (32->64)", nn.ConvTranspose2d(32, 1, 4, 2, 1), (32, 32), True)]
    for name, layer, (cin, size), input_grad in layers:
        times = {}
        for fmt in (torch.contiguous_format, torch.channels_last):
            layer = layer.to(memory_format=fmt)
            x = torch.rand(batch_size, cin, size, size).contiguous(memory_format=fmt).requires_grad_(input_grad)
            best = float("inf")
            for _ in range(8):
                t = time.perf_counter()
                y = layer(x)
                y.backward(torch.ones_like(y))
                best = min(best, time.perf_counter() - t)
            times[fmt] = best
        out = layer(x)
        spatial = out.shape[2] * out.shape[3] if isinstance(layer, nn.Conv2d) else size * size
        gflop = 2 * layer.weight.numel() * spatial * batch_size * (3 if input_grad else 2) / 1e9
        nchw, nhwc = times[torch.contiguous_format], times[torch.channels_last]
        print(f"{name:<30} {gflop:6.3f} GFLOP  NCHW {1000 * nchw:6.2f} ms ({100 * gflop / nchw / gemm:4.1f} %)  "
              f"channels_last {1000 * nhwc:6.2f} ms ({100 * gflop / nhwc / gemm:4.1f} % of GEMM)", flush=True)


ROWS: list = []


def row(label, ms, gflop, gemm, setup_s, paired_gemm=None):
    ROWS.append((label, ms, gflop, paired_gemm))
    rate = gflop / (ms / 1000)
    paired = "" if paired_gemm is None else \
        f"   [{100 * rate / paired_gemm:4.1f} % of the {paired_gemm:.0f} GFLOP/s GEMM between its steps]"
    print(f"{label:<48} {ms:8.1f} ms/step {gflop:6.2f} GFLOP {rate:7.1f} GFLOP/s {100 * rate / gemm:5.1f} % of GEMM"
          f"   (first {setup_s:.1f} s){paired}", flush=True)


EXPLORE = [
    # label, train_model options (the defaults: channels_last, prefetch 2, batched data, foreach Adam)
    ("defaults (channels_last, prefetch=2, batched)", {}),
    ("contiguous NCHW", {"channels_last": False}),
    ("no prefetch thread", {"prefetch": 0}),
    ("reference data order (1 example per call)", {"data_order": "reference"}),
    ("reference data order, no prefetch", {"data_order": "reference", "prefetch": 0}),
    ("fused Adam", {"fused_adam": True}),
    ("1 thread", {"num_threads": 1}),
    ("2 threads", {"num_threads": 2}),
    ("torch.compile", {"compile": True}),
    ("torch.compile, NCHW", {"compile": True, "channels_last": False}),
    ("eager baseline: NCHW, no prefetch, reference order",
     {"channels_last": False, "prefetch": 0, "data_order": "reference"}),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--channels", nargs="+", type=int, default=[1, 3], choices=[1, 3])
    parser.add_argument("--steps", type=int, default=30, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GEMM is then measured on the GPU, fp32)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic squares instead of the real datasets")
    parser.add_argument("--explore", action="store_true", help="compare speed options on beta_vae, 64x64x1")
    parser.add_argument("--layers", action="store_true", help="time each convolution alone (both memory formats)")
    parser.add_argument("--gemm-every", type=int, default=10,
                        help="also time one 2048^3 matmul after every k-th measured step (0: never); each row then "
                             "also gives its rate against those GEMMs, measured in the same minutes")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, mkldnn={torch.backends.mkldnn.is_available()}")
    print(f"# load average at start: {os.getloadavg()}")
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"# device: {torch.cuda.get_device_name()} (TF32 off)")
    gemm = gemm_gflops(device=args.device)
    print(f"# fp32 GEMM 2048^3 on {args.device}: {gemm:.1f} GFLOP/s (FLOP limit of a 5.3 GFLOP step: "
          f"{5.3 / gemm * 1000:.2f} ms)", flush=True)
    if args.layers:
        layer_report(gemm, args.batch_size)
    elif args.explore:
        dataset, name = get_data(1, args.synthetic)
        gflop = step_gflop("beta_vae", 1, args.batch_size)
        print(f"# beta_vae on {name} (64x64x1), batch {args.batch_size}, {args.steps} steps after {args.warmup}")
        for label, options in EXPLORE:
            if args.device != "cpu" and options.get("num_threads") is not None:
                continue
            ms, setup, paired = time_train_model(dataset, "beta_vae", 1, args.steps, args.warmup, args.batch_size,
                                                 device=args.device, gemm_every=args.gemm_every, **options)
            row(label, ms, gflop, gemm, setup, paired)
    else:
        for channels in args.channels:
            dataset, name = get_data(channels, args.synthetic)
            for method in args.methods:
                gflop = step_gflop(method, channels, args.batch_size)
                ms, setup, paired = time_train_model(
                    dataset, method, channels, args.steps, args.warmup, args.batch_size, device=args.device,
                    gemm_every=args.gemm_every, compile=args.compile, channels_last=not args.no_channels_last)
                row(f"{method} {name} 64x64x{channels}", ms, gflop, gemm, setup, paired)
    gemm_after = gemm_gflops(device=args.device)
    print(f"# fp32 GEMM 2048^3 after the runs: {gemm_after:.1f} GFLOP/s; load average at end: {os.getloadavg()}")
    if ROWS:  # the conservative figure: against the faster of the two GEMM measurements
        best = max(gemm, gemm_after)
        print(f"# against the faster GEMM ({best:.1f} GFLOP/s):")
        for label, ms, gflop, _ in ROWS:
            print(f"#   {label:<46} {100 * gflop / (ms / 1000) / best:5.1f} % of GEMM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
