"""Page sections: the ``show_*`` functions the report's notebooks call.

Each one takes an analysis result (a frame from ``analysis.*``), draws its figure (:mod:`analysis.plots.figures`) or
table, displays it and puts the sentence of :mod:`analysis.plots.captions` under it. When the store lacks what a
figure needs (a result frame's ``attrs['reason']``), it displays one line saying what is missing instead.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from analysis.plots import captions, figures
from analysis.plots.style import (
    DATASET_LABELS, METHOD_LABELS, METRIC_SHORT, _display, key, label, missing, note, reason, show_figure, show_table,
)
from analysis.significance import format_p
from analysis.uncertainty import rho_matrices
from analysis.unsupervised import UNSUPERVISED_SCORES
from analysis.within import tau_matrix

# ---- the paper's printed numbers shown next to this store's (read off the paper's Fig. 2 and Fig. 5) -----------

_M6 = ("BetaVAE Score", "FactorVAE Score", "MIG", "DCI Disentanglement", "Modularity", "SAP")
PAPER_FIG2_NOISY = pd.DataFrame(
    [[100, 80, 44, 41, 46, 37], [80, 100, 49, 52, 25, 38], [44, 49, 100, 76, 6, 42],
     [41, 52, 76, 100, -8, 38], [46, 25, 6, -8, 100, 13], [37, 38, 42, 38, 13, 100]],
    index=list(_M6), columns=list(_M6)) / 100.0
PAPER_FIG5_DSPRITES = pd.DataFrame(
    [[18, 65, 28, 28, 67, 78, 75, 76, 50, 50], [13, 49, 13, 12, 58, 73, 71, 71, 43, 46],
     [18, 63, 20, -1, 71, 86, 86, 87, 62, 47], [19, 65, 18, 4, 75, 94, 94, 94, 62, 54],
     [-3, -9, 15, 18, -6, -17, -19, -13, -19, -14], [12, 64, 20, 12, 71, 77, 74, 75, 56, 49]],
    index=list(_M6), columns=["LR10", "LR100", "LR1000", "LR10000", "GBT10", "GBT100", "GBT1000", "GBT10000",
                               "Eff(LR)", "Eff(GBT)"]) / 100.0
PAPER_TRANSFER = pd.DataFrame([[0.807, 0.593], [0.626, 0.549]], index=["same_metric", "other_metric"],
                              columns=["same_dataset", "other_dataset"])


def _dataset_order(names) -> list[str]:
    """``names`` in the study's dataset order (unknown ones last, alphabetically)."""
    names = list(dict.fromkeys(str(n) for n in names))
    return [d for d in DATASET_LABELS if d in names] + sorted(set(names) - set(DATASET_LABELS))


def _method_order(names) -> list[str]:
    names = list(dict.fromkeys(str(n) for n in names))
    return [m for m in METHOD_LABELS if m in names] + sorted(set(names) - set(METHOD_LABELS))


# ---- heatmaps, violins, curves ----------------------------------------------------------------------------------

def show_correlations(results: Mapping[str, pd.DataFrame], n: Mapping[str, int] | None = None,
                      unit: str = "models", describe: Callable[..., str] | None = None,
                      n_boot: int | None = None) -> None:
    """Spearman heatmaps (100*rho) with their uncertainty: one panel per entry of ``results`` (name -> long
    seed-bootstrap frame ``row, column, rho, ci_low, ci_high`` of :mod:`analysis.bootstrap`), titled with the ``n``
    behind it, a dagger on every cell whose 95 % interval contains 0, and one sentence per panel from
    ``describe(name, rho, n=..., crosses=...)``.

    All-NaN rows and columns are dropped and named in one line; a matrix with nothing off its diagonal (one dataset)
    is not drawn, and one line says why.
    """
    usable, marks = {}, {}
    for name, long in results.items():
        if long is None or long.empty or not long["rho"].notna().any():
            missing(f"{label(name)}: {reason(long) or 'nothing to correlate'}.")
            continue
        matrix, dropped = rho_matrices(long).drop_empty()
        square = list(matrix.rho.index) == list(matrix.rho.columns)
        off = matrix.rho.to_numpy(dtype=float)[~np.eye(*matrix.rho.shape, dtype=bool)] if square \
            else matrix.rho.to_numpy(dtype=float).ravel()
        if not np.isfinite(off).any():
            missing(f"{label(name)}: {reason(long) or 'nothing to correlate'}.")
            continue
        if dropped:
            missing(f"{label(name)}: no values for {', '.join(label(d) for d in dropped)} in this store, so "
                    f"{'they are' if len(dropped) > 1 else 'it is'} left out of the matrix.")
        usable[name], marks[name] = matrix.rho, matrix.crosses_zero
    if not usable:
        return
    show_figure(figures.rho_heatmap_grid(usable, crosses=marks, n=n, unit=unit))
    resamples = f"{n_boot} resamples of the seeds" if n_boot else "resampling the seeds"
    key(f"Numbers are 100·ρ (Spearman); † marks a cell whose 95 % seed-bootstrap interval ({resamples}) contains 0, "
        f"so its sign is not established; n = {unit} behind each matrix.")
    for name, matrix in usable.items():
        if describe is not None:
            note(describe(name, matrix, n=None if n is None else n.get(name), crosses=marks[name]))


def show_violins(long: pd.DataFrame, panels: list[str], panel_col: str, what: str, ncols: int = 4) -> None:
    """Violins per method for every panel present in ``long`` (titled ``what``), then one sentence per panel, or for
    three panels and more a table of the tests and one summary sentence."""
    if long is None or long.empty:
        missing(reason(long) or f"no {what} scores in this store.")
        return
    present = [p for p in panels if (long[panel_col].astype(str) == str(p)).any()]
    absent = [p for p in panels if p not in present]
    if absent:
        missing(f"no {what} scores for {', '.join(label(p) for p in absent)}.")
    if not present:
        return
    show_figure(figures.violin_grid(long, present, panel_col, ncols=ncols, ylabel=label(what), title=what))
    if len(present) >= 3:
        table = captions.violin_table(long, present, panel_col)
        show_table(table, caption=f"{what}: do the methods differ? (Kruskal–Wallis over every model)")
        note(captions.describe_violin_table(table, what))
        return
    for panel in present:
        note(captions.describe_violins(long, panel, panel_col, what))


def curve_summary(models: pd.DataFrame, panel_col: str, y: str = "value") -> pd.DataFrame:
    """Median and quartiles of ``y`` over the models of each (``panel_col``, method, strength): the points of a curve.

    Columns ``panel_col, method, strength, median, q25, q75, n``."""
    keys = [panel_col, "method", "strength"]
    data = models.dropna(subset=[y]).assign(**{panel_col: lambda f: f[panel_col].astype(str),
                                               "method": lambda f: f["method"].astype(str)})
    g = data.groupby(keys, sort=False)[y]
    return pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75),
                         "n": g.count()}).reset_index()


def show_curves(models: pd.DataFrame, panels: list[str], panel_col: str, y: str = "value", what: str = "",
                log: bool = False, ncols: int = 4, band: bool = False, peak: bool = True) -> None:
    """Median of ``y`` over seeds against regularisation strength, one line per method and one panel per value of
    ``panel_col``, then one sentence per panel (:func:`captions.describe_curves`), or for three panels and more a
    table of the tested trends and one summary sentence.

    ``models``: one row per model (``panel_col``, ``method``, ``strength``, ``y``). ``band``: shade the
    interquartile range over seeds. ``peak``: name the strength of a method's highest median when the strengths
    differ (for scores where higher is better). A method with a single strength in a panel gets no line, and one
    line says so.
    """
    if models is None or models.empty or y not in models or not models[y].notna().any():
        missing(reason(models) or f"no {what or y} values in this store.")
        return
    data = models.dropna(subset=[y])
    present = [p for p in panels if (data[panel_col].astype(str) == str(p)).any()]
    absent = [p for p in panels if p not in present]
    if absent:
        missing(f"no {what or y} values for {', '.join(label(p) for p in absent)}.")
    curves = curve_summary(data, panel_col, y)
    levels = curves.groupby([panel_col, "method"])["strength"].nunique()
    single = levels[levels < 2]
    if len(single):
        missing(f"{what or y}: no curve for " + "; ".join(
            f"{label(m)} on {label(d)}" for d, m in single.index) + " (a single regularisation strength in this "
            "store).")
    present = [p for p in present if (levels.xs(str(p), level=panel_col) >= 2).any()]
    if not present:
        return
    show_figure(figures.curve_grid(curves, present, panel_col, y="median", ncols=ncols, ylabel=what or y, log=log,
                                   band=("q25", "q75") if band else None))
    if band:
        key("Lines: median over seeds; shaded: interquartile range over seeds.")
    if len(present) >= 3:
        table = captions.curve_table(data, present, panel_col, y=y, peak=peak)
        show_table(table, caption=f"{what or y} against regularisation strength: tested trend per dataset and "
                                  "method")
        key("↑ rises, ↓ falls: Spearman ρ of strength and value over every model, significant at 5 % after Holm's "
            "adjustment within the panel; n.s.: not significant; –: fewer than 3 strengths; peak: strength of the "
            "highest median where the strengths differ (Kruskal–Wallis).")
        note(captions.describe_curve_table(table, what))
        return
    for panel in present:
        note(captions.describe_curves(data, panel, panel_col, y=y, what=what, peak=peak))


def show_paper_comparison(mine: pd.DataFrame, paper: pd.DataFrame, name: str) -> None:
    """This store's matrix, the paper's, and their difference (all as 100*rho), with the mean absolute difference.
    Columns and rows this store has no value for are left out of all three, and one line names them."""
    if mine is None or not np.isfinite(mine.to_numpy(dtype=float)).any():
        missing(f"{name}: {reason(mine) or 'not in this store'}, so there is nothing to compare with the paper.")
        return
    mine = mine.reindex(index=paper.index, columns=paper.columns).astype(float)
    rows = [r for r in mine.index if mine.loc[r].notna().any()]
    cols = [c for c in mine.columns if mine[c].notna().any()]
    dropped = [c for c in mine.columns if c not in cols] + [r for r in mine.index if r not in rows]
    if dropped:
        missing(f"{name}: this store has no values for {', '.join(label(d) for d in dropped)}, so the comparison "
                "leaves them out.")
    mine, paper = mine.loc[rows, cols], paper.loc[rows, cols]
    diff = mine - paper
    show_figure(figures.rho_heatmap_grid({f"{name}, this store": mine, f"{name}, paper": paper,
                                          "this store − paper": diff}))
    note(captions.describe_paper_comparison(diff, name))


# ---- page 00: the runs -------------------------------------------------------------------------------------------

def run_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """Done runs per (dataset, method): the hyperparameter, its values, the number of runs and the seeds used.

    Columns ``dataset, method, hyperparameter, values, runs, seeds`` (seeds as ranges, e.g. ``0–49``), in the
    study's order: one row per (dataset, method), 42 rows for the paper grid.
    """
    cols = ["dataset", "method", "hyperparameter", "values", "runs", "seeds"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    g = runs.groupby([runs["dataset"].astype(str), runs["method"].astype(str)], sort=False)
    out = g.agg(hyperparameter=("hparam_name", "first"),
                values=("hparam_value", lambda s: ", ".join(f"{v:g}" for v in sorted(set(s)))),
                runs=("run_id", "size"),
                seeds=("seed", lambda s: _ranges(sorted(set(int(v) for v in s))))).reset_index()
    order = {d: i for i, d in enumerate(DATASET_LABELS)}, {m: i for i, m in enumerate(METHOD_LABELS)}
    out = out.assign(_d=out["dataset"].map(order[0]).fillna(99), _m=out["method"].map(order[1]).fillna(99))
    out = out.sort_values(["_d", "dataset", "_m", "method"])
    return out[cols].reset_index(drop=True)


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}–{v}")
            start = None
    return ", ".join(parts)


def show_run_overview(runs: pd.DataFrame) -> None:
    """Table of done runs per configuration and a sentence with the totals."""
    if runs.empty:
        missing("the store has no finished (done) runs.")
        return
    overview = run_overview(runs)
    show_table(overview.assign(dataset=overview["dataset"].map(label), method=overview["method"].map(label))
               .set_index(["dataset", "method"]))
    note(captions.describe_run_overview(runs))


def metric_by_config(scores: pd.DataFrame, metric: str, key: str) -> pd.DataFrame:
    """Rows of one (evaluation, key) of the tidy frame: ``dataset, method, hparam_value, seed, representation,
    value`` with plain-string columns."""
    sub = scores[(scores["metric"] == metric) & (scores["key"] == key)]
    out = sub[["dataset", "method", "hparam_value", "seed", "representation", "value"]].copy()
    for column in ("dataset", "method", "representation"):
        out[column] = out[column].astype(str)
    return out.reset_index(drop=True)


def config_median_table(long: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per (dataset, method, representation) x hyperparameter value, compactly: one row per
    (dataset, method, representation), columns ``value 1`` ... in increasing hyperparameter order, each cell
    ``"<value>: <median>"``. Labels are display labels; rows in the study's order."""
    med = long.groupby(["dataset", "method", "representation", "hparam_value"])["value"].median().reset_index()
    med["position"] = med.groupby(["dataset", "method", "representation"])["hparam_value"].rank(method="dense")
    med["cell"] = med["hparam_value"].map("{:g}".format) + ": " + med["value"].map("{:.3f}".format)
    table = med.pivot_table(index=["dataset", "method", "representation"], columns="position", values="cell",
                            aggfunc="first")
    table.columns = [f"value {int(c)}" for c in table.columns]
    d_order, m_order = list(DATASET_LABELS), list(METHOD_LABELS)
    keys = sorted(table.index, key=lambda k: (d_order.index(k[0]) if k[0] in d_order else 99, k[0],
                                              m_order.index(k[1]) if k[1] in m_order else 99, k[1], k[2]))
    table = table.reindex(keys).fillna("")
    table.index = pd.MultiIndex.from_tuples([(label(d), label(m), r) for d, m, r in table.index],
                                            names=["dataset", "method", "representation"])
    return table


def show_metric_by_config(scores: pd.DataFrame, metric: str, key: str, datasets: list[str]) -> None:
    """Median-over-seeds table of one score per (dataset, method, hyperparameter) x representation, and a strip
    plot of every run with the median marked, one panel per dataset."""
    long = metric_by_config(scores, metric, key)
    long = long[long["dataset"].isin(datasets)]
    if long.empty:
        missing(f"the store has no {metric} scores (key {key}).")
        return
    show_table(config_median_table(long), caption=f"median {key} over seeds, per hyperparameter value")
    panels = [d for d in datasets if d in set(long["dataset"])]
    show_figure(figures.metric_by_config_figure(long, panels, metric, key))
    for dataset in panels:
        note(captions.describe_metric_by_config(long[long["dataset"] == dataset], dataset))


def show_metric_overview(table: pd.DataFrame, datasets: list[str], metrics: list[str]) -> None:
    """Median of each headline metric per dataset (mean representation)."""
    sub = table[table["dataset"].isin(datasets)]
    present = [m for m in metrics if m in sub.columns and sub[m].notna().any()]
    absent = [m for m in METRIC_SHORT if m not in present]
    if absent:
        missing(f"no scores in this store for {', '.join(absent)}.")
    if not present:
        return
    g = sub.groupby(sub["dataset"].astype(str), sort=False)[present]
    frame = g.median().T
    frame = frame[[d for d in datasets if d in frame.columns]]
    show_table(frame, caption="median over all models of the dataset")


# ---- page 01: total correlation ----------------------------------------------------------------------------------

def show_tc_scatter(table: pd.DataFrame, datasets: list[str]) -> None:
    """log TC(mean) against log TC(sampled), one point per model, coloured by method (Fig. 10)."""
    cols = ("tc_mean", "tc_sampled")
    sub = table[table["dataset"].isin(datasets)].dropna(subset=list(cols))
    sub = sub[(sub["tc_mean"] > 0) & (sub["tc_sampled"] > 0)]
    if sub.empty:
        missing("the store has no total correlation of both representations (evaluation `unsupervised` on "
                "`mean` and `sampled`).")
        return
    panels = [d for d in datasets if (sub["dataset"] == d).any()]
    show_figure(figures.method_scatter_grid(sub, panels, "tc_sampled", "tc_mean", "TC (sampled)", "TC (mean)",
                                            log=True, diagonal=True))
    note(captions.describe_tc_scatter(sub))


# ---- page 03: what matters ---------------------------------------------------------------------------------------

def show_variance(variance: pd.DataFrame) -> None:
    """Table 5 with its uncertainty (``variance`` from :func:`analysis.uncertainty.variance_table`): heatmaps of the
    adjusted R^2 of the objective and of objective x hyperparameter (datasets x metrics), then a table of every cell
    with R^2, its 95 % interval (a bootstrap of the models within their configurations), the R^2 expected with no
    effect and the adjusted R^2."""
    if variance is None or "method" not in variance or not variance["method"].notna().any():
        missing(reason(variance) or "no (dataset, metric) cell could be fitted.")
        return
    cells = variance.drop(index="all", level="dataset", errors="ignore")
    show_figure(figures.variance_figure(cells, columns=("method_adjusted", "method_x_hparam_adjusted"),
                                        titles=("adjusted R², objective", "adjusted R², objective × strength")))
    key("Adjusted R² = 1 − (1 − R²)(n − 1)/(n − k) for k groups and n models: 0 on average when the grouping has no "
        "effect, so it can be compared across stores of any size. Plain R² (the paper's Table 5) is in the table.")

    def cell(r, g):
        if pd.isna(r[g]):
            return "–"
        return f"{100 * r[g]:.0f} [{100 * r[g + '_ci_low']:.0f}, {100 * r[g + '_ci_high']:.0f}]"

    rows = []
    for (dataset, metric), r in variance.iterrows():
        rows.append({"dataset": "mean of the cells" if dataset == "all" else label(dataset),
                     "metric": "" if dataset == "all" else label(metric),
                     "models": "" if dataset == "all" else f"{r['n_models']:.0f}",
                     "objective: R² [95 % CI]": cell(r, "method"),
                     "no effect": _pct(r["method_null"]), "adjusted": _pct(r["method_adjusted"]),
                     "objective × strength: R² [95 % CI]": cell(r, "method_x_hparam"),
                     "no effect ": _pct(r["method_x_hparam_null"]), "adjusted ": _pct(r["method_x_hparam_adjusted"])})
    table = pd.DataFrame(rows).set_index(["dataset", "metric"])
    _display(table.style.set_caption("% of each metric's variance explained (R², as in Table 5) with its 95 % "
                                     "interval (a bootstrap of the models within their configurations), the R² "
                                     "expected when the grouping has no effect, (k − 1)/(n − 1), and the adjusted R²"))
    note(captions.describe_variance(variance))


def _pct(fraction) -> str:
    """A fraction as a percentage for a table: one decimal below 10 %, none above; an en dash for NaN."""
    if pd.isna(fraction):
        return "–"
    return f"{100 * fraction:.1f}" if abs(fraction) < 0.1 else f"{100 * fraction:.0f}"


def show_seed_beats(frame: pd.DataFrame) -> None:
    """Mean probability (per dataset x metric, averaged over methods) that a worse configuration's run wins."""
    if frame is None or frame.empty:
        missing(reason(frame) or "no method has two hyperparameter values with scores.")
        return
    pivot = frame.groupby(["dataset", "metric"], sort=False)["p_worse_beats_better"].mean().unstack("metric")
    pivot = pivot.reindex(columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot, percent=True, caption="% of run pairs where the worse hyperparameter's run scores higher")
    note(captions.describe_seed_beats(frame))


def show_winners(contrasts: pd.DataFrame) -> None:
    """Per (dataset, metric), the method with the highest median where its models score significantly above the
    runner-up's (``contrasts`` from :func:`analysis.trends.method_contrasts`; Mann-Whitney at 5 %), else a dash."""
    if contrasts is None or contrasts.empty:
        missing(reason(contrasts) or "fewer than two methods in this store.")
        return
    shown = contrasts.assign(winner=[label(w) if p < 0.05 else "–" for w, p in
                                     zip(contrasts["winner"], contrasts["p"].fillna(1.0))])
    pivot = shown.pivot(index="dataset", columns="metric", values="winner")
    pivot = pivot.reindex(index=_dataset_order(pivot.index), columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot, caption="method with the highest median, where it scores significantly above the runner-up "
                              "(Mann–Whitney p < 0.05); – : no clear winner")
    note(captions.describe_winners(contrasts))


# ---- page 04: rules of thumb -------------------------------------------------------------------------------------

def show_best_strength(contrasts: pd.DataFrame) -> None:
    """Per method, dataset and metric, the regularisation strength with the highest median where the method's values
    differ (``contrasts`` from :func:`analysis.trends.strength_contrasts`; Kruskal-Wallis at 5 %), else a dash."""
    if contrasts is None or contrasts.empty:
        missing(reason(contrasts) or "no method has two or more hyperparameter values.")
        return
    shown = contrasts.assign(best_strength=contrasts["best_strength"].where(contrasts["p"] < 0.05))
    pivot = shown.pivot_table(index=["method", "dataset"], columns="metric", values="best_strength",
                              aggfunc="first", dropna=False)
    rows = [(m, d) for m in _method_order(pivot.index.get_level_values(0))
            for d in _dataset_order(pivot.index.get_level_values(1)) if (m, d) in pivot.index]
    pivot = pivot.reindex(index=pd.MultiIndex.from_tuples(rows, names=pivot.index.names),
                          columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot.rename(index=label), digits=1,
               caption="strength (0 = weakest, 1 = strongest) with the highest median, where the method's values "
                       "differ (Kruskal–Wallis p < 0.05); – : no clear difference")
    note(captions.describe_best_strength(contrasts))


# ---- page 06 / 07: transfer --------------------------------------------------------------------------------------

def show_config_medians(medians: Mapping[str, pd.DataFrame]) -> None:
    """Scatter of every configuration's median score on dSprites against the same on each other dataset (Fig. 18)."""
    usable = {m: f for m, f in medians.items() if f is not None and "dsprites_full" in f.columns and f.shape[1] > 1}
    if not usable:
        missing("needs dSprites and at least one other dataset.")
        return
    others = [d for d in DATASET_LABELS if any(d in f.columns for f in usable.values()) and d != "dsprites_full"]
    show_figure(figures.config_medians_figure(usable, others))
    note("each point is one configuration (method and hyperparameter value, colour = method); points along a rising "
         "line mean the configuration's rank transfers from dSprites to that dataset.")


def show_transfer(intervals: pd.DataFrame) -> None:
    """Table 1: this store's win rates with 95 % seed-bootstrap intervals next to the paper's, and the chance
    baseline; then which cells beat chance (the interval of rate - chance above 0)."""
    if intervals is None or intervals.empty or not intervals["rate"].notna().any():
        missing(reason(intervals) or "the store cannot fill any cell of the transfer table.")
        return
    rows = []
    for (metric_cell, dataset_cell), r in intervals.iterrows():
        filled = pd.notna(r["rate"])
        rows.append({"target metric": metric_cell.replace("_", " "), "target dataset": dataset_cell.replace("_", " "),
                     "this store": f"{100 * r['rate']:.1f} % [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
                     if filled else "–",
                     "paper": f"{100 * PAPER_TRANSFER.loc[metric_cell, dataset_cell]:.1f} %",
                     "chance (50 % + ½ ties)": f"{100 * r['chance']:.1f} %" if filled else "–",
                     "above chance": ("yes" if r["excess_low"] > 0 else "no" if r["excess_high"] < 0 else "unclear")
                     if filled else "–",
                     "why empty": "" if filled else (r["reason"] or "")})
    table = pd.DataFrame(rows)
    if not table["why empty"].astype(bool).any():
        table = table.drop(columns=["why empty"])
    _display(table.style.hide(axis="index"))
    note(captions.describe_transfer(intervals))


def show_transfer_sensitivity(frame: pd.DataFrame) -> None:
    """The four rates under each combination of the open choices, as a table of percentages."""
    if frame is None or frame.empty or not frame["rate"].notna().any():
        missing(reason(frame) or "the store cannot fill any cell of the transfer table.")
        return
    pivot = frame.pivot_table(index=["target_seed", "random_seed", "random_may_match"],
                              columns=["metric_cell", "dataset_cell"], values="rate", aggfunc="first")
    pivot = pivot.dropna(axis=1, how="all")
    show_table(pivot, percent=True, caption="win rate (%) under each reading of the procedure")
    note(captions.describe_transfer_sensitivity(pivot))


# ---- page 09: sample efficiency ----------------------------------------------------------------------------------

def show_efficiency_scatter(table: pd.DataFrame, datasets: list[str], metric: str, column: str) -> None:
    """Efficiency against a metric, one point per model coloured by method, one panel per dataset."""
    sub = table[table["dataset"].isin(datasets)].dropna(subset=[metric, column]) \
        if metric in table and column in table else table.iloc[0:0]
    if sub.empty:
        missing(f"the store has no {column} (downstream accuracies at 100 and 10,000 training points) together with "
                f"{metric}.")
        return
    panels = [d for d in datasets if (sub["dataset"] == d).any()]
    show_figure(figures.method_scatter_grid(sub, panels, metric, column, label(metric), column))
    note(captions.describe_efficiency_scatter(sub, panels, metric, column))


def show_efficiency_correlations(frame: pd.DataFrame) -> None:
    """Table of Spearman(metric, efficiency) per dataset and predictor."""
    if frame is None or frame.empty or not frame["rho"].notna().any():
        missing(reason(frame) or "no downstream accuracies in this store.")
        return
    pivot = frame.pivot_table(index=["predictor", "metric"], columns="dataset", values="rho", aggfunc="first")
    rows = [(p, m) for p in ("LR", "GBT") for m in METRIC_SHORT if (p, m) in pivot.index]
    pivot = pivot.reindex(index=pd.MultiIndex.from_tuples(rows, names=pivot.index.names),
                          columns=_dataset_order(pivot.columns))
    show_table((pivot * 100).round(0) + 0.0, digits=0, caption="100·ρ between the metric and sample efficiency")
    note(captions.describe_efficiency_correlations(frame))


def show_metric_groups(groups: Mapping[str, pd.DataFrame], metric: str) -> None:
    """Median downstream accuracy against training size for low / medium / high ``metric`` groups (Fig. 22/23)."""
    usable = {d: g for d, g in groups.items() if g is not None and not g.empty}
    for d in groups:
        if d not in usable:
            missing(f"{label(d)}: {reason(groups[d]) or 'no downstream accuracies'}.")
    if not usable:
        return
    show_figure(figures.metric_groups_figure(usable, metric))
    text = captions.describe_metric_groups(usable, metric)
    if text:
        note(text)


# ---- the paper's supplementary figures ------------------------------------------------------------------------------

def show_hparam_violins(long: pd.DataFrame, metric: str) -> None:
    """Fig. 3 right / 14: ``metric`` per hyperparameter value of each method (a row of panels per dataset, every seed
    a dot when there are few), and how the seed spread compares with the spread between values
    (``long`` from :func:`analysis.supplement.hparam_distributions`)."""
    from analysis.supplement import hparam_spread

    if long is None or long.empty:
        missing(reason(long) or f"no {metric} scores in this store.")
        return
    datasets = [d for d in DATASET_LABELS if d in set(long["dataset"])] + sorted(set(long["dataset"]) -
                                                                                    set(DATASET_LABELS))
    methods = [m for m in METHOD_LABELS if m in set(long["method"])] + sorted(set(long["method"]) -
                                                                              set(METHOD_LABELS))
    show_figure(figures.hparam_violin_grid(long, datasets, methods, ylabel=label(metric)))
    key("One violin per hyperparameter value (x axis); solid line: median, dashed: quartiles over the seeds; dots: "
        "single models.")
    note(captions.describe_hparam_spread(hparam_spread(long), metric))


def show_metric_pairs(pairs: pd.DataFrame, dataset: str) -> None:
    """Fig. 11: one point per model for every pair of metrics on ``dataset``, coloured by method, with the Spearman
    rho of each pair in its panel title (``pairs`` from :func:`analysis.supplement.metric_pairs`)."""
    from analysis.supplement import pair_correlations

    if pairs is None or pairs.empty:
        missing(f"{label(dataset)}: {reason(pairs) or 'no pair of metrics has scores'}.")
        return
    if reason(pairs):
        missing(f"{label(dataset)}: {reason(pairs)}.")
    rho = pair_correlations(pairs).set_index("pair")
    names = list(rho.index)
    first = pairs.drop_duplicates("pair").set_index("pair")
    titles = {p: f"ρ = {rho.loc[p, 'rho']:+.2f}" if pd.notna(rho.loc[p, "rho"]) else "ρ = n/a" for p in names}
    show_figure(figures.method_scatter_grid(
        pairs, names, "x", "y", xlabel=lambda p: label(first.loc[p, "x_metric"]),
        ylabel=lambda p: label(first.loc[p, "y_metric"]), panel_col="pair", ncols=5, titles=titles))
    note(captions.describe_metric_pairs(rho.reset_index(), dataset))


def show_efficiency_against_metrics(long: pd.DataFrame, predictor: str = "LR") -> None:
    """Fig. 20 (LR) / 21 (GBT): sample efficiency against every metric, a row of panels per dataset and a column per
    metric, one point per model coloured by method (``long`` from
    :func:`analysis.supplement.efficiency_against_metrics`)."""
    from analysis.supplement import efficiency_tests

    if long is None or long.empty:
        missing(reason(long) or f"no {predictor} sample efficiency in this store.")
        return
    datasets = [d for d in DATASET_LABELS if d in set(long["dataset"])] + sorted(set(long["dataset"]) -
                                                                                    set(DATASET_LABELS))
    metrics = [m for m in METRIC_SHORT if m in set(long["metric"])]
    show_figure(figures.scatter_matrix_grid(long, datasets, metrics, "dataset", "metric", "score", "efficiency",
                                            ylabel=f"Eff({predictor})"))
    note(captions.describe_efficiency_tests(efficiency_tests(long), predictor))


def show_seed_selection(frame: pd.DataFrame) -> None:
    """Within-configuration Kendall tau of every (selector, target) pair (:func:`analysis.within.seed_selection`) as
    one heatmap (a dagger where the Holm-adjusted p-value is 0.05 or more), the pairs that pass the test as a table,
    and one sentence."""
    if frame is None or frame.empty:
        missing(reason(frame) or "no configuration has two seeds with scores.")
        return
    tau, weak = tau_matrix(frame)
    n = {"Within-configuration Kendall τ": frame.attrs.get("configurations")}
    show_figure(figures.rho_heatmap_grid({"Within-configuration Kendall τ": tau}, crosses={
        "Within-configuration Kendall τ": weak}, n=n, unit="configurations", bar_label="100·τ"))
    key("Numbers are 100·τ = 100·(2·concordance − 1): the share of seed pairs of one configuration where the seed "
        "with the higher row score has the higher column score, rescaled so that 0 is chance; † marks a cell whose "
        "Holm-adjusted permutation p-value (over the whole table) is 0.05 or more, so its sign is not established.")
    passed = frame[frame["p_holm"] < 0.05]
    if len(passed):
        shown = pd.DataFrame({
            "selector → target": [f"{label(a)} → {label(b)}" for a, b in zip(passed["selector"], passed["target"])],
            "seed pairs": passed["pairs"].astype(int).to_numpy(),
            "concordance (%)": [_pct(c) for c in passed["concordance"]],
            "95 % interval (%)": [f"{_pct(a)}–{_pct(b)}" for a, b in zip(passed["ci_low"], passed["ci_high"])],
            "Holm p": [format_p(p) for p in passed["p_holm"]],
        }).set_index("selector → target")
        show_table(shown, caption="pairs whose concordance differs from chance (Holm-adjusted p < 0.05)")
    note(captions.describe_seed_selection(frame, UNSUPERVISED_SCORES))



# ---- pages 12-14: the analyses of the saved models (dstudy models) ------------------------------------------------

def _interval(value, low, high) -> str:
    """``"12 [5, 20]"``: percentages of fractions with an interval; ``"12"`` without one; an en dash for NaN."""
    if pd.isna(value):
        return "–"
    return _pct(value) if pd.isna(low) or pd.isna(high) else f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"


def show_rotation(pairs: pd.DataFrame, effects: pd.DataFrame, likelihood: pd.DataFrame,
                  reference: pd.DataFrame | None = None) -> None:
    """Theorem 1 on the store's models: every model's metric scores and IWAE log-likelihood as trained against
    rotated (a panel each, y = x dashed), the table of the median changes with their tests, the same rotation of a
    perfectly disentangled code for scale (``reference`` from :func:`analysis.rotation.reference_rotation`), one
    sentence."""
    from analysis.rotation import likelihood_summary

    has_pairs = pairs is not None and len(pairs) > 0
    has_likelihood = likelihood is not None and len(likelihood) > 0
    if not has_pairs and not has_likelihood:
        missing(reason(pairs) or reason(likelihood) or "the store has no scores of rotated models.")
        return
    parts, titles = [], {}
    if has_pairs:
        part = pairs[["method", "metric", "mean", "rotated"]].copy()
        part["metric"] = part["metric"].astype(str)
        parts.append(part)
        titles.update({m: METRIC_SHORT.get(m, m) for m in part["metric"].unique()})
    if has_likelihood:
        parts.append(pd.DataFrame({"method": likelihood["method"], "metric": "log p(x)",
                                   "mean": likelihood["trained"], "rotated": likelihood["rotated"]}))
        titles["log p(x)"] = "IWAE log p(x), nats"
    frame = pd.concat(parts, ignore_index=True).dropna(subset=["mean", "rotated"])
    panels = [m for m in METRIC_SHORT if m in titles] + (["log p(x)"] if has_likelihood else [])
    show_figure(figures.method_scatter_grid(frame, panels, "mean", "rotated", "trained model", "rotated model",
                                            diagonal=True, panel_col="metric", titles=titles))
    key("Each point is one model: its score on the mean representation (x) and on the same representation rotated "
        "by one fixed random rotation R (y), evaluated on the same ground-truth samples; the last panel is the "
        "model's log-likelihood (importance-weighted estimate) before and after rotating its encoder and decoder. "
        "Dashed: y = x.")
    if not has_pairs:
        missing(reason(pairs) or "the store has no rotated metric scores.")
    elif len(effects):
        table = pd.DataFrame({
            "metric": [label(m) for m in effects["metric"]],
            "models": effects["models"].astype(int).to_numpy(),
            "median (trained)": [f"{v:.3f}" for v in effects["mean_median"]],
            "median (rotated)": [f"{v:.3f}" for v in effects["rotated_median"]],
            "median change [95 % CI]": [f"{m:+.3f} [{a:+.3f}, {b:+.3f}]" for m, a, b in
                                        zip(effects["change_median"], effects["ci_low"], effects["ci_high"])],
            "lower after rotation (%)": [_pct(v) for v in effects["falls"]],
            "Wilcoxon, Holm": [format_p(p) for p in effects["p_holm"]],
        }).set_index("metric")
        show_table(table, caption="the rotation's effect on each metric (paired over the models; intervals: "
                                  "bootstrap of the models)")
        if reference is not None and len(reference):
            show_table(pd.DataFrame({"metric": [label(m) for m in reference["metric"]],
                                     "disentangled code": [f"{v:.3f}" for v in reference["code"]],
                                     "rotated": [f"{v:.3f}" for v in reference["rotated"]]}).set_index("metric"),
                       caption="for scale: the same rotation applied to a perfectly disentangled code (the five "
                               "dSprites factors themselves, standardised, and five noise latents; 1,000 points)")
    if not has_likelihood:
        missing(reason(likelihood) or "the store has no likelihoods of the saved models.")
    note(captions.describe_rotation(effects if has_pairs else None,
                                    likelihood_summary(likelihood) if has_likelihood else {},
                                    reference if has_pairs else None))


def show_udr_selection(selection: pd.DataFrame, long: pd.DataFrame) -> None:
    """UDR against every metric (one point per model), the Table 1 style win rates of the UDR-chosen model with
    their intervals, chance, test and the transfer rate beside them, and one sentence."""
    if selection is None or selection.empty:
        missing(reason(selection) or "the store has no UDR scores.")
        return
    metrics = [m for m in METRIC_SHORT if m in set(long["metric"])]
    show_figure(figures.method_scatter_grid(long, metrics, "UDR", "score", "UDR", "score", panel_col="metric",
                                            titles={m: METRIC_SHORT[m] for m in metrics}))
    table = pd.DataFrame({
        "metric": [label(m) for m in selection["metric"]],
        "UDR choice beats random (%) [95 % CI]": [_interval(r, a, b) for r, a, b in
                                                  zip(selection["rate"], selection["ci_low"], selection["ci_high"])],
        "chance (%)": [_pct(v) for v in selection["chance"]],
        "rate − chance [95 % CI]": [_interval(r - c, a, b) for r, c, a, b in zip(
            selection["rate"], selection["chance"], selection["excess_low"], selection["excess_high"])],
        "permutation, Holm": [format_p(p) for p in selection["p_holm"]],
        "Table 1 transfer, same metric (%)": [_pct(v) for v in selection["transfer"]],
        "trials": [f"{v:.0f}" for v in selection["trials"]],
    }).set_index("metric")
    show_table(table, caption="win rate of the model with the highest UDR among one seed's configurations against a "
                              "random model of the dataset (ties count as wins; chance = 50 % + half the ties)")
    key("Intervals: bootstrap of the models within each configuration. p: UDR permuted among each dataset's models "
        "(one-sided: better than chance), Holm over the metrics. Transfer: the configuration best on the metric with "
        "one seed, scored with another seed (Table 1's same-metric, same-dataset cell for this metric alone).")
    note(captions.describe_udr_selection(selection))


def show_variance_components(frame: pd.DataFrame) -> None:
    """The variance of every metric split into configurations, seeds (training noise) and evaluations (evaluation
    noise) as stacked bars, a table of the shares with intervals and tests, one sentence."""
    if frame is None or frame.empty:
        missing(reason(frame) or "the store has no evaluation replicates.")
        return
    show_figure(figures.variance_components_figure(frame))
    table = pd.DataFrame({
        "dataset": [label(d) for d in frame["dataset"]], "metric": [label(m) for m in frame["metric"]],
        "models": frame["models"].astype(int).to_numpy(),
        "configurations (%)": [_interval(*v) for v in frame[["share_config", "share_config_low",
                                                             "share_config_high"]].to_numpy()],
        "seeds (%)": [_interval(*v) for v in frame[["share_seed", "share_seed_low", "share_seed_high"]].to_numpy()],
        "evaluations (%)": [_interval(*v) for v in frame[["share_eval", "share_eval_low",
                                                          "share_eval_high"]].to_numpy()],
        "training share of within (%)": [_interval(*v) for v in frame[["training_share", "training_share_low",
                                                                       "training_share_high"]].to_numpy()],
        "seeds beyond evaluation noise (F, Holm)": [format_p(p) for p in frame["p_seed_holm"]],
    }).set_index(["dataset", "metric"])
    from analysis.replicates import MIN_CONFIGURATIONS

    show_table(table, caption="shares of each metric's variance (method-of-moments estimates of a nested random-"
                              "effects model; 95 % intervals: bootstrap of the configurations for the shares of the "
                              "total, the F distribution for the training share)")
    key("Training share of within = seeds / (seeds + evaluations): the part of the variance between models of one "
        "configuration that is a real difference between the trained models rather than noise of the metric.")
    few = frame[frame["configurations"] < MIN_CONFIGURATIONS]
    if len(few):
        key(f"No interval for the shares of the total where a dataset has fewer than {MIN_CONFIGURATIONS} "
            f"configurations (here {int(few['configurations'].max())}): a bootstrap of so few configurations has too "
            f"few distinct resamples to give one.")
    note(captions.describe_variance_components(frame))


__all__ = [
    "PAPER_FIG2_NOISY", "PAPER_FIG5_DSPRITES", "PAPER_TRANSFER", "show_correlations", "show_violins", "curve_summary",
    "show_curves", "show_paper_comparison", "run_overview", "show_run_overview", "metric_by_config",
    "config_median_table", "show_metric_by_config", "show_metric_overview", "show_tc_scatter", "show_variance",
    "show_seed_beats", "show_winners", "show_best_strength", "show_config_medians", "show_transfer",
    "show_transfer_sensitivity", "show_efficiency_scatter", "show_efficiency_correlations", "show_metric_groups",
    "show_hparam_violins", "show_metric_pairs", "show_efficiency_against_metrics", "show_seed_selection",
    "show_rotation", "show_udr_selection", "show_variance_components",
]
