"""Unsupervised scores of a representation (evaluation ``unsupervised``), as the reference study computes them.

Result keys: ``gaussian_total_correlation``, ``gaussian_wasserstein_correlation``,
``gaussian_wasserstein_correlation_norm``, ``mutual_info_score`` (metrics/REFERENCE.md 2.7). Factors are sampled (they
fix the draw order) but not used.

Deliberate fix (metrics/REFERENCE.md item 11): ``scipy.linalg.sqrtm`` of the non-symmetric matrix diag(Sigma) Sigma can
come back complex (tiny imaginary parts) for a near-singular Sigma, which made the reference's JSON writer crash.
The real part of its trace is kept; when sqrtm is real this is bit-identical to the reference.

Deliberate fix: a code with exactly zero variance in the sample (a dead unit) made the reference's total correlation
NaN (log 0 - log 0) and its sqrtm singular. Such a code is independent of all others and contributes exactly 0 to
both Gaussian scores, so the covariance is restricted to the codes with non-zero variance before computing them (the
trace used by ``_norm`` is unchanged, as the dropped diagonal entries are 0). If no code varies, both scores are 0.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "batch_size": 16}
NUM_BINS = 20


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL(N(0, cov) || N(0, diag cov)) in nats for a covariance ``(D, D)``: 0.5 (sum log diag - log|det|)."""
    cov = np.asarray(cov, dtype=np.float64)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag cov): 2 tr(cov) - 2 tr sqrtm(diag(cov) cov).

    The real part of the trace is returned (see module docstring).
    """
    cov = np.asarray(cov, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # singular Sigma (duplicated codes): still finite
        root = scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1))
    return float(np.real(2 * np.trace(cov) - 2 * np.trace(root)))


def mutual_info_score(mus: np.ndarray, num_bins: int = NUM_BINS) -> float:
    """Mean plug-in MI (nats) over ordered pairs of distinct discretised codes of ``mus`` (D, N); 0 for D = 1."""
    mus = np.asarray(mus)
    num_codes = mus.shape[0]
    if num_codes < 2:
        return 0.0
    discretized = utils.histogram_discretize(mus, num_bins)
    matrix = utils.discrete_mutual_info(discretized, discretized)
    np.fill_diagonal(matrix, 0)
    return float(np.sum(matrix) / (num_codes ** 2 - num_codes))


def compute_unsupervised(mus_train: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Array core: codes ``(D, N)`` -> the four unsupervised scores (covariance with ddof 1)."""
    mus_train = np.asarray(mus_train)
    if mus_train.ndim != 2 or mus_train.shape[1] < 2:
        raise ValueError(f"expected codes (D, N) with N >= 2, got shape {mus_train.shape}")
    cov = np.atleast_2d(np.cov(mus_train))
    varying = np.diag(cov) > 0
    if varying.all():
        total_correlation = gaussian_total_correlation(cov)
        wasserstein = gaussian_wasserstein_correlation(cov)
    elif varying.any():
        reduced = cov[np.ix_(varying, varying)]
        total_correlation = gaussian_total_correlation(reduced)
        wasserstein = gaussian_wasserstein_correlation(reduced)
    else:
        total_correlation = wasserstein = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        wasserstein_norm = float(np.float64(wasserstein) / np.sum(np.diag(cov)))
    return {
        "gaussian_total_correlation": total_correlation,
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein_norm,
        "mutual_info_score": mutual_info_score(mus_train, num_bins),
    }


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample ``num_train`` (10000) points in chunks of ``batch_size`` (16) and score the codes. ``fast`` is ignored."""
    p = utils.resolve_protocol("unsupervised", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    mus, _ = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs, p["batch_size"])
    return compute_unsupervised(mus)
