"""Uncertainty beside every Spearman matrix and every R^2 of the report (Fig. 2, 4 centre, 4 right, 5; Table 5).

Frames in, frames out, no plotting:

* :func:`rho_matrices`: a long seed-bootstrap frame of :mod:`analysis.bootstrap` (``row, column, rho, ci_low,
  ci_high``) as three matrices (rho, interval low, interval high) with the cells whose 95 % interval contains 0;
* :func:`models_per_dataset`, :func:`shared_configurations`: the n behind each matrix (models of a dataset;
  configurations with a median on every dataset);
* :func:`variance_table`: Table 5 with its uncertainty: R^2 of the objective and of objective x hyperparameter with
  their seed-bootstrap intervals, the R^2 expected when the grouping has no effect, (k - 1) / (n - 1) for k groups
  and n models, and the adjusted R^2 (:func:`analysis.claims.controls.adjusted_r2`, expectation 0 under no effect).

R^2 and rho are fractions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.correlation import config_medians
from analysis.frames import as_model_table, datasets_present


@dataclass(frozen=True)
class RhoMatrix:
    """A Spearman matrix with its seed-bootstrap interval (three frames of the same shape, fractions)."""

    rho: pd.DataFrame
    low: pd.DataFrame
    high: pd.DataFrame

    @property
    def crosses_zero(self) -> pd.DataFrame:
        """True where the interval is known and contains 0 (the sign of rho is not established)."""
        return (self.low <= 0) & (self.high >= 0)

    def drop_empty(self) -> tuple["RhoMatrix", list[str]]:
        """The matrix without its all-NaN rows and columns, and the names dropped (rows first)."""
        rows = [r for r in self.rho.index if self.rho.loc[r].notna().any()]
        cols = [c for c in self.rho.columns if self.rho[c].notna().any()]
        dropped = [r for r in self.rho.index if r not in rows] + [c for c in self.rho.columns
                                                                   if c not in cols and c not in self.rho.index]
        pick = (lambda f: f.loc[rows, cols])
        return RhoMatrix(pick(self.rho), pick(self.low), pick(self.high)), dropped


def rho_matrices(long: pd.DataFrame) -> RhoMatrix:
    """Matrices of a long bootstrap frame (``row, column, rho, ci_low, ci_high``), rows and columns in their order
    of first appearance. ``attrs`` of the long frame (``reason``) are kept on ``rho``."""
    rows = list(dict.fromkeys(long["row"]))
    cols = list(dict.fromkeys(long["column"]))

    def pivot(value: str) -> pd.DataFrame:
        out = long.pivot(index="row", columns="column", values=value).reindex(index=rows, columns=cols).astype(float)
        out.index.name, out.columns.name = None, None
        return out

    rho = pivot("rho")
    rho.attrs.update(getattr(long, "attrs", {}))
    return RhoMatrix(rho, pivot("ci_low"), pivot("ci_high"))


def models_per_dataset(scores: pd.DataFrame) -> dict[str, int]:
    """Number of models (rows of the model table) of every dataset present."""
    table = as_model_table(scores)
    counts = table["dataset"].astype(str).value_counts()
    return {d: int(counts.get(d, 0)) for d in datasets_present(table)}


def shared_configurations(scores: pd.DataFrame, metric: str) -> int:
    """Number of (method, hyperparameter) configurations with a median ``metric`` score on every dataset present:
    the observations behind a dataset x dataset correlation (Fig. 4 right)."""
    medians = config_medians(as_model_table(scores), metric)
    return int(medians.dropna(how="any").shape[0]) if medians.shape[1] else 0


def null_r2(n_groups, n_models):
    """Expected R^2 of a one-way grouping with ``n_groups`` groups over ``n_models`` models when the groups have no
    effect: (k - 1) / (n - 1). NaN where n < 2."""
    k = np.asarray(n_groups, dtype=float)
    n = np.asarray(n_models, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, (k - 1) / (n - 1), np.nan)


def variance_table(scores: pd.DataFrame, boot: pd.DataFrame) -> pd.DataFrame:
    """Table 5 with uncertainty, one row per (dataset, metric) of ``boot``
    (:func:`analysis.bootstrap.bootstrap_variance_explained`; its final ``('all', 'mean')`` row is kept as the
    unweighted mean over the measurable cells).

    Columns, for ``g`` in ``method`` (the objective) and ``method_x_hparam`` (objective x hyperparameter):
    ``g`` (R^2), ``g_ci_low``, ``g_ci_high`` (95 % interval: the model bootstrap of ``boot``), ``g_null`` ((k - 1) / (n - 1), the
    R^2 expected with no effect), ``g_adjusted`` (adjusted R^2); and ``n_models``, ``n_methods``, ``n_configs``.
    """
    from analysis.claims.controls import adjusted_r2

    table = as_model_table(scores)
    rows = []
    for (dataset, metric), r in boot.iterrows():
        row = {"dataset": dataset, "metric": metric}
        for g in ("method", "method_x_hparam"):
            row.update({g: r[g], f"{g}_ci_low": r[f"{g}_ci_low"], f"{g}_ci_high": r[f"{g}_ci_high"]})
        if dataset == "all":
            rows.append(row)
            continue
        sub = table[(table["dataset"] == dataset)].dropna(subset=[metric])
        y = sub[metric].to_numpy(dtype=float)
        row.update(n_models=len(sub), n_methods=sub["method"].nunique(), n_configs=sub["config"].nunique())
        for g, column in (("method", "method"), ("method_x_hparam", "config")):
            codes, uniques = pd.factorize(sub[column])
            k = len(uniques)
            row[f"{g}_null"] = float(null_r2(k, len(sub))) if len(sub) else np.nan
            row[f"{g}_adjusted"] = float(adjusted_r2(y[None, :], codes, k)[0]) if len(sub) and k else np.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    cells = out["dataset"] != "all"
    for column in ("method_null", "method_adjusted", "method_x_hparam_null", "method_x_hparam_adjusted"):
        if column not in out:
            out[column] = np.nan
        measurable = cells & out["method"].notna()
        out.loc[~cells, column] = out.loc[measurable, column].mean() if measurable.any() else np.nan
    for column in ("n_models", "n_methods", "n_configs"):
        if column not in out:
            out[column] = np.nan
    out = out.set_index(["dataset", "metric"])
    order = [f"{g}{s}" for g in ("method", "method_x_hparam") for s in ("", "_ci_low", "_ci_high", "_null",
                                                                         "_adjusted")]
    return out[order + ["n_models", "n_methods", "n_configs"]]


__all__ = ["RhoMatrix", "rho_matrices", "models_per_dataset", "shared_configurations", "null_r2", "variance_table"]
