"""The scores ``dstudy models`` adds to a store, read for the analyses that use them (no torch).

``dstudy models`` (:mod:`training.evaluation.model_analyses`) writes, beside a study's own scores:

* representation ``rotated``: the six headline metrics of the rotated mean representation (Theorem 1), with the same
  metric and key names and the same evaluation seeds as ``mean``;
* representation ``model``, metric ``likelihood``: ``log_likelihood`` and ``log_likelihood_rotated`` (IWAE, nats per
  observation) and ``max_abs_difference``;
* representation ``mean``, metric ``udr``: ``udr``, ``num_informative_latents``, ``num_partners``;
* representations ``mean~r1``, ``mean~r2``, ...: the headline metrics of ``mean`` with other evaluation seeds.

The model table (:func:`analysis.frames.model_table`) reads none of them. :func:`load_model_scores` reads them (and the
``mean`` headline scores to pair them with) for the runs of one study; :func:`headline_long` turns a tidy frame into
one row per (run, representation, metric). :data:`HOW_TO` is the sentence a page shows when a store lacks them.
"""
from __future__ import annotations

import os

import pandas as pd

from analysis.frames import METRIC_NAMES, check_scores
from training.vocabulary import METRIC_KEYS

HEADLINE_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for _evaluation, key in METRIC_KEYS.values()))
LIKELIHOOD_KEYS: tuple[str, ...] = ("log_likelihood", "log_likelihood_rotated", "max_abs_difference")
UDR_KEYS: tuple[str, ...] = ("udr", "num_informative_latents", "num_partners")
#: What to do when a store lacks the scores of the saved models.
HOW_TO = ("they are computed from the saved models: sweep with `dstudy run --preset NAME --artifacts DIR` (or "
          "`dstudy sweep ... --artifacts DIR`), then run `dstudy models --store STORE --artifacts DIR`")


def load_model_scores(store_path: str | os.PathLike, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The tidy rows (:data:`analysis.load.SCORE_COLUMNS`) of the headline keys (every representation), the
    likelihood and UDR of the done runs of ``store_path`` - only the runs in ``runs`` (a run frame of one study,
    e.g. from :func:`analysis.load.load_frames`) when given."""
    from analysis.load import load_scores

    scores = load_scores(store_path, keys=HEADLINE_KEYS + LIKELIHOOD_KEYS + UDR_KEYS)
    if runs is not None and "run_id" in runs.columns:
        scores = scores[scores["run_id"].astype(str).isin(set(runs["run_id"].astype(str)))].reset_index(drop=True)
    return scores


def headline_long(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, representation, headline metric) of a tidy frame: ``run_id, dataset, method,
    hparam_value, seed, representation, metric`` (the paper's name, e.g. ``MIG``), ``value``; plain strings."""
    check_scores(scores)
    lookup = pd.DataFrame([(evaluation, key, name) for name, (evaluation, key) in METRIC_KEYS.items()],
                          columns=["metric", "key", "name"])
    sub = scores[["run_id", "dataset", "method", "hparam_value", "seed", "representation", "metric", "key",
                  "value"]].astype({c: str for c in ("run_id", "dataset", "method", "representation", "metric",
                                                     "key")})
    sub = sub.merge(lookup, on=["metric", "key"], how="inner").drop(columns=["metric", "key"])
    sub = sub.rename(columns={"name": "metric"})
    sub["metric"] = pd.Categorical(sub["metric"], categories=list(METRIC_NAMES))
    return sub.sort_values(["metric", "run_id", "representation"], kind="stable").reset_index(drop=True)


def run_values(scores: pd.DataFrame, representation: str, metric: str, keys) -> pd.DataFrame:
    """One row per run with one of ``metric``'s keys of ``representation`` as columns, and the run's identity
    (``run_id, dataset, method, hparam_value, seed``); empty with those columns when the frame has none."""
    check_scores(scores)
    keys = list(keys)
    sub = scores[(scores["representation"].astype(str) == representation) & (scores["metric"].astype(str) == metric)
                 & scores["key"].astype(str).isin(keys)]
    ident = ["run_id", "dataset", "method", "hparam_value", "seed"]
    if sub.empty:
        return pd.DataFrame(columns=ident + keys)
    wide = sub.astype({"run_id": str, "key": str}).pivot_table(index="run_id", columns="key", values="value",
                                                               aggfunc="first")
    ids = sub.drop_duplicates("run_id")[ident].astype({"run_id": str, "dataset": str, "method": str})
    out = ids.merge(wide, left_on="run_id", right_index=True, how="left")
    for key in keys:
        if key not in out.columns:
            out[key] = float("nan")
    out.columns.name = None
    return out[ident + keys].reset_index(drop=True)
