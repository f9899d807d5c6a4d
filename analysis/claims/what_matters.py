"""Claims C5-C8 (Sections 5.3 and 5.4, Fig. 3, Table 5, Fig. 4 left): how much method, hyperparameter and seed matter."""
from __future__ import annotations

import numpy as np

from analysis.claims.controls import CONFIGURATIONS_DIFFER, adjusted_r2
from analysis.claims.engine import Claim, Context, Test, nanmean, need
from analysis.frames import METRIC_NAMES
from analysis.variance import nan_median, worse_beats_better

#: C5: two score distributions whose interquartile ranges overlap have P(X > Y) below about 0.83 (normal scores of
#: equal spread: the ranges touch at a difference of 1.35 sd, P = Phi(1.35 / sqrt 2)); 0.8 keeps the overlap clear.
OVERLAP_AUC = 0.8
#: C6: a worse hyperparameter's run beats a better one's in at least one pair in five.
SEED_BEATS = 0.2
#: C7: the objective explains less than half of a metric's variance; the seed leaves at least a fifth unexplained.
R2_METHOD = 0.5
SEED_SHARE = 0.2
#: C8: a general recipe would make most cells agree with it; under it, fewer than half do.
RECIPE = 0.5


def _metrics(ctx: Context) -> list[str]:
    metrics = [m for m in METRIC_NAMES if m in ctx.present]
    need(metrics, "no headline metric scores")
    return metrics


def measure_c5(ctx: Context) -> dict[str, float]:
    """``best_vs_runner_up``: in each (dataset, metric) cell with two or more methods, P(a model of the method with
    the best median beats a model of the runner-up; ties half), averaged over cells. ``top_winner_share``
    (reported): the share of cells won by the method that wins most often."""
    need(len(set(ctx.methods)) >= 2, "needs at least two methods")
    aucs, winners = [], []
    for dataset in ctx.datasets:
        groups = np.nonzero(ctx.in_dataset(dataset))[0]
        if len(groups) < 2:
            continue
        for metric in _metrics(ctx):
            models = ctx.values(metric)[groups].reshape(len(groups), -1)       # (g, H*S)
            medians = nan_median(models)
            ok = np.nonzero(~np.isnan(medians))[0]
            if ok.size < 2:
                continue
            order = ok[np.argsort(-medians[ok], kind="stable")]
            best, second = models[order[0]], models[order[1]]
            best, second = best[~np.isnan(best)], second[~np.isnan(second)]
            diff = best[:, None] - second[None, :]
            aucs.append(float((diff > 0).mean() + 0.5 * (diff == 0).mean()))
            winners.append(ctx.methods[groups[order[0]]])
    need(aucs, "needs a (dataset, metric) cell with scores for two or more methods")
    counts = np.unique(np.asarray(winners, dtype=str), return_counts=True)[1]
    return {"best_vs_runner_up": nanmean(aucs), "top_winner_share": float(counts.max() / counts.sum())}


def measure_c6(ctx: Context) -> dict[str, float]:
    """``p_worse_beats_better``: for each (dataset, metric, method) and each pair of its hyperparameter values with
    medians m_i < m_j, P(a run of i scores strictly above a run of j), averaged over pairs and cells."""
    need(ctx.n_seeds >= 2, "needs at least two seeds per configuration")
    mean_p, n_pairs = worse_beats_better(ctx.cube.values[[ctx.col[m] for m in _metrics(ctx)]])
    need((n_pairs > 0).any(), "needs a method with two or more hyperparameter values")
    return {"p_worse_beats_better": float(np.nanmean(mean_p[n_pairs > 0]))}


def measure_c7(ctx: Context) -> dict[str, float]:
    """Adjusted R^2 (expectation 0 when the grouping does not matter) of the objective (``r2_method_adj``) and of the
    configuration, objective x hyperparameter, over the models of each (dataset, metric) cell, averaged over cells;
    ``seed_share`` = 1 - the configuration's. Also the raw R^2 (``r2_method``, ``r2_config``) and what raw R^2
    averages under no effect, (k - 1) / (n - 1) (``r2_config_null``)."""
    need(len(set(ctx.methods)) >= 2, "needs at least two methods")
    metrics = _metrics(ctx)
    adj_m, adj_c, raw_m, raw_c, null_c = [], [], [], [], []
    for k in range(len(ctx.datasets)):
        groups = np.nonzero(ctx.cube.group_dataset == k)[0]
        y = ctx.cube.values[[ctx.col[m] for m in metrics]][:, groups].reshape(len(metrics), -1)
        n_g, n_h, n_s = len(groups), ctx.cube.values.shape[2], ctx.cube.values.shape[3]
        method_codes = np.repeat(np.arange(n_g), n_h * n_s)
        config_codes = np.repeat(np.arange(n_g * n_h), n_s)
        adj_m.append(adjusted_r2(y, method_codes, n_g))
        adj_c.append(adjusted_r2(y, config_codes, n_g * n_h))
        n = (~np.isnan(y)).sum(axis=1).astype(float)
        k_c = np.array([len(np.unique(config_codes[~np.isnan(row)])) for row in y], dtype=float)
        k_m = np.array([len(np.unique(method_codes[~np.isnan(row)])) for row in y], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            raw_m.append(1 - (1 - adj_m[-1]) * (n - k_m) / (n - 1))
            raw_c.append(1 - (1 - adj_c[-1]) * (n - k_c) / (n - 1))
            null_c.append((k_c - 1) / (n - 1))
    adj_m, adj_c = np.concatenate(adj_m), np.concatenate(adj_c)
    need(not np.isnan(adj_c).all(), "no (dataset, metric) cell with enough varying scores")
    return {"r2_method_adj": nanmean(adj_m), "seed_share": 1.0 - nanmean(adj_c),
            "r2_method": nanmean(np.concatenate(raw_m)), "r2_config": nanmean(np.concatenate(raw_c)),
            "r2_config_null": nanmean(np.concatenate(null_c))}


def measure_c8(ctx: Context) -> dict[str, float]:
    """``recipe_share``: for each method, the strength whose median is best in the most (dataset, metric) cells is its
    "recipe"; the share of cells whose best strength is that recipe, averaged over methods. A tie for the best in
    a cell, or for the recipe, counts each tied strength with an equal part (ties broken at random and averaged)."""
    metrics = _metrics(ctx)
    need(len(ctx.datasets) >= 2, "needs two or more datasets: a recipe is a strength that is best across datasets "
                                 f"(this store has {len(ctx.datasets)})")
    med = ctx.medians[[ctx.col[m] for m in metrics]]                               # (M, G, H)
    strength = np.round(ctx.cube.strength, 6)
    shares = []
    for method in dict.fromkeys(ctx.methods):
        groups = np.nonzero(ctx.methods == method)[0]
        levels = np.unique(strength[groups][~np.isnan(strength[groups])])
        if levels.size < 2:
            continue
        votes = []                                                                  # one row per cell
        for g in groups:
            for cell in med[:, g]:
                ok = ~np.isnan(cell)
                if ok.sum() < 2:
                    continue
                top = ok & (cell == np.nanmax(cell))
                row = np.zeros(levels.size)
                np.add.at(row, np.searchsorted(levels, strength[g][top]), 1.0 / top.sum())
                votes.append(row)
        if len(votes) < 2:
            continue
        votes = np.asarray(votes)
        totals = votes.sum(axis=0)
        recipes = np.isclose(totals, totals.max())
        shares.append(float(votes[:, recipes].mean(axis=0).mean()))             # tied recipes: averaged
    need(shares, "needs a method with two or more strengths scored in two or more cells")
    return {"recipe_share": nanmean(shares)}


C5 = Claim(
    "C5",
    f"best_vs_runner_up < {OVERLAP_AUC}: in each (dataset, metric) cell a model of the method with the best median "
    f"beats a model of the runner-up with probability below {OVERLAP_AUC} (where two distributions' interquartile "
    "ranges still overlap), averaged over cells; also reported: the share of cells the most frequent winner wins",
    measure_c5, (Test("best_vs_runner_up", "<", OVERLAP_AUC, "the best method's scores overlap the runner-up's"),),
    CONFIGURATIONS_DIFFER, percent=("top_winner_share",))

C6 = Claim(
    "C6",
    f"p_worse_beats_better > {SEED_BEATS}: a run of a hyperparameter value with a worse median beats a run of one "
    f"with a better median (same method, dataset, metric) more often than one time in {int(1 / SEED_BEATS)}",
    measure_c6, (Test("p_worse_beats_better", ">", SEED_BEATS, "a good seed can beat a better hyperparameter"),),
    CONFIGURATIONS_DIFFER, percent=("p_worse_beats_better",))

C7 = Claim(
    "C7",
    f"r2_method_adj < {R2_METHOD}: the objective explains less than half of a metric's variance; seed_share > "
    f"{SEED_SHARE}: objective x hyperparameter leaves more than a fifth to the seed (adjusted R^2, averaged over "
    "(dataset, metric) cells; intervals by a delete-one-seed jackknife); also reported: raw R^2 and its value "
    "under no effect, (k - 1) / (n - 1)",
    measure_c7,
    (Test("r2_method_adj", "<", R2_METHOD, "the objective explains less than half the variance"),
     Test("seed_share", ">", SEED_SHARE, "the seed leaves a substantial share")),
    CONFIGURATIONS_DIFFER, jackknife=("r2_method_adj", "seed_share", "r2_method", "r2_config", "r2_config_null"),
    percent=("r2_method_adj", "seed_share", "r2_method", "r2_config", "r2_config_null"))

C8 = Claim(
    "C8",
    f"recipe_share < {RECIPE}: for each method, fewer than half of the (dataset, metric) cells have their best "
    "strength at the method's most common best strength (averaged over methods; ties split evenly)",
    measure_c8, (Test("recipe_share", "<", RECIPE, "no strength is best in most cells"),),
    CONFIGURATIONS_DIFFER, percent=("recipe_share",))
