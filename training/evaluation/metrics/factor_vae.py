"""FactorVAE score (evaluation ``factor_vae_metric``; Kim & Mnih 2018), as the reference study computes it.

Result keys: ``train_accuracy``, ``eval_accuracy``, ``num_active_dims`` (metrics/REFERENCE.md 2.2).

1. Global variances (ddof 1) of the codes of ``num_variance_estimate`` (10000) sampled observations.
2. Active codes: sqrt(variance) >= 0.05 (the study's ``prune_dims.threshold``). None active -> all three keys 0.
3. One vote: ``k = RS.randint(K)``, ``batch_size`` (64) factor draws with factor k fixed to the first draw's value,
   their observations, codes, per-code variance (ddof 1); the vote goes to (k, argmin over ACTIVE codes of
   local / global variance), the column being the position among the active codes (reproduced quirk 2).
4. ``num_train`` (10000) votes; majority classifier per column (ties -> lowest factor); accuracies on the training
   votes and on ``num_eval`` (5000) fresh votes.
5. ``num_active_dims`` is reported as the length of the active-code mask, i.e. D whenever any code is active
   (reproduced quirk 1).

Speed: the random draws happen vote by vote in the reference's order; the encoder is called on the observations of
many votes at once (``encode_batch_size`` observations per call), and the variance sample is encoded in calls of the
same size instead of 64 (same codes up to floating point for a deterministic representation; see
:mod:`training.evaluation.metrics.beta_vae`). Measured on one H200 with dSprites: ~24 s per representation at study size.
"""
from __future__ import annotations

import numpy as np

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000}
PRUNE_THRESHOLD = 0.05


def prune_dims(variances: np.ndarray, threshold: float = PRUNE_THRESHOLD) -> np.ndarray:
    """Boolean mask of active codes: sqrt(variance) >= threshold, variances (D,)."""
    return np.sqrt(np.asarray(variances)) >= threshold


def vote_column(local_codes: np.ndarray, global_variances: np.ndarray, active_dims: np.ndarray) -> int:
    """Position among the active codes of the code with the smallest local/global variance ratio; codes (B, D)."""
    local_variances = np.var(local_codes, axis=0, ddof=1)
    return int(np.argmin(local_variances[active_dims] / global_variances[active_dims]))


def generate_votes(dataset, representation_fn, batch_size: int, num_points: int, random_state,
                   global_variances: np.ndarray, active_dims: np.ndarray,
                   encode_batch_size: int | None = None) -> np.ndarray:
    """Draw ``num_points`` votes; returns the vote matrix (K, D) int64 (columns = positions among active codes)."""
    if encode_batch_size is None:
        encode_batch_size = utils.DEFAULT_ENCODE_BATCH_SIZE
    votes_per_call = max(1, int(encode_batch_size) // batch_size)
    num_factors = int(dataset.num_factors)
    votes = np.zeros((num_factors, global_variances.shape[0]), dtype=np.int64)
    pending_obs: list[np.ndarray] = []
    pending_factor: list[int] = []

    def flush():
        codes = np.asarray(representation_fn(np.concatenate(pending_obs, axis=0)))
        expected = len(pending_factor) * batch_size
        if codes.ndim != 2 or codes.shape[0] != expected:
            raise ValueError(f"representation function must return (n, num_codes) for n = {expected} observations, "
                             f"got shape {codes.shape}")
        codes = codes.reshape(len(pending_factor), batch_size, codes.shape[1])
        for offset, factor_index in enumerate(pending_factor):
            votes[factor_index, vote_column(codes[offset], global_variances, active_dims)] += 1
        pending_obs.clear()
        pending_factor.clear()

    for _ in range(num_points):
        factor_index = random_state.randint(num_factors)
        factors = np.array(dataset.sample_factors(batch_size, random_state))
        factors[:, factor_index] = factors[0, factor_index]
        pending_obs.append(np.asarray(dataset.sample_observations_from_factors(factors, random_state)))
        pending_factor.append(int(factor_index))
        if len(pending_factor) >= votes_per_call:
            flush()
    if pending_factor:
        flush()
    return votes


def majority_classifier(votes: np.ndarray) -> np.ndarray:
    """Per column of the vote matrix (K, D): the factor with most votes (ties and empty columns -> lowest index)."""
    return np.argmax(votes, axis=0)


def vote_accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    """Fraction of the votes (K, D) that the per-column classifier (D,) assigns to their factor."""
    votes = np.asarray(votes)
    return float(np.sum(votes[classifier, np.arange(votes.shape[1])]) * 1.0 / np.sum(votes))


def compute_factor_vae(train_votes: np.ndarray, eval_votes: np.ndarray, num_active_dims: int) -> dict[str, float]:
    """Array core: training and evaluation vote matrices (K, D) -> the three result keys."""
    classifier = majority_classifier(train_votes)
    return {"train_accuracy": vote_accuracy(train_votes, classifier),
            "eval_accuracy": vote_accuracy(eval_votes, classifier),
            "num_active_dims": float(num_active_dims)}


def compute(dataset, representation_fn, random_state, fast: bool = False, encode_batch_size: int | None = None,
            **protocol) -> dict[str, float]:
    """Variance sample, training votes, evaluation votes (in this order on ``random_state``), then the scores.

    ``fast`` is ignored (the cost is the encoder).
    """
    p = utils.resolve_protocol("factor_vae_metric", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    if encode_batch_size is None:
        encode_batch_size = max(64, utils.DEFAULT_ENCODE_BATCH_SIZE)
    observations = dataset.sample_observations(p["num_variance_estimate"], rs)
    codes = utils.obtain_representation(observations, representation_fn, encode_batch_size)
    del observations
    if codes.shape[1] < 2:
        raise ValueError("factor_vae_metric needs num_variance_estimate >= 2")
    global_variances = np.var(np.ascontiguousarray(codes.T), axis=0, ddof=1)  # (N, D) as in the reference
    active_dims = prune_dims(global_variances)
    if not active_dims.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train_votes = generate_votes(dataset, representation_fn, p["batch_size"], p["num_train"], rs, global_variances,
                                 active_dims, encode_batch_size)
    eval_votes = generate_votes(dataset, representation_fn, p["batch_size"], p["num_eval"], rs, global_variances,
                                active_dims, encode_batch_size)
    return compute_factor_vae(train_votes, eval_votes, len(active_dims))
