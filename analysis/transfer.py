"""Transfer-based model selection against random selection (Table 1 / Table 6 of the paper, Section 5.3).

One trial of the paper's procedure:

1. draw a source seed s, a source metric m and a source dataset d;
2. among the configurations trained on d with seed s, pick c*, the one with the highest m score;
3. target dataset d' = d (``same_dataset``) or uniform among the other datasets; target metric m' = m or uniform
   among the other metrics;
4. score of c* on d' with a target seed s' (by default s' != s, option ``target_seed``) against a random model on d'
   (by default a uniform configuration, possibly c* itself, with an independently drawn seed; options
   ``random_seed`` and ``random_may_match``);
5. success when c*'s m' score is >= the random model's (ties count as wins, as in the paper).

The paper drew 10,000 trials per cell. Here every cell is the trial's exact expectation over all its uniform draws
(no simulation error), and a tie in step 2 splits the trial evenly among the tied configurations (the paper's draw
order left ties to the order of the configurations, which favours whichever comes first). Trials whose scores are
missing are left out, as a simulation would drop them. The paper reports 80.7 % (same metric, same dataset),
59.3 % (same metric, other dataset), 62.6 % (other metric, same dataset) and 54.9 % (other metric, other dataset).
Under no transfer the expected rate is 0.5 + P(tie) / 2, reported as ``chance``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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


def win_and_tie(values: np.ndarray, random_seed: str = "independent",
                random_may_match: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every model (d, m, c, s) of ``values`` (datasets, metrics, configs, seeds), against a random model on the
    same (d, m): the probability that the rival has a score and the model's score is >= it (win), == it (tie), and
    that the rival has a score at all (available). All three are 0 where the model itself has no score.

    The random model is a uniform configuration (any, or any but c when not ``random_may_match``) with a uniform
    seed (``random_seed='independent'``) or with seed s (``'target'``). Ranks by sorting, no pairwise comparison of
    all models.
    """
    if random_seed not in RANDOM_SEED_CHOICES:
        raise ValueError(f"random_seed must be one of {RANDOM_SEED_CHOICES}, got {random_seed!r}")
    v = np.asarray(values, dtype=float)
    n_d, n_m, n_c, n_s = v.shape
    ok = ~np.isnan(v)
    if random_seed == "independent":
        le, eq, n = _counts_against(v.reshape(n_d, n_m, -1), v.reshape(n_d, n_m, n_c * n_s))
        le, eq = le.reshape(v.shape), eq.reshape(v.shape)
        n = np.broadcast_to(n[..., None, None], v.shape).astype(float)
        slots = float(n_c * n_s)
        if not random_may_match:  # the model's own configuration is not a rival
            own_le, own_eq, own_n = _counts_against(v, v)                         # within (d, m, c), over seeds
            le, eq, n = le - own_le, eq - own_eq, n - own_n[..., None]
            slots = float((n_c - 1) * n_s)
    else:
        pool = np.moveaxis(v, 3, 2)                                               # (d, m, s, c): rivals share s
        le, eq, n = _counts_against(pool, pool)
        le, eq = np.moveaxis(le, 2, 3), np.moveaxis(eq, 2, 3)
        n = np.broadcast_to(n[:, :, None, :], v.shape).astype(float)
        slots = float(n_c)
        if not random_may_match:
            le, eq, n, slots = le - ok, eq - ok, n - ok, float(n_c - 1)
    if slots <= 0:
        zero = np.zeros(v.shape)
        return zero, zero, zero
    return (np.where(ok, le, 0.0) / slots, np.where(ok, eq, 0.0) / slots, np.where(ok, n, 0.0) / slots)


def _counts_against(x: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For x (..., k) and pool (..., p) with the same leading axes: how many valid pool values are <= and == each
    x value, and how many valid pool values there are (leading shape). NaN pool values are ignored."""
    lead = pool.shape[:-1]
    flat_pool = pool.reshape(-1, pool.shape[-1])
    flat_x = x.reshape(-1, x.shape[-1])
    le = np.zeros(flat_x.shape)
    eq = np.zeros(flat_x.shape)
    counts = (~np.isnan(flat_pool)).sum(axis=1)
    ordered = np.sort(flat_pool, axis=1)                                         # NaN last
    for i in range(flat_pool.shape[0]):
        valid = ordered[i, :counts[i]]
        right = np.searchsorted(valid, flat_x[i], side="right")
        left = np.searchsorted(valid, flat_x[i], side="left")
        le[i], eq[i] = right, right - left
    return le.reshape(x.shape), eq.reshape(x.shape), counts.reshape(lead)


def choice_weights(values: np.ndarray) -> np.ndarray:
    """(d, m, s, c) weights of the configuration picked in step 2: 1/k for each of the k configurations tied at the
    maximum of the m score on (d, seed s); all zero where the seed has no score."""
    v = np.moveaxis(np.asarray(values, dtype=float), 2, 3)                      # (d, m, s, c)
    top = np.max(np.where(np.isnan(v), -np.inf, v), axis=-1, keepdims=True)
    chosen = (v == top) & ~np.isnan(v)
    k = chosen.sum(axis=-1, keepdims=True)
    return np.where(k > 0, chosen / np.where(k > 0, k, 1), 0.0)


def transfer_rate(values: np.ndarray, same_metric: bool, same_dataset: bool, seed_ids: np.ndarray | None = None,
                  target_seed: str = "different", random_seed: str = "independent", random_may_match: bool = True,
                  _win_tie: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[float, float, float]:
    """(rate, chance, weight) of one cell of Table 1 on ``values`` (datasets, metrics, configs, seeds): the expected
    success of a trial over all its uniform draws, 0.5 + half the expected tie rate, and the expected share of
    trials that find all their scores (0: the cell cannot be filled). ``seed_ids``: the identity of each seed slot
    (a seed-bootstrap replicate repeats seeds; a target seed must then differ in identity). Raises ValueError when
    the store lacks what the cell needs (datasets, metrics or seeds)."""
    if target_seed not in TARGET_SEED_CHOICES:
        raise ValueError(f"target_seed must be one of {TARGET_SEED_CHOICES}, got {target_seed!r}")
    v = np.asarray(values, dtype=float)
    n_d, n_m, n_c, n_s = v.shape
    ids = np.arange(n_s) if seed_ids is None else np.asarray(seed_ids)
    needs = {"datasets": (n_d, 1 if same_dataset else 2), "metrics": (n_m, 1 if same_metric else 2),
             "distinct seeds": (len(np.unique(ids)), 2 if target_seed == "different" else 1),
             "configurations": (n_c, 1 if random_may_match else 2)}
    short = [f"{have} {what.rstrip('s') if have == 1 else what} (needs {need})"
             for what, (have, need) in needs.items() if have < need]
    if short:
        raise ValueError("this store has " + ", ".join(short))
    win, tie, available = win_and_tie(v, random_seed, random_may_match) if _win_tie is None else _win_tie
    weights = choice_weights(v)                                                  # (d, m, s, c)
    move_d = np.eye(n_d) if same_dataset else (1 - np.eye(n_d)) / (n_d - 1)
    move_m = np.eye(n_m) if same_metric else (1 - np.eye(n_m)) / (n_m - 1)
    seeds = (ids[:, None] != ids[None, :]) if target_seed == "different" else np.ones((n_s, n_s), dtype=bool)
    seeds = seeds / seeds.sum(axis=1, keepdims=True)                             # (s, s')
    sources = float((weights.sum(axis=-1) > 0).sum())
    # the probability mass of each outcome, summed over source (d, m, s), target (d', m'), chosen c, target seed s'
    def mass(a: np.ndarray) -> float:
        per_target = np.einsum("efct,st->efcs", a, seeds)                       # over target seeds s'
        per_source = np.einsum("de,efcs->dfcs", move_d, np.einsum("mf,efcs->emcs", move_m, per_target))
        return float(np.einsum("dmsc,dmcs->", weights, per_source))
    ok_mass = mass(available)
    if sources == 0 or ok_mass <= 0:
        return float("nan"), float("nan"), 0.0
    return mass(win) / ok_mass, 0.5 + 0.5 * mass(tie) / ok_mass, ok_mass / sources


def transfer_cells(tensor: "ScoreTensor", seed_ids: np.ndarray | None = None, **options) -> pd.DataFrame:
    """The four cells of Table 1 in the order same/same, same/other, other/same, other/other: columns
    ``metric_cell, dataset_cell, rate, chance, coverage, reason`` (``coverage``: the share of trials with all their
    scores; ``reason``: why a cell cannot be filled, else None)."""
    rows = []
    win_tie = win_and_tie(tensor.values, options.get("random_seed", "independent"),
                          options.get("random_may_match", True))
    for row in ROWS:
        for col in COLUMNS:
            rec = {"metric_cell": row, "dataset_cell": col, "rate": np.nan, "chance": np.nan, "coverage": 0.0,
                   "reason": None}
            try:
                rec["rate"], rec["chance"], rec["coverage"] = transfer_rate(
                    tensor.values, row == "same_metric", col == "same_dataset", seed_ids=seed_ids,
                    _win_tie=win_tie, **options)
                if rec["coverage"] == 0:
                    rec["reason"] = "no trial finds all the scores it needs in this store"
            except ValueError as exc:
                rec["reason"] = str(exc)
            rows.append(rec)
    out = pd.DataFrame(rows)
    out["reason"] = pd.Series([r["reason"] for r in rows], index=out.index, dtype=object)
    return out


def _as_table(cells: pd.DataFrame, column: str) -> pd.DataFrame:
    table = cells.pivot(index="metric_cell", columns="dataset_cell", values=column)
    table = table.reindex(index=list(ROWS), columns=list(COLUMNS)).astype(float)
    table.index.name, table.columns.name = None, None
    return table


def transfer_win_rates(scores: pd.DataFrame, target_seed: str = "different", random_seed: str = "independent",
                       random_may_match: bool = True, representation: str = "mean") -> pd.DataFrame:
    """The 2 x 2 table of Table 1: the expected fraction of trials where the transferred choice is at least as good
    as a random model.

    Index ``same_metric``, ``other_metric``; columns ``same_dataset``, ``other_dataset``; fractions in [0, 1].
    Options (the paper leaves them open; defaults as the table's title reads): ``target_seed`` ``'different'``
    (s' != s) or ``'any'``; ``random_seed`` ``'independent'`` (the random model has its own seed) or ``'target'`` (it
    shares s'); ``random_may_match`` (the random configuration may be c*). A cell the store cannot fill is NaN and
    ``attrs['reason']`` says why. Intervals: :func:`transfer_intervals`.
    """
    cells = transfer_cells(score_tensor(scores, representation), target_seed=target_seed, random_seed=random_seed,
                           random_may_match=random_may_match)
    table = _as_table(cells, "rate")
    reasons = [f"{r.metric_cell}/{r.dataset_cell}: {r.reason}" for r in cells.itertuples()
               if isinstance(r.reason, str)]
    return with_reason(table, "; ".join(reasons) if reasons else None,
                       [f"{r.metric_cell}/{r.dataset_cell}" for r in cells.itertuples() if isinstance(r.reason, str)])


def transfer_intervals(scores: pd.DataFrame, n_boot: int = 200, alpha: float = 0.05, random_state: int = 0,
                       target_seed: str = "different", random_seed: str = "independent",
                       random_may_match: bool = True, representation: str = "mean") -> pd.DataFrame:
    """Per cell of :func:`transfer_win_rates`: the rate, its seed-bootstrap percentile interval (``n_boot``
    replicates of the store's seeds) and the chance rate with its interval.

    One row per cell, indexed by (metric_cell, dataset_cell): ``rate, ci_low, ci_high, chance, chance_low,
    chance_high, excess_low, excess_high`` (the interval of rate - chance) and ``reason``.
    """
    from analysis.bootstrap import percentile_interval, resample_seeds

    options = {"target_seed": target_seed, "random_seed": random_seed, "random_may_match": random_may_match}
    tensor = score_tensor(scores, representation)
    cells = transfer_cells(tensor, **options)
    n_seeds = tensor.values.shape[3]
    reps = np.full((max(n_boot, 0), len(cells), 3), np.nan)
    if n_seeds and n_boot > 0:
        for b, drawn in enumerate(resample_seeds(n_seeds, n_boot, random_state)):
            replicate = ScoreTensor(tensor.values[..., drawn], tensor.datasets, tensor.metrics, tensor.configs,
                                    tuple(range(n_seeds)))
            rep = transfer_cells(replicate, seed_ids=drawn, **options)
            reps[b, :, 0], reps[b, :, 1] = rep["rate"], rep["chance"]
            reps[b, :, 2] = rep["rate"] - rep["chance"]
    low, high = percentile_interval(reps, alpha) if n_boot > 0 else (np.full((len(cells), 3), np.nan),) * 2
    out = cells.set_index(["metric_cell", "dataset_cell"])[["rate", "chance", "reason"]].copy()
    out["ci_low"], out["ci_high"] = low[:, 0], high[:, 0]
    out["chance_low"], out["chance_high"] = low[:, 1], high[:, 1]
    out["excess_low"], out["excess_high"] = low[:, 2], high[:, 2]
    out = out[["rate", "ci_low", "ci_high", "chance", "chance_low", "chance_high", "excess_low", "excess_high",
               "reason"]]
    reasons = [f"{row}/{col}: {r}" for (row, col), r in out["reason"].items() if isinstance(r, str)]
    return with_reason(out, "; ".join(reasons) or None, [r.split(":")[0] for r in reasons])


def transfer_sensitivity(scores: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """The four rates under every combination of the paper's open choices (the first combination is the default).

    One row per (target_seed, random_seed, random_may_match, metric_cell, dataset_cell) with ``rate, chance,
    reason``.
    """
    tensor = score_tensor(scores, representation)
    parts = []
    for target_seed in TARGET_SEED_CHOICES:
        for random_seed in RANDOM_SEED_CHOICES:
            for may_match in (True, False):
                cells = transfer_cells(tensor, target_seed=target_seed, random_seed=random_seed,
                                       random_may_match=may_match)
                cells.insert(0, "random_may_match", may_match)
                cells.insert(0, "random_seed", random_seed)
                cells.insert(0, "target_seed", target_seed)
                parts.append(cells)
    out = pd.concat(parts, ignore_index=True)
    return out[["target_seed", "random_seed", "random_may_match", "metric_cell", "dataset_cell", "rate", "chance",
                "reason"]]
