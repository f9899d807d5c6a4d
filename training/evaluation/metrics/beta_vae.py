"""BetaVAE score (evaluation ``beta_vae_sklearn``; Higgins et al. 2017), as the reference study computes it.

Result keys: ``train_accuracy``, ``eval_accuracy`` (metrics/REFERENCE.md 2.1). One point: draw the fixed factor
``k = RS.randint(K)``, two factor batches F1, F2 of ``batch_size`` (64) with column k of F2 copied from F1,
observations of F1 then of F2; the feature is the mean over the pairs of |code(X1) - code(X2)| (length D, stored as
float64), the label is k. ``num_train`` (10000) points train ``LogisticRegression(random_state=RS)`` (pinned: L2,
C=1, lbfgs, max_iter 100, tol 1e-4, multinomial: the reference's defaults under today's sklearn; lbfgs draws nothing
from RS); then ``num_eval`` (5000) fresh points (RS continues) give ``eval_accuracy``.

Speed: the random draws happen point by point in the reference's order, but the encoder is called on the
observations of many points at once (``encode_batch_size`` observations per call, default
:data:`training.evaluation.metrics.utils.DEFAULT_ENCODE_BATCH_SIZE`), so 30,000 points need ~1,900 encoder calls instead of
60,000. The draws, hence the sampled points, are unchanged; a deterministic encoder gives the same codes up to
floating point (bit-identical on CPU here; on CUDA, cuDNN's batch-size-dependent kernels moved features by ~5e-7).
Measured on one H200 with dSprites: the encoder costs ~0.3 ms per point, the dataset's sampling/rendering ~2.9 ms,
so a study-size BetaVAE score takes ~50 s per representation.

Deliberate fix: if every training point has the same label (only possible for tiny ``num_train``), sklearn cannot
fit; the classifier then predicts that label for every point.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import linear_model
from sklearn.exceptions import ConvergenceWarning

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"batch_size": 64, "num_train": 10000, "num_eval": 5000}


def beta_vae_feature(codes1: np.ndarray, codes2: np.ndarray) -> np.ndarray:
    """Feature of one point: mean over the pairs of |codes1 - codes2|, codes (batch, D) -> (D,) in the codes' dtype."""
    return np.mean(np.abs(codes1 - codes2), axis=0)


def generate_points(dataset, representation_fn, batch_size: int, num_points: int, random_state,
                    encode_batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_points`` BetaVAE points: ``(features (num_points, D) float64, labels (num_points,) int64)``."""
    if encode_batch_size is None:
        encode_batch_size = utils.DEFAULT_ENCODE_BATCH_SIZE
    points_per_call = max(1, int(encode_batch_size) // (2 * batch_size))
    num_factors = int(dataset.num_factors)
    labels = np.zeros(num_points, dtype=np.int64)
    features: np.ndarray | None = None
    pending: list[np.ndarray] = []
    pending_start = 0

    def flush(end: int):
        nonlocal features, pending, pending_start
        codes = np.asarray(representation_fn(np.concatenate(pending, axis=0)))
        expected = (end - pending_start) * 2 * batch_size
        if codes.ndim != 2 or codes.shape[0] != expected:
            raise ValueError(f"representation function must return (n, num_codes) for n = {expected} observations, "
                             f"got shape {codes.shape}")
        if features is None:
            features = np.zeros((num_points, codes.shape[1]))
        codes = codes.reshape(end - pending_start, 2, batch_size, codes.shape[1])
        for offset in range(end - pending_start):
            features[pending_start + offset, :] = beta_vae_feature(codes[offset, 0], codes[offset, 1])
        pending, pending_start = [], end

    for i in range(num_points):
        index = random_state.randint(num_factors)
        factors1 = np.array(dataset.sample_factors(batch_size, random_state))
        factors2 = np.array(dataset.sample_factors(batch_size, random_state))
        factors2[:, index] = factors1[:, index]
        observation1 = np.asarray(dataset.sample_observations_from_factors(factors1, random_state))
        observation2 = np.asarray(dataset.sample_observations_from_factors(factors2, random_state))
        labels[i] = index
        pending.extend((observation1, observation2))
        if i + 1 - pending_start >= points_per_call:
            flush(i + 1)
    if pending:
        flush(num_points)
    return features, labels


class _ConstantClassifier:
    def __init__(self, label):
        self.label = label

    def predict(self, x):
        return np.full(len(x), self.label)


def fit_classifier(train_points: np.ndarray, train_labels: np.ndarray, random_state):
    """The reference's classifier: ``LogisticRegression(random_state=random_state)`` on the raw features."""
    classes = np.unique(train_labels)
    if len(classes) < 2:
        return _ConstantClassifier(classes[0])
    model = linear_model.LogisticRegression(C=1.0, l1_ratio=0.0, solver="lbfgs", max_iter=100, tol=1e-4,
                                            fit_intercept=True, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_points, train_labels)
    return model


def compute_beta_vae(train_points: np.ndarray, train_labels: np.ndarray, eval_points: np.ndarray,
                     eval_labels: np.ndarray, random_state=None) -> dict[str, float]:
    """Array core: features (N, D) / labels (N,) for training and (M, D) / (M,) for evaluation -> both accuracies."""
    model = fit_classifier(np.asarray(train_points), np.asarray(train_labels), random_state)
    return {"train_accuracy": float(np.mean(model.predict(train_points) == train_labels)),
            "eval_accuracy": float(np.mean(model.predict(eval_points) == eval_labels))}


def compute(dataset, representation_fn, random_state, fast: bool = False, encode_batch_size: int | None = None,
            **protocol) -> dict[str, float]:
    """Sample training points, fit, sample evaluation points (in this order on ``random_state``), score.

    ``fast`` is ignored (the cost is the encoder; the fit takes well under a second).
    """
    p = utils.resolve_protocol("beta_vae_sklearn", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    train_points, train_labels = generate_points(dataset, representation_fn, p["batch_size"], p["num_train"], rs,
                                                 encode_batch_size)
    model = fit_classifier(train_points, train_labels, rs)
    train_accuracy = float(np.mean(model.predict(train_points) == train_labels))
    eval_points, eval_labels = generate_points(dataset, representation_fn, p["batch_size"], p["num_eval"], rs,
                                               encode_batch_size)
    eval_accuracy = float(np.mean(model.predict(eval_points) == eval_labels))
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy}
