"""Builders of synthetic tidy score frames with planted structure, shared by the analysis tests and benchmark.

``run_grid`` lays out runs like the paper grid (dataset x method x hyperparameter value x seed); ``to_tidy`` turns
model-table columns (``MIG``, ``tc_sampled``, ``LR100`` ...) back into the tidy (run, representation, metric, key)
frame that ``analysis.load.load_scores`` returns; ``paper_scale_scores`` builds the 12,600-run frame with every key.
tests/test_grids.py checks that the round trip through ``analysis.frames.model_table`` is exact.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.frames import (
    DOWNSTREAM_PREDICTORS, DOWNSTREAM_SIZES, METRIC_NAMES, UNSUPERVISED_KEYS,
)
from training.vocabulary import DATASETS, METHODS, METRIC_KEYS, model_num

RUN_FIELDS = ["run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "status",
              "source"]


def run_grid(datasets=DATASETS, methods=tuple(METHODS), n_seeds: int = 5, values_per_method: int | None = None):
    """One row per run, in paper-grid order: the run columns of the tidy frame (status 'done', source 'trained')."""
    rows = []
    for dataset in datasets:
        for method in methods:
            name, values = METHODS[method]
            values = values if values_per_method is None else values[:values_per_method]
            for value in values:
                for seed in range(n_seeds):
                    rows.append((dataset, method, name, float(value), seed))
    runs = pd.DataFrame(rows, columns=["dataset", "method", "hparam_name", "hparam_value", "seed"])
    runs.insert(0, "run_id", [f"run{i:05d}" for i in range(len(runs))])
    runs.insert(1, "study", "synthetic")
    runs.insert(2, "model_num", [model_num(d, m, v, s) for d, m, v, s in
                                 zip(runs["dataset"], runs["method"], runs["hparam_value"], runs["seed"])])
    runs["status"] = "done"
    runs["source"] = "trained"
    return runs[RUN_FIELDS]


def column_triples(representation: str = "mean") -> dict[str, tuple[str, str, str]]:
    """Model-table column -> (representation, metric, key) in the tidy frame."""
    out = {name: (representation, *METRIC_KEYS[name]) for name in METRIC_NAMES}
    for short, key in UNSUPERVISED_KEYS.items():
        for rep in ("mean", "sampled"):
            out[f"{short}_{rep}"] = (rep, "unsupervised", key)
    for short, evaluation in DOWNSTREAM_PREDICTORS.items():
        for size in DOWNSTREAM_SIZES:
            out[f"{short}{size}"] = (representation, evaluation, f"{size}:mean_test_accuracy")
    return out


def to_tidy(runs: pd.DataFrame, columns: dict[str, np.ndarray], representation: str = "mean") -> pd.DataFrame:
    """The tidy frame holding ``columns`` (model-table column -> one value per run; NaN values are left out)."""
    triples = column_triples(representation)
    parts = []
    for column, values in columns.items():
        rep, metric, key = triples[column]
        values = np.asarray(values, dtype=float)
        keep = ~np.isnan(values)
        part = runs.loc[keep].copy()
        part["representation"], part["metric"], part["key"] = rep, metric, key
        part["value"] = values[keep]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=RUN_FIELDS + ["representation", "metric", "key", "value"])
    return pd.concat(parts, ignore_index=True)


def paper_scale_scores(random_state: int = 0, n_seeds: int = 50) -> pd.DataFrame:
    """Paper-scale tidy frame: 7 x 6 x 6 x ``n_seeds`` runs, both representations, every key the study writes.

    Headline metrics carry a planted config effect plus seed noise; other keys are filler noise. Built with
    numpy repeats (a few seconds, ~3.5 million rows at 50 seeds).
    """
    rs = np.random.RandomState(random_state)
    runs = run_grid(n_seeds=n_seeds)
    n = len(runs)
    keys: list[tuple[str, str]] = []
    for evaluation, names in {
        "beta_vae_sklearn": ["train_accuracy", "eval_accuracy"],
        "factor_vae_metric": ["train_accuracy", "eval_accuracy", "num_active_dims"],
        "mig": ["discrete_mig"],
        "dci": ["informativeness_train", "informativeness_test", "disentanglement", "completeness"],
        "modularity_explicitness": ["modularity_score", "explicitness_score_train", "explicitness_score_test"],
        "sap_score": ["SAP_score"],
        "unsupervised": list(UNSUPERVISED_KEYS.values()),
    }.items():
        keys += [(evaluation, k) for k in names + ["elapsed_time"]]
    for evaluation in DOWNSTREAM_PREDICTORS.values():
        for size in DOWNSTREAM_SIZES:
            keys += [(evaluation, f"{size}:{k}") for k in ("mean_train_accuracy", "mean_test_accuracy",
                                                         "min_train_accuracy", "min_test_accuracy")]
            keys += [(evaluation, f"{size}:{p}_accuracy_factor_{i}") for p in ("train", "test") for i in range(5)]
        keys.append((evaluation, "elapsed_time"))
    config = pd.factorize(runs["method"] + runs["hparam_value"].astype(str))[0]
    quality = rs.normal(size=config.max() + 1)[config] + rs.normal(size=n)
    n_keys = len(keys)
    reps = np.array(["mean", "sampled"], dtype=object)
    idx = np.repeat(np.arange(n), 2 * n_keys)
    frame = runs.iloc[idx].reset_index(drop=True)
    frame["representation"] = np.tile(np.repeat(reps, n_keys), n)
    key_arr = np.array(keys, dtype=object)
    frame["metric"] = np.tile(key_arr[:, 0], 2 * n)
    frame["key"] = np.tile(key_arr[:, 1], 2 * n)
    frame["value"] = quality[idx] + rs.normal(size=len(frame))
    return frame
