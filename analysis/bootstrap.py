"""Bootstrap intervals for the statistics the paper gave without them.

The unit resampled is the training seed. One replicate draws S seed labels with replacement from the S seeds of the
store; the j-th drawn label brings every run trained with that seed (all datasets, all configurations) and those
runs get the new seed label j. This keeps the pairing of configurations and datasets intact (a seed's runs move
together), which the transfer simulation and the dataset x dataset correlations rely on. Intervals are percentile
intervals of the replicates (``alpha`` = 0.05 gives 95 %).

Functions: :func:`resample_seeds` (the draw), :func:`resample_table` (one replicate of a model table),
:func:`bootstrap_statistic` (any statistic of a model table), and the vectorised ones for the report:
:func:`bootstrap_metric_correlations`, :func:`bootstrap_downstream_correlations`,
:func:`bootstrap_dataset_correlations`; the transfer table's intervals are
:func:`analysis.transfer.transfer_intervals`. The R^2 tables resample models within their configuration instead (:func:`model_weights`,
:func:`bootstrap_variance_explained`): R^2 compares configurations, which that resampling keeps, as the claims'
intervals do (:mod:`analysis.claims.engine`).
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from analysis.correlation import config_medians, spearman_table
from analysis.downstream import DOWNSTREAM_QUANTITIES
from analysis.frames import METRIC_NAMES, as_model_table, datasets_present, metric_name, with_reason
from analysis.variance import r_squared_between


def resample_seeds(n_seeds: int, n_boot: int, random_state: int = 0) -> np.ndarray:
    """(n_boot, n_seeds) integer array: for each replicate, the seed positions drawn with replacement."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rs = np.random.RandomState(random_state)
    return rs.randint(n_seeds, size=(n_boot, n_seeds)) if n_seeds else np.zeros((n_boot, 0), dtype=int)


def percentile_interval(replicates: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of ``replicates`` (NaN replicates ignored; all-NaN gives NaN)."""
    reps = np.asarray(replicates, dtype=float)
    ok = ~np.isnan(reps)
    low = np.full(reps.shape[1:], np.nan)
    high = np.full(reps.shape[1:], np.nan)
    any_ok = ok.any(axis=0)
    if any_ok.any():
        filled = np.where(ok, reps, np.nan)
        with np.errstate(all="ignore"):
            lo = np.nanpercentile(filled[:, any_ok], 100 * alpha / 2, axis=0)
            hi = np.nanpercentile(filled[:, any_ok], 100 * (1 - alpha / 2), axis=0)
        low[any_ok], high[any_ok] = lo, hi
    return low, high


def resample_models(n_cells: tuple[int, ...], n_seeds: int, n_boot: int, random_state: int = 0) -> np.ndarray:
    """(n_boot, *n_cells, n_seeds) integer array: for each replicate and each cell (a configuration of one dataset),
    its seed slots drawn with replacement, independently of the other cells (a bootstrap of the models stratified by
    configuration: the design's configurations stay, the models trained for each are resampled)."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rs = np.random.RandomState(random_state)
    return rs.randint(max(n_seeds, 1), size=(n_boot, *n_cells, n_seeds))


def centred_interval(point: np.ndarray, replicates: np.ndarray, alpha: float = 0.05, inflate: float = 1.0,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A bootstrap interval centred on the estimate: ``point + inflate * (percentile - median of the replicates)``,
    clipped to [0, 1] or [-1, 1] when the point and every replicate lie there (shares, rates, correlations).

    Resampling S models per configuration with replacement repeats models, which shifts statistics built on
    medians or on strict comparisons (ties) and shrinks spreads by about (S - 1) / S in variance: the replicates'
    location is then an artefact while their spread measures the sampling variation; ``inflate`` =
    sqrt(S / (S - 1)) restores the spread. NaN replicates are ignored; all-NaN or a NaN point gives NaN."""
    reps = np.asarray(replicates, dtype=float)
    point = np.broadcast_to(np.asarray(point, dtype=float), reps.shape[1:])
    low, high = percentile_interval(reps, alpha)
    ok = ~np.isnan(reps)
    median = np.full(reps.shape[1:], np.nan)
    finite = ok.any(axis=0)
    if finite.any():
        median[finite] = np.nanmedian(reps[:, finite], axis=0)
    with np.errstate(invalid="ignore"):
        low, high = point + inflate * (low - median), point + inflate * (high - median)
        both = np.where(ok, reps, point[None])
        for lo_b, hi_b in ((0.0, 1.0), (-1.0, 1.0)):
            inside = (both >= lo_b).all(axis=0) & (both <= hi_b).all(axis=0) & (point >= lo_b) & (point <= hi_b)
            low = np.where(inside, np.clip(low, lo_b, hi_b), low)
            high = np.where(inside, np.clip(high, lo_b, hi_b), high)
    return low, high


def covering_interval(point: np.ndarray, replicates: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval over axis 0 of ``replicates``, widened where needed to include the estimate ``point``.

    A seed bootstrap with few seeds repeats seeds within a replicate, which shrinks within-configuration spreads and
    shifts statistics such as "a worse configuration's run beats a better one's" (ties do not count) or
    correlations of medians: the replicates can then sit mostly on one side of the estimate and a plain percentile
    interval can miss it. Widening to the estimate keeps every end a value the statistic can take (a share stays in
    [0, 1]) and errs on the side of caution. NaN replicates are ignored; all-NaN gives NaN, a NaN point leaves the
    percentile interval as it is."""
    point = np.asarray(point, dtype=float)
    low, high = percentile_interval(replicates, alpha)
    with np.errstate(invalid="ignore"):
        low = np.where(np.isnan(point) | np.isnan(low), low, np.minimum(low, point))
        high = np.where(np.isnan(point) | np.isnan(high), high, np.maximum(high, point))
    return low, high


def _seed_groups(table: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Seed labels (sorted) and, for each, the positional row indices of ``table`` trained with it."""
    codes, labels = pd.factorize(table["seed"], sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(labels) + 1))
    return np.asarray(labels), [order[bounds[i]:bounds[i + 1]] for i in range(len(labels))]


def resample_table(table: pd.DataFrame, drawn: np.ndarray, groups: list[np.ndarray] | None = None) -> pd.DataFrame:
    """One bootstrap replicate of a model table: the runs of the seeds at positions ``drawn`` (seed label j for the
    j-th draw). ``groups``: precomputed row indices per seed position (from the table's sorted seed labels)."""
    if groups is None:
        _labels, groups = _seed_groups(table)
    rows = np.concatenate([groups[k] for k in drawn]) if len(drawn) else np.zeros(0, dtype=int)
    new_seed = np.repeat(np.arange(len(drawn)), [len(groups[k]) for k in drawn])
    out = table.iloc[rows].copy()
    out["seed"] = new_seed
    out.attrs.update(table.attrs)
    return out


def bootstrap_statistic(scores: pd.DataFrame, statistic: Callable[[pd.DataFrame], object], n_boot: int = 100,
                        random_state: int = 0) -> np.ndarray:
    """Replicates of ``statistic(model_table)`` (a number or array of fixed shape) under the seed bootstrap.

    Returns an array (n_boot, *shape). ``statistic`` must not depend on seed labels other than through grouping.
    """
    table = as_model_table(scores)
    _labels, groups = _seed_groups(table)
    draws = resample_seeds(len(groups), n_boot, random_state)
    return np.stack([np.asarray(statistic(resample_table(table, d, groups)), dtype=float) for d in draws])


def _spearman_replicates(values: np.ndarray, seed_codes: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Spearman matrices (B, P, P) of ``values`` (N, P; complete rows) under each seed draw (B, S)."""
    order = np.argsort(seed_codes, kind="stable")
    bounds = np.searchsorted(seed_codes[order], np.arange(draws.shape[1] + 1))
    groups = [order[bounds[i]:bounds[i + 1]] for i in range(draws.shape[1])]
    out = np.full((draws.shape[0], values.shape[1], values.shape[1]), np.nan)
    for b, drawn in enumerate(draws):
        rows = np.concatenate([groups[k] for k in drawn])
        if len(rows) < 3:
            continue
        ranks = rankdata(values[rows], axis=0)
        ranks = ranks - ranks.mean(axis=0)
        norm = np.sqrt((ranks ** 2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b] = np.einsum("ij,ik->jk", ranks, ranks) / np.outer(norm, norm)
    return out


def _bootstrap_matrix(table: pd.DataFrame, rows: list[str], columns: list[str], n_boot: int, alpha: float,
                      random_state: int, min_models: int) -> pd.DataFrame:
    """Point Spearman (pairwise complete) and seed-bootstrap percentile interval (complete cases over the
    non-empty columns) for every (row, column) pair. Long frame ``row, column, rho, ci_low, ci_high``."""
    point = spearman_table(table, rows, columns, min_models=min_models)
    union = list(dict.fromkeys(rows + columns))
    usable = [c for c in union if c in table.columns and table[c].notna().any()]
    data = table[usable].to_numpy(dtype=float) if usable else np.zeros((len(table), 0))
    complete = ~np.isnan(data).any(axis=1)
    data = data[complete]
    seed_codes, _ = pd.factorize(table["seed"].to_numpy()[complete], sort=True)
    low = pd.DataFrame(np.nan, index=rows, columns=columns)
    high = low.copy()
    if usable and len(data) >= min_models:
        draws = resample_seeds(int(seed_codes.max()) + 1, n_boot, random_state)
        reps = _spearman_replicates(data, seed_codes, draws)
        lo, hi = percentile_interval(reps, alpha)
        lo, hi = pd.DataFrame(lo, index=usable, columns=usable), pd.DataFrame(hi, index=usable, columns=usable)
        r_ok = [r for r in rows if r in usable]
        c_ok = [c for c in columns if c in usable]
        low.loc[r_ok, c_ok] = lo.loc[r_ok, c_ok].to_numpy()
        high.loc[r_ok, c_ok] = hi.loc[r_ok, c_ok].to_numpy()
    long = point.stack(future_stack=True).rename("rho").to_frame()
    long["ci_low"] = low.stack(future_stack=True).to_numpy()
    long["ci_high"] = high.stack(future_stack=True).to_numpy()
    long.index.names = ["row", "column"]
    return long.reset_index()


def bootstrap_metric_correlations(scores: pd.DataFrame, dataset: str, n_boot: int = 1000, alpha: float = 0.05,
                                  random_state: int = 0, min_models: int = 3) -> pd.DataFrame:
    """:func:`analysis.correlation.metric_correlations` with seed-bootstrap intervals.

    Long frame with one row per (row metric, column metric): ``row, column, rho, ci_low, ci_high``.
    """
    table = as_model_table(scores)
    sub = table[table["dataset"] == dataset]
    out = _bootstrap_matrix(sub, list(METRIC_NAMES), list(METRIC_NAMES), n_boot, alpha, random_state, min_models)
    if sub.empty:
        return with_reason(out, f"dataset {dataset} is not in this store", [dataset])
    return with_reason(out, None)


def bootstrap_downstream_correlations(scores: pd.DataFrame, dataset: str, n_boot: int = 1000,
                                      alpha: float = 0.05, random_state: int = 0,
                                      min_models: int = 3) -> pd.DataFrame:
    """:func:`analysis.downstream.downstream_correlations` with seed-bootstrap intervals (long frame)."""
    table = as_model_table(scores)
    sub = table[table["dataset"] == dataset]
    out = _bootstrap_matrix(sub, list(METRIC_NAMES), list(DOWNSTREAM_QUANTITIES), n_boot, alpha, random_state,
                            min_models)
    if sub.empty:
        return with_reason(out, f"dataset {dataset} is not in this store", [dataset])
    return with_reason(out, None if out["rho"].notna().any() else f"no downstream accuracies on {dataset}")


def bootstrap_correlations(scores: pd.DataFrame, dataset: str, rows: Iterable[str], columns: Iterable[str],
                           runs: pd.DataFrame | None = None, n_boot: int = 1000, alpha: float = 0.05,
                           random_state: int = 0, min_models: int = 3) -> pd.DataFrame:
    """Any Spearman block of model-table columns on ``dataset`` with seed-bootstrap intervals (e.g. the unsupervised
    scores against the metrics). Long frame ``row, column, rho, ci_low, ci_high``."""
    table = as_model_table(scores, runs=runs)
    sub = table[table["dataset"] == dataset]
    out = _bootstrap_matrix(sub, list(rows), list(columns), n_boot, alpha, random_state, min_models)
    return with_reason(out, None if len(sub) else f"dataset {dataset} is not in this store")


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of ``values`` (..., S) replicated by integer ``weights`` (B, S) -> (B, ...), like np.median of the
    expanded sample (mean of the two middle elements for an even count). NaN values carry no weight."""
    order = np.argsort(values, axis=-1)                                   # NaN last
    sorted_vals = np.take_along_axis(values, order, axis=-1)              # (..., S)
    w = weights[(slice(None),) + (None,) * (values.ndim - 1)] * np.ones_like(values)[None]  # (B, ..., S)
    w = np.where(np.isnan(values)[None], 0.0, w)
    w_sorted = np.take_along_axis(w, np.broadcast_to(order[None], w.shape), axis=-1)
    cum = np.cumsum(w_sorted, axis=-1)
    total = cum[..., -1:]
    lo_k = np.floor((total - 1) / 2)
    hi_k = np.floor(total / 2)
    idx_lo = np.minimum((cum <= lo_k).sum(axis=-1, keepdims=True), values.shape[-1] - 1)
    idx_hi = np.minimum((cum <= hi_k).sum(axis=-1, keepdims=True), values.shape[-1] - 1)
    vals = np.broadcast_to(sorted_vals[None], w.shape)
    med = 0.5 * (np.take_along_axis(vals, idx_lo, -1) + np.take_along_axis(vals, idx_hi, -1))[..., 0]
    return np.where(total[..., 0] > 0, med, np.nan)


def bootstrap_dataset_correlations(scores: pd.DataFrame, metric: str, n_boot: int = 1000, alpha: float = 0.05,
                                   random_state: int = 0, min_pairs: int = 3) -> pd.DataFrame:
    """:func:`analysis.correlation.dataset_correlations` (configuration medians) with seed-bootstrap intervals.

    Each replicate recomputes every configuration's median over the resampled seeds (a weighted median, vectorised)
    and the Spearman matrix over configurations shared by all datasets. Long frame ``row, column, rho, ci_low,
    ci_high`` over dataset pairs. Caveat: a resampled seed set holds about 63 % distinct seeds, so its medians are
    noisier than the original ones and the replicates' correlations are biased low; with few seeds the interval
    can sit below the point estimate. Read it as the spread due to seeds, not as a centred interval.
    """
    name = metric_name(metric)
    table = as_model_table(scores)
    datasets = datasets_present(table)
    point = spearman_table(config_medians(table, name), datasets, datasets, min_models=min_pairs)
    wide = table.pivot_table(index=["dataset", "config"], columns="seed", values=name, aggfunc="mean",
                             dropna=False)
    configs = sorted(set(table["config"]))
    cube = np.full((len(datasets), len(configs), wide.shape[1]), np.nan)
    if len(wide):
        d_idx = pd.Categorical(wide.index.get_level_values(0), categories=datasets).codes
        c_idx = pd.Categorical(wide.index.get_level_values(1), categories=configs).codes
        cube[d_idx, c_idx] = wide.to_numpy(dtype=float)
    low = np.full((len(datasets), len(datasets)), np.nan)
    high = low.copy()
    if cube.shape[-1] >= 1 and len(datasets) >= 2:
        draws = resample_seeds(cube.shape[-1], n_boot, random_state)
        counts = np.stack([np.bincount(d, minlength=cube.shape[-1]) for d in draws]).astype(float)
        medians = _weighted_median(cube, counts)                     # (B, D, C)
        keep = ~np.isnan(medians).any(axis=(0, 1))                   # configs present on every dataset
        if keep.sum() >= min_pairs:
            m = medians[:, :, keep]
            ranks = rankdata(m, axis=2)
            ranks = ranks - ranks.mean(axis=2, keepdims=True)
            norm = np.sqrt((ranks ** 2).sum(axis=2))
            with np.errstate(invalid="ignore", divide="ignore"):
                reps = np.einsum("bdc,bec->bde", ranks, ranks) / (norm[:, :, None] * norm[:, None, :])
            low, high = percentile_interval(reps, alpha)
    long = point.stack(future_stack=True).rename("rho").to_frame()
    long["ci_low"], long["ci_high"] = low.ravel(), high.ravel()
    long.index.names = ["row", "column"]
    out = long.reset_index()
    return with_reason(out, None if len(datasets) >= 2 else f"needs two datasets; this store has {len(datasets)}")


def model_weights(table: pd.DataFrame, n_boot: int, random_state: int = 0) -> np.ndarray:
    """(n_boot, rows) weights of a bootstrap of the models stratified by configuration: in each replicate, each
    (dataset, configuration) draws as many of its models as it has, with replacement, and a model's weight is how
    often it was drawn (every configuration keeps its size). One ``np.random.RandomState(random_state)`` draws the
    configurations in the order they first appear in ``table``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rs = np.random.RandomState(random_state)
    codes = pd.factorize(pd.MultiIndex.from_arrays([table["dataset"], table["config"]]))[0]
    weights = np.zeros((n_boot, len(table)))
    for k in range(codes.max() + 1 if len(codes) else 0):
        members = np.flatnonzero(codes == k)
        drawn = rs.randint(len(members), size=(n_boot, len(members)))
        np.add.at(weights, (np.arange(n_boot)[:, None], members[drawn]), 1.0)
    return weights


def variance_explained_replicates(scores: pd.DataFrame, n_boot: int = 1000, random_state: int = 0):
    """The R^2 of the objective and of objective x hyperparameter per (dataset, metric), at the store's models and
    in ``n_boot`` replicates of :func:`model_weights` (R^2 of a replicate: the weighted between-group share of the
    sum of squares, identical to OLS on dummies of the replicated rows).

    Returns ``(index, point, replicates, models_per_config)``: the (dataset, metric) cells, a (cells, 2) array, a
    (n_boot, cells, 2) array (NaN where a cell has fewer than 3 models or a constant metric) and the median number of
    models per configuration."""
    table = as_model_table(scores)
    weights = model_weights(table, n_boot, random_state)
    index, point_rows, reps = [], [], []
    for dataset in datasets_present(table):
        mask = (table["dataset"] == dataset).to_numpy()
        for name in METRIC_NAMES:
            y = table[name].to_numpy(dtype=float)
            ok = mask & ~np.isnan(y)
            index.append((dataset, name))
            if ok.sum() < 3 or np.allclose(y[ok], y[ok][0]):
                point_rows.append((np.nan, np.nan))
                reps.append(np.full((n_boot, 2), np.nan))
                continue
            w = weights[:, ok]
            method_codes = pd.factorize(table["method"].to_numpy()[ok])[0]
            config_codes = pd.factorize(table["config"].to_numpy()[ok])[0]
            point_rows.append((r_squared_between(y[ok], method_codes), r_squared_between(y[ok], config_codes)))
            reps.append(np.stack([r_squared_between(y[ok], method_codes, w),
                                  r_squared_between(y[ok], config_codes, w)], axis=1))
    sizes = table.groupby(["dataset", "config"], sort=False).size()
    per_config = float(sizes.median()) if len(sizes) else float("nan")
    if not index:
        return index, np.zeros((0, 2)), np.zeros((n_boot, 0, 2)), per_config
    return index, np.asarray(point_rows), np.stack(reps, axis=1), per_config


def bootstrap_variance_explained(scores: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05,
                                 random_state: int = 0) -> pd.DataFrame:
    """Intervals for the R^2 tables (Table 5) and their unweighted means, from the bootstrap of the models stratified
    by configuration that the claims use (:func:`variance_explained_replicates`).

    Repeating a model in a replicate shrinks the spread within its configuration and so raises R^2: the replicates
    sit above the estimate (with three seeds a percentile interval can start at the estimate and end at 1). The
    interval is therefore centred on the estimate, its spread inflated by sqrt(S / (S - 1)) for S models per
    configuration (:func:`centred_interval`), and clipped to [0, 1]. Returns rows per (dataset, metric) plus a final
    ``('all', 'mean')`` row, columns ``method, method_ci_low, method_ci_high, method_x_hparam,
    method_x_hparam_ci_low, method_x_hparam_ci_high``.
    """
    index, point, reps_arr, per_config = variance_explained_replicates(scores, n_boot, random_state)
    cols = ["method", "method_ci_low", "method_ci_high", "method_x_hparam", "method_x_hparam_ci_low",
            "method_x_hparam_ci_high"]
    if not index:
        return with_reason(pd.DataFrame(columns=cols), "no scores in this store", ["scores"])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)              # a replicate with no measurable cell
        mean_reps = np.nanmean(reps_arr, axis=1, keepdims=True)
        mean_point = np.nanmean(point, axis=0, keepdims=True)
    reps_arr = np.concatenate([reps_arr, mean_reps], axis=1)
    point = np.concatenate([point, mean_point], axis=0)
    inflate = float(np.sqrt(per_config / (per_config - 1))) if per_config > 1 else 1.0
    low, high = centred_interval(point, reps_arr, alpha, inflate=inflate)
    out = pd.DataFrame({"method": point[:, 0], "method_ci_low": low[:, 0], "method_ci_high": high[:, 0],
                        "method_x_hparam": point[:, 1], "method_x_hparam_ci_low": low[:, 1],
                        "method_x_hparam_ci_high": high[:, 1]},
                       index=pd.MultiIndex.from_tuples(index + [("all", "mean")], names=["dataset", "metric"]))
    return with_reason(out, None)
