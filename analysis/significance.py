"""Significance tests behind every directional word of the report's captions ("rises", "falls", "highest", ...).

A caption may call a curve rising or name a best method only when the test here rejects "no effect" at 5 %
(:data:`ALPHA`); otherwise it says there is no clear trend or difference. All tests are two-sided and take every model
(every seed), not medians:

* :func:`spearman_test`: Spearman rho of ``x`` and ``y`` with its p-value: exact for n < 10 (all n! orderings of
  the y ranks against the x ranks, ties kept as average ranks), scipy's t approximation for n >= 10;
* :func:`kruskal_test`: Kruskal-Wallis test that groups (methods, strengths) differ: scipy's chi-square
  approximation when every group has at least 5 values, else a permutation test of the group labels (2,000
  permutations from ``np.random.RandomState(0)``, p = (1 + hits) / (1 + 2,000), exact level);
* :func:`mannwhitney_test`: Mann-Whitney U of two samples (a winner against its runner-up);
* :func:`correlation_difference_test`: two correlations against each other (Fisher z with the Spearman variance
  1.06 / (n - 3), treating the two estimates as independent);
* :func:`holm`: Holm's step-down adjustment, so that a caption making several claims errs in at most 5 % of captions
  when nothing is going on.

Every function returns NaN p-values (never raises) when the data cannot be tested: fewer than 3 pairs, a constant
variable, fewer than two groups.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
from scipy import stats

ALPHA = 0.05
EXACT_SPEARMAN_BELOW = 10
PERMUTATIONS = 2000


@lru_cache(maxsize=None)
def _all_orderings(n: int) -> np.ndarray:
    """(n!, n) int8 array of every permutation of range(n) (n <= 9: at most 362,880 rows; row 0 is the identity)."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


@lru_cache(maxsize=4)
def _permuted_ranks(centred_ranks: tuple[float, ...]) -> np.ndarray:
    """(n!, n) array of the centred ranks under every ordering (cached: the strengths of a curve repeat)."""
    ranks = np.asarray(centred_ranks)
    return ranks[_all_orderings(len(ranks))]


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman_test(x, y) -> tuple[float, float, int]:
    """Spearman rho of the finite pairs of ``x`` and ``y``, its two-sided p-value, and the number of pairs n.

    n < 10: the exact permutation p-value, P(|rho*| >= |rho|) over all n! orderings of the y ranks (average ranks for
    ties on either side). n >= 10: ``scipy.stats.spearmanr``'s p-value. (NaN, NaN, n) when n < 3 or either variable
    is constant.
    """
    x, y = _finite_pairs(x, y)
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), n
    rx = stats.rankdata(x)
    ry = stats.rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    norm = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    rho = float(np.clip(rx @ ry / norm, -1.0, 1.0))
    if n < EXACT_SPEARMAN_BELOW:
        null = _permuted_ranks(tuple(rx)) @ ry              # row 0 (the identity) is the observed statistic
        p = float(np.mean(np.abs(null) >= abs(null[0]) - 1e-9 * norm))
    else:
        p = float(stats.spearmanr(x, y).pvalue)
    return rho, p, n


def spearman_p(rho: float, n: int) -> float:
    """Two-sided p-value of a Spearman ``rho`` from ``n`` pairs without ties (exact below 10 pairs, else the t
    approximation); NaN when n < 3 or rho is NaN."""
    if n < 3 or rho is None or not np.isfinite(rho):
        return float("nan")
    if n < EXACT_SPEARMAN_BELOW:
        ranks = np.arange(n, dtype=float) - (n - 1) / 2
        null = _permuted_ranks(tuple(ranks)) @ ranks / float((ranks ** 2).sum())
        return float(np.mean(np.abs(null) >= abs(rho) - 1e-9))
    if abs(rho) >= 1:
        return 0.0
    t = rho * math.sqrt((n - 2) / (1 - rho ** 2))
    return float(2 * stats.t.sf(abs(t), n - 2))


def kruskal_test(values, groups) -> tuple[float, float, int]:
    """Kruskal-Wallis H of ``values`` split by ``groups`` (labels), its p-value and the number of groups k.

    Finite values only; a group needs at least one value. Chi-square approximation when every group has >= 5
    values, else a permutation test (2,000 relabellings, exact level). (NaN, NaN, k) when k < 2 or all values tie.
    """
    values = np.asarray(values, dtype=float).ravel()
    groups = np.asarray(groups).ravel()
    ok = np.isfinite(values)
    values, groups = values[ok], groups[ok]
    codes, labels = _codes(groups)
    k = len(labels)
    if k < 2 or values.size < 3 or np.ptp(values) == 0:
        return float("nan"), float("nan"), k
    sizes = np.bincount(codes, minlength=k)
    if sizes.min() >= 5:
        result = stats.kruskal(*[values[codes == g] for g in range(k)])
        return float(result.statistic), float(result.pvalue), k
    ranks = stats.rankdata(values)
    n = values.size
    ties = 1 - ((np.unique(values, return_counts=True)[1] ** 3 - np.unique(values, return_counts=True)[1]).sum()
                / (n ** 3 - n))

    def statistic(code_rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(code_rows)
        offset = rows + k * np.arange(rows.shape[0])[:, None]
        sums = np.bincount(offset.ravel(), weights=np.tile(ranks, rows.shape[0]),
                           minlength=k * rows.shape[0]).reshape(rows.shape[0], k)
        return (12 / (n * (n + 1)) * (sums ** 2 / sizes).sum(axis=1) - 3 * (n + 1)) / ties

    observed = float(statistic(codes)[0])
    rs = np.random.RandomState(0)
    shuffled = codes[np.argsort(rs.rand(PERMUTATIONS, n), axis=1)]
    null = statistic(shuffled)
    p = (1 + int(np.sum(null >= observed - 1e-9))) / (PERMUTATIONS + 1)
    return observed, float(p), k


def _codes(groups: np.ndarray) -> tuple[np.ndarray, list]:
    labels = list(dict.fromkeys(groups.tolist()))
    index = {g: i for i, g in enumerate(labels)}
    return np.fromiter((index[g] for g in groups.tolist()), dtype=int, count=len(groups)), labels


def mannwhitney_test(a, b) -> float:
    """Two-sided Mann-Whitney U p-value of the finite values of ``a`` against ``b`` (NaN when either is empty or
    everything ties)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0 or np.ptp(np.r_[a, b]) == 0:
        return float("nan")
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def correlation_difference_test(r1: float, n1: int, r2: float, n2: int) -> float:
    """Two-sided p-value that two Spearman correlations differ: Fisher z, variance 1.06 / (n - 3) each, treated as
    independent. NaN when a correlation is NaN or n <= 4."""
    if not (np.isfinite(r1) and np.isfinite(r2)) or min(n1, n2) <= 4:
        return float("nan")
    z1, z2 = np.arctanh(np.clip([r1, r2], -0.999999, 0.999999))
    se = math.sqrt(1.06 / (n1 - 3) + 1.06 / (n2 - 3))
    return float(2 * stats.norm.sf(abs(z1 - z2) / se))


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (same order; NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.nonzero(np.isfinite(p))[0]
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def significant(p: float, alpha: float = ALPHA) -> bool:
    """True when ``p`` is a number below ``alpha``."""
    return p is not None and np.isfinite(p) and p < alpha


def format_p(p: float) -> str:
    """``p = 0.03`` style text: two significant digits, ``p < 0.001`` below a thousandth, ``p = n/a`` for NaN."""
    if p is None or not np.isfinite(p):
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


__all__ = ["ALPHA", "spearman_test", "spearman_p", "kruskal_test", "mannwhitney_test", "correlation_difference_test",
           "holm", "significant", "format_p"]
