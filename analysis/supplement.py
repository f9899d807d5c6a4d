"""Data of the paper's supplementary figures the report adds: pure functions, a model table (or tidy frame) in,
frames out.

* :func:`hparam_distributions` and :func:`hparam_spread` (Fig. 3 right, Fig. 14): every model's score per
  hyperparameter value of each method, and per value the seed spread (median, quartiles, range) against the spread
  of the medians, with a Kruskal-Wallis test that the values differ;
* :func:`metric_pairs` and :func:`pair_correlations` (Fig. 11): one point per model for pairs of metrics, and the
  Spearman rho of each pair with its p-value;
* :func:`efficiency_against_metrics` and :func:`efficiency_tests` (Fig. 20 for logistic regression, Fig. 21 for
  GBT): sample efficiency (accuracy with 100 training points / accuracy with 10,000) against each metric, one row
  per (model, metric), and the Spearman rho with its p-value per (dataset, metric).

The MIG groups of Fig. 23 are :func:`analysis.downstream.accuracy_by_metric_group` with ``metric="MIG"``; the
mutual-information and Wasserstein curves of Fig. 27 / 28 are :func:`analysis.total_correlation.tc_table` with
``statistic="mutual_info_score"`` / ``"gaussian_wasserstein_correlation"``.

Every result carries ``attrs['reason']`` (None when complete; else what the store lacks, in one line).
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

import numpy as np
import pandas as pd

from analysis.frames import (
    METRIC_NAMES, as_model_table, datasets_present, metric_name, missing_columns, with_reason,
)
from analysis.significance import kruskal_test, spearman_test

ID_COLUMNS = ["dataset", "method", "hparam_value", "strength", "seed"]


def hparam_distributions(scores: pd.DataFrame, metric: str, datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """Every model's ``metric`` score with its hyperparameter: columns ``dataset, method, hparam_value, strength,
    seed, value`` (NaN scores dropped), restricted to ``datasets`` when given."""
    name = metric_name(metric)
    table = as_model_table(scores)
    if datasets is not None:
        table = table[table["dataset"].isin(list(datasets))]
    out = table[ID_COLUMNS + [name]].rename(columns={name: "value"}).dropna(subset=["value"])
    out = out.assign(dataset=out["dataset"].astype(str), method=out["method"].astype(str)).reset_index(drop=True)
    if out.empty:
        return with_reason(out, f"no {name} scores in this store", [name])
    return with_reason(out, None)


def hparam_spread(long: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method) of :func:`hparam_distributions`: does the hyperparameter matter beyond the seed?

    Columns ``dataset, method, n_values`` (distinct hyperparameter values), ``n_models``, ``seed_iqr`` (the median
    over values of the interquartile range over seeds), ``median_range`` (highest minus lowest median over values),
    ``p`` (Kruskal-Wallis across the values, every model; NaN with one value) and ``best_hparam_value`` (the value of
    the highest median).
    """
    rows = []
    for (dataset, method), part in long.groupby(["dataset", "method"], sort=False):
        g = part.groupby("hparam_value")["value"]
        med = g.median()
        iqr = g.quantile(0.75) - g.quantile(0.25)
        p = kruskal_test(part["value"].to_numpy(dtype=float), part["hparam_value"].to_numpy())[1] \
            if len(med) >= 2 else np.nan
        rows.append((dataset, method, len(med), len(part), float(iqr.median()), float(med.max() - med.min()), p,
                     float(med.idxmax())))
    cols = ["dataset", "method", "n_values", "n_models", "seed_iqr", "median_range", "p", "best_hparam_value"]
    out = pd.DataFrame(rows, columns=cols)
    return with_reason(out, None if len(out) else "no models", [] if len(out) else ["models"])


def default_pairs(metrics: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Every pair of ``metrics`` (default: the six headline metrics) in the paper's order: 15 pairs."""
    names = list(METRIC_NAMES) if metrics is None else [metric_name(m) for m in metrics]
    return list(combinations(names, 2))


def metric_pairs(scores: pd.DataFrame, dataset: str, pairs: Iterable[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per (model of ``dataset``, pair of metrics) with both scores (Fig. 11): columns ``pair`` ("MIG vs
    DCI Disentanglement"), ``x_metric, y_metric, dataset, method, hparam_value, seed, x, y``. Models missing either
    score of a pair are left out of that pair; pairs with no model are named in ``attrs['reason']``."""
    table = as_model_table(scores)
    sub = table[table["dataset"] == dataset]
    pairs = default_pairs() if pairs is None else [(metric_name(a), metric_name(b)) for a, b in pairs]
    parts, empty = [], []
    for a, b in pairs:
        part = sub.dropna(subset=[a, b])
        if part.empty:
            empty.append(f"{a} vs {b}")
            continue
        parts.append(pd.DataFrame({"pair": f"{a} vs {b}", "x_metric": a, "y_metric": b,
                                   "dataset": part["dataset"].astype(str), "method": part["method"].astype(str),
                                   "hparam_value": part["hparam_value"], "seed": part["seed"],
                                   "x": part[a].to_numpy(), "y": part[b].to_numpy()}))
    cols = ["pair", "x_metric", "y_metric", "dataset", "method", "hparam_value", "seed", "x", "y"]
    out = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    if sub.empty:
        return with_reason(out, f"dataset {dataset} is not in this store", [dataset])
    if empty:
        return with_reason(out, f"no models with both scores on {dataset} for {', '.join(empty)}", empty)
    return with_reason(out, None)


def pair_correlations(pairs: pd.DataFrame) -> pd.DataFrame:
    """Spearman rho of every pair of :func:`metric_pairs` over its models: columns ``pair, x_metric, y_metric, n,
    rho, p`` (exact p below 10 models)."""
    rows = []
    for pair, part in pairs.groupby("pair", sort=False):
        rho, p, n = spearman_test(part["x"], part["y"])
        rows.append((pair, part["x_metric"].iloc[0], part["y_metric"].iloc[0], n, rho, p))
    return pd.DataFrame(rows, columns=["pair", "x_metric", "y_metric", "n", "rho", "p"])


def efficiency_against_metrics(scores: pd.DataFrame, predictor: str = "LR",
                               metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Sample efficiency of ``predictor`` (``LR``: logistic regression, Fig. 20; ``GBT``: boosted trees, Fig. 21)
    against each metric, one row per (model, metric) with both: columns ``dataset, method, hparam_value, seed,
    metric, score, efficiency``. Efficiency = accuracy with 100 training points / accuracy with 10,000
    (``Eff(LR)`` of the model table). ``attrs['reason']`` names what the store lacks."""
    if predictor not in ("LR", "GBT"):
        raise ValueError(f"predictor must be 'LR' or 'GBT', got {predictor!r}")
    table = as_model_table(scores)
    names = list(METRIC_NAMES) if metrics is None else [metric_name(m) for m in metrics]
    column = f"Eff({predictor})"
    long = table.melt(id_vars=["dataset", "method", "hparam_value", "seed", column], value_vars=names,
                      var_name="metric", value_name="score").rename(columns={column: "efficiency"})
    long = long.dropna(subset=["score", "efficiency"])
    long = long.assign(dataset=long["dataset"].astype(str), method=long["method"].astype(str))
    out = long[["dataset", "method", "hparam_value", "seed", "metric", "score", "efficiency"]].reset_index(drop=True)
    lacking = missing_columns(table, [f"{predictor}100", f"{predictor}10000"])
    if lacking:
        return with_reason(out, f"no {', '.join(lacking)} accuracies in this store, so no {column}", lacking)
    if out.empty:
        return with_reason(out, f"no model has both a metric score and {column}", [column])
    return with_reason(out, None)


def efficiency_tests(long: pd.DataFrame) -> pd.DataFrame:
    """Spearman rho of efficiency and score per (dataset, metric) of :func:`efficiency_against_metrics`: columns
    ``dataset, metric, n, rho, p``, datasets in the study's order."""
    rows = []
    order = datasets_present(long) if len(long) else []
    for dataset in order:
        part = long[long["dataset"] == dataset]
        for metric in [m for m in METRIC_NAMES if m in set(part["metric"])]:
            sub = part[part["metric"] == metric]
            rho, p, n = spearman_test(sub["score"], sub["efficiency"])
            rows.append((dataset, metric, n, rho, p))
    return pd.DataFrame(rows, columns=["dataset", "metric", "n", "rho", "p"])


__all__ = ["hparam_distributions", "hparam_spread", "default_pairs", "metric_pairs", "pair_correlations",
           "efficiency_against_metrics", "efficiency_tests"]
