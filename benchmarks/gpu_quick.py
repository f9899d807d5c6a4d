"""A short GPU measurement of packed training that fits in a few minutes of lent device time.

``benchmarks/gpu_check.sh`` is the full check (it first renders the whole 737,280-image dSprites array, ~2 min).
This one trains on a dSprites *sub-grid* (posX and posY every 4th value: 3x6x40x8x8 = 46,080 real rendered frames,
held on the device as uint8), so that its set-up takes seconds. The training computation per step is exactly the
paper's (batch 64 of 64x64x1 images through the shared architecture); only the pool the batches are drawn from is
smaller, which does not change the cost of a step. Prints and writes (``--json``) model-steps/s per K and precision.

    python benchmarks/gpu_quick.py --ks 1,16,64,128 --precisions tf32,bf16 --budget 150 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.data.dsprites_render import render_dsprites  # noqa: E402
from train_many import packed_rate  # noqa: E402


class DSpritesSubgrid:
    """dSprites with posX, posY restricted to every ``stride``-th class; the DESIGN dataset interface plus
    ``device_table()`` (the whole grid as uint8 (rows, 64, 64), C order)."""
    name = "dsprites_subgrid"
    factor_names = ["shape", "scale", "orientation", "posX", "posY"]
    observation_shape = (64, 64, 1)
    source = {"kind": "procedural", "generator": "dsprites sub-grid (benchmark only)"}

    def __init__(self, stride: int = 4):
        self.stride = stride
        self.factors_num_values = [3, 6, 40, 32 // stride, 32 // stride]
        self.factor_sizes = self.factors_num_values
        self.num_factors = 5

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(n, size=num) for n in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        f = np.asarray(factors)
        images = render_dsprites(f[:, 0], f[:, 1], f[:, 2], f[:, 3] * self.stride, f[:, 4] * self.stride)
        return images[..., None].astype(np.float32)

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]

    def device_table(self):
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in self.factors_num_values], indexing="ij"), -1).reshape(-1, 5)
        return render_dsprites(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3] * self.stride,
                               grid[:, 4] * self.stride), 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,16,64,128")
    parser.add_argument("--precisions", default="tf32,bf16")
    parser.add_argument("--impl", default="gemm")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--budget", type=float, default=150.0, help="stop starting new configurations after this")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    dataset = DSpritesSubgrid()
    out = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
           "method": "beta_vae", "batch_size": 64, "results": []}
    print(f"device {out['device']}, torch {torch.__version__}", flush=True)
    for precision in args.precisions.split(","):
        for k in (int(v) for v in args.ks.split(",")):
            if time.perf_counter() - start > args.budget:
                print("budget reached", flush=True)
                break
            try:
                rate, seconds = packed_rate(dataset, "beta_vae", {"beta": 4.0}, k, args.steps, args.warmup, 64,
                                            device, precision if device.type == "cuda" else "fp32",
                                            device.type == "cuda", impl=args.impl)
            except Exception as exc:  # noqa: BLE001 - record and go on with the next configuration
                print(f"{precision} K={k}: failed: {type(exc).__name__}: {exc}", flush=True)
                out["results"].append({"precision": precision, "k": k, "error": str(exc)[:300]})
                continue
            print(f"{precision:5s} K={k:4d}: {rate:9.0f} model-steps/s ({seconds:.2f} s timed)", flush=True)
            out["results"].append({"precision": precision, "k": k, "model_steps_per_s": rate, "seconds": seconds})
            if args.json:
                Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
