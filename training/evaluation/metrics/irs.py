"""Interventional Robustness Score (IRS; Suter et al. 2019), as the reference implementation computes it.

NOT one of the study's evaluations (it is not in ``unsupervised_study_v1`` nor in the vocabulary), so the registry and
:func:`training.evaluation.metrics.run_metric` do not run it; call :func:`compute` (or the array cores) directly.

Result keys: ``IRS``, ``num_active_dims`` (metrics/REFERENCE.md 2.10). Sample ``num_train`` points (chunks of
``batch_size``); discretise the FACTORS with the 20-bin histogram discretiser; drop codes with exactly zero variance;
for every factor i and each of its distinct (discretised) values, the ``diff_quantile`` percentile of the absolute
deviation of each code from its mean over the points with that value, averaged over the values; normalise by each
code's maximal deviation from its overall mean; a code's score is 1 - that, maximised over factors; IRS is the mean of
the code scores weighted by their maximal deviations.

Deliberate fix (metrics/REFERENCE.md item 15): the reference reports ``num_active_dims`` as the SUM of the active codes'
values; here it is the number of active codes.
"""
from __future__ import annotations

import numpy as np

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "batch_size": 16, "diff_quantile": 0.99}
NUM_BINS = 20


def scalable_disentanglement_score(gen_factors: np.ndarray, latents: np.ndarray,
                                   diff_quantile: float = 0.99) -> dict:
    """IRS from discrete factors ``(N, K)`` and codes ``(N, D)`` (points are ROWS here, as in the reference).

    Returns ``disentanglement_scores`` (D,), ``avg_score``, ``parents`` (D,), ``IRS_matrix`` (D, K),
    ``max_deviations`` (D,).
    """
    gen_factors, latents = np.asarray(gen_factors), np.asarray(latents)
    if gen_factors.ndim != 2 or latents.ndim != 2 or len(gen_factors) != len(latents):
        raise ValueError(f"expected factors (N, K) and codes (N, D), got {gen_factors.shape} and {latents.shape}")
    if not 0.0 <= diff_quantile <= 1.0:
        raise ValueError(f"diff_quantile must lie in [0, 1], got {diff_quantile}")
    num_factors, num_codes = gen_factors.shape[1], latents.shape[1]
    max_deviations = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    cum_deviations = np.zeros((num_codes, num_factors))
    for i in range(num_factors):
        values = np.unique(gen_factors[:, i])
        for value in values:
            match = gen_factors[:, i] == value
            local = latents[match, :]
            cum_deviations[:, i] += np.percentile(np.abs(local - np.mean(local, axis=0)), q=diff_quantile * 100,
                                                  axis=0)
        cum_deviations[:, i] /= len(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        irs_matrix = 1.0 - cum_deviations / max_deviations[:, np.newaxis]
    scores = irs_matrix.max(axis=1)
    if np.sum(max_deviations) > 0.0:
        avg_score = np.average(scores, weights=max_deviations)
    else:
        avg_score = np.mean(scores)
    return {"disentanglement_scores": scores, "avg_score": float(avg_score), "parents": irs_matrix.argmax(axis=1),
            "IRS_matrix": irs_matrix, "max_deviations": max_deviations}


def compute_irs(mus: np.ndarray, ys: np.ndarray, diff_quantile: float = 0.99,
                num_bins: int = NUM_BINS) -> dict[str, float]:
    """Array core: codes ``(D, N)`` and factors ``(K, N)`` -> ``{"IRS", "num_active_dims"}``."""
    mus, ys = np.asarray(mus), np.asarray(ys)
    if mus.ndim != 2 or ys.ndim != 2 or mus.shape[1] != ys.shape[1]:
        raise ValueError(f"expected codes (D, N) and factors (K, N), got {mus.shape} and {ys.shape}")
    ys_discrete = utils.histogram_discretize(ys, num_bins)
    active = mus[mus.var(axis=1) > 0.0, :]
    if active.shape[0] == 0:
        return {"IRS": 0.0, "num_active_dims": 0.0}
    score = scalable_disentanglement_score(ys_discrete.T, active.T, diff_quantile)["avg_score"]
    return {"IRS": float(score), "num_active_dims": float(active.shape[0])}


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample ``num_train`` (10000) points in chunks of ``batch_size`` (16) and score. ``fast`` is ignored."""
    p = utils.resolve_protocol("irs", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    mus, ys = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs, p["batch_size"])
    return compute_irs(mus, ys, p["diff_quantile"])
