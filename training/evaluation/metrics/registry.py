"""Evaluation registry: every evaluation name of the vocabulary -> the function that computes it.

Modules are imported lazily (``importlib``) so that importing :mod:`training.evaluation.metrics` stays cheap and a metric module
is only loaded when used. Every entry is ``(dotted module path, function name)``; the function has the signature
``fn(dataset, representation_fn, random_state, fast=False, **protocol) -> dict[str, float]``.
"""
from __future__ import annotations

import importlib
from typing import Callable

from training.vocabulary import EVALUATIONS

EVALUATION_FUNCTIONS: dict[str, tuple[str, str]] = {
    "beta_vae_sklearn": ("training.evaluation.metrics.beta_vae", "compute"),
    "factor_vae_metric": ("training.evaluation.metrics.factor_vae", "compute"),
    "mig": ("training.evaluation.metrics.mig", "compute"),
    "dci": ("training.evaluation.metrics.dci", "compute"),
    "modularity_explicitness": ("training.evaluation.metrics.modularity", "compute"),
    "sap_score": ("training.evaluation.metrics.sap", "compute"),
    "unsupervised": ("training.evaluation.metrics.unsupervised", "compute"),
    "downstream_task_logistic_regression": ("training.evaluation.metrics.downstream", "compute_logistic_regression"),
    "downstream_task_boosted_trees": ("training.evaluation.metrics.downstream", "compute_boosted_trees"),
}

# The study's protocol sizes (metrics/REFERENCE.md 2.9), used when a metric module does not publish its own
# ``DEFAULT_PROTOCOL`` (or a per-evaluation ``DEFAULT_PROTOCOLS[name]``).
STUDY_PROTOCOLS: dict[str, dict] = {
    "beta_vae_sklearn": {"batch_size": 64, "num_train": 10000, "num_eval": 5000},
    "factor_vae_metric": {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000},
    "mig": {"num_train": 10000, "batch_size": 16},
    "dci": {"num_train": 10000, "num_test": 5000, "batch_size": 16, "gbt_seed": 0},
    "modularity_explicitness": {"num_train": 10000, "num_test": 5000, "batch_size": 16},
    "sap_score": {"num_train": 10000, "num_test": 5000, "batch_size": 16, "continuous_factors": False},
    "unsupervised": {"num_train": 10000, "batch_size": 16},
    "downstream_task_logistic_regression": {"num_train": [10, 100, 1000, 10000], "num_test": 5000, "batch_size": 16},
    "downstream_task_boosted_trees": {"num_train": [10, 100, 1000, 10000], "num_test": 5000, "batch_size": 16,
                                      "gbt_seed": 0},
}

assert set(EVALUATION_FUNCTIONS) == set(EVALUATIONS) == set(STUDY_PROTOCOLS)


def check_name(name: str) -> str:
    """Return ``name`` if it is an evaluation of the vocabulary, else raise ``ValueError`` listing the valid ones."""
    if name not in EVALUATION_FUNCTIONS:
        raise ValueError(f"unknown evaluation {name!r}; expected one of {', '.join(EVALUATIONS)}")
    return name


def _module(name: str):
    module_path, _ = EVALUATION_FUNCTIONS[check_name(name)]
    return importlib.import_module(module_path)


def get_function(name: str) -> Callable[..., dict]:
    """The compute function of evaluation ``name`` (imports its module on first use)."""
    _, function_name = EVALUATION_FUNCTIONS[check_name(name)]
    return getattr(_module(name), function_name)


def default_protocol(name: str) -> dict:
    """The default protocol (the study's sizes) of evaluation ``name``, as a fresh dict.

    Taken from the metric module (``DEFAULT_PROTOCOLS[name]`` or ``DEFAULT_PROTOCOL``) when it publishes one, else
    from :data:`STUDY_PROTOCOLS`.
    """
    module = _module(name)
    per_name = getattr(module, "DEFAULT_PROTOCOLS", None)
    if isinstance(per_name, dict) and name in per_name:
        source = per_name[name]
    else:
        source = getattr(module, "DEFAULT_PROTOCOL", None)
        if not isinstance(source, dict):
            source = STUDY_PROTOCOLS[name]
    return {key: (list(value) if isinstance(value, (list, tuple)) else value) for key, value in source.items()}
