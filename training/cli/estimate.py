"""``dstudy estimate STUDY``: calibrate on this machine and project a study's wall time
(:func:`training.study.estimate.estimate_study`)."""
from __future__ import annotations

import time

from training.study.estimate import (DEFAULT_CALIBRATION_STEPS, DEFAULT_EVAL_SCALE, estimate_study,
                                     format_table)

def register(subparsers) -> None:
    """Add ``dstudy estimate STUDY [--device D] [--pack K] ...``."""
    p = subparsers.add_parser("estimate", help="calibrate on this machine and project a study's wall time")
    p.add_argument("study", help="a preset (smoke, mini, gpu, paper) or a study TOML file")
    p.add_argument("--device", default=None, help="torch device for training (default: cuda when present)")
    p.add_argument("--pack", type=int, default=None,
                   help="runs trained together (default: 32 on CUDA, 1 on CPU)")
    p.add_argument("--calibration-steps", type=int, default=DEFAULT_CALIBRATION_STEPS,
                   help=f"timed training steps per (dataset, method) (default {DEFAULT_CALIBRATION_STEPS})")
    p.add_argument("--eval-scale", type=float, default=DEFAULT_EVAL_SCALE,
                   help=f"protocol scale of the evaluation calibration (default {DEFAULT_EVAL_SCALE})")
    p.add_argument("--workers", type=int, default=1, help="identical workers the study would run on (default 1)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"),
                   help="training precision (tf32: CUDA only; bf16 on a CPU is slow without bf16 instructions)")
    p.add_argument("--no-eval", action="store_true", help="estimate training only")
    p.set_defaults(func=_handler)


def _handler(args) -> int:
    import sys

    from training.study.definition import load_study

    study = load_study(args.study)
    if args.eval_scale <= 0:
        raise ValueError(f"--eval-scale must be > 0, got {args.eval_scale}")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    start = time.perf_counter()
    rows = estimate_study(study, device=args.device, pack=args.pack, calibration_steps=args.calibration_steps,
                          eval_scale=args.eval_scale, workers=args.workers, evaluation=not args.no_eval,
                          precision=args.precision, log=log)
    import os

    import torch

    from training.engine.train import resolve_device

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    pack = args.pack if args.pack is not None else (32 if device.type == "cuda" else 1)
    header = (f"study {study.name}: {study.num_runs} runs x {study.steps} steps, batch {study.batch_size}; "
              f"device {name}, pack {pack}, {args.precision}, {args.workers} worker(s); calibration took "
              f"{time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.1f}")
    print(format_table(rows, header))
    return 0
