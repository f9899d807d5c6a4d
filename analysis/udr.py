"""Model selection by UDR (Duan et al., ICLR 2020) in the paper's Table 1 framework (Section 5.4): does the model
an unsupervised score picks beat a random model?

UDR (:mod:`training.evaluation.metrics.udr`, stored by ``dstudy models``) scores a model by how well its latents
match, one to one, those of the other seeds of its configuration. One selection *trial* here, the analogue of
Table 1's (:mod:`analysis.transfer`):

1. a dataset d and a seed slot s: the candidates are the models of d trained with seed s, one per configuration;
2. the candidate with the highest UDR is chosen (a tie splits the trial evenly among the tied candidates);
3. it wins against a random model of d (a uniform configuration with an independent uniform seed, possibly itself)
   when its score on metric m is at least the random model's (ties count as wins, as in the paper).

Every rate is the exact expectation over the trial's uniform draws (no simulation), pooled over the (d, s) trials,
and ``chance`` = 0.5 + P(tie) / 2 is what a selector without information scores. Beside it, ``transfer`` is Table 1's
same-metric, same-dataset cell for m alone: the configuration best on m with one seed, scored with another seed
(:func:`analysis.transfer.transfer_rate`) - selection WITH the metric's labels, a ceiling for an unsupervised score.

* test: under "UDR says nothing about m", UDR values are exchangeable among the models of a dataset;
  ``p`` = (1 + #{permutations with rate - chance >= observed}) / (1 + n_perm), one-sided (beats random), UDR
  permuted among each dataset's models; Holm over the metrics (``p_holm``);
* interval: bootstrap of the models stratified by configuration (each configuration's seed slots drawn with
  replacement, UDR and metrics of a model kept together; :func:`analysis.bootstrap.resample_models`), centred on
  the estimate with its spread inflated by sqrt(S / (S - 1)) as the claims' intervals are
  (:func:`analysis.bootstrap.centred_interval`): drawing the best model of a seed slot from repeated models shifts
  the replicates' location, their spread measures the sampling variation.

:func:`udr_table` adds the stored UDR to a model table; :func:`udr_selection` is the table of the page.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bootstrap import centred_interval, resample_models
from analysis.frames import METRIC_NAMES, as_model_table, with_reason
from analysis.model_scores import HOW_TO, UDR_KEYS, run_values
from analysis.significance import holm
from analysis.transfer import transfer_rate, win_and_tie
from training.randomness import check_random_state

UDR_COLUMN = "UDR"
N_PERM = 2000
N_BOOT = 1000


def udr_table(scores: pd.DataFrame, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The model table (``table``, else built from the tidy ``scores``) with the columns ``UDR`` and ``informative
    latents`` from the stored UDR (NaN where a run has none)."""
    base = as_model_table(table if table is not None else scores)
    values = run_values(scores, "mean", "udr", UDR_KEYS).set_index("run_id")
    out = base.copy()
    out[UDR_COLUMN] = out["run_id"].astype(str).map(values["udr"]).astype(float)
    out["informative latents"] = out["run_id"].astype(str).map(values["num_informative_latents"]).astype(float)
    return out


def selection_tensor(table: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str], list[str], list]:
    """``values[dataset, column, configuration, seed]`` (NaN: no model) of a model table's ``columns``, with the
    dataset, configuration (``method(value)``) and seed labels; several runs of one cell are averaged."""
    d_codes, datasets = pd.factorize(table["dataset"].astype(str), sort=True)
    c_codes, configs = pd.factorize(table["config"].astype(str), sort=True)
    s_codes, seeds = pd.factorize(table["seed"], sort=True)
    values = np.full((len(datasets), len(columns), len(configs), len(seeds)), np.nan)
    for k, column in enumerate(columns):
        cell = pd.DataFrame({"d": d_codes, "c": c_codes, "s": s_codes, "v": table[column].to_numpy(dtype=float)})
        mean = cell.dropna().groupby(["d", "c", "s"])["v"].mean()
        if len(mean):
            d, c, s = (mean.index.get_level_values(i).to_numpy() for i in range(3))
            values[d, k, c, s] = mean.to_numpy()
    return values, list(datasets), list(configs), list(seeds)


def choice_weights(selector: np.ndarray) -> np.ndarray:
    """(..., d, s, c) weights of the chosen candidate from a selector (..., d, c, s): 1/k for each of the k
    candidates tied at the highest selector value among the configurations of seed slot s; 0 where none has one."""
    v = np.swapaxes(np.asarray(selector, dtype=float), -1, -2)
    top = np.max(np.where(np.isnan(v), -np.inf, v), axis=-1, keepdims=True)
    chosen = (v == top) & ~np.isnan(v)
    k = chosen.sum(axis=-1, keepdims=True)
    return np.where(k > 0, chosen / np.where(k > 0, k, 1), 0.0)


def selection_rates(metrics: np.ndarray, selector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per metric: (rate, chance, trials) of the selector's choice against a random model (module docstring).

    ``metrics``: (d, m, c, s) scores; ``selector``: (d, c, s) or (P, d, c, s) for P selectors at once (then every
    output has a leading P axis). ``trials``: the expected number of (d, s) trials whose choice and rival have
    scores."""
    win, tie, available = win_and_tie(metrics)                                  # (d, m, c, s)
    weights = choice_weights(selector)                                          # (..., d, s, c)
    w_avail = np.einsum("...dsc,dmcs->...m", weights, available)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.einsum("...dsc,dmcs->...m", weights, win) / w_avail
        chance = 0.5 + 0.5 * np.einsum("...dsc,dmcs->...m", weights, tie) / w_avail
    return rate, chance, w_avail


def _permuted(selector: np.ndarray, n_perm: int, rs: np.random.RandomState) -> np.ndarray:
    """(n_perm, d, c, s) copies of the selector (d, c, s) with its values shuffled among each dataset's models."""
    out = np.broadcast_to(selector, (n_perm,) + selector.shape).copy()
    for d in range(selector.shape[0]):
        cells = np.flatnonzero(~np.isnan(selector[d]))
        if cells.size < 2:
            continue
        values = selector[d].ravel()[cells]
        order = np.argsort(rs.random_sample((n_perm, cells.size)), axis=1)
        flat = out[:, d].reshape(n_perm, -1)
        flat[:, cells] = values[order]
        out[:, d] = flat.reshape(out[:, d].shape)
    return out


def udr_selection(table: pd.DataFrame, n_perm: int = N_PERM, n_boot: int = N_BOOT, alpha: float = 0.05,
                  random_state: int = 0) -> pd.DataFrame:
    """UDR-based selection against random selection, per headline metric (module docstring).

    ``table``: a model table with a ``UDR`` column (:func:`udr_table`). One row per metric with scores:
    ``metric, trials, rate, ci_low, ci_high, chance, excess_low, excess_high`` (the interval of rate - chance),
    ``p``, ``p_holm``, ``transfer``, ``transfer_chance``. ``attrs``: ``models`` (with UDR), ``configurations``,
    ``seeds``, ``datasets``, ``n_perm``, ``n_boot``; ``reason`` when the store lacks UDR or a second model.
    """
    columns = ["metric", "trials", "rate", "ci_low", "ci_high", "chance", "excess_low", "excess_high", "p", "p_holm",
               "transfer", "transfer_chance"]
    if UDR_COLUMN not in table.columns or not table[UDR_COLUMN].notna().any():
        return with_reason(pd.DataFrame(columns=columns), f"the store has no UDR scores; {HOW_TO}.")
    used = table[table[UDR_COLUMN].notna()]
    metrics = [m for m in METRIC_NAMES if m in used.columns and used[m].notna().any()]
    if not metrics or used["config"].nunique() < 2:
        return with_reason(pd.DataFrame(columns=columns), "UDR selection needs two configurations with UDR and "
                                                          "metric scores")
    values, datasets, configs, seeds = selection_tensor(used, metrics + [UDR_COLUMN])
    scores, selector = values[:, :-1], values[:, -1]
    rate, chance, trials = selection_rates(scores, selector)
    rs = check_random_state(random_state)
    null_rate, null_chance, _ = selection_rates(scores, _permuted(selector, n_perm, rs))
    excess = rate - chance
    p = (1 + ((null_rate - null_chance) >= excess[None] - 1e-12).sum(axis=0)) / (1 + n_perm)
    p = np.where(np.isnan(excess), np.nan, p)
    drawn = resample_models((len(datasets), len(configs)), len(seeds), n_boot, random_state)  # (B, d, c, S)
    reps = np.full((n_boot, len(metrics), 2), np.nan)
    for b in range(n_boot):
        idx = drawn[b][:, None, :, :]                                            # (d, 1, c, S)
        r_scores = np.take_along_axis(scores, np.broadcast_to(idx, scores.shape), axis=3)
        r_sel = np.take_along_axis(selector, drawn[b], axis=2)
        r_rate, r_chance, _ = selection_rates(r_scores, r_sel)
        reps[b, :, 0], reps[b, :, 1] = r_rate, r_rate - r_chance
    point = np.stack([rate, rate - chance], axis=1)                              # (m, 2)
    low, high = centred_interval(point, reps, alpha, inflate=np.sqrt(len(seeds) / max(len(seeds) - 1, 1)))
    rows = []
    for k, metric in enumerate(metrics):
        try:
            t_rate, t_chance, _ = transfer_rate(scores[:, [k]], same_metric=True, same_dataset=True)
        except ValueError:                                                       # e.g. a single seed
            t_rate, t_chance = float("nan"), float("nan")
        rows.append((metric, float(trials[k]), float(rate[k]), low[k, 0], high[k, 0], float(chance[k]), low[k, 1],
                     high[k, 1], float(p[k]), t_rate, t_chance))
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "p_holm"])
    out.insert(columns.index("p_holm"), "p_holm", holm(out["p"].to_numpy()))
    out = with_reason(out, None)
    out.attrs.update({"models": int(len(used)), "configurations": int(used["config"].nunique()),
                      "seeds": len(seeds), "datasets": datasets, "n_perm": int(n_perm), "n_boot": int(n_boot)})
    return out


def udr_long(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (model with UDR, headline metric): ``method, metric, UDR, score`` (for a scatter per metric)."""
    if UDR_COLUMN not in table.columns:
        return pd.DataFrame(columns=["method", "metric", UDR_COLUMN, "score"])
    used = table[table[UDR_COLUMN].notna()]
    metrics = [m for m in METRIC_NAMES if m in used.columns and used[m].notna().any()]
    long = used.melt(id_vars=["method", UDR_COLUMN], value_vars=metrics, var_name="metric", value_name="score")
    return long.dropna(subset=["score"]).reset_index(drop=True)
