"""Modularity and explicitness (evaluation ``modularity_explicitness``; Ridgeway & Mozer 2018), as the reference
study computes them.

Result keys: ``modularity_score``, ``explicitness_score_train``, ``explicitness_score_test`` (metrics/REFERENCE.md 2.6).
Sample ``num_train`` training points, then ``num_test`` test points (same RandomState, chunks of ``batch_size``).

* Modularity from the plug-in MI (nats) of the 20-bin discretised TRAINING codes with the factors: per code
  1 - (sum_j MI^2 - max_j MI^2) / (max_j MI^2 (K - 1)); a code with no information scores 0 and still counts in the
  mean over all codes (reproduced quirk 4).
* Explicitness: codes standardised with the training mean/std; per factor a ``LogisticRegression`` (pinned: L2,
  C=1, lbfgs, max_iter 100, tol 1e-4, multinomial for > 2 classes - the reference's defaults under today's sklearn;
  the study's sklearn 0.20 used liblinear one-vs-rest) fitted on the training codes; macro one-vs-rest ROC-AUC of the
  predicted class probabilities on the training and on the test points; means over factors.

Deliberate fixes (metrics/REFERENCE.md items 6, 12, 14), none of which changes a value the reference can compute:
* a code with zero variance in the training sample is standardised with std 1 instead of 0 (the reference produced
  NaN and sklearn raised);
* the one-hot targets use the classifier's classes (= the sorted training labels). The reference fitted a
  MultiLabelBinarizer separately on train and on test labels, which gives the same columns when the test sample holds
  every training class and crashed otherwise. Classes whose column has no positive (or no negative) point have no
  AUC and are left out of the macro average; test points of a class never seen in training only act as negatives;
* with a single factor (K = 1) every informative code has modularity 1 (the reference computed 0/0);
* a factor with a single class among the training points has no explicitness (no classifier, no AUC) and is left out
  of the mean over factors; if no factor is left, the explicitness scores are NaN.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import linear_model
from sklearn import metrics as sk_metrics
from sklearn.exceptions import ConvergenceWarning

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "num_test": 5000, "batch_size": 16}
NUM_BINS = 20


def modularity(mutual_information: np.ndarray) -> float:
    """Modularity score from a mutual-information matrix ``(D, K)``: mean over codes (uninformative codes score 0)."""
    mi = np.asarray(mutual_information, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[1] < 1:
        raise ValueError(f"modularity needs an MI matrix (D, K), got shape {mi.shape}")
    squared = np.square(mi)
    theta = np.max(squared, axis=1)
    if squared.shape[1] == 1:  # one factor (the reference divided 0 by 0): an informative code is fully modular
        delta = np.zeros_like(theta)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (np.sum(squared, axis=1) - theta) / (theta * (squared.shape[1] - 1.0))
    score = 1.0 - delta
    score[theta == 0.0] = 0.0
    return float(np.mean(score))


def _macro_auc(labels: np.ndarray, classes: np.ndarray, probabilities: np.ndarray) -> float:
    one_hot = (labels[:, np.newaxis] == classes[np.newaxis, :]).astype(np.int64)
    positives = one_hot.sum(axis=0)
    defined = (positives > 0) & (positives < len(labels))
    if not defined.any():
        return float("nan")
    return float(sk_metrics.roc_auc_score(one_hot[:, defined], probabilities[:, defined]))


def explicitness_per_factor(mus_train: np.ndarray, y_train: np.ndarray, mus_test: np.ndarray,
                            y_test: np.ndarray) -> tuple[float, float]:
    """(train AUC, test AUC) of a logistic regression from STANDARDISED codes (D, N) / (D, M) to one factor (N,) / (M,).

    NaN for both when the factor has a single class among the training points.
    """
    x_train, x_test = np.transpose(mus_train), np.transpose(mus_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(np.unique(y_train)) < 2:
        return float("nan"), float("nan")
    classifier = linear_model.LogisticRegression(C=1.0, l1_ratio=0.0, solver="lbfgs", max_iter=100, tol=1e-4,
                                                 fit_intercept=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    auc_train = _macro_auc(y_train, classifier.classes_, classifier.predict_proba(x_train))
    auc_test = _macro_auc(y_test, classifier.classes_, classifier.predict_proba(x_test))
    return auc_train, auc_test


def compute_modularity_explicitness(mus_train: np.ndarray, ys_train: np.ndarray, mus_test: np.ndarray,
                                    ys_test: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Array core: raw train codes (D, N), factors (K, N), test codes (D, M), factors (K, M) -> the three scores."""
    mus_train, ys_train, mus_test, ys_test = map(np.asarray, (mus_train, ys_train, mus_test, ys_test))
    if (mus_train.ndim != 2 or ys_train.ndim != 2 or mus_train.shape[1] != ys_train.shape[1]
            or mus_test.shape[0] != mus_train.shape[0] or ys_test.shape[0] != ys_train.shape[0]
            or mus_test.shape[1] != ys_test.shape[1]):
        raise ValueError(f"expected codes (D, N), factors (K, N), test codes (D, M), test factors (K, M); got "
                         f"{mus_train.shape}, {ys_train.shape}, {mus_test.shape}, {ys_test.shape}")
    discretized = utils.histogram_discretize(mus_train, num_bins)
    scores = {"modularity_score": modularity(utils.discrete_mutual_info(discretized, ys_train))}

    mean = np.mean(mus_train, axis=1)
    stddev = np.std(mus_train, axis=1)
    stddev = np.where(stddev == 0, np.ones_like(stddev), stddev)
    train_norm, _, _ = utils.normalize_data(mus_train, mean, stddev)
    test_norm, _, _ = utils.normalize_data(mus_test, mean, stddev)
    per_factor = np.array([explicitness_per_factor(train_norm, ys_train[j], test_norm, ys_test[j])
                           for j in range(ys_train.shape[0])])
    for column, key in enumerate(("explicitness_score_train", "explicitness_score_test")):
        values = per_factor[:, column]
        values = values[~np.isnan(values)]
        scores[key] = float(np.mean(values)) if len(values) else float("nan")
    return scores


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample ``num_train`` (10000) then ``num_test`` (5000) points in chunks of ``batch_size`` (16) and score.
    ``fast`` is ignored."""
    p = utils.resolve_protocol("modularity_explicitness", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    mus, ys = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs, p["batch_size"])
    mus_test, ys_test = utils.generate_batch_factor_code(dataset, representation_fn, p["num_test"], rs,
                                                         p["batch_size"])
    return compute_modularity_explicitness(mus, ys, mus_test, ys_test)
