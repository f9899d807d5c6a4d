"""Tested directions and winners: the frames behind every "rises", "falls", "best" or "highest" in the report.

Each function takes per-model data (a model table or a long frame with one row per model) and returns one row per
curve or cell with the statistic, its p-value (:mod:`analysis.significance`; every model counts, not medians) and
what the caption may name when the test is significant:

* :func:`curve_trends`: per group (e.g. dataset, method), Spearman of a value against the regularisation strength
  over every model, and a Kruskal-Wallis test that the strengths differ with the strength of the highest median;
* :func:`group_differences`: per group, Kruskal-Wallis across the levels of a factor (e.g. methods in a violin
  panel) with the levels of the lowest and the highest median;
* :func:`method_contrasts`: per (dataset, metric), the method with the highest median against the runner-up
  (Mann-Whitney over their models) - the only way a caption or table may name a winning method;
* :func:`strength_contrasts`: per (dataset, metric, method), whether the hyperparameter values differ
  (Kruskal-Wallis) and which has the highest median.

p-values are raw (one test each); callers that make several claims in one sentence adjust them with
:func:`analysis.significance.holm`.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.frames import METRIC_NAMES, as_model_table
from analysis.significance import kruskal_test, mannwhitney_test, spearman_test

MIN_LEVELS = 3


def _groups(frame: pd.DataFrame, by: list[str]):
    if not by:
        yield (), frame
        return
    for key, part in frame.groupby(by, sort=False, observed=True):
        yield (key if isinstance(key, tuple) else (key,)), part


def curve_trends(models: pd.DataFrame, by: Iterable[str], y: str = "value", x: str = "strength",
                 min_levels: int = MIN_LEVELS) -> pd.DataFrame:
    """Direction of ``y`` against ``x`` within each group of ``by``, tested on every model.

    ``models``: one row per model with the ``by`` columns, ``x`` and ``y`` (NaN rows are ignored). Returns one row
    per group: the ``by`` columns, ``n`` (models), ``levels`` (distinct x values), ``rho`` and ``p`` (Spearman over
    all models; NaN when ``levels < min_levels``), ``kw_p`` (Kruskal-Wallis that the x levels differ; NaN with fewer
    than two levels), ``peak`` (the x value with the highest median of y) and ``peak_median``.
    """
    by = list(by)
    cols = [*by, "n", "levels", "rho", "p", "kw_p", "peak", "peak_median"]
    rows = []
    data = models.dropna(subset=[x, y])
    for key, part in _groups(data, by):
        xs, ys = part[x].to_numpy(dtype=float), part[y].to_numpy(dtype=float)
        levels = int(np.unique(xs).size)
        rho, p = (np.nan, np.nan)
        if levels >= min_levels:
            rho, p, _n = spearman_test(xs, ys)
        kw_p = kruskal_test(ys, xs)[1] if levels >= 2 else np.nan
        med = part.groupby(x)[y].median()
        rows.append((*key, len(part), levels, rho, p, kw_p, float(med.idxmax()), float(med.max())))
    return pd.DataFrame(rows, columns=cols)


def group_differences(models: pd.DataFrame, by: Iterable[str], factor: str, y: str = "value") -> pd.DataFrame:
    """Kruskal-Wallis across the levels of ``factor`` within each group of ``by``, on every model.

    Returns one row per group: the ``by`` columns, ``n``, ``k`` (levels with data), ``h``, ``p``, ``low`` / ``high``
    (levels with the lowest / highest median), ``low_median`` / ``high_median``.
    """
    by = list(by)
    cols = [*by, "n", "k", "h", "p", "low", "high", "low_median", "high_median"]
    rows = []
    data = models.dropna(subset=[y])
    for key, part in _groups(data, by):
        levels = part[factor].astype(str)
        h, p, k = kruskal_test(part[y].to_numpy(dtype=float), levels.to_numpy())
        med = part.groupby(levels)[y].median()
        rows.append((*key, len(part), k, h, p, med.idxmin(), med.idxmax(), float(med.min()), float(med.max())))
    return pd.DataFrame(rows, columns=cols)


def method_contrasts(scores: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Per (dataset, metric): the method with the highest median score against the runner-up, on every model.

    ``scores``: tidy frame or model table. Returns ``dataset, metric, winner, winner_median, runner_up,
    runner_up_median, n_winner, n_runner_up, p`` (two-sided Mann-Whitney of the two methods' models) and ``kw_p``
    (Kruskal-Wallis across all methods). Cells with fewer than two methods are left out.
    """
    table = as_model_table(scores)
    metrics = list(METRIC_NAMES) if metrics is None else list(metrics)
    cols = ["dataset", "metric", "winner", "winner_median", "runner_up", "runner_up_median", "n_winner",
            "n_runner_up", "p", "kw_p"]
    rows = []
    for dataset, part in table.groupby("dataset", sort=False, observed=True):
        for metric in metrics:
            sub = part.dropna(subset=[metric])
            groups = {m: g[metric].to_numpy(dtype=float) for m, g in sub.groupby(sub["method"].astype(str))}
            if len(groups) < 2:
                continue
            med = pd.Series({m: float(np.median(v)) for m, v in groups.items()}).sort_values(ascending=False,
                                                                                              kind="stable")
            win, run = med.index[0], med.index[1]
            rows.append((dataset, metric, win, med.iloc[0], run, med.iloc[1], len(groups[win]), len(groups[run]),
                         mannwhitney_test(groups[win], groups[run]),
                         kruskal_test(sub[metric].to_numpy(dtype=float), sub["method"].astype(str).to_numpy())[1]))
    return pd.DataFrame(rows, columns=cols)


def strength_contrasts(scores: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Per (dataset, metric, method): do the method's hyperparameter values differ, and which has the highest median?

    Returns ``dataset, metric, method, n_values, best_hparam_value, best_strength, best_median, p`` (Kruskal-Wallis
    across the values, on every model). Methods with a single value are left out.
    """
    table = as_model_table(scores)
    metrics = list(METRIC_NAMES) if metrics is None else list(metrics)
    cols = ["dataset", "metric", "method", "n_values", "best_hparam_value", "best_strength", "best_median", "p"]
    rows = []
    for (dataset, method), part in table.groupby(["dataset", "method"], sort=False, observed=True):
        for metric in metrics:
            sub = part.dropna(subset=[metric])
            values = sub["hparam_value"].to_numpy(dtype=float)
            if np.unique(values).size < 2:
                continue
            med = sub.groupby("hparam_value")[metric].median()
            best = float(med.idxmax())
            strength = float(sub.loc[sub["hparam_value"] == best, "strength"].iloc[0])
            rows.append((dataset, metric, method, int(np.unique(values).size), best, strength, float(med.max()),
                         kruskal_test(sub[metric].to_numpy(dtype=float), values)[1]))
    return pd.DataFrame(rows, columns=cols)


__all__ = ["curve_trends", "group_differences", "method_contrasts", "strength_contrasts"]
