"""Disentanglement vs downstream accuracy and sample efficiency (the paper's Section 5.5; Fig. 5, 6,
19-23).

Downstream quantities per model (columns of the model table): ``LR10 .. LR10000`` and ``GBT10 .. GBT10000`` (mean
test accuracy over factors with 10 .. 10 000 training points; keys ``{size}:mean_test_accuracy`` of
``downstream_task_logistic_regression`` / ``downstream_task_boosted_trees``), and the sample efficiencies
``Eff(LR)`` = LR100 / LR10000 and ``Eff(GBT)`` = GBT100 / GBT10000. Correlations are Spearman fractions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.correlation import spearman_table
from analysis.frames import (
    DOWNSTREAM_COLUMNS, EFFICIENCY_COLUMNS, METRIC_NAMES, as_model_table, datasets_present, metric_name,
    missing_columns, with_reason,
)

DOWNSTREAM_QUANTITIES: tuple[str, ...] = (*DOWNSTREAM_COLUMNS, *EFFICIENCY_COLUMNS)


def downstream_table(scores: pd.DataFrame, dataset: str | None = None, representation: str = "mean") -> pd.DataFrame:
    """Per model: identity columns, the six metrics and the ten downstream quantities (Fig. 5's columns).

    Filtered to ``dataset`` when given. ``attrs['reason']`` when the store has no downstream accuracies there.
    """
    table = as_model_table(scores, representation=representation)
    if dataset is not None:
        table = table[table["dataset"] == dataset]
    out = table[["run_id", "dataset", "method", "hparam_value", "strength", "seed", *METRIC_NAMES,
                 *DOWNSTREAM_QUANTITIES]].reset_index(drop=True)
    lacking = missing_columns(out, DOWNSTREAM_COLUMNS)
    where = f" on {dataset}" if dataset else ""
    if len(out) == 0:
        return with_reason(out, f"no models{where} in this store", [dataset or "models"])
    if len(lacking) == len(DOWNSTREAM_COLUMNS):
        return with_reason(out, f"no downstream accuracies{where} in this store", lacking)
    if lacking:
        return with_reason(out, f"downstream accuracies missing{where}: {', '.join(lacking)}", lacking)
    return with_reason(out, None)


def downstream_correlations(scores: pd.DataFrame, dataset: str, representation: str = "mean",
                            min_models: int = 3) -> pd.DataFrame:
    """Spearman rho of each metric (rows, :data:`METRIC_NAMES`) with each downstream quantity (columns: LR10 ..
    GBT10000, Eff(LR), Eff(GBT)) over all models of ``dataset`` (Fig. 5 / 19). 6 x 10 fractions; NaN and
    ``attrs['reason']`` where the store lacks the dataset, a metric or the downstream results.
    """
    table = downstream_table(scores, dataset, representation=representation)
    out = spearman_table(table, METRIC_NAMES, DOWNSTREAM_QUANTITIES, min_models=min_models)
    out.attrs["n_models"] = int(len(table))
    reasons = [r for r in (table.attrs.get("reason"),) if r]
    lacking_metrics = missing_columns(table, METRIC_NAMES) if len(table) else []
    if lacking_metrics:
        reasons.append(f"no scores on {dataset} for {', '.join(lacking_metrics)}")
    return with_reason(out, "; ".join(reasons) or None, table.attrs.get("missing", []) + lacking_metrics)


def efficiency_correlations(scores: pd.DataFrame, representation: str = "mean", min_models: int = 3) -> pd.DataFrame:
    """Spearman(metric, efficiency) for every dataset present (Fig. 20 / 21 summarised; claim C13).

    Long frame: ``dataset, metric, predictor`` (LR / GBT), ``rho``, ``n_models``.
    """
    table = as_model_table(scores, representation=representation)
    rows = []
    for dataset in datasets_present(table):
        sub = table[table["dataset"] == dataset]
        rho = spearman_table(sub, METRIC_NAMES, EFFICIENCY_COLUMNS, min_models=min_models)
        for name in METRIC_NAMES:
            for column in EFFICIENCY_COLUMNS:
                n = int((sub[name].notna() & sub[column].notna()).sum())
                rows.append({"dataset": dataset, "metric": name, "predictor": column[4:-1],
                             "rho": rho.loc[name, column], "n_models": n})
    out = pd.DataFrame(rows, columns=["dataset", "metric", "predictor", "rho", "n_models"])
    if out.empty or out["rho"].isna().all():
        return with_reason(out, "no dataset has both metric scores and downstream accuracies at 100 and 10000",
                           list(EFFICIENCY_COLUMNS))
    return with_reason(out, None)


def accuracy_by_metric_group(scores: pd.DataFrame, dataset: str, metric: str, n_groups: int = 3,
                             representation: str = "mean") -> pd.DataFrame:
    """Downstream accuracy of models grouped by increasing ``metric`` score (Fig. 22 / 23; the paper leaves the grouping open: equal-count
    quantile groups within the dataset, terciles by default).

    Long frame: ``group`` (0 = lowest scores), ``group_low``, ``group_high`` (score range), ``predictor`` (LR / GBT),
    ``size`` (training points), ``median``, ``q25``, ``q75``, ``n_models``.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    name = metric_name(metric)
    table = downstream_table(scores, dataset, representation=representation)
    table = table.dropna(subset=[name])
    cols = ["group", "group_low", "group_high", "predictor", "size", "median", "q25", "q75", "n_models"]
    if len(table) < n_groups:
        return with_reason(pd.DataFrame(columns=cols),
                           f"{len(table)} models with {name} on {dataset}; need at least {n_groups}", [name])
    ranks = table[name].rank(method="first")
    table = table.assign(group=np.minimum((ranks - 1) * n_groups // len(table), n_groups - 1).astype(int))
    long = table.melt(id_vars=["group", name], value_vars=list(DOWNSTREAM_COLUMNS), var_name="column",
                      value_name="accuracy").dropna(subset=["accuracy"])
    g = long.groupby(["group", "column"], sort=True)
    out = pd.DataFrame({"median": g["accuracy"].median(), "q25": g["accuracy"].quantile(0.25),
                        "q75": g["accuracy"].quantile(0.75), "n_models": g["accuracy"].count(),
                        "group_low": g[name].min(), "group_high": g[name].max()}).reset_index()
    out["predictor"] = out["column"].str.extract(r"^([A-Z]+)")[0]
    out["size"] = out["column"].str.extract(r"(\d+)$")[0].astype(int)
    out = out.sort_values(["predictor", "size", "group"]).reset_index(drop=True)[cols]
    return with_reason(out, table.attrs.get("reason") if out.empty else None)
