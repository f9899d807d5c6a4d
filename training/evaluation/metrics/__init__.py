"""The study's evaluations: one module per metric, a registry, and :func:`run_metric`.

``run_metric(name, dataset, representation_fn, random_state, fast=False, **protocol_overrides)`` runs one evaluation
of the vocabulary (:data:`training.vocabulary.EVALUATIONS`) with the study's protocol sizes unless overridden (the
reference's parameter names: ``num_train``, ``num_test``, ``num_eval``, ``num_variance_estimate``, ``batch_size``;
downstream ``num_train`` is a list) and returns ``{result key: float}`` with the reference's keys.
Every metric module also exposes its pure array core (codes (D, N) and factors (K, N) in, scores out).
"""
from __future__ import annotations

from training.evaluation.metrics.registry import default_protocol, get_function

__all__ = ["run_metric", "default_protocol"]


def run_metric(name: str, dataset, representation_fn, random_state, fast: bool = False,
             **protocol_overrides) -> dict[str, float]:
    """Run evaluation ``name`` on ``dataset`` (dataset interface, duck-typed) and ``representation_fn``.

    ``random_state`` is a ``np.random.RandomState`` (its stream is consumed in the reference's order) or an integer
    seed. ``fast=True`` selects a metric's fast protocol where it has one (dci and the downstream tasks); the other
    metrics compute the reference protocol either way. Unknown evaluation names or protocol parameters raise
    ``ValueError``. Returns the reference's result keys with float values.
    """
    function = get_function(name)
    accepted = default_protocol(name)
    unknown = sorted(set(protocol_overrides) - set(accepted))
    if unknown:
        raise ValueError(f"unknown protocol parameter(s) {', '.join(unknown)} for evaluation {name!r}; "
                         f"accepted: {', '.join(sorted(accepted))}")
    result = function(dataset, representation_fn, random_state, fast=bool(fast), **protocol_overrides)
    out: dict[str, float] = {}
    for key, value in result.items():
        value = complex(value).real if isinstance(value, complex) else value
        out[str(key)] = float(value)
    return out
