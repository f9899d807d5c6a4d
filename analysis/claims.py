"""The claims scorecard: each checkable headline claim of the paper (spec/analysis.md section 2, C2-C14) tested on
this store.

For every claim the scorecard gives the claim in a sentence, the paper's number(s) as the paper printed them (kept
as data in ``analysis/data/paper_numbers.json``), this store's number(s) with a seed-bootstrap interval, the
operational criterion, and a verdict: ``supported``, ``not supported`` or ``not measurable with this store`` (the
``detail`` column then says what is missing). The verdict is taken on the point estimate; when the bootstrap
interval straddles the criterion's threshold the detail says so.

Intervals are percentile intervals of a seed bootstrap (``analysis.bootstrap``). A replicate repeats some seeds
(about 37 % of its draws), which shrinks the spread within a configuration: statistics built on it (R^2 of the
configuration, medians over seeds) are biased in the replicates by roughly a factor 1 - 1/S, small at the paper's
50 seeds but visible with 5 (the interval can then miss the point estimate). The transfer simulation avoids the
artefact by requiring the target seed to differ from the source seed in identity, not only in slot.

Each claim is a pair of pure functions on a model table (``analysis.frames.model_table``): ``measure`` returns the
claim's numbers (an ordered dict, primary first, fractions in [0, 1]) or raises :class:`NotMeasurable` naming what
the store lacks; ``judge`` turns the numbers into a verdict and a sentence. Thresholds are module constants and are
stated in the ``criterion`` column.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from analysis.bootstrap import percentile_interval, resample_seeds
from analysis.correlation import spearman_array
from analysis.downstream import DOWNSTREAM_QUANTITIES
from analysis.frames import DOWNSTREAM_COLUMNS, METRIC_NAMES, as_model_table
from analysis.transfer import _simulate_all, cube_tensor
from analysis.variance import ConfigCube, config_cube, nan_median, worse_beats_better

PAPER_NUMBERS_PATH = Path(__file__).resolve().parent / "data" / "paper_numbers.json"

VERDICTS = ("supported", "not supported", "not measurable with this store")
SUPPORTED, NOT_SUPPORTED, NOT_MEASURABLE = VERDICTS

NON_MODULARITY = [m for m in METRIC_NAMES if m != "Modularity"]
DSPRITES_VARIANTS = ("dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites")
ACCURACY_COLUMNS = list(DOWNSTREAM_COLUMNS)
UNSUPERVISED_SCORES = ("reconstruction_loss", "kl_loss", "elbo", "tc_sampled", "tc_mean")

# Thresholds of the operational criteria (stated in each row's ``criterion``).
MAJORITY = 0.75          # C2, C3: share of curves that must go the claimed way
STRONG_RHO = 0.5         # C9, C10, C13: a "strong" rank correlation
AGREE_RHO = 0.3          # C4, C12: metrics "correlate" / "track" when the mean rho exceeds this
SEED_BEATS = 0.2         # C6: a worse hyperparameter's run beats a better one's at least this often
BARELY = 0.15            # C11: "barely beats random" = within 15 points of chance (0.5 + P(tie)/2)
HELPS_RHO = -0.3         # C14: rho(TC, accuracy) at or below this counts as "lower TC helps"


class NotMeasurable(Exception):
    """The store lacks what a claim needs; the message says what."""


@lru_cache(maxsize=1)
def paper_numbers() -> dict:
    """The paper's numbers and claim sentences (``analysis/data/paper_numbers.json``)."""
    with open(PAPER_NUMBERS_PATH, encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------------------------------- helpers

def _need(condition: bool, what: str) -> None:
    if not condition:
        raise NotMeasurable(what)


def _mean(values) -> float:
    values = np.asarray(list(values), dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


ALL_COLUMNS = list(dict.fromkeys([*METRIC_NAMES, *UNSUPERVISED_SCORES, *DOWNSTREAM_QUANTITIES]))


def _nanmedian(x: np.ndarray, axis) -> np.ndarray:
    """NaN-ignoring median over ``axis`` (-1 or None), NaN for all-NaN slices."""
    x = np.asarray(x, dtype=float)
    return nan_median(x.ravel() if axis is None else x) if axis in (-1, None) else nan_median(np.moveaxis(x, axis, -1))


def row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of ``x`` vs ``y`` along the last axis, row by row, over the entries where both are finite.

    Rows with fewer than 2 such entries or a constant side give NaN. Invalid entries are ranked above all valid
    ones (as +inf), which leaves the valid entries' average ranks unchanged, then masked out of the Pearson sums.
    """
    valid = ~np.isnan(x) & ~np.isnan(y)
    rx = rankdata(np.where(valid, x, np.inf), axis=-1)
    ry = rankdata(np.where(valid, y, np.inf), axis=-1)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(valid, rx, 0).sum(axis=-1) / n
        my = np.where(valid, ry, 0).sum(axis=-1) / n
        cx = np.where(valid, rx - mx[..., None], 0.0)
        cy = np.where(valid, ry - my[..., None], 0.0)
        sxx, syy = (cx ** 2).sum(axis=-1), (cy ** 2).sum(axis=-1)
        rho = (cx * cy).sum(axis=-1) / np.sqrt(sxx * syy)
    return np.where((n >= 2) & (sxx > 0) & (syy > 0), np.clip(rho, -1.0, 1.0), np.nan)


def nan_quantiles(x: np.ndarray, qs) -> list[np.ndarray]:
    """Quantiles along the last axis ignoring NaN (linear interpolation, as ``np.nanpercentile``), vectorised:
    one sort, then interpolation between order statistics. All-NaN slices give NaN."""
    s = np.sort(x, axis=-1)                                          # NaN sorted last
    n = (~np.isnan(x)).sum(axis=-1)
    out = []
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = pos - lo
        v_lo = np.take_along_axis(s, lo[..., None], -1)[..., 0]
        v_hi = np.take_along_axis(s, hi[..., None], -1)[..., 0]
        out.append(np.where(n > 0, v_lo + (v_hi - v_lo) * frac, np.nan))
    return out


class Context:
    """The claims' shared intermediate results for one :class:`analysis.variance.ConfigCube` (computed lazily).

    The bootstrap builds one Context per replicate from ``cube.resample(drawn)``: no pandas work per replicate
    beyond the rare pairwise-NaN Spearman fallback.
    """

    def __init__(self, cube: ConfigCube):
        self.cube = cube
        self.col = {c: i for i, c in enumerate(cube.columns)}
        self.datasets = list(cube.datasets)

    def values(self, column: str) -> np.ndarray:
        """(G, H, S) array of ``column``."""
        return self.cube.values[self.col[column]]

    @cached_property
    def present(self) -> set[str]:
        return {c for c in self.cube.columns if not np.isnan(self.values(c)).all()}

    @cached_property
    def medians(self) -> np.ndarray:
        """(P, G, H): median over seeds."""
        return _nanmedian(self.cube.values, axis=-1)

    @cached_property
    def _spearman(self) -> dict[str, np.ndarray]:
        out = {}
        for k, dataset in enumerate(self.datasets):
            block = self.cube.values[:, self.cube.group_dataset == k]          # (P, g, H, S)
            rows = block.reshape(block.shape[0], -1).T
            out[dataset] = spearman_array(rows[~np.isnan(rows).all(axis=1)])
        return out

    def rho(self, dataset: str, rows: list[str], cols: list[str]) -> np.ndarray:
        """Spearman block (len(rows), len(cols)) over the models of ``dataset``."""
        return self._spearman[dataset][np.ix_([self.col[r] for r in rows], [self.col[c] for c in cols])]

    def methods_of(self, methods) -> np.ndarray:
        return np.isin(np.asarray(self.cube.group_method), list(methods))


def _curve_rhos(ctx: Context, column: str, methods: tuple[str, ...]) -> np.ndarray:
    """Spearman(strength, median over seeds of ``column``) per (dataset, method) group among ``methods``."""
    med = ctx.medians[ctx.col[column]]
    rho = row_spearman(ctx.cube.strength, med)
    return rho[ctx.methods_of(methods) & ~np.isnan(rho)]


# --------------------------------------------------------------------------------------------------- measures

def measure_c2(ctx: Context) -> dict[str, float]:
    _need("tc_sampled" in ctx.present,
          "no total correlation of the sampled representation (evaluation 'unsupervised' on 'sampled')")
    rho = _curve_rhos(ctx, "tc_sampled", ("beta_vae", "beta_tc_vae"))
    _need(rho.size > 0, "no beta_vae or beta_tc_vae runs with two or more hyperparameter values and sampled TC")
    cube, tc = ctx.cube, ctx.values("tc_sampled")
    per_group = _nanmedian(tc.reshape(tc.shape[0], -1), axis=1)                  # (G,)
    methods = np.asarray(cube.group_method)
    hits = []
    for k in range(len(ctx.datasets)):
        in_d = cube.group_dataset == k
        vae_g = np.nonzero(in_d & (methods == "beta_vae"))[0]
        dip = [per_group[in_d & (methods == m)] for m in ("dip_vae_i", "dip_vae_ii")]
        if vae_g.size == 0 or any(d.size == 0 for d in dip):
            continue
        slot = np.nonzero(cube.hparams[vae_g[0]] == 1.0)[0]
        if slot.size == 0:
            continue
        vae = _nanmedian(tc[vae_g[0], slot[0]], axis=-1)
        if np.isnan(vae) or any(np.isnan(d[0]) for d in dip):
            continue
        hits.append(float(all(d[0] < vae for d in dip)))
    return {"share_falling": float((rho < 0).mean()), "dip_below_vae": _mean(hits)}


def measure_c3(ctx: Context) -> dict[str, float]:
    _need("tc_mean" in ctx.present,
          "no total correlation of the mean representation (evaluation 'unsupervised' on 'mean')")
    rho = _curve_rhos(ctx, "tc_mean", ("beta_vae", "beta_tc_vae", "factor_vae"))
    _need(rho.size > 0, "no beta_vae, beta_tc_vae or factor_vae runs with two or more hyperparameter values and "
                        "mean TC")
    mean, sampled = ctx.values("tc_mean"), ctx.values("tc_sampled")
    both = ~np.isnan(mean) & ~np.isnan(sampled)
    return {"share_rising": float((rho > 0).mean()),
            "mean_above_sampled": float((mean[both] > sampled[both]).mean()) if both.any() else np.nan}


def measure_c4(ctx: Context) -> dict[str, float]:
    lacking = [m for m in METRIC_NAMES if m not in ctx.present]
    _need(not lacking, f"metric(s) missing: {', '.join(lacking)}")
    paper = np.asarray(paper_numbers()["fig2_noisy_dsprites"]["rho_x100"], dtype=float)
    agree, lowest, pairs, mad = [], [], [], float("nan")
    off = ~np.eye(6, dtype=bool)
    nm = [METRIC_NAMES.index(m) for m in NON_MODULARITY]
    iu = np.triu_indices(6, 1)
    pos = {(int(i), int(j)): k for k, (i, j) in enumerate(zip(*iu))}
    for dataset in ctx.datasets:
        r = ctx.rho(dataset, list(METRIC_NAMES), list(METRIC_NAMES))
        if np.isnan(r[off]).all():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            agree.append(np.nanmean(r[np.ix_(nm, nm)][~np.eye(5, dtype=bool)]))
            row_means = np.nanmean(np.where(off, r, np.nan), axis=1)
        if not np.isnan(row_means).all():
            lowest.append(float(np.nanargmin(row_means) == METRIC_NAMES.index("Modularity")))
        top3 = set(np.argsort(-np.nan_to_num(r[iu], nan=-2.0), kind="stable")[:3])
        pairs.append(float(pos[(0, 1)] in top3 and pos[(2, 3)] in top3))
        if dataset == "noisy_dsprites":
            mad = float(np.nanmean(np.abs(100 * r - paper)[off]))
    _need(len(agree) > 0, "no dataset has enough models to correlate the metrics")
    return {"mean_rho_non_modularity": _mean(agree), "modularity_lowest": _mean(lowest),
            "tight_pairs_top3": _mean(pairs), "noisy_abs_diff_points": mad}


def _method_grid(ctx: Context, stat: np.ndarray) -> np.ndarray:
    """(P, G) statistic -> (P, D, methods) with NaN where a dataset lacks a method."""
    methods = list(dict.fromkeys(ctx.cube.group_method))
    m_idx = np.asarray([methods.index(m) for m in ctx.cube.group_method], dtype=int)
    out = np.full((stat.shape[0], len(ctx.datasets), len(methods)), np.nan)
    out[:, ctx.cube.group_dataset, m_idx] = stat
    return out


def measure_c5(ctx: Context) -> dict[str, float]:
    _need(len(set(ctx.cube.group_method)) >= 2, "needs at least two methods")
    idx = [ctx.col[m] for m in METRIC_NAMES]
    flat = ctx.cube.values[idx].reshape(len(idx), ctx.cube.values.shape[1], -1)     # (6, G, H*S)
    q25, med, q75 = nan_quantiles(flat, (0.25, 0.5, 0.75))
    med, q25, q75 = (_method_grid(ctx, a) for a in (med, q25, q75))                  # (6, D, methods)
    order = np.argsort(-np.where(np.isnan(med), -np.inf, med), axis=-1, kind="stable")
    n_methods = (~np.isnan(med)).sum(axis=-1)
    cells = n_methods >= 2
    _need(cells.sum() >= 2, "needs at least two (dataset, metric) cells with two or more methods")
    first, second = order[..., 0][cells], order[..., 1][cells]
    take = lambda a, i: np.take_along_axis(a[cells], i[:, None], axis=-1)[:, 0]    # noqa: E731
    overlap = (take(q25, first) <= take(q75, second)) & (take(q25, second) <= take(q75, first))
    share = np.bincount(first).max() / first.size
    return {"top_winner_share": float(share), "iqr_overlap": float(overlap.mean())}


def measure_c6(ctx: Context) -> dict[str, float]:
    _need(len(ctx.cube.seeds) >= 2, "needs at least two seeds per configuration")
    mean_p, n_pairs = worse_beats_better(ctx.cube.values[[ctx.col[m] for m in METRIC_NAMES]])
    _need((n_pairs > 0).any(), "needs a method with two or more hyperparameter values")
    return {"p_worse_beats_better": float(np.nanmean(mean_p[n_pairs > 0]))}


def _by_dataset(per_group: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Sum (P, G) per-group values into (P, D) per-dataset totals (einsum: tiny products stay off threaded BLAS)."""
    return np.einsum("pg,gd->pd", per_group, onehot)


def _r2_from_cube(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(6, D) R^2 of the objective and of objective x hyperparameter (between / total sums of squares)."""
    y = ctx.cube.values[[ctx.col[m] for m in METRIC_NAMES]]                          # (6, G, H, S)
    ok = ~np.isnan(y)
    y0 = np.where(ok, y, 0.0)
    n_gh, s_gh = ok.sum(-1), y0.sum(-1)                                              # (6, G, H)
    onehot = np.zeros((y.shape[1], len(ctx.datasets)))
    onehot[np.arange(y.shape[1]), ctx.cube.group_dataset] = 1.0
    n_d = _by_dataset(n_gh.sum(-1), onehot)                                                      # (6, D)
    s_d = _by_dataset(s_gh.sum(-1), onehot)
    ss_d = _by_dataset((y0 ** 2).sum(axis=(-1, -2)), onehot)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_d = s_d / n_d
        total = ss_d - n_d * mean_d ** 2
        config_between = _by_dataset(np.where(n_gh > 0, s_gh ** 2 / np.where(n_gh > 0, n_gh, 1), 0.0).sum(-1),
                                     onehot) - n_d * mean_d ** 2
        n_g, s_g = n_gh.sum(-1), s_gh.sum(-1)
        method_between = _by_dataset(np.where(n_g > 0, s_g ** 2 / np.where(n_g > 0, n_g, 1), 0.0), onehot) \
            - n_d * mean_d ** 2
        scale = (np.abs(mean_d) + 1.0) ** 2 * n_d
        good = (n_d >= 3) & (total > 1e-12 * scale)
        r2_method = np.where(good, np.clip(method_between / total, 0, 1), np.nan)
        r2_config = np.where(good, np.clip(config_between / total, 0, 1), np.nan)
    return r2_method, r2_config


def measure_c7(ctx: Context) -> dict[str, float]:
    _need(len(set(ctx.cube.group_method)) >= 2, "needs at least two methods")
    a, b = _r2_from_cube(ctx)
    _need(not np.isnan(a).all(), "no (dataset, metric) cell with enough varying scores")
    return {"r2_method": _mean(a.ravel()), "r2_method_x_hparam": _mean(b.ravel()), "seed_share": 1.0 - _mean(b.ravel())}


def measure_c8(ctx: Context) -> dict[str, float]:
    med = ctx.medians[[ctx.col[m] for m in METRIC_NAMES]]                            # (6, G, H)
    enough = (~np.isnan(med)).sum(-1) >= 2
    _need(enough.any(), "needs a method with two or more hyperparameter values")
    best = np.argmax(np.where(np.isnan(med), -np.inf, med), axis=-1)                # (6, G)
    strength = np.take_along_axis(np.broadcast_to(ctx.cube.strength, med.shape), best[..., None], -1)[..., 0]
    shares = []
    methods = np.asarray(ctx.cube.group_method)
    for method in dict.fromkeys(ctx.cube.group_method):
        cells = np.round(strength[enough & (methods == method)[None, :]], 6)
        if cells.size >= 2:
            shares.append(np.unique(cells, return_counts=True)[1].max() / cells.size)
    _need(len(shares) > 0, "needs at least two (dataset, metric) cells per method")
    return {"modal_best_share": _mean(shares)}


def measure_c9(ctx: Context) -> dict[str, float]:
    present = [c for c in UNSUPERVISED_SCORES if c in ctx.present]
    _need(present, "no unsupervised scores (training losses or the 'unsupervised' evaluation)")
    _need(len(ctx.datasets) >= 2,
          f"needs at least two datasets to judge consistency; this store has {len(ctx.datasets)}")
    cube = np.stack([ctx.rho(d, present, list(METRIC_NAMES)) for d in ctx.datasets])
    valid = ~np.isnan(cube).any(axis=0)
    _need(valid.any(), "no unsupervised score correlates with a metric on every dataset")
    same_sign = np.all(cube > 0, axis=0) | np.all(cube < 0, axis=0)
    strong = np.all(np.abs(cube) >= STRONG_RHO, axis=0)
    return {"consistent_share": float((same_sign & strong)[valid].mean()),
            "median_abs_rho": float(np.nanmedian(np.abs(cube)))}


def measure_c10(ctx: Context) -> dict[str, float]:
    datasets = ctx.datasets
    _need("dsprites_full" in datasets and "color_dsprites" in datasets, "needs dsprites_full and color_dsprites")
    _need(len(datasets) >= 3, "needs a third dataset to compare the dSprites-Color pair with")
    cube = ctx.cube
    labels = np.char.add(np.repeat(np.asarray(cube.group_method, dtype=str)[:, None], cube.hparams.shape[1], 1),
                         np.char.mod("(%g)", np.nan_to_num(cube.hparams, nan=-1.0)))
    keep = ~np.isnan(cube.hparams)
    configs, c_codes = np.unique(labels[keep], return_inverse=True)
    d_codes = np.broadcast_to(cube.group_dataset[:, None], cube.hparams.shape)[keep]
    i, j = datasets.index("dsprites_full"), datasets.index("color_dsprites")
    mask = np.triu(np.ones((len(datasets), len(datasets)), dtype=bool), 1)
    mask[i, j] = False
    pair, others = [], []
    for name in METRIC_NAMES:
        if name not in ctx.present:
            continue
        grid = np.full((len(configs), len(datasets)), np.nan)
        grid[c_codes, d_codes] = ctx.medians[ctx.col[name]][keep]
        rho = spearman_array(grid)
        pair.append(rho[i, j])
        others.append(np.nanmean(rho[mask]) if np.any(~np.isnan(rho[mask])) else np.nan)
    _need(len(pair) > 0 and not np.isnan(pair).all(), "no metric scored on both dsprites_full and color_dsprites")
    return {"rho_dsprites_color": float(np.nanmedian(pair)), "rho_other_pairs": _mean([_nanmedian(np.asarray(
        others, dtype=float), axis=None)])}


def measure_c11(ctx: Context, n_draws: int = 10000, random_state: int = 0) -> dict[str, float]:
    tensor = cube_tensor(ctx.cube)
    _need(len(tensor.metrics) >= 1, "no headline metric scores")
    seed_ids = None if ctx.cube.seed_ids is None else np.asarray(ctx.cube.seed_ids)
    cells = _simulate_all(tensor, n_draws, random_state, seed_ids=seed_ids)
    _need(cells["rate"].notna().any(), "; ".join(r for r in cells["reason"] if isinstance(r, str)))
    out = {f"{rec.metric_cell}/{rec.dataset_cell}": float(rec.rate) for rec in cells.itertuples()}
    out.update({f"chance {rec.metric_cell}/{rec.dataset_cell}": float(rec.chance) for rec in cells.itertuples()})
    return out


def _mean_rho(ctx: Context, dataset: str, rows: list[str], cols: list[str]) -> float:
    block = ctx.rho(dataset, rows, cols)
    return float(np.nanmean(block)) if not np.isnan(block).all() else float("nan")


def measure_c12(ctx: Context) -> dict[str, float]:
    _need(any(c in ctx.present for c in ACCURACY_COLUMNS), "no downstream accuracies (downstream_task_* evaluations)")
    dsv = [d for d in ctx.datasets if d in DSPRITES_VARIANTS]
    _need(dsv, "needs a dSprites variant (dsprites_full, color_dsprites, noisy_dsprites or scream_dsprites)")
    ds_rho = _mean(_mean_rho(ctx, d, NON_MODULARITY, ACCURACY_COLUMNS) for d in dsv)
    _need(not math.isnan(ds_rho), "no downstream accuracies on the dSprites variants")
    mad = float("nan")
    if "dsprites_full" in ctx.datasets:
        paper = np.asarray(paper_numbers()["fig5_dsprites"]["rho_x100"], dtype=float)
        rho = ctx.rho("dsprites_full", list(METRIC_NAMES), list(DOWNSTREAM_QUANTITIES))
        mad = float(np.nanmean(np.abs(100 * rho - paper))) if not np.isnan(rho).all() else np.nan
    others = [d for d in ctx.datasets if d not in dsv]
    return {"rho_dsprites_variants": ds_rho,
            "rho_other_datasets": _mean(_mean_rho(ctx, d, NON_MODULARITY, ACCURACY_COLUMNS) for d in others),
            "rho_modularity_dsprites": _mean(_mean_rho(ctx, d, ["Modularity"], ACCURACY_COLUMNS) for d in dsv),
            "fig5_abs_diff_points": mad}


def measure_c13(ctx: Context) -> dict[str, float]:
    eff = ["Eff(LR)", "Eff(GBT)"]
    _need(any(c in ctx.present for c in eff), "no sample efficiencies (downstream accuracy at 100 and 10000 samples)")
    cells = np.concatenate([ctx.rho(d, NON_MODULARITY, eff).ravel() for d in ctx.datasets])
    cells = cells[~np.isnan(cells)]
    _need(cells.size > 0, "no dataset has both metric scores and sample efficiencies")
    low = []
    methods = np.asarray(ctx.cube.group_method)
    for dataset in ("scream_dsprites", "noisy_dsprites"):
        if dataset not in ctx.datasets:
            continue
        in_d = ctx.cube.group_dataset == ctx.datasets.index(dataset)
        for column in ("LR10000", "GBT10000"):
            values = ctx.values(column)
            ann = values[in_d & (methods == "annealed_vae")].ravel()
            rest = values[in_d & (methods != "annealed_vae")].ravel()
            ann, rest = ann[~np.isnan(ann)], rest[~np.isnan(rest)]
            if ann.size and rest.size:
                low.append(float(np.median(ann) < np.median(rest)))
    return {"share_efficiency_rho_strong": float((cells >= STRONG_RHO).mean()), "annealed_low_accuracy": _mean(low)}


def measure_c14(ctx: Context) -> dict[str, float]:
    present = [c for c in UNSUPERVISED_SCORES if c in ctx.present]
    tcs = [c for c in ("tc_sampled", "tc_mean") if c in present]
    _need(tcs, "no total correlation scores (evaluation 'unsupervised')")
    _need(any(c in ctx.present for c in ACCURACY_COLUMNS), "no downstream accuracies (downstream_task_* evaluations)")
    tc_cells = np.concatenate([ctx.rho(d, tcs, ACCURACY_COLUMNS).ravel() for d in ctx.datasets])
    all_cells = np.concatenate([ctx.rho(d, present, ACCURACY_COLUMNS).ravel()
                                for d in ctx.datasets])
    tc_cells = tc_cells[~np.isnan(tc_cells)]
    _need(tc_cells.size > 0, "no dataset has both total correlation and downstream accuracies")
    return {"share_lower_tc_helps": float((tc_cells <= HELPS_RHO).mean()),
            "median_abs_rho": float(_nanmedian(np.abs(all_cells), axis=None))}


# --------------------------------------------------------------------------------------------------- judges

def _judge_c2(v):
    ok = v["share_falling"] >= MAJORITY and (math.isnan(v["dip_below_vae"]) or v["dip_below_vae"] >= 0.5)
    return ok, "share_falling", MAJORITY


def _judge_c3(v):
    return v["share_rising"] >= MAJORITY, "share_rising", MAJORITY


def _judge_c4(v):
    ok = (v["mean_rho_non_modularity"] > AGREE_RHO and v["modularity_lowest"] >= 0.5
          and v["tight_pairs_top3"] >= 0.5)
    return ok, "mean_rho_non_modularity", AGREE_RHO


def _judge_c5(v):
    return v["top_winner_share"] <= 0.5 and v["iqr_overlap"] >= 0.5, "top_winner_share", 0.5


def _judge_c6(v):
    return v["p_worse_beats_better"] >= SEED_BEATS, "p_worse_beats_better", SEED_BEATS


def _judge_c7(v):
    return v["r2_method"] < 0.5 and v["seed_share"] >= 0.2, "r2_method", 0.5


def _judge_c8(v):
    return v["modal_best_share"] < 0.5, "modal_best_share", 0.5


def _judge_c9(v):
    return v["consistent_share"] <= 0.1, "consistent_share", 0.1


def _judge_c10(v):
    if math.isnan(v["rho_dsprites_color"]) or math.isnan(v["rho_other_pairs"]):
        raise NotMeasurable("no configuration shared by enough datasets to correlate their medians")
    ok = v["rho_dsprites_color"] >= STRONG_RHO and v["rho_dsprites_color"] - v["rho_other_pairs"] >= 0.2
    return ok, "rho_dsprites_color", STRONG_RHO


def _judge_c11(v):
    cross = [(k, v[k], v[f"chance {k}"]) for k in ("same_metric/other_dataset", "other_metric/same_dataset",
                                                    "other_metric/other_dataset") if not math.isnan(v[k])]
    if not cross:
        raise NotMeasurable("needs two metrics or two datasets for a transfer cell other than same/same")
    return all(rate <= chance + BARELY for _k, rate, chance in cross), cross[-1][0], None


def _judge_c12(v):
    ok = v["rho_dsprites_variants"] >= AGREE_RHO
    if not math.isnan(v["rho_modularity_dsprites"]):                # Modularity may be missing from the store
        ok = ok and v["rho_modularity_dsprites"] < v["rho_dsprites_variants"]
    if not math.isnan(v["rho_other_datasets"]):
        ok = ok and v["rho_other_datasets"] < v["rho_dsprites_variants"]
    return ok, "rho_dsprites_variants", AGREE_RHO


def _judge_c13(v):
    return v["share_efficiency_rho_strong"] < 0.5, "share_efficiency_rho_strong", 0.5


def _judge_c14(v):
    return v["share_lower_tc_helps"] < 0.5, "share_lower_tc_helps", 0.5


@dataclass(frozen=True)
class Claim:
    """One checkable claim: its id, the operational criterion in words, and its measure / judge functions."""
    id: str
    criterion: str
    measure: Callable[..., dict[str, float]]
    judge: Callable[[dict[str, float]], tuple[bool, str, float | None]]
    percent: tuple[str, ...] = ()


CLAIMS: tuple[Claim, ...] = (
    Claim("C2", f"share of (dataset, beta-VAE / beta-TCVAE) curves whose median sampled TC falls with strength "
                f"(Spearman < 0) >= {MAJORITY}, and both DIP-VAEs' median sampled TC below the vanilla VAE's on at "
                "least half the datasets", measure_c2, _judge_c2),
    Claim("C3", f"share of (dataset, beta-VAE / beta-TCVAE / FactorVAE) curves whose median mean TC rises with "
                f"strength (Spearman > 0) >= {MAJORITY}; also reported: fraction of models with TC(mean) > "
                "TC(sampled)", measure_c3, _judge_c3),
    Claim("C4", f"mean Spearman among the five non-Modularity metrics > {AGREE_RHO} (averaged over datasets), "
                "Modularity has the lowest mean correlation on at least half the datasets, and rho(BetaVAE, "
                "FactorVAE) and rho(MIG, DCI) are both among the three largest pairs on at least half the datasets",
          measure_c4, _judge_c4),
    Claim("C5", "no method wins (highest median) more than half of the (dataset, metric) cells, and the winner's "
                "interquartile range overlaps the runner-up's in at least half the cells", measure_c5, _judge_c5),
    Claim("C6", f"a run of a hyperparameter with a worse median beats a run of one with a better median (same "
                f"method, dataset, metric) with probability >= {SEED_BEATS}", measure_c6, _judge_c6),
    Claim("C7", "objective explains under half the variance (mean R^2 < 0.5 over (dataset, metric) cells) and the "
                "seed's residual share is >= 0.2", measure_c7, _judge_c7,
          percent=("r2_method", "r2_method_x_hparam", "seed_share")),
    Claim("C8", "for each method, the strength with the best median agrees with the method's most common best "
                "strength in under half of the (dataset, metric) cells (averaged over methods)", measure_c8,
          _judge_c8),
    Claim("C9", f"at most 10 % of (unsupervised score, metric) pairs have the same sign and |rho| >= {STRONG_RHO} "
                "on every dataset", measure_c9, _judge_c9),
    Claim("C10", f"median over metrics of rho(dSprites, Color-dSprites) over configuration medians >= "
                 f"{STRONG_RHO} and at least 0.2 above the other dataset pairs' median", measure_c10, _judge_c10),
    Claim("C11", f"every transfer cell other than same metric / same dataset is within {int(BARELY * 100)} points "
                 "of chance (0.5 + P(tie)/2); defaults of spec 1.7 (s' != s, independent random seed, random "
                 "configuration may equal c*)", measure_c11, _judge_c11,
          percent=("same_metric/same_dataset", "same_metric/other_dataset", "other_metric/same_dataset",
                   "other_metric/other_dataset")),
    Claim("C12", f"mean Spearman of the non-Modularity metrics with the downstream accuracies (LR/GBT, all sizes) "
                 f">= {AGREE_RHO} on the dSprites variants, higher than Modularity's there and than on the other "
                 "datasets (when present)", measure_c12, _judge_c12),
    Claim("C13", f"fewer than half of the (dataset, non-Modularity metric, LR/GBT) cells have rho(metric, "
                 f"efficiency) >= {STRONG_RHO}; also reported: whether AnnealedVAE's accuracy at 10000 is below "
                 "the other methods' on Scream-/Noisy-dSprites", measure_c13, _judge_c13),
    Claim("C14", f"fewer than half of the (dataset, TC representation, accuracy) cells have rho(TC, accuracy) <= "
                 f"{HELPS_RHO} (lower TC helping)", measure_c14, _judge_c14),
)


def _fmt(value: float, low: float, high: float, percent: bool) -> str:
    if math.isnan(value):
        return "n/a"
    scale, unit, digits = (100.0, " %", 1) if percent else (1.0, "", 3)
    text = f"{value * scale:.{digits}f}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
    return text + unit


def scorecard(scores: pd.DataFrame, runs: pd.DataFrame | None = None, n_boot: int = 100, alpha: float = 0.05,
              random_state: int = 0, transfer_draws: int = 10000) -> pd.DataFrame:
    """One row per checkable claim C2-C14 (spec/analysis.md section 2) on this store.

    ``scores``: tidy score frame or model table; ``runs``: optional run frame (training losses for C9 / C14).
    ``n_boot``: seed-bootstrap replicates for the intervals (0: none); ``alpha``: 1 - interval coverage;
    ``transfer_draws``: draws per cell of the transfer simulation (C11).

    Columns: ``claim`` (C2 ..), ``statement``, ``evidence`` (paper figures / tables), ``paper`` (the paper's numbers
    as printed), ``store`` (this store's numbers with intervals, formatted), ``value``, ``ci_low``, ``ci_high`` (the
    primary number, a fraction), ``values`` (dict of every number), ``verdict`` (one of :data:`VERDICTS`),
    ``criterion``, ``detail`` (what is missing, or notes).
    """
    table = as_model_table(scores, runs=runs)
    texts = paper_numbers()["claims"]
    measures: dict[str, Callable[[Context], dict[str, float]]] = {
        c.id: (lambda ctx, c=c: c.measure(ctx, n_draws=transfer_draws, random_state=random_state))
        if c.id == "C11" else c.measure for c in CLAIMS}
    cube = config_cube(table, ALL_COLUMNS)
    ctx = Context(cube)
    points: dict[str, dict[str, float] | str] = {}
    for claim in CLAIMS:
        try:
            points[claim.id] = measures[claim.id](ctx)
        except NotMeasurable as exc:
            points[claim.id] = str(exc)
    reps: dict[str, list[dict[str, float]]] = {c.id: [] for c in CLAIMS}
    if n_boot > 0 and len(cube.seeds):
        for drawn in resample_seeds(len(cube.seeds), n_boot, random_state):
            replicate = Context(cube.resample(drawn))
            for claim in CLAIMS:
                if isinstance(points[claim.id], dict):
                    try:
                        reps[claim.id].append(measures[claim.id](replicate))
                    except NotMeasurable:
                        reps[claim.id].append({})
    rows = []
    for claim in CLAIMS:
        text = texts[claim.id]
        row = {"claim": claim.id, "statement": text["claim"], "evidence": text["evidence"], "paper": text["paper"],
               "store": "n/a", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "values": {},
               "verdict": NOT_MEASURABLE, "criterion": claim.criterion, "detail": ""}
        point = points[claim.id]
        if isinstance(point, str):
            row["detail"] = f"missing: {point}"
            rows.append(row)
            continue
        names = list(point)
        rep = np.array([[r.get(k, np.nan) for k in names] for r in reps[claim.id]], dtype=float).reshape(-1,
                                                                                                          len(names))
        low, high = percentile_interval(rep, alpha) if len(rep) else (np.full(len(names), np.nan),) * 2
        shown = [k for k in names if not k.startswith("chance ")]
        row["values"] = {k: point[k] for k in names}
        row["store"] = "; ".join(f"{k} {_fmt(point[k], low[i], high[i], k in claim.percent)}"
                                 for i, k in enumerate(names) if k in shown)
        try:
            ok, key, threshold = claim.judge(point)
        except NotMeasurable as exc:
            row["detail"] = f"missing: {exc}"
            rows.append(row)
            continue
        i = names.index(names[0])
        row["value"], row["ci_low"], row["ci_high"] = point[names[0]], low[i], high[i]
        row["verdict"] = SUPPORTED if ok else NOT_SUPPORTED
        notes = []
        k = names.index(key)
        if threshold is not None and not (math.isnan(low[k]) or math.isnan(high[k])) and low[k] < threshold < high[k]:
            notes.append(f"the interval of {key} straddles the threshold {threshold:g}")
        if n_boot > 0:
            notes.append(f"intervals: {int(100 * (1 - alpha))} % seed bootstrap, {n_boot} replicates")
        row["detail"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["CLAIMS", "VERDICTS", "NotMeasurable", "paper_numbers", "scorecard"] + [
    f"measure_c{i}" for i in range(2, 15)]
