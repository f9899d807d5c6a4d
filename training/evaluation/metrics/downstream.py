"""Downstream classification tasks (evaluations ``downstream_task_logistic_regression`` and
``downstream_task_boosted_trees``), as the reference study computes them (metrics/REFERENCE.md 2.8).

For each training size s in ``num_train`` (default [10, 100, 1000, 10000]) IN THAT ORDER: sample s training points,
then ``num_test`` (5000) test points, both in chunks of ``batch_size`` (16) and continuing the evaluation's
RandomState (a new test set for every size, metrics/REFERENCE.md item 7). For every factor j, a fresh classifier is fitted on the
raw codes; its train and test accuracies give, per size, the keys

``"{s}:mean_train_accuracy"``, ``"{s}:mean_test_accuracy"``, ``"{s}:min_train_accuracy"``, ``"{s}:min_test_accuracy"``,
``"{s}:train_accuracy_factor_{j}"``, ``"{s}:test_accuracy_factor_{j}"`` (values are accuracies, metrics/REFERENCE.md item 3).

Predictors (:mod:`training.evaluation.metrics.predictors`): logistic regression with 5-fold CV over 10 values of C, or default
gradient-boosted trees. The boosted trees share ONE ``np.random.RandomState(gbt_seed)`` (protocol parameter, default
0), consumed in training-size order, then factor order (metrics/REFERENCE.md 1.8). Fits within one evaluation are
independent tasks, run in ``n_jobs`` processes after all points are sampled (same numbers for any ``n_jobs``).
A factor with a single class among the training points gets a constant prediction (metrics/REFERENCE.md item 14).

``fast=True`` selects the fast protocol's predictors (different numbers, much cheaper).
"""
from __future__ import annotations

import numpy as np

from training.evaluation.metrics import predictors, utils
from training.randomness import check_random_state

DEFAULT_NUM_TRAIN: tuple[int, ...] = (10, 100, 1000, 10000)
DEFAULT_PROTOCOL = {"num_train": list(DEFAULT_NUM_TRAIN), "num_test": 5000, "batch_size": 16, "n_jobs": 1}
PREDICTORS = ("logistic_regression", "gradient_boosting")
_EVALUATION = {"logistic_regression": "downstream_task_logistic_regression",
               "gradient_boosting": "downstream_task_boosted_trees"}
#: Per-evaluation defaults (the study's sizes; ``n_jobs`` only changes speed, ``gbt_seed`` only exists for trees).
DEFAULT_PROTOCOLS = {
    "downstream_task_logistic_regression": dict(DEFAULT_PROTOCOL),
    "downstream_task_boosted_trees": dict(DEFAULT_PROTOCOL, gbt_seed=0),
}


def _check_predictor(predictor: str) -> str:
    if predictor not in PREDICTORS:
        raise ValueError(f"unknown downstream predictor {predictor!r}; expected one of {', '.join(PREDICTORS)}")
    return predictor


def scores_for_size(size: int, train_accuracy, test_accuracy) -> dict[str, float]:
    """The 4 + 2K result keys of one training size from per-factor accuracies (K,)."""
    train_accuracy = np.asarray(train_accuracy, dtype=np.float64)
    test_accuracy = np.asarray(test_accuracy, dtype=np.float64)
    s = str(int(size))
    scores = {f"{s}:mean_train_accuracy": float(np.mean(train_accuracy)),
              f"{s}:mean_test_accuracy": float(np.mean(test_accuracy)),
              f"{s}:min_train_accuracy": float(np.min(train_accuracy)),
              f"{s}:min_test_accuracy": float(np.min(test_accuracy))}
    for i in range(train_accuracy.size):
        scores[f"{s}:train_accuracy_factor_{i}"] = float(train_accuracy[i])
        scores[f"{s}:test_accuracy_factor_{i}"] = float(test_accuracy[i])
    return scores


def compute_downstream_from_codes(blocks, predictor: str, gbt_seed: int = 0, fast: bool = False,
                                  n_jobs: int = 1) -> dict[str, float]:
    """Array core over several training sizes.

    ``blocks``: list of ``(mus_train (D, s), ys_train (K, s), mus_test (D, M), ys_test (K, M))``, one per training
    size in protocol order (the size is taken from ``mus_train``). Boosted trees consume one
    ``RandomState(gbt_seed)`` across all blocks, block by block then factor by factor.
    """
    tasks, finish = downstream_tasks(blocks, predictor, gbt_seed, fast)
    return finish(predictors.fit_tasks(tasks, n_jobs=n_jobs))


def downstream_tasks(blocks, predictor: str, gbt_seed: int = 0, fast: bool = False):
    """The fits of :func:`compute_downstream_from_codes` as ``(tasks, finish)``; ``finish(results in task order)``
    gives the scores."""
    _check_predictor(predictor)
    kind = "fast" if fast else "reference"
    blocks = [utils.check_train_test_codes(*b) for b in blocks]
    if predictor == "gradient_boosting" and not fast:
        states = iter(predictors.gbt_rng_states([y for b in blocks for y in b[1]], gbt_seed))
    else:
        states = None
    tasks, sizes = [], []
    for mus_train, ys_train, mus_test, ys_test in blocks:
        sizes.append((mus_train.shape[1], ys_train.shape[0]))
        x_train, x_test = mus_train.T, mus_test.T
        for j in range(ys_train.shape[0]):
            tasks.append(predictors.FitTask(predictor, kind, x_train, ys_train[j], x_test, ys_test[j],
                                            rng_state=next(states) if states is not None else None))

    def finish(results) -> dict[str, float]:
        scores: dict[str, float] = {}
        pos = 0
        for size, num_factors in sizes:
            chunk = results[pos:pos + num_factors]
            pos += num_factors
            scores.update(scores_for_size(size, [r.train_accuracy for r in chunk], [r.test_accuracy for r in chunk]))
        return scores
    return tasks, finish


def compute_downstream_task(mus_train, ys_train, mus_test, ys_test, predictor: str, gbt_seed: int = 0,
                            fast: bool = False, n_jobs: int = 1) -> dict[str, float]:
    """Array core for ONE training size (the size is the number of training points, ``mus_train`` (D, s));
    the reference's ``_compute_loss`` plus its key naming. For boosted trees equals the reference after
    ``np.random.seed(gbt_seed)``."""
    return compute_downstream_from_codes([(mus_train, ys_train, mus_test, ys_test)], predictor, gbt_seed, fast,
                                         n_jobs)


def _resolve(evaluation: str, protocol: dict, with_gbt_seed: bool) -> dict:
    protocol = dict(protocol)
    num_train = protocol.pop("num_train", list(DEFAULT_NUM_TRAIN))
    if isinstance(num_train, (int, np.integer)) and not isinstance(num_train, bool):
        num_train = [num_train]
    if not isinstance(num_train, (list, tuple)) or not num_train or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in num_train):
        raise ValueError(f"{evaluation}: protocol parameter num_train must be a non-empty list of positive integers, "
                         f"got {num_train!r}")
    gbt_seed = 0
    if with_gbt_seed:
        gbt_seed = protocol.pop("gbt_seed", 0)
        if isinstance(gbt_seed, bool) or not isinstance(gbt_seed, (int, np.integer)) or gbt_seed < 0:
            raise ValueError(f"{evaluation}: protocol parameter gbt_seed must be a non-negative integer, "
                             f"got {gbt_seed!r}")
    defaults = {k: v for k, v in DEFAULT_PROTOCOL.items() if k != "num_train"}
    p = utils.resolve_protocol(evaluation, defaults, protocol)
    p["num_train"] = [int(v) for v in num_train]
    p["gbt_seed"] = int(gbt_seed)
    return p


def _compute(predictor, dataset, representation_fn, random_state, fast, protocol) -> dict[str, float]:
    tasks, finish, n_jobs = _plan(predictor, dataset, representation_fn, random_state, fast, protocol)
    return finish(predictors.fit_tasks(tasks, n_jobs=n_jobs))


def _plan(predictor, dataset, representation_fn, random_state, fast, protocol):
    evaluation = _EVALUATION[predictor]
    p = _resolve(evaluation, protocol, with_gbt_seed=predictor == "gradient_boosting")
    rs = check_random_state(random_state)
    blocks = []
    for size in p["num_train"]:  # reference draw order: train block, then its own test block, size by size
        mus_train, ys_train = utils.generate_batch_factor_code(dataset, representation_fn, size, rs,
                                                               p["batch_size"])
        mus_test, ys_test = utils.generate_batch_factor_code(dataset, representation_fn, p["num_test"], rs,
                                                             p["batch_size"])
        blocks.append((mus_train, ys_train, mus_test, ys_test))
    tasks, finish = downstream_tasks(blocks, predictor, gbt_seed=p["gbt_seed"], fast=fast)
    return tasks, finish, p["n_jobs"]


def plan_logistic_regression(dataset, representation_fn, random_state, fast: bool = False, **protocol):
    """Sampling half of :func:`compute_logistic_regression`: ``(fit tasks, finish, n_jobs)`` (see dci.plan)."""
    return _plan("logistic_regression", dataset, representation_fn, random_state, fast, protocol)


def plan_boosted_trees(dataset, representation_fn, random_state, fast: bool = False, **protocol):
    """Sampling half of :func:`compute_boosted_trees`: ``(fit tasks, finish, n_jobs)`` (see dci.plan)."""
    return _plan("gradient_boosting", dataset, representation_fn, random_state, fast, protocol)


def compute_logistic_regression(dataset, representation_fn, random_state, fast: bool = False,
                                **protocol) -> dict[str, float]:
    """Evaluation ``downstream_task_logistic_regression``. Protocol parameters: ``num_train`` (list, default
    [10, 100, 1000, 10000]), ``num_test`` (5000), ``batch_size`` (16), ``n_jobs`` (1)."""
    return _compute("logistic_regression", dataset, representation_fn, random_state, fast, protocol)


def compute_boosted_trees(dataset, representation_fn, random_state, fast: bool = False,
                          **protocol) -> dict[str, float]:
    """Evaluation ``downstream_task_boosted_trees``. Protocol parameters: ``num_train`` (list, default
    [10, 100, 1000, 10000]), ``num_test`` (5000), ``batch_size`` (16), ``gbt_seed`` (0), ``n_jobs`` (1)."""
    return _compute("gradient_boosting", dataset, representation_fn, random_state, fast, protocol)
