"""Within one configuration: can a score pick the better seed?

A practitioner who has trained several seeds of one configuration (same dataset, method and hyperparameter) and
must keep one asks whether an unsupervised score, or one metric, points to the seed that is better on the metric
they care about. For a selector score ``x`` and a target score ``y`` the answer is the **within-configuration
concordance**: over every pair of seeds (i, j) of the same configuration whose x and y both differ, the fraction of
pairs where the seed with the higher x also has the higher y. Chance is exactly 1/2 (ties are left out);
``2 * concordance - 1`` is Kendall's tau pooled over the configurations. A concordance below 1/2 means the seed with
the *lower* selector score tends to be the better one.

* Core: :func:`pair_counts` counts concordant and discordant pairs per configuration ((C, S) arrays in, (C,)
  counts out).
* Null: under "x says nothing about y within a configuration" the seeds' x values are exchangeable given y, so
  :func:`concordance_p` permutes x within each configuration (Monte Carlo, ``n_perm`` draws, two-sided) while the
  permutation distribution is cheap to draw (at most :data:`EXACT_PAIRS` pairs of seeds in all), and otherwise uses
  the normal approximation to the sum of the configurations' Kendall S statistics (independent, mean 0, variance
  n (n - 1) (2n + 5) / 18 for n seeds; ties only lower the variance, so the approximation is conservative).
* Interval: configurations are the independent units, so :func:`concordance_interval` resamples them (percentile
  bootstrap of the pooled concordance).
* :func:`seed_selection` fills the (selector, target) table of a store with the concordance, its interval, its
  p-value and the Holm-adjusted p-value over the whole table.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frames import METRIC_NAMES, as_model_table
from analysis.significance import holm
from analysis.unsupervised import UNSUPERVISED_SCORES
from analysis.variance import config_cube
from training.randomness import check_random_state

#: Below this many seed pairs in all, p-values come from permutations; above, from the normal approximation.
EXACT_PAIRS = 2000
N_PERM = 20000
N_BOOT = 2000


def _aligned(selector: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, S) float arrays of the two scores, each row's seeds with both scores finite moved to the front (same
    order for both), NaN after them."""
    x = np.asarray(selector, dtype=float)
    y = np.asarray(target, dtype=float)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"selector and target must be (configurations, seeds) arrays of one shape, got "
                         f"{x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    order = np.argsort(~ok, axis=1, kind="stable")
    x = np.where(ok, x, np.nan)
    y = np.where(ok, y, np.nan)
    return np.take_along_axis(x, order, 1), np.take_along_axis(y, order, 1)


def pair_counts(selector: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concordant and discordant seed pairs of every configuration.

    ``selector``, ``target``: (C, S) arrays (configurations x seeds; NaN: no score). A pair (i, j) of seeds counts
    when both scores of both seeds are finite and it is untied in both: concordant when the seed with the higher
    selector has the higher target. Returns two (C,) integer arrays.
    """
    x = np.asarray(selector, dtype=float)
    y = np.asarray(target, dtype=float)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"selector and target must be (configurations, seeds) arrays of one shape, got "
                         f"{x.shape} and {y.shape}")
    i, j = np.triu_indices(x.shape[1], 1)
    with np.errstate(invalid="ignore"):
        product = np.sign(x[:, i] - x[:, j]) * np.sign(y[:, i] - y[:, j])   # NaN where a score is missing
    return (product > 0).sum(axis=1), (product < 0).sum(axis=1)


def concordance(selector: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """Pooled within-configuration concordance of (C, S) arrays and the number of pairs behind it (NaN, 0 when no
    pair counts)."""
    conc, disc = pair_counts(selector, target)
    n = int(conc.sum() + disc.sum())
    return (float(conc.sum() / n) if n else float("nan")), n


def concordance_p(selector: np.ndarray, target: np.ndarray, n_perm: int = N_PERM, random_state=0) -> float:
    """Two-sided p-value of the pooled concordance under exchangeable seeds within each configuration.

    Permutation (``n_perm`` Monte Carlo draws of the selector shuffled among each configuration's scored seeds,
    p = (1 + #{|c* - 1/2| >= |c - 1/2|}) / (1 + n_perm)) while the store has at most :data:`EXACT_PAIRS` seed pairs
    in all, else the normal approximation of Kendall's S summed over configurations. NaN when no pair counts.
    """
    x, y = _aligned(selector, target)
    conc, disc = pair_counts(x, y)
    n_pairs = conc.sum() + disc.sum()
    if n_pairs == 0:
        return float("nan")
    observed = abs((conc.sum() - disc.sum()) / n_pairs)
    n_valid = np.isfinite(x).sum(axis=1)
    if n_valid @ (n_valid - 1) // 2 > EXACT_PAIRS:
        var = float((n_valid * (n_valid - 1) * (2 * n_valid + 5)).sum() / 18.0)
        return float(min(1.0, 2 * stats.norm.sf(abs(conc.sum() - disc.sum()) / np.sqrt(var))))
    rs = check_random_state(random_state)
    c, s = x.shape
    hits, done, chunk = 0, 0, max(1, 2_000_000 // max(c * s * s, 1))
    while done < n_perm:
        k = min(chunk, n_perm - done)
        keys = np.where(np.isfinite(x)[None], rs.random_sample((k, c, s)), np.inf)
        shuffled = np.take_along_axis(np.broadcast_to(x, (k, c, s)), np.argsort(keys, axis=2), 2)
        conc_p, disc_p = pair_counts(shuffled.reshape(k * c, s), np.broadcast_to(y, (k, c, s)).reshape(k * c, s))
        stat = np.abs((conc_p - disc_p).reshape(k, c).sum(axis=1)
                      / np.maximum((conc_p + disc_p).reshape(k, c).sum(axis=1), 1))
        hits += int((stat >= observed - 1e-12).sum())
        done += k
    return (1 + hits) / (1 + n_perm)


def concordance_interval(selector: np.ndarray, target: np.ndarray, n_boot: int = N_BOOT, alpha: float = 0.05,
                         random_state=0) -> tuple[float, float]:
    """Percentile ``1 - alpha`` interval of the pooled concordance from ``n_boot`` resamples of the configurations
    (with replacement); NaN when fewer than two configurations have a counted pair."""
    conc, disc = pair_counts(selector, target)
    used = (conc + disc) > 0
    conc, disc = conc[used], disc[used]
    if used.sum() < 2:
        return float("nan"), float("nan")
    rs = check_random_state(random_state)
    drawn = rs.randint(0, conc.size, size=(n_boot, conc.size))
    rates = conc[drawn].sum(axis=1) / (conc[drawn] + disc[drawn]).sum(axis=1)
    low, high = np.quantile(rates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def seed_selection(scores: pd.DataFrame, selectors: Iterable[str] | None = None,
                   targets: Iterable[str] | None = None, n_perm: int = N_PERM, n_boot: int = N_BOOT,
                   random_state: int = 0) -> pd.DataFrame:
    """The store's within-configuration concordance of every (selector, target) pair of model-table columns.

    ``selectors`` default to the unsupervised scores (:data:`analysis.unsupervised.UNSUPERVISED_SCORES`) and the six
    metrics, ``targets`` to the six metrics; a metric is not its own selector, and as the concordance is symmetric each
    unordered pair appears once (the first way round). Configurations are (dataset, method,
    hyperparameter value). One row per pair with scores: ``selector, target, pairs`` (seed pairs counted),
    ``configurations`` (with a counted pair), ``concordance, ci_low, ci_high`` (95 %), ``p`` and ``p_holm`` (Holm
    over the rows). ``attrs``: ``selectors`` and ``targets`` present, the store's ``configurations`` and ``seeds``;
    ``reason`` says why the frame is empty (fewer than two seeds, no scores).
    """
    table = as_model_table(scores)
    selectors = list(UNSUPERVISED_SCORES + METRIC_NAMES if selectors is None else selectors)
    targets = list(METRIC_NAMES if targets is None else targets)
    present = [c for c in dict.fromkeys(selectors + targets) if c in table.columns and table[c].notna().any()]
    columns = ["selector", "target", "pairs", "configurations", "concordance", "ci_low", "ci_high", "p", "p_holm"]
    out = pd.DataFrame(columns=columns)
    if not present or table["seed"].nunique() < 2:
        out.attrs["reason"] = ("needs two or more seeds of a configuration" if present else
                               "no selector or target scores in this store")
        return out
    cube = config_cube(table, present)
    rows, seen = [], set()
    for selector, target in ((s, t) for s in selectors for t in targets if s in present and t in present):
        if selector == target or frozenset((selector, target)) in seen:   # concordance is symmetric
            continue
        seen.add(frozenset((selector, target)))
        x = cube.column(selector).reshape(-1, len(cube.seeds))
        y = cube.column(target).reshape(-1, len(cube.seeds))
        conc, disc = pair_counts(x, y)
        if (conc + disc).sum() == 0:
            continue
        rate, n = concordance(x, y)
        low, high = concordance_interval(x, y, n_boot=n_boot, random_state=random_state)
        rows.append((selector, target, n, int(((conc + disc) > 0).sum()), rate, low, high,
                     concordance_p(x, y, n_perm=n_perm, random_state=random_state)))
    if not rows:
        out.attrs["reason"] = "no configuration has two seeds with both scores"
        return out
    out = pd.DataFrame(rows, columns=columns[:-1])
    out["p_holm"] = holm(out["p"].to_numpy())
    out.attrs["selectors"] = [s for s in selectors if s in present]
    out.attrs["targets"] = [t for t in targets if t in present]
    out.attrs["configurations"] = int(np.isfinite(cube.values).any(axis=(0, 3)).sum())
    out.attrs["seeds"] = len(cube.seeds)
    return out


def tau_matrix(frame: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table of :func:`seed_selection` as matrices (selectors x targets, every pair filled both ways where both
    are targets): pooled Kendall tau = 2 * concordance - 1, and True where the Holm-adjusted p-value is not below
    ``alpha`` (the sign is not established)."""
    rows = frame.attrs.get("selectors") or list(dict.fromkeys(frame["selector"]))
    cols = frame.attrs.get("targets") or list(dict.fromkeys(frame["target"]))
    tau = pd.DataFrame(np.nan, index=rows, columns=cols)
    weak = pd.DataFrame(False, index=rows, columns=cols)
    for r in frame.itertuples(index=False):
        for a, b in ((r.selector, r.target), (r.target, r.selector)):
            if a in tau.index and b in tau.columns:
                tau.loc[a, b] = 2 * r.concordance - 1
                weak.loc[a, b] = not (r.p_holm < alpha)
    return tau, weak
