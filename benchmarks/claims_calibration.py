"""Calibration of the claims scorecard: false positives on pure noise, power on planted truths.

For each claim C2-C14 it prints

* the share of noise tables (``analysis.planted.noise_table``: every quantity iid uniform) on which the claim comes
  out ``supported``, per seed count (it must stay at or below 5 %);
* on the paper-like planted table where every claim is true (``planted_table()``): the share of draws with the
  right verdict, ``supported``;
* on the planted table where just that claim is false (``planted_table(flip=claim)``): the share with the right
  verdict, ``not supported`` (both must reach 80 % at 10 seeds).

    python benchmarks/claims_calibration.py [--draws 20] [--noise-seeds 2 3 5 10] [--seeds 10] [--n-boot 200]
    python benchmarks/claims_calibration.py --stability      # how far the interval ends move between bootstraps
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np
import pandas as pd

from analysis.claims import scorecard
from analysis.planted import calibration, planted_table


def stability(n_boot: int, repeats: int = 5) -> pd.DataFrame:
    """The sd, over ``repeats`` bootstraps with different random states, of every interval end of the scorecard of
    one planted table (10 seeds)."""
    table = planted_table(None, 10, random_state=0)
    ends = defaultdict(list)
    for r in range(repeats):
        card = scorecard(table, n_boot=n_boot, random_state=r)
        for claim, low, high in zip(card["claim"], card["ci_low"], card["ci_high"]):
            ends[claim].append((low, high))
    return pd.DataFrame({claim: {"sd of low end": float(np.std([e[0] for e in v])),
                                 "sd of high end": float(np.std([e[1] for e in v]))}
                         for claim, v in ends.items()}).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[2, 3, 5, 10])
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the planted tables")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--stability", action="store_true", help="only the interval-end stability, n_boot 50..400")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    started = time.perf_counter()
    if args.stability:
        for n_boot in (50, 100, 200, 400):
            frame = stability(n_boot)
            print(f"n_boot {n_boot}: largest sd of an interval end {frame.to_numpy().max():.4f}, "
                  f"median {np.median(frame.to_numpy()):.4f}")
    else:
        frame = calibration(args.draws, args.noise_seeds, args.seeds, args.n_boot)
        pd.set_option("display.width", 200)
        print((100 * frame).round(0).astype(int).to_string())
        print("(percent of draws; noise columns: supported on pure noise, must be <= 5; planted columns: the right "
              "verdict, must be >= 80)")
    print(f"{time.perf_counter() - started:.0f} s; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
