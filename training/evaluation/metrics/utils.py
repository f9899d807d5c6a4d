"""Helpers shared by the metrics: sampling codes from a dataset, discretising, mutual information, normalising.

Layout convention (as in the reference implementation, metrics/REFERENCE.md 1.1): inside the metric helpers,
codes are ``mus`` with shape ``(D, N)`` and factors ``ys`` with shape ``(K, N)``, i.e. points are COLUMNS.
A representation function maps observations ``(n, 64, 64, C)`` to codes ``(n, D)``; a dataset returns factors as
``(n, K)`` int64 class indices.

dtype rule (metrics/REFERENCE.md 1.3): codes keep the dtype the representation function returns. The histogram discretiser
computes its bin edges in that dtype, and its labels have that dtype too.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn import metrics as sk_metrics


RepresentationFn = Callable[[np.ndarray], np.ndarray]

#: Minimum number of observations handed to the representation function in one call by
#: :func:`generate_batch_factor_code` when ``encode_batch_size`` is left at its default. The sampling still happens in
#: chunks of ``batch_size`` (which fixes the random-draw order); only the encoder calls are grouped.
DEFAULT_ENCODE_BATCH_SIZE = 1024


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _encode(representation_fn: RepresentationFn, observations: np.ndarray) -> np.ndarray:
    codes = np.asarray(representation_fn(observations))
    if codes.ndim != 2 or codes.shape[0] != len(observations):
        raise ValueError(
            f"representation function must return an array (n, num_codes) for n = {len(observations)} "
            f"observations, got shape {codes.shape}")
    return codes


def generate_batch_factor_code(dataset, representation_fn: RepresentationFn, num_points: int, random_state,
                               batch_size: int, encode_batch_size: int | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``num_points`` points and encode them: returns ``(codes (D, N), factors (K, N))``.

    The dataset is sampled exactly as the reference does (metrics/REFERENCE.md 1.2): in chunks of ``min(batch_size, remaining)``,
    each chunk one ``dataset.sample(chunk, random_state)`` call, so the draws of factors and observations interleave
    per chunk and the sampled points depend on ``batch_size``.

    ``encode_batch_size`` groups consecutive chunks into one call of ``representation_fn`` (at least
    ``batch_size``; default :data:`DEFAULT_ENCODE_BATCH_SIZE`), which only changes how many observations the encoder
    sees per call, never which points are drawn. A deterministic representation gives the same codes up to floating
    point (bit-identical on CPU; CUDA kernels may differ in the last bits between batch sizes); a
    stochastic (``sampled``) one draws fresh noise per call, as in the reference. Pass ``encode_batch_size=batch_size``
    for the reference's exact call pattern.
    """
    num_points = _check_positive_int("num_points", num_points)
    batch_size = _check_positive_int("batch_size", batch_size)
    if encode_batch_size is None:
        encode_batch_size = max(batch_size, DEFAULT_ENCODE_BATCH_SIZE)
    encode_batch_size = max(_check_positive_int("encode_batch_size", encode_batch_size), batch_size)

    factor_chunks: list[np.ndarray] = []
    code_chunks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_count = 0

    def flush():
        nonlocal pending, pending_count
        if pending:
            observations = pending[0] if len(pending) == 1 else np.concatenate(pending, axis=0)
            code_chunks.append(_encode(representation_fn, observations))
            pending, pending_count = [], 0

    done = 0
    while done < num_points:
        chunk = min(num_points - done, batch_size)
        factors, observations = dataset.sample(chunk, random_state)
        factor_chunks.append(np.asarray(factors))
        observations = np.asarray(observations)
        if pending_count + chunk > encode_batch_size:
            flush()
        pending.append(observations)
        pending_count += chunk
        done += chunk
    flush()
    codes = np.concatenate(code_chunks, axis=0) if len(code_chunks) > 1 else code_chunks[0]
    factors_all = np.concatenate(factor_chunks, axis=0) if len(factor_chunks) > 1 else factor_chunks[0]
    return np.ascontiguousarray(codes.T), np.ascontiguousarray(factors_all.T)


def obtain_representation(observations: np.ndarray, representation_fn: RepresentationFn,
                          batch_size: int) -> np.ndarray:
    """Encode ``observations`` (N, ...) in chunks of ``batch_size``; returns codes ``(D, N)`` in the encoder's dtype."""
    batch_size = _check_positive_int("batch_size", batch_size)
    observations = np.asarray(observations)
    if len(observations) == 0:
        raise ValueError("obtain_representation needs at least one observation")
    chunks = [_encode(representation_fn, observations[i:i + batch_size])
              for i in range(0, len(observations), batch_size)]
    codes = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
    return np.ascontiguousarray(codes.T)


def histogram_discretize(target: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Discretise every row of ``target`` (rows, N) into ``num_bins`` equal-width bins over that row's own range.

    Labels are 1..num_bins (metrics/REFERENCE.md 1.4): the edges are NumPy's histogram edges of the row (computed in the row's dtype;
    a constant row gets the range [v - 0.5, v + 0.5], hence label ``num_bins // 2 + 1``), the last edge is dropped and
    a value's label is the number of remaining edges <= value. Output has the same shape and dtype as the input.
    """
    num_bins = _check_positive_int("num_bins", num_bins)
    target = np.asarray(target)
    if target.ndim != 2:
        raise ValueError(f"histogram_discretize expects a 2-d array (rows, points), got shape {target.shape}")
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        edges = np.histogram_bin_edges(target[i, :], bins=num_bins)[:-1]
        discretized[i, :] = np.digitize(target[i, :], edges)
    return discretized


def discrete_mutual_info(mus: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between every discrete code row and every factor row: matrix (D, K).

    ``mus`` (D, N) must already be discretised; ``ys`` (K, N) are class labels. Entry (i, j) is
    ``sklearn.metrics.mutual_info_score(ys[j], mus[i])`` (0 when either labelling is constant).
    """
    mus, ys = np.asarray(mus), np.asarray(ys)
    if mus.ndim != 2 or ys.ndim != 2 or mus.shape[1] != ys.shape[1]:
        raise ValueError(f"discrete_mutual_info expects (D, N) and (K, N) arrays, got {mus.shape} and {ys.shape}")
    m = np.zeros((mus.shape[0], ys.shape[0]))
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = sk_metrics.mutual_info_score(ys[j, :], mus[i, :])
    return m


def discrete_entropy(ys: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of every row of ``ys`` (K, N): vector (K,), 0 for a constant row."""
    ys = np.asarray(ys)
    if ys.ndim != 2:
        raise ValueError(f"discrete_entropy expects a 2-d array (K, N), got shape {ys.shape}")
    h = np.zeros(ys.shape[0])
    for j in range(ys.shape[0]):
        h[j] = sk_metrics.mutual_info_score(ys[j, :], ys[j, :])
    return h


def normalize_data(data: np.ndarray, mean: np.ndarray | None = None, stddev: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise every row of ``data`` (D, N): returns ``(normalised (D, N), mean (D,), stddev (D,))``.

    ``mean`` and ``stddev`` (population std, ddof 0) are computed over the points of ``data`` unless given (test data
    are normalised with the training statistics). A zero ``stddev`` gives inf/NaN here, as in the reference; callers
    that must not fail guard it themselves (see :mod:`training.evaluation.metrics.modularity`).
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"normalize_data expects a 2-d array (D, N), got shape {data.shape}")
    if mean is None:
        mean = np.mean(data, axis=1)
    if stddev is None:
        stddev = np.std(data, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = (data - mean[:, np.newaxis]) / stddev[:, np.newaxis]
    return normalised, mean, stddev


def resolve_protocol(evaluation: str, defaults: dict, overrides: dict) -> dict:
    """Merge ``overrides`` into a metric's ``defaults`` after checking every name and value.

    Unknown names raise ``ValueError`` naming the accepted ones. Integer sizes (``num_*``, ``batch_size``) must be
    positive integers; other values keep the type of their default (bool stays bool).
    """
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown protocol parameter(s) {', '.join(unknown)} for evaluation {evaluation!r}; "
                         f"accepted: {', '.join(sorted(defaults))}")
    protocol = dict(defaults)
    for key, value in overrides.items():
        default = defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{evaluation}: protocol parameter {key} must be true or false, got {value!r}")
            value = bool(value)
        elif isinstance(default, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            value = _check_positive_int(f"{evaluation}: protocol parameter {key}", value)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{evaluation}: protocol parameter {key} must be a number, got {value!r}")
            value = float(value)
        protocol[key] = value
    return protocol


def check_train_test_codes(mus_train, ys_train, mus_test, ys_test):
    """Validate a train/test split in the reference layout and return it as arrays.

    Codes are (D, N) / (D, M) and factors (K, N) / (K, M): points are columns. Raises ValueError naming the shapes
    received when the dimensions disagree.
    """
    mus_train, ys_train = np.asarray(mus_train), np.asarray(ys_train)
    mus_test, ys_test = np.asarray(mus_test), np.asarray(ys_test)
    if (mus_train.ndim != 2 or ys_train.ndim != 2 or mus_test.ndim != 2 or ys_test.ndim != 2
            or mus_train.shape[1] != ys_train.shape[1] or mus_test.shape[1] != ys_test.shape[1]
            or mus_train.shape[0] != mus_test.shape[0] or ys_train.shape[0] != ys_test.shape[0]):
        raise ValueError("expected codes (D, N), factors (K, N), test codes (D, M), test factors (K, M); got "
                         f"{mus_train.shape}, {ys_train.shape}, {mus_test.shape}, {ys_test.shape}")
    return mus_train, ys_train, mus_test, ys_test
