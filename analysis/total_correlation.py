"""Total correlation (and average mutual information) of the sampled vs the mean representation against
regularisation strength (the paper's Section 5.1; Fig. 1, 8-10, 25-28; claims C2, C3).

The statistic per model is the ``unsupervised`` evaluation's ``gaussian_total_correlation`` (or
``mutual_info_score``, ``gaussian_wasserstein_correlation``, ``..._norm``) on the ``mean`` and on the ``sampled``
representation. Curves are medians over seeds per (dataset, method, hyperparameter value), plotted against the
strength index in [0, 1]; ``annealed_reversed`` sets AnnealedVAE's direction (default: c_max = 100 -> 0.0, the
weakest; the paper leaves the direction open).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.correlation import group_spearman
from analysis.frames import UNSUPERVISED_KEYS, as_model_table, strength_index, with_reason

REPS = ("mean", "sampled")


def _short(statistic: str) -> str:
    """Resolve ``tc`` / ``gaussian_total_correlation`` (etc.) to the model-table prefix."""
    if statistic in UNSUPERVISED_KEYS:
        return statistic
    for short, key in UNSUPERVISED_KEYS.items():
        if statistic == key:
            return short
    raise ValueError(f"unknown unsupervised statistic {statistic!r}; expected one of "
                     f"{', '.join(UNSUPERVISED_KEYS.values())}")


def tc_table(scores: pd.DataFrame, statistic: str = "gaussian_total_correlation",
             annealed_reversed: bool = True) -> pd.DataFrame:
    """Per model: ``dataset, method, hparam_value, strength, seed, mean, sampled`` (the statistic on each
    representation), for the scatter of Fig. 10. Models with neither value are dropped."""
    short = _short(statistic)
    table = as_model_table(scores)
    out = table[["dataset", "method", "hparam_value", "seed"]].copy()
    out["mean"], out["sampled"] = table[f"{short}_mean"], table[f"{short}_sampled"]
    out = out.dropna(subset=["mean", "sampled"], how="all").reset_index(drop=True)
    out.insert(3, "strength", np.nan)
    for method, rows in out.groupby("method", sort=False).groups.items():
        out.loc[rows, "strength"] = strength_index(method, out.loc[rows, "hparam_value"], annealed_reversed)
    if out.empty:
        return with_reason(out, f"no {UNSUPERVISED_KEYS[short]} scores (evaluation 'unsupervised') in this store",
                           ["unsupervised"])
    return with_reason(out, None)


def tc_curves(scores: pd.DataFrame, statistic: str = "gaussian_total_correlation",
              annealed_reversed: bool = True) -> pd.DataFrame:
    """Median over seeds of the statistic per (dataset, method, hyperparameter value, representation): Fig. 1, 8, 9.

    Long frame: ``dataset, method, hparam_value, strength, representation, median, q25, q75, n_seeds``.
    """
    per_model = tc_table(scores, statistic, annealed_reversed)
    long = per_model.melt(id_vars=["dataset", "method", "hparam_value", "strength", "seed"], value_vars=list(REPS),
                          var_name="representation", value_name="value").dropna(subset=["value"])
    g = long.groupby(["dataset", "method", "hparam_value", "strength", "representation"], sort=False)["value"]
    out = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                        "n_seeds": g.count()}).reset_index()
    return with_reason(out, per_model.attrs.get("reason"), per_model.attrs.get("missing", []))


def tc_trends(scores: pd.DataFrame, statistic: str = "gaussian_total_correlation",
              annealed_reversed: bool = True) -> pd.DataFrame:
    """Direction of each curve: Spearman(strength, median statistic) per (dataset, method, representation).

    Columns ``dataset, method, representation, rho, n_values, first, last`` (medians at the weakest and strongest
    value). rho > 0: the statistic rises with regularisation. Curves with fewer than 2 values get NaN.
    """
    curves = tc_curves(scores, statistic, annealed_reversed).sort_values("strength", kind="stable")
    by = ["dataset", "method", "representation"]
    rho = group_spearman(curves, by, "strength", "median")
    g = curves.groupby(by, sort=False)["median"]
    ends = pd.DataFrame({"n_values": g.size(), "first": g.first(), "last": g.last()}).reset_index()
    out = ends.merge(rho[[*by, "rho"]], on=by, how="left") if len(ends) else ends.assign(rho=np.nan)
    out.loc[out["n_values"] < 2, "rho"] = np.nan
    out = out[["dataset", "method", "representation", "rho", "n_values", "first", "last"]]
    return with_reason(out, curves.attrs.get("reason"), curves.attrs.get("missing", []))


def mean_above_sampled(scores: pd.DataFrame, statistic: str = "gaussian_total_correlation") -> pd.DataFrame:
    """Fraction of models whose statistic on the mean representation exceeds the sampled one (Fig. 10; claim C3).

    One row per (dataset, method) plus a final ``all``/``all`` row: ``fraction``, ``n_models``.
    """
    per_model = tc_table(scores, statistic).dropna(subset=["mean", "sampled"])
    per_model = per_model.assign(above=per_model["mean"] > per_model["sampled"])
    g = per_model.groupby(["dataset", "method"], sort=False)["above"]
    out = pd.DataFrame({"fraction": g.mean(), "n_models": g.size()}).reset_index()
    total = pd.DataFrame({"dataset": ["all"], "method": ["all"],
                          "fraction": [per_model["above"].mean() if len(per_model) else np.nan],
                          "n_models": [len(per_model)]})
    out = pd.concat([out, total], ignore_index=True)
    if per_model.empty:
        return with_reason(out, "no model has the statistic on both representations", ["unsupervised"])
    return with_reason(out, None)
