"""Transfer-based model selection against random selection (spec/analysis.md section 1.7; Table 1 / 6).

One trial (vectorised over all draws of a cell):

1. draw a source seed s, a source metric m and a source dataset d;
2. among the configurations trained on d with seed s, pick c* = argmax of the m score (first on ties);
3. target dataset d' = d (``same_dataset``) or uniform among the other datasets; target metric m' = m or uniform
   among the other metrics;
4. score of c* on d' with a target seed s' (by default s' != s, option ``target_seed``) against a random model on d'
   (by default a uniform configuration, possibly c* itself, with an independently drawn seed; options
   ``random_seed`` and ``random_may_match``);
5. success when c*'s m' score is >= the random model's (ties count as wins, as in the paper).

The paper reports 80.7 % (same metric, same dataset), 59.3 % (same metric, other dataset), 62.6 % (other metric, same
dataset) and 54.9 % (other metric, other dataset). Under no transfer the expected rate is 0.5 + P(tie) / 2, reported
as ``chance``. Trials that touch a missing score are dropped (``n_valid`` counts the rest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from analysis.frames import METRIC_NAMES, as_model_table, with_reason
from analysis.variance import ConfigCube, config_cube

ROWS = ("same_metric", "other_metric")
COLUMNS = ("same_dataset", "other_dataset")
TARGET_SEED_CHOICES = ("different", "any")
RANDOM_SEED_CHOICES = ("independent", "target")


@dataclass(frozen=True)
class ScoreTensor:
    """Headline scores as a dense array ``values[dataset, metric, config, seed]`` (NaN where no run).

    ``datasets``, ``metrics``, ``configs`` (``method(value)`` labels) and ``seeds`` label the four axes.
    """
    values: np.ndarray
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    configs: tuple[str, ...]
    seeds: tuple[int, ...]


def cube_tensor(cube: ConfigCube) -> ScoreTensor:
    """The (datasets, metrics, configs, seeds) tensor of a :class:`analysis.variance.ConfigCube`.

    Configurations (labelled ``method(value)``, sorted) are matched across datasets by method and hyperparameter
    value; only the headline metrics with at least one score are kept. A seed-bootstrap replicate of the cube gives
    the replicate's tensor.
    """
    metrics = [m for m in METRIC_NAMES if m in cube.columns and not np.isnan(cube.column(m)).all()]
    n_h = cube.hparams.shape[1] if cube.hparams.ndim == 2 else 0
    keep = ~np.isnan(cube.hparams)
    g_idx, h_idx = np.nonzero(keep)
    labels = [f"{cube.group_method[g]}({cube.hparams[g, h]:g})" for g, h in zip(g_idx, h_idx)] if n_h else []
    configs, c_codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True) \
        if labels else (np.asarray([], dtype=str), np.zeros(0, dtype=int))
    values = np.full((len(cube.datasets), len(metrics), len(configs), len(cube.seeds)), np.nan)
    for k, name in enumerate(metrics):
        values[cube.group_dataset[g_idx], k, c_codes] = cube.column(name)[g_idx, h_idx]
    return ScoreTensor(values, tuple(cube.datasets), tuple(metrics), tuple(str(c) for c in configs),
                       tuple(cube.seeds))


def score_tensor(scores: pd.DataFrame, representation: str = "mean") -> ScoreTensor:
    """Build the (datasets, metrics, configs, seeds) array from a tidy score frame or model table.

    Only the metrics with at least one score are kept. Configurations are matched across datasets by
    (method, hyperparameter value); seeds by their value; several runs of one cell are averaged. Vectorised.
    """
    table = as_model_table(scores, representation=representation)
    return cube_tensor(config_cube(table, list(METRIC_NAMES)))


def _other(rs: np.random.RandomState, current: np.ndarray, size: int) -> np.ndarray:
    """Uniform draw among range(size) excluding ``current`` (element-wise)."""
    return (current + 1 + rs.randint(size - 1, size=current.shape)) % size


def simulate_cell(values: np.ndarray, same_metric: bool, same_dataset: bool, n_draws: int,
                  rs: np.random.RandomState, target_seed: str = "different", random_seed: str = "independent",
                  random_may_match: bool = True, seed_ids: np.ndarray | None = None) -> dict[str, int]:
    """Run ``n_draws`` trials of one cell on ``values`` (datasets, metrics, configs, seeds).

    ``seed_ids``: optional (seeds,) identity of each seed slot. A seed-bootstrap replicate repeats seeds; with
    ``target_seed='different'`` the target seed must then differ in identity, not just in slot (slots whose seed
    equals the source's are redrawn). Default: every slot is its own seed.

    Returns counts ``{'n_draws', 'n_valid', 'wins', 'ties'}`` (wins include ties). Raises ValueError when the cell
    cannot be simulated (fewer than two datasets / metrics / seeds / configurations where the cell needs them).
    Random draws, in this order: d, m, s (source), d', m' (when other), s', the random configuration, its seed.
    """
    if target_seed not in TARGET_SEED_CHOICES:
        raise ValueError(f"target_seed must be one of {TARGET_SEED_CHOICES}, got {target_seed!r}")
    if random_seed not in RANDOM_SEED_CHOICES:
        raise ValueError(f"random_seed must be one of {RANDOM_SEED_CHOICES}, got {random_seed!r}")
    n_d, n_m, n_c, n_s = values.shape
    needs = {"datasets": (n_d, 1 if same_dataset else 2), "metrics": (n_m, 1 if same_metric else 2),
             "seeds": (n_s, 2 if target_seed == "different" else 1),
             "configurations": (n_c, 1 if random_may_match else 2)}
    short = [f"{have} {what} (needs {need})" for what, (have, need) in needs.items() if have < need]
    if short:
        raise ValueError("cannot simulate: this store has " + ", ".join(short))
    n = int(n_draws)
    d = rs.randint(n_d, size=n)
    m = rs.randint(n_m, size=n)
    s = rs.randint(n_s, size=n)
    # The choice c* depends only on (d, m, s): one argmax per (dataset, metric, seed) instead of one per draw.
    best = np.argmax(np.where(np.isnan(values), -np.inf, values), axis=2)          # (datasets, metrics, seeds)
    has_any = ~np.isnan(values).all(axis=2)
    has_source = has_any[d, m, s]
    c_star = best[d, m, s]
    d2 = d if same_dataset else _other(rs, d, n_d)
    m2 = m if same_metric else _other(rs, m, n_m)
    s2 = _other(rs, s, n_s) if target_seed == "different" else rs.randint(n_s, size=n)
    if target_seed == "different" and seed_ids is not None:
        seed_ids = np.asarray(seed_ids)
        if len(np.unique(seed_ids)) < 2:
            raise ValueError("cannot simulate: this store has 1 distinct seeds (needs 2)")
        clash = seed_ids[s2] == seed_ids[s]
        while clash.any():                                       # redraw only the clashing trials
            s2[clash] = _other(rs, s[clash], n_s)
            clash = seed_ids[s2] == seed_ids[s]
    c_rand = rs.randint(n_c, size=n) if random_may_match else _other(rs, c_star, n_c)
    s_rand = rs.randint(n_s, size=n) if random_seed == "independent" else s2
    chosen = values[d2, m2, c_star, s2]
    rival = values[d2, m2, c_rand, s_rand]
    valid = has_source & ~np.isnan(chosen) & ~np.isnan(rival)
    return {"n_draws": n, "n_valid": int(valid.sum()), "wins": int((valid & (chosen >= rival)).sum()),
            "ties": int((valid & (chosen == rival)).sum())}


def _simulate_all(tensor: ScoreTensor, n_draws: int, random_state: int, seed_ids: np.ndarray | None = None,
                  **options) -> pd.DataFrame:
    """All four cells in the fixed order (same/same, same/other, other/same, other/other), one RandomState.
    ``seed_ids``: see :func:`simulate_cell` (bootstrap replicates)."""
    rs = np.random.RandomState(random_state)
    rows = []
    for row in ROWS:
        for col in COLUMNS:
            rec = {"metric_cell": row, "dataset_cell": col, "n_draws": int(n_draws), "n_valid": 0, "wins": 0,
                   "ties": 0, "reason": None}
            try:
                rec.update(simulate_cell(tensor.values, row == "same_metric", col == "same_dataset", n_draws, rs,
                                         seed_ids=seed_ids, **options))
            except ValueError as exc:
                rec["reason"] = str(exc)
            if rec["reason"] is None and rec["n_valid"] == 0:
                rec["reason"] = "no trial found all the scores it needs in this store"
            rows.append(rec)
    out = pd.DataFrame(rows)
    out["reason"] = pd.Series([r["reason"] for r in rows], index=out.index, dtype=object)   # None, not NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = out["n_valid"].to_numpy(dtype=float)
        out["rate"] = np.where(valid > 0, out["wins"] / np.where(valid > 0, valid, 1), np.nan)
        out["tie_rate"] = np.where(valid > 0, out["ties"] / np.where(valid > 0, valid, 1), np.nan)
    out["chance"] = 0.5 + out["tie_rate"] / 2
    return out


def _as_table(cells: pd.DataFrame, column: str) -> pd.DataFrame:
    table = cells.pivot(index="metric_cell", columns="dataset_cell", values=column)
    table = table.reindex(index=list(ROWS), columns=list(COLUMNS)).astype(float)
    table.index.name, table.columns.name = None, None
    return table


def transfer_win_rates(scores: pd.DataFrame, n_draws: int = 10000, random_state: int = 0,
                       target_seed: str = "different", random_seed: str = "independent",
                       random_may_match: bool = True, representation: str = "mean") -> pd.DataFrame:
    """The 2 x 2 table of Table 1: fraction of trials where the transferred choice is at least as good as random.

    Index ``same_metric``, ``other_metric``; columns ``same_dataset``, ``other_dataset``; fractions in [0, 1].
    ``n_draws`` trials per cell with ``np.random.RandomState(random_state)``. Options (spec [interp], defaults as
    stated there): ``target_seed`` ``'different'`` (s' != s) or ``'any'``; ``random_seed`` ``'independent'`` (the
    random model has its own seed) or ``'target'`` (it shares s'); ``random_may_match`` (the random configuration may
    be c*). A cell the store cannot fill is NaN and ``attrs['reason']`` says why. Intervals:
    :func:`transfer_intervals`.
    """
    cells = _simulate_all(score_tensor(scores, representation), n_draws, random_state, target_seed=target_seed,
                          random_seed=random_seed, random_may_match=random_may_match)
    table = _as_table(cells, "rate")
    reasons = [f"{r.metric_cell}/{r.dataset_cell}: {r.reason}" for r in cells.itertuples()
               if isinstance(r.reason, str)]
    return with_reason(table, "; ".join(reasons) if reasons else None,
                       [f"{r.metric_cell}/{r.dataset_cell}" for r in cells.itertuples() if isinstance(r.reason, str)])


def transfer_intervals(scores: pd.DataFrame, n_draws: int = 10000, random_state: int = 0, alpha: float = 0.05,
                       target_seed: str = "different", random_seed: str = "independent",
                       random_may_match: bool = True, representation: str = "mean") -> pd.DataFrame:
    """Per cell of :func:`transfer_win_rates` (same draws, same numbers): rate with a binomial (Wilson) interval.

    One row per cell, indexed by (metric_cell, dataset_cell), columns ``rate, ci_low, ci_high, n_draws, n_valid,
    wins, ties, tie_rate, chance, reason``. The interval covers the simulation's sampling error only (about
    +-1 point at 10 000 draws); the seed bootstrap (``analysis.bootstrap.bootstrap_transfer``) adds the store's.
    """
    cells = _simulate_all(score_tensor(scores, representation), n_draws, random_state, target_seed=target_seed,
                          random_seed=random_seed, random_may_match=random_may_match)
    low, high = binomial_interval(cells["wins"].to_numpy(), cells["n_valid"].to_numpy(), alpha)
    cells["ci_low"], cells["ci_high"] = low, high
    cells = cells.set_index(["metric_cell", "dataset_cell"])
    out = cells[["rate", "ci_low", "ci_high", "n_draws", "n_valid", "wins", "ties", "tie_rate", "chance", "reason"]]
    reasons = [f"{row}/{col}: {r}" for (row, col), r in out["reason"].items() if isinstance(r, str)]
    return with_reason(out, "; ".join(reasons) or None, [r.split(":")[0] for r in reasons])


def binomial_interval(successes: np.ndarray, trials: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``successes`` out of ``trials`` (arrays); NaN where ``trials`` is 0."""
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    ok = trials > 0
    low = np.full(successes.shape, np.nan)
    high = np.full(successes.shape, np.nan)
    if ok.any():
        lo, hi = proportion_confint(successes[ok], trials[ok], alpha=alpha, method="wilson")
        low[ok], high[ok] = lo, hi
    return low, high


def transfer_sensitivity(scores: pd.DataFrame, n_draws: int = 10000, random_state: int = 0,
                         representation: str = "mean") -> pd.DataFrame:
    """The ambiguity sweep: the four rates under every combination of the paper's open choices.

    One row per (target_seed, random_seed, random_may_match, metric_cell, dataset_cell) with ``rate, ci_low,
    ci_high, chance``; the first combination is the default.
    """
    tensor = score_tensor(scores, representation)
    parts = []
    for target_seed in TARGET_SEED_CHOICES:
        for random_seed in RANDOM_SEED_CHOICES:
            for may_match in (True, False):
                cells = _simulate_all(tensor, n_draws, random_state, target_seed=target_seed,
                                      random_seed=random_seed, random_may_match=may_match)
                cells["ci_low"], cells["ci_high"] = binomial_interval(cells["wins"], cells["n_valid"])
                cells.insert(0, "random_may_match", may_match)
                cells.insert(0, "random_seed", random_seed)
                cells.insert(0, "target_seed", target_seed)
                parts.append(cells)
    out = pd.concat(parts, ignore_index=True)
    return out[["target_seed", "random_seed", "random_may_match", "metric_cell", "dataset_cell", "rate", "ci_low",
                "ci_high", "chance", "n_valid", "reason"]]
