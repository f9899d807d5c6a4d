"""What matters: objective, hyperparameter or seed (the paper's Sections 5.3 and 5.4; Fig. 3, 4 left, 13-15;
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

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy.stats import rankdata

from analysis.frames import (
    FIGURE_METHOD_ORDER, METRIC_NAMES, as_model_table, datasets_present, methods_present, metric_name,
    with_reason,
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
    mean = np.einsum("bn,n->b", w, y) / total_w
    ss_total = np.einsum("bn,n->b", w, y ** 2) - total_w * mean ** 2
    group_w = np.einsum("bn,nk->bk", w, onehot)
    group_sum = np.einsum("bn,nk->bk", w * y, onehot)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_between = np.where(group_w > 0, group_sum ** 2 / np.where(group_w > 0, group_w, 1), 0.0).sum(axis=1) \
            - total_w * mean ** 2
        r2 = np.where(ss_total > 1e-12 * np.maximum(total_w, 1), ss_between / ss_total, np.nan)
    r2 = np.clip(r2, 0.0, 1.0)
    return float(r2[0]) if single else r2


def r_squared_table(table: pd.DataFrame, by: str, columns: list[str] | None = None,
                    min_models: int = 3) -> pd.DataFrame:
    """R^2 of one-hot ``by`` (``method`` or ``config``) for every (dataset, column) at once, by grouped sums of squares.

    Equals OLS with an intercept on the dummies (tested against statsmodels). Returns a frame indexed by dataset
    with one column per metric; NaN where a dataset has fewer than ``min_models`` scores or a constant score.
    """
    columns = list(METRIC_NAMES) if columns is None else list(columns)
    g_d = table.groupby("dataset", sort=False)[columns]
    n_d, mean_d = g_d.count(), g_d.mean()
    ss_total = g_d.var(ddof=0) * n_d
    g_k = table.groupby(["dataset", by], sort=False)[columns]
    n_k, mean_k = g_k.count(), g_k.mean()
    centre = mean_d.reindex(n_k.index.get_level_values(0)).to_numpy()
    between = (n_k * (mean_k - centre) ** 2).groupby(level=0, sort=False).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = between.reindex(ss_total.index) / ss_total
    scale = (mean_d.abs() + 1.0) ** 2 * n_d
    r2 = r2.where((n_d >= min_models) & (ss_total > 1e-12 * scale))
    return r2.clip(0.0, 1.0)


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
    runner_up_median, iqr_overlap`` (cells with fewer than two methods are dropped).
    """
    table = as_model_table(scores, representation=representation)
    g = table.groupby(["dataset", "method"], sort=False)[list(METRIC_NAMES)]
    stats = pd.DataFrame({"median": g.median().stack(), "q25": g.quantile(0.25).stack(),
                          "q75": g.quantile(0.75).stack()}).dropna()
    stats.index.names = ["dataset", "method", "metric"]
    stats = stats.reset_index().sort_values(["dataset", "metric", "median"], ascending=[True, True, False],
                                            kind="stable")
    grouped = stats.groupby(["dataset", "metric"], sort=False)
    first = grouped.nth(0).set_index(["dataset", "metric"])
    second = grouped.nth(1).set_index(["dataset", "metric"])
    both = first.merge(second, left_index=True, right_index=True, suffixes=("_w", "_r"), how="inner")
    out = pd.DataFrame({
        "winner": both["method_w"], "winner_median": both["median_w"],
        "runner_up": both["method_r"], "runner_up_median": both["median_r"],
        "iqr_overlap": (both["q25_w"] <= both["q75_r"]) & (both["q25_r"] <= both["q75_w"]),
    }).reset_index()
    if out.empty:
        return with_reason(out, "no (dataset, metric) cell has scores for two or more methods", ["methods"])
    return with_reason(out, None)


@dataclass(frozen=True)
class ConfigCube:
    """Model-table columns as a dense array ``values[column, group, hyperparameter slot, seed]`` (NaN: no run).

    Groups are the (dataset, method) pairs present (datasets in study order, methods in sweep order); slot h is the
    method's h-th smallest hyperparameter value on that dataset (NaN padding where methods have fewer values).
    ``group_dataset`` (G,) indexes ``datasets``; ``group_method`` (G,) names the method; ``hparams`` and
    ``strength`` are (G, H); ``seeds`` labels the last axis (``seed_ids``: the original seed of each slot, which
    repeats in a bootstrap replicate). Several runs of one (dataset, method, value, seed) (e.g. two studies in one
    store) are averaged. :meth:`resample` gives a seed-bootstrap replicate.
    """
    values: np.ndarray
    columns: tuple[str, ...]
    datasets: tuple[str, ...]
    group_dataset: np.ndarray
    group_method: tuple[str, ...]
    hparams: np.ndarray
    strength: np.ndarray
    seeds: tuple[int, ...]
    seed_ids: tuple[int, ...] | None = None

    def column(self, name: str) -> np.ndarray:
        """The (G, H, S) array of one column."""
        return self.values[self.columns.index(name)]

    def resample(self, drawn: np.ndarray) -> "ConfigCube":
        """The replicate holding the seeds at positions ``drawn`` (relabelled 0 .. len(drawn)-1)."""
        ids = self.seed_ids if self.seed_ids is not None else tuple(range(len(self.seeds)))
        drawn = np.asarray(drawn)
        return replace(self, values=self.values[..., drawn], seeds=tuple(range(len(drawn))),
                       seed_ids=tuple(ids[k] for k in drawn))


def config_cube(scores: pd.DataFrame, columns: list[str] | None = None) -> ConfigCube:
    """Build a :class:`ConfigCube` of ``columns`` (default: the six metrics) from a tidy frame or model table.

    Vectorised: factorised codes and one ``np.bincount`` per column.
    """
    table = as_model_table(scores)
    columns = list(METRIC_NAMES) if columns is None else list(columns)
    datasets = datasets_present(table)
    methods = methods_present(table)
    d_idx = pd.Categorical(table["dataset"], categories=datasets).codes.astype(int)
    m_idx = pd.Categorical(table["method"], categories=methods).codes.astype(int)
    pair = d_idx * max(len(methods), 1) + m_idx
    g_codes, g_uniques = pd.factorize(pair, sort=True)
    h_codes = (table.groupby(pair, sort=False)["hparam_value"].rank(method="dense").to_numpy(dtype=int) - 1
               if len(table) else np.zeros(0, dtype=int))
    s_codes, seeds = pd.factorize(table["seed"], sort=True)
    n_g, n_s = len(g_uniques), len(seeds)
    n_h = int(h_codes.max()) + 1 if len(table) else 0
    flat = (g_codes * n_h + h_codes) * n_s + s_codes
    size = n_g * n_h * n_s
    values = np.full((len(columns), n_g, n_h, n_s), np.nan)
    for i, column in enumerate(columns):
        v = table[column].to_numpy(dtype=float)
        ok = ~np.isnan(v)
        counts = np.bincount(flat[ok], minlength=size)
        sums = np.bincount(flat[ok], weights=v[ok], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            values[i] = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan).reshape(n_g, n_h, n_s)
    hparams = np.full((n_g, n_h), np.nan)
    strength = np.full((n_g, n_h), np.nan)
    hparams[g_codes, h_codes] = table["hparam_value"].to_numpy(dtype=float)
    strength[g_codes, h_codes] = table["strength"].to_numpy(dtype=float)
    g_uniques = np.asarray(g_uniques, dtype=int)
    return ConfigCube(values, tuple(columns), tuple(datasets), g_uniques // max(len(methods), 1),
                      tuple(methods[k % max(len(methods), 1)] for k in g_uniques), hparams, strength,
                      tuple(int(s) for s in seeds))


def nan_median(x: np.ndarray) -> np.ndarray:
    """Median along the last axis ignoring NaN (NaN for all-NaN slices); one sort, no masked arrays."""
    s = np.sort(x, axis=-1)                                          # NaN sorted last
    n = (~np.isnan(x)).sum(axis=-1)
    lo = np.maximum((n - 1) // 2, 0)
    hi = np.maximum(n // 2, 0)
    hi = np.minimum(hi, x.shape[-1] - 1) if x.shape[-1] else hi
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], np.nan)
    v_lo = np.take_along_axis(s, lo[..., None], -1)[..., 0]
    v_hi = np.take_along_axis(s, hi[..., None], -1)[..., 0]
    return np.where(n > 0, 0.5 * (v_lo + v_hi), np.nan)


def worse_beats_better(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Core of :func:`seed_beats_config` on an array (..., H, S) of scores (NaN: no run).

    For every leading index, averages P(X_i > X_j) (strictly greater, over all seed pairs) over the ordered pairs of
    hyperparameter slots with median_i < median_j. Returns (mean probability, number of pairs), both shaped like
    the leading axes; NaN probability where there is no pair.

    Counting without the S x S comparisons: scores are replaced by dense ranks within each leading index; a
    cumulative histogram of each slot's ranks then gives, for every score x of slot i, how many scores of slot j
    lie below x. Missing scores are left out of the histograms and of the sums.
    """
    lead = arr.shape[:-2]
    n_h, n_s = arr.shape[-2:]
    flat = arr.reshape(-1, n_h, n_s)
    n_b = flat.shape[0]
    valid = ~np.isnan(flat)
    med = nan_median(flat)                                                               # (B, H)
    ranks = rankdata(np.where(valid, flat, np.inf).reshape(n_b, -1), method="dense", axis=-1)
    ranks = ranks.reshape(n_b, n_h, n_s).astype(np.int64)
    span = n_h * n_s + 2
    # below[b, i, j, s]: how many scores of slot j rank under score s of slot i (cumulative rank histograms)
    row = (np.arange(n_b)[:, None] * n_h + np.arange(n_h)[None, :]).astype(np.int64)    # (B, H)
    hist = np.bincount((row[..., None] * span + np.where(valid, ranks, span - 1)).ravel(),
                       minlength=n_b * n_h * span).reshape(n_b, n_h, span)
    hist[..., span - 1] = 0                                                              # missing scores
    cum_below = np.cumsum(hist, axis=-1) - hist                                          # strictly below rank r
    below = cum_below[np.arange(n_b)[:, None, None, None], np.arange(n_h)[None, None, :, None],
                      ranks[:, :, None, :]]                                              # (B, i, j, S)
    gt = np.where(valid[:, :, None, :], below, 0).sum(-1)                                  # (B, i, j)
    n_valid = valid.sum(-1)
    n_both = n_valid[:, :, None] * n_valid[:, None, :]
    p = gt / np.where(n_both > 0, n_both, 1)
    worse = (med[:, :, None] < med[:, None, :]) & (n_both > 0)
    n_pairs = worse.sum(axis=(-2, -1))
    mean_p = np.where(worse, p, 0.0).sum(axis=(-2, -1)) / np.where(n_pairs > 0, n_pairs, 1)
    return np.where(n_pairs > 0, mean_p, np.nan).reshape(lead), n_pairs.reshape(lead)


def seed_beats_config(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """How often a run of a worse hyperparameter beats a run of a better one (claim C6, Fig. 3 right / 14).

    For each (dataset, metric, method) and each pair of the method's hyperparameter values with medians
    m_i < m_j, P(X_i > X_j) over all pairs of their seeds' scores (strictly greater; ties do not count); averaged
    over the pairs. Columns ``dataset, metric, method, p_worse_beats_better, n_pairs``. Vectorised over all cells.
    """
    cube = config_cube(as_model_table(scores, representation=representation))
    cols = ["dataset", "metric", "method", "p_worse_beats_better", "n_pairs"]
    if cube.values.size == 0:
        return with_reason(pd.DataFrame(columns=cols), "no scores in this store", ["scores"])
    mean_p, n_pairs = worse_beats_better(cube.values)            # (M, G)
    m_idx, g_idx = np.nonzero(n_pairs > 0)
    out = pd.DataFrame({"dataset": np.asarray(cube.datasets)[cube.group_dataset[g_idx]],
                        "metric": np.asarray(cube.columns)[m_idx],
                        "method": np.asarray(cube.group_method)[g_idx],
                        "p_worse_beats_better": mean_p[m_idx, g_idx], "n_pairs": n_pairs[m_idx, g_idx].astype(int)},
                       columns=cols)
    if out.empty:
        return with_reason(out, "no method has two hyperparameter values with scores", ["hyperparameters"])
    return with_reason(out, None)


def best_strength(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """Per (dataset, metric, method): the regularisation strength with the highest median score (claim C8).

    Columns ``dataset, metric, method, best_hparam_value, best_strength, n_values`` (methods with a single value
    are dropped: there is nothing to choose).
    """
    table = as_model_table(scores, representation=representation)
    med = table.groupby(["dataset", "method", "hparam_value", "strength"], sort=False)[list(METRIC_NAMES)].median()
    med.columns.name = "metric"
    med = med.stack().rename("median").reset_index()
    med = med.dropna(subset=["median"])
    cols = ["dataset", "metric", "method", "best_hparam_value", "best_strength", "n_values"]
    if med.empty:
        return with_reason(pd.DataFrame(columns=cols), "no scores in this store", ["scores"])
    keys = ["dataset", "metric", "method"]
    n_values = med.groupby(keys, sort=False)["median"].transform("size")
    med = med[n_values >= 2].assign(n_values=n_values[n_values >= 2])
    best = med.loc[med.groupby(keys, sort=False)["median"].idxmax().to_numpy()]
    out = best.rename(columns={"hparam_value": "best_hparam_value", "strength": "best_strength"})[cols]
    out = out.reset_index(drop=True)
    if out.empty:
        return with_reason(out, "no method has two hyperparameter values with scores", ["hyperparameters"])
    return with_reason(out, None)
