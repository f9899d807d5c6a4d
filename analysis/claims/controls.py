"""Positive controls: effects a store must show before its claims' statistics mean anything.

* :data:`CONFIGURATIONS_DIFFER`: the headline metrics differ between configurations (method, hyperparameter) more
  than when the configurations are shuffled among a dataset's models (permutation test of the mean adjusted R^2,
  p < 0.05), and by a share that matters (mean adjusted R^2 above 0.05). A store of untrained or identical models
  fails it: nothing it says about methods, seeds or agreement can be told from noise.
* :data:`ACCURACIES_DIFFER`: the same for the downstream accuracies.
* :data:`STRENGTH_VISIBLE`: the regularisation the objectives impose is visible: the KL term of beta-VAE,
  beta-TCVAE and AnnealedVAE falls with regularisation strength (mean Spearman over (dataset, method) below -0.3,
  interval included). Without it no trend in strength can be read.

The controls of claims C4 (metrics agree) and C11 (transfer within a metric and dataset) live with those claims.
"""
from __future__ import annotations

import numpy as np

from analysis.claims.engine import Context, Control, Test, need, row_spearman
from analysis.frames import DOWNSTREAM_COLUMNS, METRIC_NAMES

#: Permutations of the configuration labels in :func:`configuration_signal` (p-values down to 1/200).
N_PERMUTATIONS = 199
#: Methods whose KL term shrinks as their regularisation grows (beta weights the KL; AnnealedVAE's capacity c_max
#: shrinks with strength; beta-TCVAE's total-correlation penalty is part of the KL).
KL_SHRINKING = ("beta_vae", "beta_tc_vae", "annealed_vae")


def adjusted_r2(y: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Adjusted R^2 of a one-way grouping, row by row: ``y`` (..., N) values (NaN: missing), ``codes`` (N,) group of
    each column. R^2 = between-group / total sum of squares over the finite entries; adjusted = 1 - (1 - R^2)(n - 1)
    / (n - k) with n finite entries and k groups holding one. Its expectation is 0 when the groups do not matter.
    NaN where n - k < 1 or the values are constant."""
    onehot = np.zeros((len(codes), n_codes))
    onehot[np.arange(len(codes)), codes] = 1.0
    ok = ~np.isnan(y)
    y0 = np.where(ok, y, 0.0)
    n_g = ok.astype(float) @ onehot                                             # (..., k)
    s_g = y0 @ onehot
    n = ok.sum(axis=-1).astype(float)
    k = (n_g > 0).sum(axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = y0.sum(axis=-1) / n
        total = (y0 ** 2).sum(axis=-1) - n * mean ** 2
        between = np.where(n_g > 0, s_g ** 2 / np.where(n_g > 0, n_g, 1), 0.0).sum(axis=-1) - n * mean ** 2
        r2 = np.clip(between / total, 0.0, 1.0)
        adj = 1.0 - (1.0 - r2) * (n - 1) / (n - k)
    scale = (np.abs(mean) + 1.0) ** 2 * n
    return np.where((n - k >= 1) & (total > 1e-12 * scale), adj, np.nan)


def _dataset_models(ctx: Context, columns: list[str], k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(P, N) values of ``columns`` over the models of dataset ``k`` and the (N,) configuration code of each."""
    groups = np.nonzero(ctx.cube.group_dataset == k)[0]
    block = ctx.cube.values[[ctx.col[c] for c in columns]][:, groups]           # (P, g, H, S)
    n_g, n_h, n_s = block.shape[1:]
    codes = np.repeat(np.arange(n_g * n_h), n_s)
    return block.reshape(len(columns), -1), codes, n_g * n_h


def configuration_signal(ctx: Context, columns: list[str], n_permutations: int = N_PERMUTATIONS,
                         random_state: int = 0) -> tuple[float, float]:
    """(observed, p): the mean adjusted R^2 of the configuration over the (dataset, column) cells, and the share of
    ``n_permutations`` shufflings of the configuration labels among each dataset's models (the same shuffle for
    every column of a dataset) whose mean reaches it, counting the observed arrangement (a permutation p-value)."""
    rs = np.random.RandomState(random_state)
    observed, null = [], []
    for k in range(len(ctx.datasets)):
        y, codes, n_codes = _dataset_models(ctx, columns, k)
        if y.shape[1] < 3:
            continue
        observed.append(adjusted_r2(y, codes, n_codes))
        perms = np.array([rs.permutation(y.shape[1]) for _ in range(n_permutations)])
        null.append(adjusted_r2(y[:, perms], codes, n_codes))                  # (P, B)
    need(observed, "no dataset has enough models")
    obs = np.concatenate(observed)
    keep = ~np.isnan(obs)
    need(keep.any(), "no column varies between models")
    stat = float(obs[keep].mean())
    null_means = np.nanmean(np.concatenate(null, axis=0)[keep], axis=0)         # (B,)
    return stat, float((1 + (null_means >= stat).sum()) / (1 + n_permutations))


def _metrics_differ(ctx: Context) -> dict[str, float]:
    metrics = [m for m in METRIC_NAMES if m in ctx.present]
    need(metrics, "no headline metric scores")
    stat, p = configuration_signal(ctx, metrics)
    return {"config_adj_r2": stat, "config_p": p}


def _accuracies_differ(ctx: Context) -> dict[str, float]:
    columns = [c for c in DOWNSTREAM_COLUMNS if c in ctx.present]
    need(columns, "no downstream accuracies (downstream_task_* evaluations)")
    stat, p = configuration_signal(ctx, columns)
    return {"accuracy_config_adj_r2": stat, "accuracy_config_p": p}


def strength_trend(ctx: Context, column: str, methods) -> np.ndarray:
    """Spearman(strength, ``column``) over the models of each (dataset, method) group of ``methods`` with two or more
    strengths (NaN rows dropped): a strength curve per group, read on every model, not on medians."""
    need(column in ctx.present, f"no {column}")
    groups = ctx.in_methods(methods)
    y = ctx.values(column)[groups]                                             # (g, H, S)
    x = np.broadcast_to(ctx.cube.strength[groups][..., None], y.shape)
    rho = row_spearman(x.reshape(len(y), -1), y.reshape(len(y), -1))
    return rho[~np.isnan(rho)]


#: Shufflings of the strengths among a group's models for the permutation p-values of a trend.
N_TREND_PERMUTATIONS = 999


def trend_with_null(ctx: Context, column: str, methods, key: str) -> dict[str, float]:
    """``{key: mean Spearman(strength, column) over the groups of methods, key:p_below, key:p_above}``: the mean of
    :func:`strength_trend`, and the shares of shufflings of the strengths among each group's models (independently
    per group) whose mean is <= / >= it, counting the observed one (one-sided permutation p-values: exact whatever
    the number of seeds). A bootstrap replicate (``ctx.replicate``) gets the mean only."""
    need(column in ctx.present, f"no {column}")
    groups = ctx.in_methods(methods)
    y = ctx.values(column)[groups].reshape(int(groups.sum()), -1)              # (g, H*S)
    x = np.broadcast_to(ctx.cube.strength[groups][..., None],
                        ctx.values(column)[groups].shape).reshape(y.shape)
    rho = row_spearman(x, y)
    keep = ~np.isnan(rho)
    need(keep.any(), f"no group with two or more strengths and {column}")
    stat = float(rho[keep].mean())
    out = {key: stat}
    if ctx.replicate:
        return out
    rs = np.random.RandomState(0)
    x, y = x[keep], y[keep]
    per_group = np.empty((len(x), N_TREND_PERMUTATIONS))
    for g in range(len(x)):
        order = rs.rand(N_TREND_PERMUTATIONS, x.shape[1]).argsort(axis=1)
        per_group[g] = row_spearman(x[g][order], np.broadcast_to(y[g], order.shape))
    null = np.nanmean(per_group, axis=0)
    out[f"{key}:p_below"] = float((1 + (null <= stat + 1e-12).sum()) / (1 + N_TREND_PERMUTATIONS))
    out[f"{key}:p_above"] = float((1 + (null >= stat - 1e-12).sum()) / (1 + N_TREND_PERMUTATIONS))
    return out


def _strength_visible(ctx: Context) -> dict[str, float]:
    try:
        return trend_with_null(ctx, "kl_loss", KL_SHRINKING, "kl_strength_rho")
    except Exception as exc:
        from analysis.claims.engine import NotMeasurable
        if isinstance(exc, NotMeasurable):
            raise NotMeasurable("no beta-VAE, beta-TCVAE or AnnealedVAE runs with two or more strengths and a KL "
                                "term") from None
        raise


#: The least share of a metric's variance, beyond chance, that configurations must explain for the store to
#: resolve them: 5 %. A noise store's mean adjusted R^2 varies by about 0.005 (10 seeds) to 0.03 (3 seeds) around 0,
#: so the floor and the permutation test together pass on noise far less often than the test's 5 % alone.
MIN_ADJ_R2 = 0.05

CONFIGURATIONS_DIFFER = Control(
    "configurations differ", "differences between configurations (its metrics do not beat shuffled configurations)",
    _metrics_differ, (Test("config_p", "<", 0.05, "the metrics differ between configurations beyond shuffling"),
                      Test("config_adj_r2", ">", MIN_ADJ_R2, "configurations explain at least 5 % of the variance")),
    exact=("config_p", "config_adj_r2"))
ACCURACIES_DIFFER = Control(
    "accuracies differ", "differences in downstream accuracy between configurations", _accuracies_differ,
    (Test("accuracy_config_p", "<", 0.05, "the accuracies differ between configurations beyond shuffling"),
     Test("accuracy_config_adj_r2", ">", MIN_ADJ_R2, "configurations explain at least 5 % of their variance")),
    exact=("accuracy_config_p", "accuracy_config_adj_r2"))
STRENGTH_VISIBLE = Control(
    "strength visible", "the effect of regularisation strength (the KL term does not fall with strength)",
    _strength_visible, (Test("kl_strength_rho", "<", -0.3, "the KL term falls with regularisation strength",
                             permutation=True),))
