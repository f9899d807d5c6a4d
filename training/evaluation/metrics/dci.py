"""DCI disentanglement, completeness and informativeness (evaluation ``dci``; Eastwood & Williams 2018), as the
reference study computes it (metrics/REFERENCE.md 2.4).

Result keys: ``informativeness_train``, ``informativeness_test``, ``disentanglement``, ``completeness``.

Protocol: sample ``num_train`` (10000) then ``num_test`` (5000) points with the evaluation's RandomState (chunks of
``batch_size`` 16). For every factor, in order, fit a gradient-boosted tree classifier on the RAW training codes;
its importances form column j of the importance matrix R (D, K); record train and test accuracy.
``informativeness_*`` are the mean ACCURACIES over factors (reproduced reference naming, metrics/REFERENCE.md item 3).
Disentanglement = sum_i rho_i (1 - H_K(P_i)) with P_i = row i of R (+1e-11) normalised and rho_i = row sums / total;
completeness = sum_j w_j (1 - H_D(Q_j)) with Q_j = column j of R (+1e-11) normalised and w_j = column sums / total.
An all-zero R uses uniform weights.

Reproducibility (metrics/REFERENCE.md 1.8, item 10): the trees get ONE ``np.random.RandomState(gbt_seed)`` (protocol parameter,
default 0) in factor order - never the sampling stream - which equals the reference run after ``np.random.seed(0)``.
``n_jobs`` fits factors in parallel processes without changing any number.

Deliberate fix (metrics/REFERENCE.md item 13): with a single factor (K = 1) the reference takes an entropy in base 1 (division by
zero); here every code's disentanglement is then 1 (one factor cannot be shared). With a single code (D = 1)
completeness is likewise 1.

``fast=True`` selects the fast protocol (histogram gradient boosting with gain importances; see
:mod:`training.evaluation.metrics.predictors`): different numbers, a fraction of the time.
"""
from __future__ import annotations

import numpy as np
import scipy.stats

from training.evaluation.metrics import predictors, utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "num_test": 5000, "batch_size": 16, "gbt_seed": 0, "n_jobs": 1}
_EPS = 1e-11


def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (in ``base``) of each COLUMN of ``p`` after adding 1e-11 and normalising; 1 where base < 2."""
    if base < 2:
        return np.ones(p.shape[1])
    return 1.0 - scipy.stats.entropy(p + _EPS, base=base)


def _check_importance(importance_matrix) -> np.ndarray:
    r = np.asarray(importance_matrix, dtype=np.float64)
    if r.ndim != 2 or r.size == 0:
        raise ValueError(f"importance matrix must be 2-D (codes x factors) and non-empty, got shape {r.shape}")
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("importance matrix must be finite and non-negative")
    return r


def disentanglement_per_code(importance_matrix) -> np.ndarray:
    """``(D,)``: 1 - entropy (base K) of each code's importance over the factors."""
    r = _check_importance(importance_matrix)
    return _one_minus_entropy(r.T, r.shape[1])


def completeness_per_factor(importance_matrix) -> np.ndarray:
    """``(K,)``: 1 - entropy (base D) of each factor's importance over the codes."""
    r = _check_importance(importance_matrix)
    return _one_minus_entropy(r, r.shape[0])


def disentanglement(importance_matrix) -> float:
    """Importance-weighted mean of :func:`disentanglement_per_code` for R ``(D, K)``."""
    r = _check_importance(importance_matrix)
    per_code = disentanglement_per_code(r)
    weights_from = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_code * weights_from.sum(axis=1) / weights_from.sum()))


def completeness(importance_matrix) -> float:
    """Importance-weighted mean of :func:`completeness_per_factor` for R ``(D, K)``."""
    r = _check_importance(importance_matrix)
    per_factor = completeness_per_factor(r)
    weights_from = r if r.sum() > 0 else np.ones_like(r)
    return float(np.sum(per_factor * weights_from.sum(axis=0) / weights_from.sum()))


def importance_tasks(mus_train, ys_train, mus_test, ys_test, gbt_seed: int = 0,
                     fast: bool = False) -> list[predictors.FitTask]:
    """The per-factor boosted-tree fits of DCI (factor order), each with the random state it starts from."""
    mus_train, ys_train, mus_test, ys_test = utils.check_train_test_codes(mus_train, ys_train, mus_test, ys_test)
    kind = "fast" if fast else "reference"
    num_factors = ys_train.shape[0]
    states = (predictors.gbt_rng_states(list(ys_train), gbt_seed) if not fast else [None] * num_factors)
    x_train, x_test = mus_train.T, mus_test.T
    return [predictors.FitTask("gradient_boosting", kind, x_train, ys_train[j], x_test, ys_test[j],
                               rng_state=states[j], want_importances=True) for j in range(num_factors)]


def _collect(results) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.stack([res.importances for res in results], axis=1).astype(np.float64)
    return (r, np.array([res.train_accuracy for res in results]), np.array([res.test_accuracy for res in results]))


def importance_matrix(mus_train, ys_train, mus_test, ys_test, gbt_seed: int = 0, fast: bool = False,
                      n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit one boosted-tree classifier per factor on raw codes.

    Codes ``(D, N)`` / ``(D, M)``, factors ``(K, N)`` / ``(K, M)`` (points are columns). Returns
    ``(R (D, K) float64, train accuracy per factor (K,), test accuracy per factor (K,))``.
    """
    tasks = importance_tasks(mus_train, ys_train, mus_test, ys_test, gbt_seed, fast)
    return _collect(predictors.fit_tasks(tasks, n_jobs=n_jobs))


def scores_from_importance(r: np.ndarray, train_accuracy, test_accuracy) -> dict[str, float]:
    """The four DCI keys from R ``(D, K)`` and the per-factor accuracies."""
    return {
        "informativeness_train": float(np.mean(train_accuracy)),
        "informativeness_test": float(np.mean(test_accuracy)),
        "disentanglement": disentanglement(r),
        "completeness": completeness(r),
    }


def compute_dci(mus_train, ys_train, mus_test, ys_test, gbt_seed: int = 0, fast: bool = False,
                n_jobs: int = 1) -> dict[str, float]:
    """Array core: codes ``(D, N)``, factors ``(K, N)``, test codes ``(D, M)``, test factors ``(K, M)`` -> the four
    DCI keys. Equals the reference's ``_compute_dci`` run after ``np.random.seed(gbt_seed)``."""
    r, train_acc, test_acc = importance_matrix(mus_train, ys_train, mus_test, ys_test, gbt_seed, fast, n_jobs)
    return scores_from_importance(r, train_acc, test_acc)


def _resolve(protocol: dict) -> dict:
    protocol = dict(protocol)
    gbt_seed = protocol.pop("gbt_seed", 0)
    if isinstance(gbt_seed, bool) or not isinstance(gbt_seed, (int, np.integer)) or gbt_seed < 0:
        raise ValueError(f"dci: protocol parameter gbt_seed must be a non-negative integer, got {gbt_seed!r}")
    defaults = {k: v for k, v in DEFAULT_PROTOCOL.items() if k != "gbt_seed"}
    p = utils.resolve_protocol("dci", defaults, protocol)
    p["gbt_seed"] = int(gbt_seed)
    return p


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample ``num_train`` then ``num_test`` points (chunks of ``batch_size``) with ``random_state`` and score them.

    Protocol parameters: ``num_train`` (10000), ``num_test`` (5000), ``batch_size`` (16), ``gbt_seed`` (0),
    ``n_jobs`` (1; parallel per-factor fits, same numbers).
    """
    tasks, finish, n_jobs = plan(dataset, representation_fn, random_state, fast=fast, **protocol)
    return finish(predictors.fit_tasks(tasks, n_jobs=n_jobs))


def plan(dataset, representation_fn, random_state, fast: bool = False, **protocol):
    """Sampling half of :func:`compute`: draws and encodes the points, returns ``(fit tasks, finish, n_jobs)``;
    ``finish(results of the tasks, in order)`` gives the scores. Lets a caller pool the fits of several
    evaluations (:func:`training.evaluation.scoring.evaluate_model_records` with ``n_jobs > 1``)."""
    p = _resolve(protocol)
    rs = check_random_state(random_state)
    mus_train, ys_train = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs,
                                                           p["batch_size"])
    mus_test, ys_test = utils.generate_batch_factor_code(dataset, representation_fn, p["num_test"], rs,
                                                         p["batch_size"])
    tasks = importance_tasks(mus_train, ys_train, mus_test, ys_test, p["gbt_seed"], fast)

    def finish(results):
        return scores_from_importance(*_collect(results))
    return tasks, finish, p["n_jobs"]
