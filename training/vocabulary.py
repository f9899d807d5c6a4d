"""The reference study's vocabulary: dataset, method, hyperparameter, representation and evaluation names.

One place for the names every other module uses, in the reference study's order (which also defines the paper grid
index ``model_num``). No synonyms anywhere else.
"""
from __future__ import annotations

DATASETS: tuple[str, ...] = (
    "dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d", "shapes3d",
)

# method -> (hyperparameter name, the study's six values), in the paper grid's config order.
METHODS: dict[str, tuple[str, tuple[float, ...]]] = {
    "beta_vae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    "factor_vae": ("gamma", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    "dip_vae_i": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "dip_vae_ii": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "beta_tc_vae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
    "annealed_vae": ("c_max", (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
}

REPRESENTATIONS: tuple[str, ...] = ("mean", "sampled")

EVALUATIONS: tuple[str, ...] = (
    "beta_vae_sklearn", "factor_vae_metric", "mig", "dci", "modularity_explicitness", "sap_score",
    "unsupervised", "downstream_task_logistic_regression", "downstream_task_boosted_trees",
)

# The six disentanglement metrics and the one headline key each contributes to the study's analyses.
METRIC_KEYS: dict[str, tuple[str, str]] = {
    "BetaVAE Score": ("beta_vae_sklearn", "eval_accuracy"),
    "FactorVAE Score": ("factor_vae_metric", "eval_accuracy"),
    "MIG": ("mig", "discrete_mig"),
    "DCI Disentanglement": ("dci", "disentanglement"),
    "Modularity": ("modularity_explicitness", "modularity_score"),
    "SAP": ("sap_score", "SAP_score"),
}

SEEDS_PER_CONFIG = 50
CONFIGS_PER_DATASET = 6 * 6 * SEEDS_PER_CONFIG  # 1800


def hparam_name(method: str) -> str:
    """The name of ``method``'s swept hyperparameter (``beta``, ``gamma``, ``lambda_od`` or ``c_max``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return METHODS[method][0]


def model_num(dataset: str, method: str, value: float, seed: int) -> int | None:
    """Index of a run in the paper grid, ``1800*dataset_idx + 50*config_idx + seed``; None when off the grid."""
    if dataset not in DATASETS or method not in METHODS or not 0 <= int(seed) < SEEDS_PER_CONFIG:
        return None
    values = METHODS[method][1]
    matches = [i for i, v in enumerate(values) if abs(v - float(value)) < 1e-9]
    if not matches:
        return None
    config_idx = 6 * list(METHODS).index(method) + matches[0]
    return CONFIGS_PER_DATASET * DATASETS.index(dataset) + SEEDS_PER_CONFIG * config_idx + int(seed)


def from_model_num(num: int) -> tuple[str, str, float, int]:
    """Inverse of :func:`model_num`: ``(dataset, method, hyperparameter value, seed)``."""
    if not 0 <= int(num) < CONFIGS_PER_DATASET * len(DATASETS):
        raise ValueError(f"model_num {num} is outside the paper grid 0..{CONFIGS_PER_DATASET * len(DATASETS) - 1}")
    dataset_idx, rest = divmod(int(num), CONFIGS_PER_DATASET)
    config_idx, seed = divmod(rest, SEEDS_PER_CONFIG)
    method_idx, value_idx = divmod(config_idx, 6)
    method = list(METHODS)[method_idx]
    return DATASETS[dataset_idx], method, METHODS[method][1][value_idx], seed
