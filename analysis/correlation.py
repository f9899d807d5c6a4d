"""Rank agreement: metric x metric Spearman per dataset (Fig. 2, 11, 12) and dataset x dataset per metric (Fig. 4
right, 17, 18), the paper's Sections 5.2 and 5.4.

Correlations are scipy-style Spearman rho (average ranks for ties), fractions in [-1, 1]; figures multiply by 100.
Pairs are complete-case per pair of columns; a pair with fewer than ``min_models`` complete models is NaN. Each
result carries ``attrs['reason']`` (None when complete) and ``attrs['missing']`` naming what the store lacks.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from analysis.frames import (
    METRIC_NAMES, as_model_table, datasets_present, metric_name, missing_columns, with_reason,
)

PAIRINGS = ("config_median", "model")


def spearman_array(values: np.ndarray, min_models: int = 3) -> np.ndarray:
    """Square Spearman matrix (P, P) of the columns of ``values`` (N, P), pairwise complete observations.

    All-NaN or constant columns give NaN rows/columns; when the other columns have no NaN, one numpy rank +
    correlation (fast path), else pandas' pairwise-complete Spearman. Pairs with fewer than ``min_models`` complete
    observations are NaN.
    """
    values = np.asarray(values, dtype=float)
    n_cols = values.shape[1]
    out = np.full((n_cols, n_cols), np.nan)
    usable = np.nonzero(~np.isnan(values).all(axis=0))[0] if len(values) else np.zeros(0, dtype=int)
    if usable.size == 0:
        return out
    sub = values[:, usable]
    if not np.isnan(sub).any():
        if len(sub) >= max(int(min_models), 2):
            ranks = rankdata(sub, axis=0)
            ranks -= ranks.mean(axis=0)
            norm = np.sqrt((ranks ** 2).sum(axis=0))
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = np.einsum("ij,ik->jk", ranks, ranks) / np.outer(norm, norm)
            out[np.ix_(usable, usable)] = np.where(np.outer(norm, norm) > 0, np.clip(rho, -1.0, 1.0), np.nan)
        return out
    rho = pd.DataFrame(sub).corr(method="spearman", min_periods=max(int(min_models), 2)).to_numpy()
    out[np.ix_(usable, usable)] = rho
    return out


def spearman_matrix(data: pd.DataFrame, min_models: int = 3) -> pd.DataFrame:
    """Square Spearman frame of the columns of ``data`` (see :func:`spearman_array`)."""
    cols = list(data.columns)
    return pd.DataFrame(spearman_array(data.to_numpy(dtype=float), min_models), index=cols, columns=cols)


def spearman_table(table: pd.DataFrame, rows: Iterable[str], columns: Iterable[str],
                   min_models: int = 3) -> pd.DataFrame:
    """Spearman rho between each column in ``rows`` and each in ``columns`` of ``table`` (models as observations).

    Returns a (len(rows), len(columns)) frame; a pair with fewer than ``min_models`` complete observations, or with a
    constant column, is NaN. Columns absent from ``table`` give NaN rows/columns.
    """
    rows, columns = list(rows), list(columns)
    union = list(dict.fromkeys(rows + columns))
    data = pd.DataFrame({c: (table[c].astype(float) if c in table.columns else np.nan) for c in union},
                        index=table.index)
    full = spearman_matrix(data, min_models=min_models)
    out = full.loc[rows, columns].astype(float)
    out.index.name, out.columns.name = None, None
    return out


def group_spearman(frame: pd.DataFrame, by: list[str], x: str, y: str) -> pd.DataFrame:
    """Spearman rho of ``x`` vs ``y`` within each group of ``by`` (vectorised: grouped average ranks, then Pearson).

    Rows with a NaN in ``x`` or ``y`` are dropped. Returns a frame with the ``by`` columns, ``rho`` (NaN for groups
    with fewer than 2 rows or a constant column) and ``n``.
    """
    data = frame.loc[frame[x].notna() & frame[y].notna(), [*by, x, y]]
    if data.empty:
        return pd.DataFrame(columns=[*by, "rho", "n"])
    g = data.groupby(by, sort=False)
    rx, ry = g[x].rank(), g[y].rank()
    keys = [data[c] for c in by]
    cx = rx - rx.groupby(keys, sort=False).transform("mean")
    cy = ry - ry.groupby(keys, sort=False).transform("mean")
    parts = pd.DataFrame({"xy": cx * cy, "xx": cx * cx, "yy": cy * cy})
    sums = parts.groupby(keys, sort=False).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = sums["xy"] / np.sqrt(sums["xx"] * sums["yy"])
    rho = rho.where((sums["xx"] > 0) & (sums["yy"] > 0))
    out = pd.DataFrame({"rho": rho.clip(-1.0, 1.0), "n": g.size()}).reset_index()
    return out


def metric_correlations(scores: pd.DataFrame, dataset: str, representation: str = "mean",
                        min_models: int = 3) -> pd.DataFrame:
    """Spearman rho between every pair of the six metrics over all models of ``dataset`` (Fig. 2 / 12).

    ``scores``: tidy score frame or model table. Returns a 6 x 6 frame indexed by :data:`METRIC_NAMES`
    (``attrs['n_models']`` = models of the dataset). A missing dataset gives an all-NaN matrix; a missing metric gives
    a NaN row and column; ``attrs['reason']`` says which.
    """
    table = as_model_table(scores, representation=representation)
    sub = table[table["dataset"] == dataset]
    out = spearman_table(sub, METRIC_NAMES, METRIC_NAMES, min_models=min_models)
    out.attrs["n_models"] = int(len(sub))
    if len(sub) == 0:
        present = ", ".join(datasets_present(table)) or "none"
        return with_reason(out, f"dataset {dataset} is not in this store (datasets present: {present})", [dataset])
    lacking = missing_columns(sub, METRIC_NAMES)
    if lacking:
        return with_reason(out, f"no scores on {dataset} for {', '.join(lacking)}", lacking)
    if len(sub) < min_models:
        return with_reason(out, f"only {len(sub)} models on {dataset}; need at least {min_models}", [])
    return with_reason(out, None)


def config_medians(scores: pd.DataFrame, metric: str, representation: str = "mean") -> pd.DataFrame:
    """Median over seeds of ``metric`` for every (method, hyperparameter value) configuration on every dataset.

    Returns a frame indexed by (method, hparam_value) with one column per dataset (study order); NaN where a
    configuration was not run on a dataset. ``attrs['n_seeds']``: the seed count behind each median (same shape).
    """
    name = metric_name(metric)
    table = as_model_table(scores, representation=representation)
    grouped = table.groupby(["method", "hparam_value", "dataset"], sort=False)[name]
    med = grouped.median().unstack("dataset")
    counts = grouped.count().unstack("dataset")
    cols = [d for d in datasets_present(table) if d in med.columns]
    med = med.reindex(columns=cols)
    med.columns.name = None
    med.attrs["n_seeds"] = counts.reindex(columns=cols)
    return med


def dataset_correlations(scores: pd.DataFrame, metric: str, pairing: str = "config_median",
                         representation: str = "mean", min_pairs: int = 3) -> pd.DataFrame:
    """Dataset x dataset Spearman rho of ``metric`` (Fig. 4 right / 17): does a configuration's rank transfer?

    ``pairing='config_median'`` (default; the paper leaves the pairing open): rho between the median-over-seeds scores of the
    configurations shared by the two datasets (36 in the paper grid). ``pairing='model'``: pair individual models by
    (configuration, seed) across the two datasets (1 800 pairs in the paper grid). Returns a square frame over the
    datasets present (study order); ``attrs['reason']`` when fewer than two datasets or the metric is missing.
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; expected one of {', '.join(PAIRINGS)}")
    name = metric_name(metric)
    table = as_model_table(scores, representation=representation)
    datasets = datasets_present(table)
    if pairing == "config_median":
        wide = config_medians(table, name)
    else:
        wide = table.groupby(["method", "hparam_value", "seed", "dataset"], sort=False)[name].mean()
        wide = wide.unstack("dataset").reindex(columns=datasets)
    out = spearman_table(wide, datasets, datasets, min_models=min_pairs)
    out.attrs["pairing"] = pairing
    if missing_columns(table, [name]):
        return with_reason(out, f"no {name} scores in this store", [name])
    if len(datasets) < 2:
        return with_reason(out, f"needs at least two datasets; this store has {len(datasets)}", ["datasets"])
    return with_reason(out, None)
