"""Where a metric's variance comes from: configurations, seeds within a configuration (training noise), or the
metric's own evaluation (evaluation noise) - beyond the paper, which splits a metric's variance between objective,
hyperparameter and seed (Fig. 3, Table 5) but cannot tell a seed's effect from the noise of scoring it once.

``dstudy models`` re-scores every saved model with R other evaluation seeds (representations ``mean~r1`` ...,
:mod:`training.evaluation.replicates`); with the stored ``mean`` score each model has R + 1 evaluation replicates.
Per (dataset, metric), the nested random-effects model

    y[c, s, r] = mu + a[c] + b[c, s] + e[c, s, r],   a ~ N(0, var_config), b ~ N(0, var_seed), e ~ N(0, var_eval)

(configuration c = method and hyperparameter value, seed s, replicate r) is fitted by the method of moments (the
nested ANOVA; Searle, Casella & McCulloch, "Variance Components", 1992, Section 3.6, with their coefficients for
unequal numbers of seeds and replicates): with N scores, C configurations, M models,

    MS_config = SS_config / (C - 1),   MS_seed = SS_seed / (M - C),   MS_eval = SS_eval / (N - M)
    E MS_eval = var_eval;   E MS_seed = var_eval + k1 var_seed;   E MS_config = var_eval + k2 var_seed + k3 var_config
    k1 = (N - sum_cs n_cs^2 / n_c) / (M - C),   k2 = (sum_cs n_cs^2 / n_c - sum_cs n_cs^2 / N) / (C - 1),
    k3 = (N - sum_c n_c^2 / N) / (C - 1)

(n_cs replicates of model (c, s), n_c scores of configuration c; balanced: k1 = k2 = R + 1, k3 = S (R + 1)). The
estimates solve these equations; a negative one is reported as 0 (its share too). Shares are each component over
their sum; ``training_share`` = var_seed / (var_seed + var_eval) is the part of the within-configuration variance that
training noise explains - the answer to "does the seed matter, or only the evaluation?".

* tests: seeds differ beyond evaluation noise when F = MS_seed / MS_eval is large (F(M - C, N - M), exact for a
  balanced design under normality); configurations beyond seeds when MS_config / MS_seed is large. Holm over the
  metrics of the table.
* intervals: for ``training_share``, the exact interval of the ratio theta = var_seed / var_eval from
  F = MS_seed / MS_eval ~ (1 + k1 theta) F(M - C, N - M) (Searle, Casella & McCulloch, Section 3.6; exact for a
  balanced design under normality, whatever the number of configurations), mapped through theta / (1 + theta); for
  the three shares of the total, a percentile bootstrap of the configurations (the independent units; each drawn
  configuration keeps all its models and replicates: the cluster bootstrap of a nested design), only with at least
  :data:`MIN_CONFIGURATIONS` configurations: with fewer, a resample of configurations takes too few distinct values
  (10 multisets of 3) for its percentiles to be an interval.

Replicate r uses the same evaluation seed for every model (as the reference scores every model on the same draws), so
a replicate's shared shift counts as evaluation noise too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frames import METRIC_NAMES, with_reason
from analysis.model_scores import HOW_TO, headline_long
from analysis.significance import holm
from training.evaluation.replicates import replicate_index
from training.randomness import check_random_state

N_BOOT = 1000
#: Fewest configurations of a dataset for the configuration bootstrap's intervals (126 distinct resamples of 5).
MIN_CONFIGURATIONS = 5
COMPONENTS = ("config", "seed", "eval")


def replicate_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, metric, replicate) of the ``mean`` scores and their replicates: ``run_id, dataset,
    method, hparam_value, seed, metric, replicate`` (0 = the stored ``mean`` score), ``value``."""
    long = headline_long(scores)
    rep = long["representation"].map(replicate_index)
    out = long[rep.notna()].assign(replicate=rep[rep.notna()].astype(int)).drop(columns=["representation"])
    return out.dropna(subset=["value"]).reset_index(drop=True)


def nested_anova(values: np.ndarray, config: np.ndarray, model: np.ndarray) -> dict[str, float]:
    """Method-of-moments variance components of one metric (module docstring): ``values`` (N,), the configuration
    and model label of each (N,). Returns the mean squares, degrees of freedom, ``k1 k2 k3``, the components
    ``var_config, var_seed, var_eval`` (negative estimates set to 0), their shares, ``training_share``, and the
    F-test p-values ``p_seed`` (seeds beyond evaluation noise) and ``p_config`` (configurations beyond seeds); NaN
    where the design cannot tell (fewer than two of a level)."""
    y = np.asarray(values, dtype=float)
    c_codes = pd.factorize(np.asarray(config))[0]
    m_codes = pd.factorize(np.asarray(model))[0]
    n = float(y.size)
    n_c = np.bincount(c_codes).astype(float)
    n_m = np.bincount(m_codes).astype(float)
    m_config = np.zeros(n_m.size, dtype=int)
    m_config[m_codes] = c_codes
    big_c, big_m = n_c.size, n_m.size
    mean_c = np.bincount(c_codes, weights=y) / n_c
    mean_m = np.bincount(m_codes, weights=y) / n_m
    grand = y.mean() if y.size else float("nan")
    ss_config = float((n_c * (mean_c - grand) ** 2).sum())
    ss_seed = float((n_m * (mean_m - mean_c[m_config]) ** 2).sum())
    ss_eval = float(((y - mean_m[m_codes]) ** 2).sum())
    df_config, df_seed, df_eval = big_c - 1, big_m - big_c, n - big_m
    nan = float("nan")
    ms_config = ss_config / df_config if df_config > 0 else nan
    ms_seed = ss_seed / df_seed if df_seed > 0 else nan
    ms_eval = ss_eval / df_eval if df_eval > 0 else nan
    within = float((n_m ** 2 / n_c[m_config]).sum())
    k1 = (n - within) / df_seed if df_seed > 0 else nan
    k2 = (within - (n_m ** 2).sum() / n) / df_config if df_config > 0 else nan
    k3 = (n - (n_c ** 2).sum() / n) / df_config if df_config > 0 else nan
    var_eval = ms_eval
    var_seed = (ms_seed - ms_eval) / k1
    var_config = (ms_config - ms_eval - k2 * var_seed) / k3
    comps = {"config": var_config, "seed": var_seed, "eval": var_eval}
    clipped = {k: (max(v, 0.0) if np.isfinite(v) else nan) for k, v in comps.items()}
    total = sum(clipped.values())
    out = {"n": n, "configurations": big_c, "models": big_m, "ms_config": ms_config, "ms_seed": ms_seed,
           "ms_eval": ms_eval, "df_config": df_config, "df_seed": df_seed, "df_eval": df_eval,
           "k1": k1, "k2": k2, "k3": k3}
    for k in COMPONENTS:
        out[f"var_{k}"] = clipped[k]
        out[f"share_{k}"] = clipped[k] / total if np.isfinite(total) and total > 0 else nan
    within_total = clipped["seed"] + clipped["eval"]
    out["training_share"] = clipped["seed"] / within_total if np.isfinite(within_total) and within_total > 0 else nan
    out["p_seed"] = _f_p(ms_seed, ms_eval, df_seed, df_eval)
    out["p_config"] = _f_p(ms_config, ms_seed, df_config, df_seed)
    return out


def training_share_interval(fit: dict, alpha: float = 0.05) -> tuple[float, float]:
    """The ``1 - alpha`` interval of ``training_share`` from a :func:`nested_anova` fit (module docstring): the
    interval of theta = var_seed / var_eval from the F distribution, clipped at 0, as theta / (1 + theta); NaN where
    the fit has no F ratio."""
    ms_seed, ms_eval, k1 = fit["ms_seed"], fit["ms_eval"], fit["k1"]
    df1, df2 = fit["df_seed"], fit["df_eval"]
    if not (np.isfinite(ms_seed) and np.isfinite(ms_eval) and np.isfinite(k1) and df1 > 0 and df2 > 0 and k1 > 0):
        return float("nan"), float("nan")
    if ms_eval <= 0:
        return (1.0, 1.0) if ms_seed > 0 else (float("nan"), float("nan"))
    ratio = ms_seed / ms_eval
    theta_low = max((ratio / stats.f.ppf(1 - alpha / 2, df1, df2) - 1.0) / k1, 0.0)
    theta_high = max((ratio / stats.f.ppf(alpha / 2, df1, df2) - 1.0) / k1, 0.0)
    return float(theta_low / (1 + theta_low)), float(theta_high / (1 + theta_high))


def _f_p(numerator: float, denominator: float, df1: float, df2: float) -> float:
    if not (np.isfinite(numerator) and np.isfinite(denominator) and df1 > 0 and df2 > 0):
        return float("nan")
    if denominator <= 0:
        return 0.0 if numerator > 0 else float("nan")
    return float(stats.f.sf(numerator / denominator, df1, df2))


def variance_components(scores: pd.DataFrame, n_boot: int = N_BOOT, alpha: float = 0.05,
                        random_state: int = 0) -> pd.DataFrame:
    """The decomposition of every (dataset, headline metric) with evaluation replicates (module docstring).

    One row per (dataset, metric): ``dataset, metric, configurations, models, replicates`` (evaluations per model,
    at most), ``var_config, var_seed, var_eval``, ``share_config, share_seed, share_eval, training_share`` with
    ``<name>_low`` / ``<name>_high`` (``1 - alpha`` intervals: the F interval for ``training_share``, the
    configuration bootstrap for the others, NaN below :data:`MIN_CONFIGURATIONS` configurations), ``p_seed``,
    ``p_config`` and their Holm adjustments over the table. ``attrs['reason']`` when no model has a replicate.
    """
    long = replicate_scores(scores)
    shares = ["share_config", "share_seed", "share_eval", "training_share"]
    columns = (["dataset", "metric", "configurations", "models", "replicates", "var_config", "var_seed", "var_eval"]
               + [f"{s}{x}" for s in shares for x in ("", "_low", "_high")]
               + ["p_seed", "p_config", "p_seed_holm", "p_config_holm"])
    if long.empty or not (long["replicate"] > 0).any():
        return with_reason(pd.DataFrame(columns=columns),
                           f"the store has no evaluation replicates (representations mean~r1, mean~r2, ...); {HOW_TO}.")
    long = long.assign(config=long["method"].astype(str) + "(" + long["hparam_value"].map("{:g}".format) + ")")
    replicated = long.groupby("run_id")["replicate"].transform("max") > 0
    long = long[replicated]
    rs = check_random_state(random_state)
    rows = []
    for (dataset, metric), part in long.groupby(["dataset", "metric"], sort=True, observed=True):
        if part["config"].nunique() < 2:
            continue
        fit = nested_anova(part["value"].to_numpy(), part["config"].to_numpy(), part["run_id"].to_numpy())
        reps = (_bootstrap_shares(part, n_boot, rs) if fit["configurations"] >= MIN_CONFIGURATIONS
                else np.full((1, 4), np.nan))
        row = {"dataset": dataset, "metric": metric, "configurations": fit["configurations"], "models": fit["models"],
               "replicates": int(part.groupby("run_id").size().max()),
               **{f"var_{k}": fit[f"var_{k}"] for k in COMPONENTS}, "p_seed": fit["p_seed"],
               "p_config": fit["p_config"]}
        for j, name in enumerate(shares):
            row[name] = fit[name]
            finite = reps[:, j][np.isfinite(reps[:, j])]
            row[f"{name}_low"], row[f"{name}_high"] = (np.quantile(finite, [alpha / 2, 1 - alpha / 2]) if finite.size
                                                       else (np.nan, np.nan))
        row["training_share_low"], row["training_share_high"] = training_share_interval(fit, alpha)
        rows.append(row)
    if not rows:
        return with_reason(pd.DataFrame(columns=columns), "evaluation replicates need two configurations of a "
                                                          "dataset")
    out = pd.DataFrame(rows)
    out["p_seed_holm"] = holm(out["p_seed"].to_numpy())
    out["p_config_holm"] = holm(out["p_config"].to_numpy())
    order = {m: i for i, m in enumerate(METRIC_NAMES)}
    out = out.sort_values(["dataset", "metric"], key=lambda s: s.map(order) if s.name == "metric" else s)
    return with_reason(out[columns].reset_index(drop=True), None)


def _bootstrap_shares(part: pd.DataFrame, n_boot: int, rs: np.random.RandomState) -> np.ndarray:
    """(n_boot, 4) shares (config, seed, eval, training) of configuration-bootstrap replicates of one metric's
    scores (a configuration drawn twice enters as two configurations, with distinct models)."""
    values = part["value"].to_numpy(dtype=float)
    config_codes, configs = pd.factorize(part["config"])
    model_codes, models = pd.factorize(part["run_id"])
    rows = [np.flatnonzero(config_codes == c) for c in range(len(configs))]
    out = np.full((n_boot, 4), np.nan)
    for b in range(n_boot):
        drawn = rs.randint(0, len(configs), size=len(configs))
        idx = np.concatenate([rows[k] for k in drawn])
        copy = np.repeat(np.arange(len(drawn)), [rows[k].size for k in drawn])
        fit = nested_anova(values[idx], copy, copy * len(models) + model_codes[idx])
        out[b] = [fit["share_config"], fit["share_seed"], fit["share_eval"], fit["training_share"]]
    return out
