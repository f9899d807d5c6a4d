"""The sentences under the report's figures: numbers in, one sentence out, saying what a figure shows on *this* store.

Each ``describe_*`` function takes the frame a figure is drawn from (fractions for correlations and R^2) and returns
one sentence (a string); nothing is displayed here. Correlations are written as integers of 100*rho and shares as
integer percentages.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.plots.style import METHOD_LABELS, label


def _i(fraction) -> str:
    """``100 * fraction`` rounded to an integer for a sentence (never ``-0``; ``n/a`` for NaN)."""
    value = float(fraction)
    return "n/a" if math.isnan(value) else str(int(round(100 * value)) + 0)


def _pairs(matrix: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.Series:
    """Off-diagonal upper-triangle entries of a square matrix as a Series indexed by (row, col), NaN dropped."""
    names = [n for n in matrix.index if n not in exclude]
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            value = matrix.loc[a, b]
            if pd.notna(value):
                out[(a, b)] = float(value)
    return pd.Series(out, dtype=float)


def describe_metric_agreement(dataset: str, matrix: pd.DataFrame) -> str:
    """What a metric x metric Spearman matrix shows: overall agreement, tightest pair, Modularity's place."""
    pairs = _pairs(matrix, exclude=("Modularity",))
    if pairs.empty:
        return f"{label(dataset)}: no pair of metrics could be correlated."
    (a, b), top = pairs.idxmax(), pairs.max()
    text = (f"{label(dataset)}: the five metrics other than Modularity agree with a mean Spearman of "
            f"{_i(pairs.mean())} (out of 100); the tightest pair is {label(a)}–{label(b)} ({_i(top)})")
    if "Modularity" in matrix.index:
        mod = matrix.loc["Modularity"].drop("Modularity", errors="ignore").dropna()
        if len(mod):
            text += f", while Modularity's mean correlation with the others is {_i(mod.mean())}"
    return text + "."


def describe_dataset_agreement(metric: str, matrix: pd.DataFrame) -> str:
    """What a dataset x dataset Spearman matrix shows: the dSprites/Color-dSprites entry against the others."""
    pairs = _pairs(matrix)
    if pairs.empty:
        return f"{label(metric)}: no pair of datasets could be correlated."
    key = ("dsprites_full", "color_dsprites")
    text = f"{label(metric)}: "
    if key in pairs.index:
        others = pairs.drop(key)
        text += f"dSprites↔Color-dSprites ρ = {_i(pairs[key])}"
        if len(others):
            text += (f"; the other {len(others)} dataset pair{'s' if len(others) > 1 else ''} average "
                     f"{_i(others.mean())}")
    else:
        text += (f"the {len(pairs)} dataset pair{'s' if len(pairs) > 1 else ''} average{'' if len(pairs) > 1 else 's'} "
                 f"{_i(pairs.mean())}")
    (a, b) = pairs.idxmax()
    text += f" (highest: {label(a)}↔{label(b)}, {_i(pairs.max())})."
    return text


def describe_downstream(dataset: str, matrix: pd.DataFrame) -> str:
    """What a metric x downstream Spearman matrix shows: mean rho with accuracy and with efficiency."""
    rows = [r for r in matrix.index if r != "Modularity"]
    acc = [c for c in matrix.columns if not str(c).startswith("Eff")]
    eff = [c for c in matrix.columns if str(c).startswith("Eff")]
    sub_acc = matrix.loc[rows, acc].stack().dropna() if rows and acc else pd.Series(dtype=float)
    if sub_acc.empty:
        return f"{label(dataset)}: no metric could be correlated with downstream accuracy."
    text = (f"{label(dataset)}: the metrics other than Modularity correlate with downstream accuracy at "
            f"{_i(sub_acc.mean())} on average (range {_i(sub_acc.min())} to {_i(sub_acc.max())})")
    sub_eff = matrix.loc[rows, eff].stack().dropna() if eff else pd.Series(dtype=float)
    if len(sub_eff):
        text += f" and with sample efficiency at {_i(sub_eff.mean())}"
    return text + "."


def describe_violins(long: pd.DataFrame, panel: str, panel_col: str, what: str) -> str:
    """Which method has the highest median in a violin panel, and how much the methods' ranges overlap."""
    sub = long[long[panel_col].astype(str) == str(panel)]
    if sub.empty:
        return f"{label(panel)}: no scores."
    g = sub.groupby(sub["method"].astype(str))["value"]
    med, lo, hi = g.median(), g.quantile(0.25), g.quantile(0.75)
    best, worst = med.idxmax(), med.idxmin()
    if len(med) == 1:
        return f"{label(panel)} ({what}): only {label(best)} has scores here; its median is {med[best]:.3g}."
    overlap = sum(1 for a in med.index for b in med.index if a < b and lo[a] <= hi[b] and lo[b] <= hi[a])
    n_pairs = len(med) * (len(med) - 1) // 2
    return (f"{label(panel)} ({what}): medians range from {med[worst]:.3g} ({label(worst)}) to {med[best]:.3g} "
            f"({label(best)}); the interquartile ranges of {overlap} of the {n_pairs} method pairs overlap.")


def describe_curves(curves: pd.DataFrame, panel: str, panel_col: str, y: str = "median", what: str = "",
                    peak: bool = True) -> str:
    """For each method in a panel, whether ``y`` rises or falls with strength (Spearman of the median curve) and,
    with ``peak``, the strength where it is highest."""
    sub = curves[curves[panel_col].astype(str) == str(panel)]
    parts = []
    for method in [m for m in METHOD_LABELS if m in set(sub["method"].astype(str))]:
        line = sub[sub["method"].astype(str) == method].dropna(subset=[y])
        if len(line) < 2:
            continue
        rho = pd.Series(line["strength"].to_numpy()).corr(pd.Series(line[y].to_numpy()), method="spearman")
        if pd.isna(rho):
            continue
        trend = "rises" if rho > 0.3 else "falls" if rho < -0.3 else "shows no clear trend"
        best = line.loc[line[y].idxmax(), "strength"]
        parts.append(f"{label(method)} {trend} (ρ={rho:+.2f}" + (f", peak at strength {best:.1f})" if peak else ")"))
    if not parts:
        return f"{label(panel)}: too few hyperparameter values to draw a trend."
    return f"{label(panel)}{' ' + what if what else ''}: " + "; ".join(parts) + "."


def describe_variance(r2: pd.DataFrame) -> str:
    """The unweighted means of a variance-explained table against the paper's 37 % / 59 % (Table 5)."""
    means = r2.attrs.get("means") or {c: r2[c].mean() for c in ("method", "method_x_hparam") if c in r2}
    a, b = means.get("method", float("nan")), means.get("method_x_hparam", float("nan"))
    n = int(r2["method"].notna().sum()) if "method" in r2 else 0
    if not n:
        return "No (dataset, metric) cell had enough models to fit."
    return (f"averaged over the {n} (dataset, metric) cells, the objective explains {_i(a)} % of the metric "
            f"variance and objective × regularisation strength {_i(b)} % (the paper: 37 % and 59 %); the "
            f"remaining {_i((1 - b))} % is credited to the random seed.")


def describe_unsupervised(dataset: str, matrix: pd.DataFrame) -> str:
    """Range and sign of the unsupervised-score correlations on one dataset."""
    values = matrix.stack().dropna()
    if values.empty:
        return f"{label(dataset)}: nothing could be correlated."
    (row, col) = values.abs().idxmax()
    return (f"{label(dataset)}: correlations range from {_i(values.min())} to {_i(values.max())}; "
            f"{int((values > 0).sum())} of {len(values)} are positive; the strongest is {row} vs {label(col)} "
            f"({_i(values[(row, col)])}).")


def describe_tc_scatter(sub: pd.DataFrame) -> str:
    """Share of models whose total correlation is larger on the mean than on the sampled representation (Fig. 10)."""
    share = float((sub["tc_mean"] > sub["tc_sampled"]).mean())
    return (f"{_i(share)} % of the {len(sub)} models have a larger total correlation in the mean than in the "
            "sampled representation (points above the dashed diagonal).")


def describe_paper_comparison(diff: pd.DataFrame, name: str) -> str:
    """Mean and largest absolute difference between this store's matrix and the paper's (off-diagonal cells)."""
    pairs = pd.Series({(a, b): diff.loc[a, b] for a in diff.index for b in diff.columns if a != b}).dropna()
    return (f"the cells of {name} differ from the paper's by {_i(pairs.abs().mean())} points of 100·ρ on "
            f"average (largest: {_i(pairs.abs().max())}).")


def describe_seed_beats(frame: pd.DataFrame) -> str:
    """Mean probability that a run of a worse hyperparameter beats a run of a better one (Fig. 14)."""
    return (f"averaged over every method, dataset and metric, a run with a worse hyperparameter (lower median) beats a "
            f"run with a better one in {_i(frame['p_worse_beats_better'].mean())} % of pairs of seeds.")


def describe_winners(frame: pd.DataFrame) -> str:
    """How many methods win a (dataset, metric) cell and how often the winner's IQR overlaps the runner-up's."""
    counts = frame["winner"].value_counts()
    return (f"{counts.size} different methods win at least one of the {len(frame)} (dataset, metric) cells "
            f"(most often {label(counts.index[0])}, {counts.iloc[0]} cells); the winner's interquartile range overlaps "
            f"the runner-up's in {int(frame['iqr_overlap'].sum())} of them.")


def describe_best_strength(frame: pd.DataFrame) -> str:
    """How many distinct best strengths each method has across the (dataset, metric) cells."""
    spread = frame.groupby("method")["best_strength"].agg(lambda s: s.nunique())
    return ("distinct best strengths across the (dataset, metric) cells: " +
            ", ".join(f"{label(m)} {int(n)}" for m, n in spread.items()) + " (1 would be a universal rule).")


def describe_transfer(intervals: pd.DataFrame) -> str:
    """How many cells of Table 1 beat chance, and the same-metric, same-dataset cell against the paper's."""
    ok = intervals.dropna(subset=["rate"])
    above = ok[ok["excess_low"] > 0]
    same = intervals.loc[("same_metric", "same_dataset")]
    return (f"{len(above)} of {len(ok)} cells beat chance (the 95 % interval of rate - chance above 0); the "
            f"same-metric, same-dataset cell is {100 * same['rate']:.1f} % (paper 80.7 %).")


def describe_transfer_sensitivity(pivot: pd.DataFrame) -> str:
    """How far the transfer rates move across the readings of the procedure."""
    spread = pivot.max() - pivot.min()
    return f"across the readings the rates move by at most {100 * spread.max():.1f} points."


def describe_efficiency_scatter(sub: pd.DataFrame, panels: list[str], metric: str, column: str) -> str:
    """Spearman of ``metric`` with the efficiency ``column`` per dataset."""
    rhos = {d: sub[sub["dataset"] == d][[metric, column]].corr(method="spearman").iloc[0, 1] for d in panels}
    return (f"Spearman of {label(metric)} with {column}: " +
            ", ".join(f"{label(d)} {_i(r)}" for d, r in rhos.items() if pd.notna(r)) + " (100·ρ).")


def describe_efficiency_correlations(frame: pd.DataFrame) -> str:
    """How many (dataset, metric, predictor) correlations with efficiency are large, excluding Modularity."""
    no_mod = frame[frame["metric"] != "Modularity"]["rho"].dropna()
    return (f"excluding Modularity, {int((no_mod > 0.3).sum())} of {len(no_mod)} (dataset, metric, predictor) "
            f"correlations with efficiency exceed 30 and {int((no_mod < -0.3).sum())} are below −30.")


def describe_metric_groups(usable, metric: str) -> str | None:
    """Median GBT accuracy at 100 training points of the lowest and highest ``metric`` group per dataset."""
    parts = []
    for dataset, g in usable.items():
        at100 = g[(g["predictor"] == "GBT") & (g["size"] == 100)].set_index("group")["median"]
        if len(at100) >= 2:
            parts.append(f"{label(dataset)} {at100.iloc[0]:.2f} → {at100.iloc[-1]:.2f}")
    if not parts:
        return None
    return f"median GBT accuracy at 100 training points, lowest → highest {label(metric)} group: " + "; ".join(parts) + "."


def describe_run_overview(runs: pd.DataFrame) -> str:
    """Totals of the done runs: runs, datasets, methods, cells, seeds."""
    configs = runs[["dataset", "method", "hparam_value"]].astype(str).drop_duplicates()
    return (f"{len(runs)} finished runs: {runs['dataset'].nunique()} dataset(s), {runs['method'].nunique()} method(s), "
            f"{len(configs)} (dataset, method, hyperparameter) cells, {runs['seed'].nunique()} distinct seed(s).")


def describe_metric_by_config(sub: pd.DataFrame, dataset: str) -> str:
    """The configuration with the highest median MIG on ``dataset`` and the medians of both representations."""
    med = sub.groupby(["method", "hparam_value", "representation"])["value"].median()
    best = med.xs("mean", level="representation") if "mean" in set(sub["representation"]) else med.droplevel(2)
    (m, v) = best.idxmax()
    text = (f"{label(dataset)}: {len(sub)} scores; the highest median MIG is {best.max():.3f} for {label(m)} "
            f"with {v:g}")
    if {"mean", "sampled"} <= set(sub["representation"]):
        by_rep = sub.groupby("representation")["value"].median()
        text += (f"; over all runs the median is {by_rep['mean']:.3f} on the mean and {by_rep['sampled']:.3f} "
                 "on the sampled representation")
    return text + "."
