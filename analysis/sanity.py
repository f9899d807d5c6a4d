"""Sanity checks a reader looks at first: does the regularisation do what the objectives make it do?

For every method with two or more regularisation strengths and each quantity below, the Spearman correlation between
strength and the quantity over every model of each dataset (averaged over datasets), with a 95 % interval (a
bootstrap of the models stratified by configuration, :mod:`analysis.claims.engine`) and a one-sided permutation
p-value (strengths shuffled among each group's models):

* the KL term (``kl_loss``) should fall with strength (beta-VAE, beta-TCVAE, AnnealedVAE weight or cap it);
* the reconstruction loss should rise (worsen) with strength;
* the sampled representation's total correlation should fall (beta-VAE, beta-TCVAE: the paper's Fig. 1);
* MIG: shown as it comes (the paper finds no consistent direction).

``outcome``: ``as expected`` / ``opposite`` (``rises`` / ``falls`` for MIG) when the interval lies on one side of 0
and the permutation p-value in that direction is below 0.025, else ``no clear trend``. A store whose checks fail has a
bug or undertrained models before it has findings.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.bootstrap import centred_interval
from analysis.claims.controls import trend_with_null
from analysis.claims.engine import Context, NotMeasurable, _replicates
from analysis.frames import as_model_table
from analysis.variance import config_cube

#: (quantity column, label, expected sign of rho(strength, quantity), methods it is expected for; None = all)
CHECKS = (
    ("kl_loss", "KL term", -1, ("beta_vae", "beta_tc_vae", "annealed_vae")),
    ("reconstruction_loss", "reconstruction loss", +1, ("beta_vae", "beta_tc_vae", "annealed_vae")),
    ("tc_sampled", "total correlation (sampled)", -1, ("beta_vae", "beta_tc_vae")),
    ("MIG", "MIG", 0, None),
)
COLUMNS = ["quantity", "method", "expected", "rho", "ci_low", "ci_high", "p", "n_models", "outcome"]


def sanity_checks(scores: pd.DataFrame, runs: pd.DataFrame | None = None, n_boot: int = 200,
                  random_state: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """One row per (quantity, method) the store can check: columns :data:`COLUMNS` (``expected``: "falls", "rises"
    or "-"; ``rho``, its interval and the permutation p-value in its direction; ``n_models``; ``outcome``). Empty
    when nothing can be checked."""
    table = as_model_table(scores, runs=runs)
    cube = config_cube(table, [c for c, *_ in CHECKS])
    ctx = Context(cube)
    replicates = list(_replicates(cube, "models", n_boot, random_state)) if len(cube.seeds) >= 2 else []
    inflate = math.sqrt(len(cube.seeds) / max(len(cube.seeds) - 1, 1))
    rows = []
    for column, label, sign, expected_for in CHECKS:
        for method in dict.fromkeys(cube.group_method):
            if expected_for is not None and method not in expected_for:
                continue
            try:
                point = trend_with_null(ctx, column, (method,), "rho")
            except NotMeasurable:
                continue
            reps = np.array([[_trend_or_nan(r, column, method)] for r in replicates]) if replicates else \
                np.full((1, 1), np.nan)
            low, high = (v[0] for v in centred_interval(np.array([point["rho"]]), reps, alpha, inflate))
            direction = "rises" if low > 0 else "falls" if high < 0 else None
            p = point["rho:p_above"] if direction == "rises" else point["rho:p_below"] if direction == "falls" else \
                min(point["rho:p_above"], point["rho:p_below"])
            if direction is None or not p < alpha / 2:
                outcome = "no clear trend"
            elif sign == 0:
                outcome = direction
            else:
                outcome = "as expected" if (direction == "rises") == (sign > 0) else "opposite"
            n_models = int((~np.isnan(cube.column(column)[ctx.in_methods((method,))])).sum())
            rows.append({"quantity": label, "method": method, "expected": {-1: "falls", 1: "rises", 0: "-"}[sign],
                         "rho": point["rho"], "ci_low": low, "ci_high": high, "p": p, "n_models": n_models,
                         "outcome": outcome})
    return pd.DataFrame(rows, columns=COLUMNS)


def _trend_or_nan(ctx: Context, column: str, method: str) -> float:
    try:
        return trend_with_null(ctx, column, (method,), "rho")["rho"]
    except NotMeasurable:
        return float("nan")
