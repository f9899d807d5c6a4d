"""Mutual Information Gap (evaluation ``mig``; Chen et al. 2018), as the reference study computes it.

Result key: ``discrete_mig``. Protocol (metrics/REFERENCE.md 2.3): sample ``num_train`` points in chunks of
``batch_size``, discretise every code into 20 equal-width bins over its own range, take the plug-in mutual
information (nats) between each discretised code and each factor, and average over factors the gap between the two
most informative codes divided by the factor's entropy. Only the training sample is used.

Deliberate fix (metrics/REFERENCE.md item 13): a factor with zero entropy in the sample (a single value) makes the
reference divide by zero. Here such factors are left out of the mean; if every factor is constant the score is
undefined and ``ValueError`` is raised.
"""
from __future__ import annotations

import numpy as np

from training.evaluation.metrics import utils
from training.randomness import check_random_state

DEFAULT_PROTOCOL = {"num_train": 10000, "batch_size": 16}
NUM_BINS = 20


def mig_from_mutual_info(mutual_info: np.ndarray, entropy: np.ndarray) -> float:
    """MIG from a mutual-information matrix ``(D, K)`` and factor entropies ``(K,)`` (nats).

    Per factor: (largest - second largest MI over codes) / entropy; mean over the factors with non-zero entropy.
    With a single code the gap is the MI itself.
    """
    mutual_info = np.asarray(mutual_info, dtype=np.float64)
    entropy = np.asarray(entropy, dtype=np.float64)
    if mutual_info.ndim != 2 or entropy.shape != (mutual_info.shape[1],):
        raise ValueError(f"expected MI (D, K) and entropy (K,), got {mutual_info.shape} and {entropy.shape}")
    informative = entropy > 0
    if not informative.any():
        raise ValueError("MIG is undefined: every factor takes a single value in the sample (zero entropy)")
    sorted_mi = np.sort(mutual_info, axis=0)[::-1]
    second = sorted_mi[1, :] if sorted_mi.shape[0] > 1 else np.zeros(sorted_mi.shape[1])
    gaps = np.divide(sorted_mi[0, informative] - second[informative], entropy[informative])
    return float(np.mean(gaps))


def compute_mig(mus_train: np.ndarray, ys_train: np.ndarray, num_bins: int = NUM_BINS) -> dict[str, float]:
    """Array core: codes ``(D, N)`` (raw, any float dtype) and factors ``(K, N)`` -> ``{"discrete_mig": float}``."""
    mus_train, ys_train = np.asarray(mus_train), np.asarray(ys_train)
    if mus_train.ndim != 2 or ys_train.ndim != 2 or mus_train.shape[1] != ys_train.shape[1]:
        raise ValueError(f"expected codes (D, N) and factors (K, N), got {mus_train.shape} and {ys_train.shape}")
    discretized = utils.histogram_discretize(mus_train, num_bins)
    mutual_info = utils.discrete_mutual_info(discretized, ys_train)
    entropy = utils.discrete_entropy(ys_train)
    return {"discrete_mig": mig_from_mutual_info(mutual_info, entropy)}


def compute(dataset, representation_fn, random_state, fast: bool = False, **protocol) -> dict[str, float]:
    """Sample and score: ``num_train`` (10000) points drawn in chunks of ``batch_size`` (16). ``fast`` is ignored
    (MIG has no costly fit)."""
    p = utils.resolve_protocol("mig", DEFAULT_PROTOCOL, protocol)
    rs = check_random_state(random_state)
    mus, ys = utils.generate_batch_factor_code(dataset, representation_fn, p["num_train"], rs, p["batch_size"])
    return compute_mig(mus, ys)
