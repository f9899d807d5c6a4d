"""What matters: objective, hyperparameter or seed (spec/analysis.md sections 1.3 and 1.4; Fig. 3, 4 left, 13-15;
Table 5).

* :func:`variance_explained`: OLS R^2 of each (dataset, metric)'s scores on a one-hot objective and on a one-hot
  objective x hyperparameter, via statsmodels (Table 5); the seed's share is 1 - R^2(objective x hyperparameter).
* :func:`variance_summary`: the unweighted means the paper reports (overall, per metric, per dataset).
* :func:`score_distributions`: long data for the violin plots (per method, per hyperparameter).
* :func:`strength_curves`: median over seeds against regularisation strength (Fig. 4 left / 15).
* :func:`method_winners`, :func:`seed_beats_config`, :func:`best_strength`: the checks behind claims C5, C6, C8.

All R^2 values and probabilities are fractions in [0, 1].
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm

from analysis.frames import (
    FIGURE_METHOD_ORDER, METRIC_NAMES, as_model_table, datasets_present, metric_name, with_reason,
)

R2_COLUMNS = ("method", "method_x_hparam")


def r_squared_ols(y: np.ndarray, groups: np.ndarray) -> float:
    """R^2 of an OLS fit (statsmodels, with intercept) of ``y`` (n,) on the one-hot encoding of ``groups`` (n,).

    One group gives 0; a constant ``y`` gives NaN (R^2 undefined).
    """
    y = np.asarray(y, dtype=float)
    if y.size < 2 or np.allclose(y, y[0]):
        return float("nan")
    dummies = pd.get_dummies(pd.Series(groups).astype(str), drop_first=True, dtype=float)
    if dummies.shape[1] == 0:
        return 0.0
    design = sm.add_constant(dummies.to_numpy(), has_constant="add")
    return float(sm.OLS(y, design).fit().rsquared)


def r_squared_between(y: np.ndarray, codes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Between-group over total sum of squares = R^2 of OLS on group dummies, for one or many weightings.

    ``y``: (n,) values; ``codes``: (n,) integer group codes in [0, k); ``weights``: None or (b, n) non-negative
    replication weights (a seed bootstrap replicate is a weighting). Returns a float (no weights) or (b,) array.
    Closed form, used by the bootstrap; equals :func:`r_squared_ols` for unit weights.
    """
    y = np.asarray(y, dtype=float)
    codes = np.asarray(codes, dtype=int)
    single = weights is None
    w = np.ones((1, y.size)) if single else np.atleast_2d(np.asarray(weights, dtype=float))
    k = int(codes.max()) + 1 if codes.size else 0
    onehot = np.zeros((y.size, k))
    onehot[np.arange(y.size), codes] = 1.0
    total_w = w.sum(axis=1)
    mean = (w @ y) / total_w
    ss_total = w @ (y ** 2) - total_w * mean ** 2
    group_w = w @ onehot
    group_sum = (w * y) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_between = np.where(group_w > 0, group_sum ** 2 / np.where(group_w > 0, group_w, 1), 0.0).sum(axis=1) \
            - total_w * mean ** 2
        r2 = np.where(ss_total > 1e-12 * np.maximum(total_w, 1), ss_between / ss_total, np.nan)
    r2 = np.clip(r2, 0.0, 1.0)
    return float(r2[0]) if single else r2


def variance_explained(scores: pd.DataFrame, representation: str = "mean", min_models: int = 3) -> pd.DataFrame:
    """Share of each (dataset, metric)'s score variance explained by the objective and by objective x hyperparameter.

    ``scores``: tidy score frame or model table. Returns one row per (dataset present, metric) indexed by
    (dataset, metric) with columns ``method`` (R^2 of the 6-category objective), ``method_x_hparam`` (R^2 of the
    36-category configuration), ``seed`` (1 - method_x_hparam: the residual, credited to the seed), ``n_models``,
    ``n_methods``, ``n_configs`` and ``reason`` (None, or why the cell is NaN). ``attrs['means']`` holds the
    unweighted means over the measurable cells (the paper's 37 % / 59 %); ``attrs['reason']`` is set when the store
    has no measurable cell.
    """
    table = as_model_table(scores, representation=representation)
    rows = []
    for dataset in datasets_present(table):
        sub = table[table["dataset"] == dataset]
        for name in METRIC_NAMES:
            ok = sub[name].notna().to_numpy()
            y = sub[name].to_numpy()[ok]
            methods = sub["method"].to_numpy()[ok]
            configs = sub["config"].to_numpy()[ok]
            row = {"dataset": dataset, "metric": name, "n_models": int(ok.sum()),
                   "n_methods": int(len(set(methods))), "n_configs": int(len(set(configs))), "reason": None}
            if ok.sum() < min_models:
                row.update(method=np.nan, method_x_hparam=np.nan,
                           reason=f"{int(ok.sum())} models with {name} on {dataset}; need {min_models}")
            elif np.allclose(y, y[0]):
                row.update(method=np.nan, method_x_hparam=np.nan, reason=f"{name} is constant on {dataset}")
            else:
                row.update(method=r_squared_ols(y, methods), method_x_hparam=r_squared_ols(y, configs))
            rows.append(row)
    out = pd.DataFrame(rows, columns=["dataset", "metric", "method", "method_x_hparam", "n_models", "n_methods",
                                      "n_configs", "reason"])
    out["seed"] = 1.0 - out["method_x_hparam"]
    out = out.set_index(["dataset", "metric"])[["method", "method_x_hparam", "seed", "n_models", "n_methods",
                                                "n_configs", "reason"]]
    out.attrs["means"] = {c: float(out[c].mean()) if out[c].notna().any() else float("nan")
                          for c in (*R2_COLUMNS, "seed")}
    if not out["method"].notna().any():
        return with_reason(out, "no (dataset, metric) cell has enough models to fit", ["scores"])
    return with_reason(out, None)


def variance_summary(r2: pd.DataFrame) -> pd.DataFrame:
    """Unweighted means of a :func:`variance_explained` table: overall, per metric and per dataset.

    Returns a frame with columns ``level`` (``all``, ``metric``, ``dataset``), ``name``, ``method``,
    ``method_x_hparam``, ``seed``, ``n_cells`` (the measurable cells averaged).
    """
    flat = r2.reset_index()
    parts = [pd.DataFrame({"level": ["all"], "name": ["all"],
                           **{c: [flat[c].mean()] for c in (*R2_COLUMNS, "seed")},
                           "n_cells": [int(flat["method"].notna().sum())]})]
    for level in ("metric", "dataset"):
        g = flat.groupby(level, sort=False)
        part = g[[*R2_COLUMNS, "seed"]].mean().reset_index().rename(columns={level: "name"})
        part["n_cells"] = g["method"].count().to_numpy()
        part.insert(0, "level", level)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def paper_layout(r2: pd.DataFrame, column: str = "method") -> pd.DataFrame:
    """Table 5's layout of one R^2 column: datasets as rows, metrics as columns (fractions)."""
    if column not in (*R2_COLUMNS, "seed"):
        raise ValueError(f"unknown column {column!r}; expected one of method, method_x_hparam, seed")
    out = r2[column].unstack("metric")
    return out.reindex(columns=[m for m in METRIC_NAMES if m in out.columns])


def score_distributions(scores: pd.DataFrame, dataset: str | None = None, metric: str | None = None,
                        representation: str = "mean") -> pd.DataFrame:
    """Long data for the violin plots of Fig. 3 / 13 / 14: one row per (model, metric) with its score.

    Columns ``dataset, method, method_code`` (the figures' 0..5 order: beta-VAE, FactorVAE, beta-TCVAE, DIP-VAE-I,
    DIP-VAE-II, AnnealedVAE), ``hparam_value, strength, seed, metric, value``. Filters to ``dataset`` / ``metric``
    when given. Rows with a NaN score are dropped; an empty result has ``attrs['reason']``.
    """
    table = as_model_table(scores, representation=representation)
    names = list(METRIC_NAMES) if metric is None else [metric_name(metric)]
    if dataset is not None:
        table = table[table["dataset"] == dataset]
    long = table.melt(id_vars=["dataset", "method", "hparam_value", "strength", "seed"], value_vars=names,
                      var_name="metric", value_name="value").dropna(subset=["value"])
    codes = {m: i for i, m in enumerate(FIGURE_METHOD_ORDER)}
    long.insert(2, "method_code", long["method"].map(codes).astype("Int64"))
    long = long.reset_index(drop=True)
    if long.empty:
        what = " and ".join(x for x in (dataset, None if metric is None else names[0]) if x) or "this store"
        return with_reason(long, f"no scores for {what}", [what])
    return with_reason(long, None)


def strength_curves(scores: pd.DataFrame, metric: str | None = None, representation: str = "mean") -> pd.DataFrame:
    """Median (and quartiles) over seeds of each metric per (dataset, method, hyperparameter): Fig. 4 left / 15.

    Columns ``dataset, metric, method, hparam_value, strength, median, q25, q75, n_seeds``.
    """
    long = score_distributions(scores, metric=metric, representation=representation)
    g = long.groupby(["dataset", "metric", "method", "hparam_value", "strength"], sort=False)["value"]
    out = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                        "n_seeds": g.count()}).reset_index()
    return with_reason(out, long.attrs.get("reason"), long.attrs.get("missing", []))


def method_winners(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """Per (dataset, metric): the method with the highest median score, the runner-up, and whether their
    interquartile ranges overlap (claim C5). Columns ``dataset, metric, winner, winner_median, runner_up,
    runner_up_median, iqr_overlap`` (bool; NaN-free rows only, cells with fewer than two methods are dropped).
    """
    long = score_distributions(scores, representation=representation)
    g = long.groupby(["dataset", "metric", "method"], sort=False)["value"]
    stats = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75)}).reset_index()
    stats = stats.sort_values(["dataset", "metric", "median"], ascending=[True, True, False], kind="stable")
    first = stats.groupby(["dataset", "metric"], sort=False).nth(0).set_index(["dataset", "metric"])
    second = stats.groupby(["dataset", "metric"], sort=False).nth(1).set_index(["dataset", "metric"])
    both = first.join(second, lsuffix="_w", rsuffix="_r", how="inner")
    out = pd.DataFrame({
        "winner": both["method_w"], "winner_median": both["median_w"],
        "runner_up": both["method_r"], "runner_up_median": both["median_r"],
        "iqr_overlap": (both["q25_w"] <= both["q75_r"]) & (both["q25_r"] <= both["q75_w"]),
    }).reset_index()
    if out.empty:
        return with_reason(out, "no (dataset, metric) cell has scores for two or more methods", ["methods"])
    return with_reason(out, None)


def config_array(table: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Scores as a dense array (len(columns), groups, hyperparameters, seeds), NaN where no run.

    Groups are the (dataset, method) pairs of the model ``table``; hyperparameter slots are the method's values in
    increasing order (padded with NaN when methods have different counts). Returns the array, the groups as a
    frame (``dataset, method``) and the hyperparameter values (groups, H) (NaN for padding).
    """
    keys = table[["dataset", "method"]].astype(str)
    g_codes, g_uniques = pd.factorize(pd.MultiIndex.from_frame(keys))
    h_codes = table.groupby([keys["dataset"], keys["method"]], sort=False)["hparam_value"].rank(method="dense")
    h_codes = h_codes.to_numpy(dtype=int) - 1
    s_codes, _ = pd.factorize(table["seed"])
    n_g, n_h, n_s = len(g_uniques), (h_codes.max() + 1 if len(table) else 0), (s_codes.max() + 1 if len(table) else 0)
    arr = np.full((len(columns), n_g, n_h, n_s), np.nan)
    for i, column in enumerate(columns):
        arr[i, g_codes, h_codes, s_codes] = table[column].to_numpy(dtype=float)
    values = np.full((n_g, n_h), np.nan)
    values[g_codes, h_codes] = table["hparam_value"].to_numpy(dtype=float)
    groups = pd.DataFrame(list(g_uniques), columns=["dataset", "method"])
    return arr, groups, values


def seed_beats_config(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """How often a run of a worse hyperparameter beats a run of a better one (claim C6, Fig. 3 right / 14).

    For each (dataset, metric, method) and each pair of the method's hyperparameter values with medians
    m_i < m_j, P(X_i > X_j) over all pairs of their seeds' scores (strictly greater; ties do not count); averaged
    over the pairs. Columns ``dataset, metric, method, p_worse_beats_better, n_pairs``. Vectorised over all cells.
    """
    table = as_model_table(scores, representation=representation)
    names = list(METRIC_NAMES)
    arr, groups, _values = config_array(table, names)          # (M, G, H, S)
    cols = ["dataset", "metric", "method", "p_worse_beats_better", "n_pairs"]
    if arr.size == 0:
        return with_reason(pd.DataFrame(columns=cols), "no scores in this store", ["scores"])
    valid = ~np.isnan(arr)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN slices (padding) give NaN medians
        med = np.nanmedian(arr, axis=3)                        # (M, G, H)
        gt = arr[:, :, :, None, :, None] > arr[:, :, None, :, None, :]        # (M, G, H, H, S, S)
        both = valid[:, :, :, None, :, None] & valid[:, :, None, :, None, :]
        n_both = both.sum(axis=(4, 5))
        p = gt.sum(axis=(4, 5)) / np.where(n_both > 0, n_both, 1)
        worse = (med[:, :, :, None] < med[:, :, None, :]) & (n_both > 0)
    n_pairs = worse.sum(axis=(2, 3))
    with np.errstate(all="ignore"):
        mean_p = np.where(worse, p, 0.0).sum(axis=(2, 3)) / np.where(n_pairs > 0, n_pairs, 1)
    m_idx, g_idx = np.nonzero(n_pairs > 0)
    out = pd.DataFrame({"dataset": groups["dataset"].to_numpy()[g_idx], "metric": np.asarray(names)[m_idx],
                        "method": groups["method"].to_numpy()[g_idx], "p_worse_beats_better": mean_p[m_idx, g_idx],
                        "n_pairs": n_pairs[m_idx, g_idx].astype(int)}, columns=cols)
    if out.empty:
        return with_reason(out, "no method has two hyperparameter values with scores", ["hyperparameters"])
    return with_reason(out, None)


def best_strength(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """Per (dataset, metric, method): the regularisation strength with the highest median score (claim C8).

    Columns ``dataset, metric, method, best_hparam_value, best_strength, n_values`` (methods with a single value
    are dropped: there is nothing to choose).
    """
    curves = strength_curves(scores, representation=representation)
    curves = curves.dropna(subset=["median"])
    n_values = curves.groupby(["dataset", "metric", "method"], sort=False)["median"].transform("size")
    curves = curves[n_values >= 2]
    idx = curves.groupby(["dataset", "metric", "method"], sort=False)["median"].idxmax()
    best = curves.loc[idx.to_numpy()]
    counts = curves.groupby(["dataset", "metric", "method"], sort=False).size()
    out = pd.DataFrame({
        "dataset": best["dataset"].to_numpy(), "metric": best["metric"].to_numpy(),
        "method": best["method"].to_numpy(), "best_hparam_value": best["hparam_value"].to_numpy(),
        "best_strength": best["strength"].to_numpy(),
        "n_values": counts.loc[list(zip(best["dataset"], best["metric"], best["method"]))].to_numpy(),
    })
    if out.empty:
        return with_reason(out, "no method has two hyperparameter values with scores", ["hyperparameters"])
    return with_reason(out, None)
