"""Separated Attribute Predictability (evaluation ``sap_score``; Kumar et al. 2018), as the reference study computes it.

Result key: ``SAP_score`` (metrics/REFERENCE.md 2.5). Sample ``num_train`` training points, then ``num_test`` test points
(same RandomState, chunks of ``batch_size``). Score matrix S (D, K): S[i, j] = test accuracy of a linear SVM fitted on
the single raw code i to predict factor j (the study's discrete-factor setting), or, with ``continuous_factors``, the
squared correlation of code i and factor j on the training points. SAP = mean over factors of the gap between the two
largest entries of a column.

sklearn arguments are pinned to what the reference computes with today's sklearn: ``LinearSVC(C=0.01,
class_weight="balanced")`` with squared hinge loss, L2 penalty, tol 1e-4, max_iter 1000, and the primal solver
(``dual=False``, which sklearn's ``dual="auto"`` picks for these one-feature problems); ``random_state=0`` keeps the
global NumPy RNG untouched (the primal solver does not use it). The study-era sklearn 0.20 used the dual solver.

Deliberate fix: a factor with a single class among the training points cannot be fitted (sklearn raises); its
predictor then predicts that class for every test point (the only consistent classifier), so its column is constant
and contributes a gap of 0.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import svm
from sklearn.exceptions import ConvergenceWarning

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "num_test": 5000, "batch_size": 16, "continuous_factors": False}


def _linear_svc() -> svm.LinearSVC:
    return svm.LinearSVC(penalty="l2", loss="squared_hinge", dual=False, tol=1e-4, C=0.01, multi_class="ovr",
                         fit_intercept=True, intercept_scaling=1, class_weight="balanced", random_state=0,
                         max_iter=1000)


def compute_score_matrix(mus: np.ndarray, ys: np.ndarray, mus_test: np.ndarray, ys_test: np.ndarray,
                         continuous_factors: bool = False) -> np.ndarray:
    """Score matrix ``(D, K)`` from train codes (D, N), factors (K, N) and test codes (D, M), factors (K, M)."""
    mus, ys = np.asarray(mus), np.asarray(ys)
    num_codes, num_factors = mus.shape[0], ys.shape[0]
    matrix = np.zeros((num_codes, num_factors))
    for i in range(num_codes):
        for j in range(num_factors):
            mu_i, y_j = mus[i, :], ys[j, :]
            if continuous_factors:
                cov = np.cov(mu_i, y_j, ddof=1)
                var_mu, var_y = cov[0, 0], cov[1, 1]
                matrix[i, j] = cov[0, 1] ** 2 * 1.0 / (var_mu * var_y) if var_mu > 1e-12 else 0.0
                continue
            y_test = np.asarray(ys_test)[j, :]
            classes = np.unique(y_j)
            if len(classes) < 2:
                matrix[i, j] = np.mean(y_test == classes[0])
                continue
            classifier = _linear_svc()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(mu_i[:, np.newaxis], y_j)
            prediction = classifier.predict(np.asarray(mus_test)[i, :][:, np.newaxis])
            matrix[i, j] = np.mean(prediction == y_test)
    return matrix


def avg_diff_top_two(matrix: np.ndarray) -> float:
    """Mean over columns of (largest - second largest entry) of ``matrix`` (D, K); needs D >= 2."""
    matrix = np.asarray(matrix)
    if matrix.shape[0] < 2:
        raise ValueError("SAP needs at least two codes")
    sorted_matrix = np.sort(matrix, axis=0)
    return float(np.mean(sorted_matrix[-1, :] - sorted_matrix[-2, :]))


def compute_sap(mus: np.ndarray, ys: np.ndarray, mus_test: np.ndarray, ys_test: np.ndarray,
                continuous_factors: bool = False) -> dict[str, float]:
    """Array core: train codes (D, N), factors (K, N), test codes (D, M), factors (K, M) -> ``{"SAP_score"}``."""
    mus, ys, mus_test, ys_test = map(np.asarray, (mus, ys, mus_test, ys_test))
    if (mus.ndim != 2 or ys.ndim != 2 or mus.shape[1] != ys.shape[1] or mus_test.shape[0] != mus.shape[0]
            or ys_test.shape[0] != ys.shape[0] or mus_test.shape[1] != ys_test.shape[1]):
        raise ValueError(f"expected codes (D, N), factors (K, N), test codes (D, M), test factors (K, M); got "
                         f"{mus.shape}, {ys.shape}, {mus_test.shape}, {ys_test.shape}")
    return {"SAP_score": avg_diff_top_two(compute_score_matrix(mus, ys, mus_test, ys_test, continuous_factors))}


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample ``num_train`` (10000) then ``num_test`` (5000) points in chunks of ``batch_size`` (16) and score.
    ``fast`` is ignored (50 one-feature SVM fits take about a second)."""
    p = utils.resolve_protocol("sap_score", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    mus, ys = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs, p["batch_size"])
    mus_test, ys_test = utils.generate_batch_factor_code(dataset, representation_fn, p["num_test"], rs,
                                                         p["batch_size"])
    return compute_sap(mus, ys, mus_test, ys_test, p["continuous_factors"])
