"""Shared frame helpers: validate the tidy score frame and pivot it to one row per trained model.

The tidy score frame (``analysis.load.load_scores``) has one row per (run, representation, metric, key) with the
columns :data:`SCORE_COLUMNS`. Almost every analysis of the study works on a *model table*: one row per run with the
run's identity (dataset, method, hyperparameter value, seed, regularisation strength) and one column per quantity:

* the six headline metrics (:data:`METRIC_NAMES`, the paper's names, on the representation asked for, ``mean`` by
  default), from ``training.vocabulary.METRIC_KEYS``;
* the unsupervised scores on both representations (:data:`UNSUPERVISED_COLUMNS`: ``tc_mean``, ``tc_sampled``,
  ``wasserstein_mean`` ... ``mi_sampled``);
* the downstream mean test accuracies (:data:`DOWNSTREAM_COLUMNS`: ``LR10`` ... ``GBT10000``) and the sample
  efficiencies ``Eff(LR)`` = LR100 / LR10000 and ``Eff(GBT)`` = GBT100 / GBT10000;
* the training losses (:data:`TRAIN_COLUMNS`) when a run frame (``analysis.load.load_runs``) is given.

Every column is always present; a quantity the store lacks is all-NaN, and :func:`missing_columns` names it.
Every public analysis function accepts either the tidy frame or a model table built here (:func:`as_model_table`),
so a report can pivot once and reuse the table.

This module imports no torch: ``training.vocabulary`` is plain Python.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from training.vocabulary import DATASETS, METHODS, METRIC_KEYS

SCORE_COLUMNS: tuple[str, ...] = (
    "run_id", "study", "model_num", "dataset", "method", "hparam_name", "hparam_value", "seed", "status", "source",
    "representation", "metric", "key", "value",
)
REQUIRED_SCORE_COLUMNS: tuple[str, ...] = (
    "run_id", "dataset", "method", "hparam_value", "seed", "representation", "metric", "key", "value",
)
RUN_COLUMNS: tuple[str, ...] = ("run_id", "dataset", "method", "hparam_value", "seed")

METRIC_NAMES: tuple[str, ...] = tuple(METRIC_KEYS)
METRIC_LETTERS: dict[str, str] = dict(zip(METRIC_NAMES, "ABCDEF"))

UNSUPERVISED_KEYS: dict[str, str] = {
    "tc": "gaussian_total_correlation",
    "wasserstein": "gaussian_wasserstein_correlation",
    "wasserstein_norm": "gaussian_wasserstein_correlation_norm",
    "mi": "mutual_info_score",
}
UNSUPERVISED_COLUMNS: tuple[str, ...] = tuple(
    f"{short}_{rep}" for short in UNSUPERVISED_KEYS for rep in ("mean", "sampled"))

DOWNSTREAM_PREDICTORS: dict[str, str] = {
    "LR": "downstream_task_logistic_regression",
    "GBT": "downstream_task_boosted_trees",
}
DOWNSTREAM_SIZES: tuple[int, ...] = (10, 100, 1000, 10000)
DOWNSTREAM_COLUMNS: tuple[str, ...] = tuple(
    f"{short}{size}" for short in DOWNSTREAM_PREDICTORS for size in DOWNSTREAM_SIZES)
EFFICIENCY_COLUMNS: tuple[str, ...] = tuple(f"Eff({short})" for short in DOWNSTREAM_PREDICTORS)

TRAIN_COLUMNS: tuple[str, ...] = ("reconstruction_loss", "kl_loss", "regularizer", "elbo", "loss")

# The methods in the paper's figure order (0=beta-VAE, 1=FactorVAE, 2=beta-TCVAE, 3=DIP-VAE-I, 4=DIP-VAE-II,
# 5=AnnealedVAE), which differs from the sweep order of ``training.vocabulary.METHODS``.
FIGURE_METHOD_ORDER: tuple[str, ...] = (
    "beta_vae", "factor_vae", "beta_tc_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae")

MODEL_TABLE_FLAG = "dstudy_model_table"


def check_scores(scores: pd.DataFrame) -> None:
    """Raise ValueError naming the columns a tidy score frame lacks (see :data:`REQUIRED_SCORE_COLUMNS`)."""
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of scores, got {type(scores).__name__}")
    lacking = [c for c in REQUIRED_SCORE_COLUMNS if c not in scores.columns]
    if lacking:
        raise ValueError(f"score frame lacks column(s) {', '.join(lacking)}; expected the frame of "
                         "analysis.load.load_scores")


def metric_name(metric: str) -> str:
    """Resolve a headline metric given by its paper name (``MIG``), letter (``C``) or evaluation name (``mig``)."""
    if metric in METRIC_KEYS:
        return metric
    for name, (evaluation, _key) in METRIC_KEYS.items():
        if metric == evaluation or metric == METRIC_LETTERS[name]:
            return name
    raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRIC_NAMES)} "
                     f"or their evaluation names {', '.join(e for e, _ in METRIC_KEYS.values())}")


def strength_index(method: str, values: Iterable[float], annealed_reversed: bool = True) -> np.ndarray:
    """Regularisation strength in [0, 1] of each hyperparameter value of ``method`` (the paper's x-axis).

    The strength is the index of the value among the method's six study values divided by 5 (0, 0.2, ..., 1.0), as
    in the paper's figures. A value off the study grid falls back to the dense rank among the distinct values given,
    scaled to [0, 1]. For ``annealed_vae`` a larger ``c_max`` is a *weaker* constraint: with ``annealed_reversed``
    (the default; the paper's figures leave it open) c_max = 100 maps to 0.0 and c_max = 5 to 1.0, so 1.0 is always the strongest.
    Returns a float array of the same length as ``values``.
    """
    values = np.asarray(list(values), dtype=float)
    grid = np.asarray(METHODS[method][1], dtype=float) if method in METHODS else np.empty(0)
    on_grid = grid.size > 1 and np.all(np.isclose(values[:, None], grid[None, :]).any(axis=1))
    if on_grid:
        idx = np.argmin(np.abs(values[:, None] - grid[None, :]), axis=1).astype(float)
        out = idx / (grid.size - 1)
    else:
        distinct = np.unique(values[~np.isnan(values)])
        if distinct.size <= 1:
            out = np.zeros(values.shape, dtype=float)
        else:
            out = np.searchsorted(distinct, values).astype(float) / (distinct.size - 1)
    if method == "annealed_vae" and annealed_reversed:
        out = 1.0 - out
    return out


def _wanted_triples(representation: str) -> dict[tuple[str, str, str], str]:
    """(representation, metric, key) -> model-table column, for everything the model table holds."""
    wanted: dict[tuple[str, str, str], str] = {}
    for name, (evaluation, key) in METRIC_KEYS.items():
        wanted[(representation, evaluation, key)] = name
    for short, key in UNSUPERVISED_KEYS.items():
        for rep in ("mean", "sampled"):
            wanted[(rep, "unsupervised", key)] = f"{short}_{rep}"
    for short, evaluation in DOWNSTREAM_PREDICTORS.items():
        for size in DOWNSTREAM_SIZES:
            wanted[(representation, evaluation, f"{size}:mean_test_accuracy")] = f"{short}{size}"
    return wanted


def model_table(scores: pd.DataFrame, runs: pd.DataFrame | None = None, representation: str = "mean",
                annealed_reversed: bool = True) -> pd.DataFrame:
    """One row per run: identity, strength and every quantity the analyses use (see the module docstring).

    ``scores``: the tidy score frame. ``runs``: optional frame of ``analysis.load.load_runs`` (one row per run, the
    train_results keys as columns); it supplies :data:`TRAIN_COLUMNS` (FactorVAE's missing ``elbo`` is derived as
    -(reconstruction_loss + kl_loss): disentanglement_lib's FactorVAE writes no ``elbo``). ``representation``: which representation the headline metrics
    and downstream accuracies are read from (the paper: ``mean``). The result has the columns ``run_id, dataset,
    method, hparam_value, seed, config, strength`` followed by :data:`METRIC_NAMES`, :data:`UNSUPERVISED_COLUMNS`,
    :data:`DOWNSTREAM_COLUMNS`, :data:`EFFICIENCY_COLUMNS` and :data:`TRAIN_COLUMNS`; it is sorted by dataset (study
    order), method (sweep order), hyperparameter value and seed. Vectorised: a few filters and one pivot.
    """
    check_scores(scores)
    wanted = _wanted_triples(representation)
    keys = {k for (_r, _m, k) in wanted}
    sub = scores.loc[scores["key"].isin(keys),
                     ["run_id", "dataset", "method", "hparam_value", "seed", "representation", "metric", "key",
                      "value"]]
    lookup = pd.DataFrame([(r, m, k, c) for (r, m, k), c in wanted.items()],
                          columns=["representation", "metric", "key", "column"])
    sub = sub.astype({"representation": object, "metric": object, "key": object}).merge(
        lookup, on=["representation", "metric", "key"], how="inner")
    ids = sub.drop_duplicates("run_id")[list(RUN_COLUMNS)]
    if runs is not None and "run_id" in runs.columns:
        extra = runs.loc[~runs["run_id"].isin(ids["run_id"]), [c for c in RUN_COLUMNS if c in runs.columns]]
        if len(extra) and all(c in extra.columns for c in RUN_COLUMNS):
            ids = pd.concat([ids, extra], ignore_index=True)
    wide = (sub.groupby(["run_id", "column"], sort=False)["value"].mean().unstack("column")
            if len(sub) else pd.DataFrame(index=pd.Index([], name="run_id")))
    table = ids.set_index("run_id").join(wide, how="left").reset_index()
    table["hparam_value"] = table["hparam_value"].astype(float)
    table["seed"] = table["seed"].astype(int)
    for column in (*METRIC_NAMES, *UNSUPERVISED_COLUMNS, *DOWNSTREAM_COLUMNS):
        if column not in table.columns:
            table[column] = np.nan
        table[column] = table[column].astype(float)
    for short in DOWNSTREAM_PREDICTORS:
        table[f"Eff({short})"] = table[f"{short}100"] / table[f"{short}10000"]
    for column in TRAIN_COLUMNS:
        table[column] = np.nan
    if runs is not None:
        table = attach_runs(table, runs)
    table["config"] = table["method"].astype(str) + "(" + table["hparam_value"].map("{:g}".format) + ")"
    table["strength"] = np.nan
    for method, rows in table.groupby("method", sort=False).groups.items():
        table.loc[rows, "strength"] = strength_index(method, table.loc[rows, "hparam_value"], annealed_reversed)
    order_d = {d: i for i, d in enumerate(DATASETS)}
    order_m = {m: i for i, m in enumerate(METHODS)}
    table = table.assign(_d=table["dataset"].map(order_d).fillna(len(order_d)),
                         _m=table["method"].map(order_m).fillna(len(order_m)))
    table = table.sort_values(["_d", "dataset", "_m", "method", "hparam_value", "seed"], kind="stable")
    table = table.drop(columns=["_d", "_m"]).reset_index(drop=True)
    columns = ["run_id", "dataset", "method", "hparam_value", "seed", "config", "strength", *METRIC_NAMES,
               *UNSUPERVISED_COLUMNS, *DOWNSTREAM_COLUMNS, *EFFICIENCY_COLUMNS, *TRAIN_COLUMNS]
    table = table[columns]
    table.attrs[MODEL_TABLE_FLAG] = {"representation": representation, "annealed_reversed": annealed_reversed}
    return table


def attach_runs(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Fill :data:`TRAIN_COLUMNS` of a model table from a run frame (one row per run, train_results as columns).

    FactorVAE stores no ``elbo``; where it is missing it is derived as -(reconstruction_loss + kl_loss). Returns a
    new frame; raises ValueError when ``runs`` has no ``run_id`` column.
    """
    if "run_id" not in runs.columns:
        raise ValueError("run frame lacks the run_id column; expected the frame of analysis.load.load_runs")
    attrs = dict(table.attrs)
    table = table.copy()
    train = runs.drop_duplicates("run_id").set_index("run_id")
    for column in TRAIN_COLUMNS:
        if column in train.columns:
            table[column] = table["run_id"].map(pd.to_numeric(train[column], errors="coerce")).astype(float)
    derived = -(table["reconstruction_loss"] + table["kl_loss"])
    table["elbo"] = table["elbo"].fillna(derived)
    table.attrs.update(attrs)
    return table


def is_model_table(frame: pd.DataFrame) -> bool:
    """True when ``frame`` is a model table built by :func:`model_table` (not a tidy score frame)."""
    return isinstance(frame, pd.DataFrame) and "metric" not in frame.columns and all(
        c in frame.columns for c in (*RUN_COLUMNS, "strength", *METRIC_NAMES))


def as_model_table(frame: pd.DataFrame, runs: pd.DataFrame | None = None, representation: str = "mean",
                   annealed_reversed: bool = True) -> pd.DataFrame:
    """``frame`` itself when it is already a model table, else :func:`model_table` of the tidy frame."""
    if is_model_table(frame):
        if runs is not None and not frame[list(TRAIN_COLUMNS)].notna().any().any():
            return attach_runs(frame, runs)
        return frame
    return model_table(frame, runs=runs, representation=representation, annealed_reversed=annealed_reversed)


def missing_columns(table: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns of ``columns`` that are absent from ``table`` or entirely NaN."""
    return [c for c in columns if c not in table.columns or not table[c].notna().any()]


def datasets_present(table: pd.DataFrame) -> list[str]:
    """Datasets of the model table, study order first, then any others alphabetically."""
    present = set(table["dataset"].dropna().astype(str))
    return [d for d in DATASETS if d in present] + sorted(present - set(DATASETS))


def methods_present(table: pd.DataFrame) -> list[str]:
    """Methods of the model table in the sweep order, then any others alphabetically."""
    present = set(table["method"].dropna().astype(str))
    return [m for m in METHODS if m in present] + sorted(present - set(METHODS))


def with_reason(frame: pd.DataFrame, reason: str | None, missing: Iterable[str] = ()) -> pd.DataFrame:
    """Attach ``attrs['reason']`` (None when the result is complete) and ``attrs['missing']`` to ``frame``."""
    frame.attrs["reason"] = reason
    frame.attrs["missing"] = list(missing)
    return frame
