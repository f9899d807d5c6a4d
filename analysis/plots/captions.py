"""The sentences under the report's figures: numbers in, one sentence out, saying what a figure shows on *this* store.

Each ``describe_*`` function takes the frame a figure is drawn from (fractions for correlations and R^2) and returns
one sentence (a string); nothing is displayed here. Correlations are written as integers of 100*rho and shares as
integer percentages.
"""
from __future__ import annotations

import math

import pandas as pd

import numpy as np

from analysis.plots.style import METHOD_LABELS, label
from analysis.significance import (
    ALPHA, correlation_difference_test, format_p, holm, kruskal_test, significant, spearman_p,
)
from analysis.trends import MIN_LEVELS, curve_trends


def _i(fraction) -> str:
    """``100 * fraction`` rounded to an integer for a sentence (never ``-0``; ``n/a`` for NaN)."""
    value = float(fraction)
    return "n/a" if math.isnan(value) else str(int(round(100 * value)) + 0)


def _signed(rho) -> str:
    """rho with a sign and two decimals, never ``-0.00``."""
    return f"{round(float(rho), 2) + 0.0:+.2f}"


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


def _top_two(pairs: pd.Series, key=None) -> tuple[tuple, float, tuple, float] | None:
    """The entries of ``pairs`` with the largest and second-largest ``key(value)`` (default: the value)."""
    if len(pairs) < 2:
        return None
    order = (pairs if key is None else pairs.map(key)).sort_values(ascending=False, kind="stable").index
    return order[0], float(pairs[order[0]]), order[1], float(pairs[order[1]])


def _n_of(matrix: pd.DataFrame, n: int | None, attr: str = "n_models") -> int | None:
    """``n`` when given, else ``matrix.attrs[attr]`` (the number of observations behind every correlation)."""
    if n is not None:
        return int(n)
    value = getattr(matrix, "attrs", {}).get(attr)
    return int(value) if value is not None else None


def _sure(crosses: pd.DataFrame | None, cells: list[tuple]) -> str:
    """``"; k of N have a 95 % interval that excludes 0"`` over ``cells`` of ``crosses`` (empty without intervals)."""
    if crosses is None or not cells:
        return ""
    known = [c for c in cells if c[0] in crosses.index and c[1] in crosses.columns]
    if not known:
        return ""
    sure = sum(1 for r, c in known if not bool(crosses.loc[r, c]))
    if len(known) == 1:
        return f"; its 95 % seed-bootstrap interval {'excludes' if sure else 'contains'} 0"
    return f"; {sure} of these {len(known)} have a 95 % seed-bootstrap interval that excludes 0"


def describe_metric_agreement(dataset: str, matrix: pd.DataFrame, n: int | None = None,
                              crosses: pd.DataFrame | None = None) -> str:
    """What a metric x metric Spearman matrix (Fig. 2) shows: the mean over the pairs of the five metrics other than
    Modularity and Modularity's mean. The tightest pair is named only when its correlation is significantly above the
    runner-up's (:func:`analysis.significance.correlation_difference_test` with ``n`` models, default
    ``matrix.attrs['n_models']``, at 5 %)."""
    pairs = _pairs(matrix, exclude=("Modularity",))
    if pairs.empty:
        return f"{label(dataset)}: no pair of metrics could be correlated."
    n = _n_of(matrix, n)
    text = (f"{label(dataset)}: the {len(pairs)} pair{'s' if len(pairs) > 1 else ''} of metrics other than "
            f"Modularity have a mean Spearman of {_i(pairs.mean())} (out of 100)" + _sure(crosses, list(pairs.index)))
    top = _top_two(pairs)
    if top and n:
        (a, b), r1, (c, d), r2 = top
        p = correlation_difference_test(r1, n, r2, n)
        if significant(p):
            text += (f"; the tightest pair is {label(a)}–{label(b)} ({_i(r1)}), above the next, "
                     f"{label(c)}–{label(d)} ({_i(r2)}; {format_p(p)})")
        else:
            text += (f"; no pair stands out from the next ({label(a)}–{label(b)} {_i(r1)} vs "
                     f"{label(c)}–{label(d)} {_i(r2)}, {format_p(p)})")
    if "Modularity" in matrix.index:
        mod = matrix.loc["Modularity"].drop("Modularity", errors="ignore").dropna()
        if len(mod):
            text += f"; Modularity's mean correlation with the others is {_i(mod.mean())}"
    return text + (f" (n = {n} models)." if n else ".")


def describe_dataset_agreement(metric: str, matrix: pd.DataFrame, n: int | None = None,
                               crosses: pd.DataFrame | None = None) -> str:
    """What a dataset x dataset Spearman matrix (Fig. 4 right) shows: the dSprites / Color-dSprites entry and the mean
    of the other pairs. The highest pair is named only when it is significantly above the runner-up (``n``
    configurations, default ``matrix.attrs['n_configs']``; Fisher z at 5 %)."""
    pairs = _pairs(matrix)
    if pairs.empty:
        return f"{label(metric)}: no pair of datasets could be correlated."
    n = _n_of(matrix, n, "n_configs")
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
    sure = _sure(crosses, list(pairs.index))
    if len(pairs) > 1:
        sure = sure.replace("of these", "of the", 1).replace("; ", "; of the dataset pairs, ", 1)
    text += sure
    top = _top_two(pairs)
    if top and n:
        (a, b), r1, (c, d), r2 = top
        p = correlation_difference_test(r1, n, r2, n)
        if significant(p):
            text += (f"; the highest pair is {label(a)}↔{label(b)} ({_i(r1)}), above {label(c)}↔{label(d)} "
                     f"({_i(r2)}; {format_p(p)})")
    return text + (f" (n = {n} configurations)." if n else ".")


def describe_downstream(dataset: str, matrix: pd.DataFrame, n: int | None = None,
                        crosses: pd.DataFrame | None = None) -> str:
    """What a metric x downstream Spearman matrix (Fig. 5) shows: the mean and range of rho with accuracy and the
    mean with sample efficiency, over the metrics other than Modularity."""
    rows = [r for r in matrix.index if r != "Modularity"]
    acc = [c for c in matrix.columns if not str(c).startswith("Eff")]
    eff = [c for c in matrix.columns if str(c).startswith("Eff")]
    sub_acc = matrix.loc[rows, acc].stack().dropna() if rows and acc else pd.Series(dtype=float)
    if sub_acc.empty:
        return f"{label(dataset)}: no metric could be correlated with downstream accuracy."
    n = _n_of(matrix, n)
    text = (f"{label(dataset)}: the metrics other than Modularity correlate with downstream accuracy at "
            f"{_i(sub_acc.mean())} on average (from {_i(sub_acc.min())} to {_i(sub_acc.max())}"
            + _sure(crosses, list(sub_acc.index)) + ")")
    sub_eff = matrix.loc[rows, eff].stack().dropna() if eff else pd.Series(dtype=float)
    if len(sub_eff):
        text += f" and with sample efficiency at {_i(sub_eff.mean())}"
    return text + (f" (n = {n} models)." if n else ".")


def describe_violins(long: pd.DataFrame, panel: str, panel_col: str, what: str) -> str:
    """Whether the methods of a violin panel differ (Kruskal-Wallis over every model, 5 %) and, only then, the range
    of their medians naming the lowest and the highest method; how many interquartile ranges overlap."""
    sub = long[long[panel_col].astype(str) == str(panel)].dropna(subset=["value"])
    if sub.empty:
        return f"{label(panel)}: no scores."
    methods = sub["method"].astype(str)
    g = sub.groupby(methods)["value"]
    med, lo, hi = g.median(), g.quantile(0.25), g.quantile(0.75)
    if len(med) == 1:
        return (f"{label(panel)} ({what}): only {label(med.index[0])} has scores here; its median is "
                f"{med.iloc[0]:.3g}.")
    _h, p, k = kruskal_test(sub["value"].to_numpy(dtype=float), methods.to_numpy())
    overlap = sum(1 for a in med.index for b in med.index if a < b and lo[a] <= hi[b] and lo[b] <= hi[a])
    n_pairs = len(med) * (len(med) - 1) // 2
    best, worst = med.idxmax(), med.idxmin()
    low, high = f"{med[worst]:.3g}", f"{med[best]:.3g}"
    tail = f"the interquartile ranges of {overlap} of the {n_pairs} method pairs overlap"
    if significant(p) and low != high and best != worst:
        return (f"{label(panel)} ({what}): medians range from {low} ({label(worst)}) to {high} ({label(best)}) and "
                f"the methods differ (Kruskal–Wallis {format_p(p)}, n = {len(sub)}); {tail}.")
    return (f"{label(panel)} ({what}): no clear difference between the {k} methods (Kruskal–Wallis {format_p(p)}, "
            f"n = {len(sub)}); {tail}.")


def curve_results(models: pd.DataFrame, y: str = "value", peak: bool = True) -> pd.DataFrame:
    """The tested trend of every method's curve in one panel (``models``: one row per model with ``method``,
    ``strength`` and ``y``). One row per method (figure order): ``n``, ``levels``, ``rho``, ``p`` and ``kw_p``
    Holm-adjusted together over the panel (the Kruskal-Wallis tests only with ``peak``), ``word`` ("rises",
    "falls" or "" when not significant or not tested), ``peak`` (strength of the highest median, NaN unless the
    strengths differ significantly)."""
    data = models.assign(method=models["method"].astype(str))
    order = [m for m in METHOD_LABELS if m in set(data["method"])]
    order += sorted(set(data["method"]) - set(order))
    trends = curve_trends(data, ["method"], y=y).set_index("method").reindex(order).dropna(subset=["n"])
    tested = trends["levels"] >= MIN_LEVELS
    family = list(trends.loc[tested, "p"]) + (list(trends.loc[tested, "kw_p"]) if peak else [])
    adjusted = holm(family)
    k = int(tested.sum())
    trends["p"], trends["kw_p"] = np.nan, np.nan
    trends.loc[tested, "p"] = adjusted[:k]
    if peak:
        trends.loc[tested, "kw_p"] = adjusted[k:]
    trends["word"] = [("rises" if r > 0 else "falls") if significant(p) else ""
                      for r, p in zip(trends["rho"], trends["p"])]
    trends["peak"] = trends["peak"].where(trends["kw_p"] < ALPHA)
    trends.attrs["n_tests"] = int(np.isfinite(family).sum()) if len(family) else 0
    return trends


def describe_curves(models: pd.DataFrame, panel: str, panel_col: str, y: str = "value", what: str = "",
                    peak: bool = True) -> str:
    """For each method of a panel, whether ``y`` rises or falls with regularisation strength, tested on every model.

    ``models``: one row per model with ``panel_col``, ``method``, ``strength`` and ``y``. A method's curve "rises" or
    "falls" only when Spearman(strength, y) over all its models is significant, otherwise it shows "no clear trend";
    it needs 3 distinct strengths. With ``peak``, the strength of the highest median is named only when the strengths
    differ (Kruskal-Wallis). All the tests of one sentence are Holm-adjusted together, so a panel of pure noise gets
    a directional word in at most 5 % of sentences.
    """
    sub = models[models[panel_col].astype(str) == str(panel)]
    head = f"{label(panel)}{' ' + what if what else ''}: "
    if sub.empty:
        return head + "no values."
    trends = curve_results(sub, y=y, peak=peak)
    tested = trends[trends["levels"] >= MIN_LEVELS]
    parts = []
    for method, row in tested.iterrows():
        if row["word"]:
            part = f"{label(method)} {row['word']} (ρ = {_signed(row['rho'])}, {format_p(row['p'])})"
        else:
            part = f"{label(method)}: no clear trend (ρ = {_signed(row['rho'])}, {format_p(row['p'])})"
        if peak and pd.notna(row["peak"]):
            part += (f", highest median at strength {row['peak']:.1f} (the strengths differ, Kruskal–Wallis "
                     f"{format_p(row['kw_p'])})")
        parts.append(part)
    few = [label(m) for m in trends.index if m not in tested.index]
    if not parts:
        return head + (f"fewer than {MIN_LEVELS} regularisation strengths per method ({', '.join(few)}), so no trend "
                       "is tested.")
    text = head + "; ".join(parts)
    if few:
        text += f"; {', '.join(few)}: fewer than {MIN_LEVELS} strengths, not tested"
    return text + (f" (Spearman over every model; p Holm-adjusted over the {trends.attrs['n_tests']} tests of this "
                   "panel).")


def curve_table(models: pd.DataFrame, panels: list[str], panel_col: str, y: str = "value",
                peak: bool = True) -> pd.DataFrame:
    """The tests of :func:`describe_curves` for many panels at once: a table with one row per panel and one column
    per method, each cell "↑ +0.95" (rises), "↓ -0.95" (falls), "n.s. +0.05" (no clear trend) or "–" (fewer than 3
    strengths), with ", peak 0.6" when the strengths differ. Display labels."""
    cells = {}
    for panel in panels:
        sub = models[models[panel_col].astype(str) == str(panel)]
        if sub.empty:
            continue
        row = {}
        for method, r in curve_results(sub, y=y, peak=peak).iterrows():
            if r["levels"] < MIN_LEVELS:
                text = "–"
            elif r["word"]:
                text = f"{'↑' if r['word'] == 'rises' else '↓'} {_signed(r['rho'])}"
            else:
                text = f"n.s. {_signed(r['rho'])}"
            if peak and pd.notna(r["peak"]):
                text += f", peak {r['peak']:.1f}"
            row[label(method)] = text
        cells[label(panel)] = row
    return pd.DataFrame.from_dict(cells, orient="index").fillna("")


def describe_curve_table(table: pd.DataFrame, what: str = "") -> str:
    """Counts of a :func:`curve_table`: on how many panels each method's curve rises, falls or shows no clear trend."""
    parts = []
    for method in table.columns:
        col = table[method]
        tested = col[(col != "–") & (col != "")]
        if not len(tested):
            parts.append(f"{method}: not tested (fewer than {MIN_LEVELS} strengths)")
            continue
        up = int(tested.str.startswith("↑").sum())
        down = int(tested.str.startswith("↓").sum())
        flat = len(tested) - up - down
        counts = [f"rises on {up}" if up else "", f"falls on {down}" if down else "",
                  f"no clear trend on {flat}" if flat else ""]
        parts.append(f"{method} {', '.join(c for c in counts if c)} of {len(tested)}")
    return (f"{what + ': ' if what else ''}" + "; ".join(parts) + " panels (Spearman of strength and value over "
            "every model, significant at 5 % after Holm's adjustment within each panel).")


def violin_table(long: pd.DataFrame, panels: list[str], panel_col: str) -> pd.DataFrame:
    """The tests of :func:`describe_violins` for many panels: one row per panel with the Kruskal-Wallis p-value
    across methods and, only where it is below 5 %, the methods with the lowest and the highest median."""
    rows = {}
    for panel in panels:
        sub = long[long[panel_col].astype(str) == str(panel)].dropna(subset=["value"])
        if sub.empty or sub["method"].nunique() < 2:
            continue
        methods = sub["method"].astype(str)
        _h, p, _k = kruskal_test(sub["value"].to_numpy(dtype=float), methods.to_numpy())
        med = sub.groupby(methods)["value"].median()
        differ = significant(p) and f"{med.min():.3g}" != f"{med.max():.3g}"
        rows[label(panel)] = {"models": len(sub), "Kruskal–Wallis": format_p(p).replace("p ", "", 1).lstrip("= "),
                              "lowest median": (f"{label(med.idxmin())} {med.min():.3g}" if differ
                                                else "no clear difference"),
                              "highest median": f"{label(med.idxmax())} {med.max():.3g}" if differ else ""}
    return pd.DataFrame.from_dict(rows, orient="index")


def describe_violin_table(table: pd.DataFrame, what: str) -> str:
    """How many panels of a :func:`violin_table` have methods that differ, and which method has the highest median
    there most often."""
    if table.empty:
        return f"{what}: no panel has two methods."
    differ = table[table["highest median"] != ""]
    text = (f"{what}: the methods differ (Kruskal–Wallis p < 0.05 over every model) on {len(differ)} of the "
            f"{len(table)} datasets")
    if len(differ):
        counts = differ["highest median"].str.rsplit(" ", n=1).str[0].value_counts()
        text += "; highest median there: " + ", ".join(f"{m} {int(c)}" for m, c in counts.items())
    return text + "."


def describe_variance(variance: pd.DataFrame) -> str:
    """The unweighted means over the measurable (dataset, metric) cells of a Table 5 frame: R^2 of the objective and
    of objective x strength against the paper's 37 % / 59 %, with the R^2 expected when the grouping has no effect
    and the adjusted R^2 when the frame has them (:func:`analysis.uncertainty.variance_table`), and the bootstrap
    interval of the mean when it has the ``('all', 'mean')`` row."""
    cells = variance.drop(index="all", level="dataset", errors="ignore") if isinstance(variance.index, pd.MultiIndex) \
        else variance
    n = int(cells["method"].notna().sum()) if "method" in cells else 0
    if not n:
        return "No (dataset, metric) cell had enough models to fit."
    means = variance.attrs.get("means") or {c: cells[c].mean() for c in ("method", "method_x_hparam") if c in cells}
    a, b = means.get("method", float("nan")), means.get("method_x_hparam", float("nan"))
    overall = variance.loc[("all", "mean")] if ("all", "mean") in variance.index else None

    def part(g, value):
        text = f"{_i(value)} %"
        if overall is not None and pd.notna(overall.get(f"{g}_ci_low")):
            text += f" [{_i(overall[f'{g}_ci_low'])}, {_i(overall[f'{g}_ci_high'])}]"
        if f"{g}_null" in cells and cells[f"{g}_null"].notna().any():
            text += (f" (expected with no effect: {_i(cells[f'{g}_null'].mean())} %; adjusted R² "
                     f"{_i(cells[f'{g}_adjusted'].mean())} %)")
        return text

    return (f"averaged over the {n} (dataset, metric) cells, the objective explains {part('method', a)} of the "
            f"metric variance and objective × regularisation strength {part('method_x_hparam', b)} (the paper: "
            f"37 % and 59 %); the remaining {_i(1 - b)} % is credited to the random seed.")


def describe_unsupervised(dataset: str, matrix: pd.DataFrame, n: int | None = None,
                          crosses: pd.DataFrame | None = None) -> str:
    """Range and sign of the unsupervised-score correlations on one dataset (Fig. 4 centre, 24). The strongest cell is
    named only when its absolute correlation is significantly above the runner-up's (``n`` models, default
    ``matrix.attrs['n_models']``; Fisher z at 5 %)."""
    values = matrix.stack().dropna()
    if values.empty:
        return f"{label(dataset)}: nothing could be correlated."
    n = _n_of(matrix, n)
    text = (f"{label(dataset)}: correlations go from {_i(values.min())} to {_i(values.max())}; "
            f"{int((values > 0).sum())} of {len(values)} are positive" + _sure(crosses, list(values.index)))
    top = _top_two(values, key=abs)
    if top and n:
        (row, col), r1, (row2, col2), r2 = top
        p = correlation_difference_test(abs(r1), n, abs(r2), n)
        if significant(p):
            text += (f"; the strongest is {row} vs {label(col)} ({_i(r1)}), above {row2} vs {label(col2)} "
                     f"({_i(r2)}; {format_p(p)})")
    return text + (f" (n = {n} models)." if n else ".")


def describe_tc_scatter(sub: pd.DataFrame) -> str:
    """Share of models whose total correlation is larger on the mean than on the sampled representation (Fig. 10),
    called a majority only when a two-sided sign test rejects 50 % at 5 %."""
    from scipy.stats import binomtest

    differ = sub[sub["tc_mean"] != sub["tc_sampled"]]
    above = int((differ["tc_mean"] > differ["tc_sampled"]).sum())
    share = above / len(differ) if len(differ) else float("nan")
    p = binomtest(above, len(differ)).pvalue if len(differ) else float("nan")
    text = (f"{_i(share)} % of the {len(differ)} models have a larger total correlation in the mean than in the "
            f"sampled representation (points above the dashed diagonal)")
    if significant(p):
        side = "the mean" if share > 0.5 else "the sampled"
        return text + (f"; the total correlation is more often larger in {side} representation (sign test "
                       f"{format_p(p)}).")
    return text + f"; no clear majority either way (sign test {format_p(p)})."


def describe_paper_comparison(diff: pd.DataFrame, name: str) -> str:
    """Mean and maximum absolute difference between this store's matrix and the paper's (off-diagonal cells)."""
    pairs = pd.Series({(a, b): diff.loc[a, b] for a in diff.index for b in diff.columns if a != b}).dropna()
    if pairs.empty:
        return f"no cell of {name} can be compared with the paper's."
    return (f"the {len(pairs)} cells of {name} that both matrices fill (the diagonal left out) differ from the "
            f"paper's by {_i(pairs.abs().mean())} points of 100·ρ on average (maximum {_i(pairs.abs().max())}).")


def describe_seed_beats(frame: pd.DataFrame) -> str:
    """Mean probability that a run of a worse hyperparameter beats a run of a better one (Fig. 14)."""
    return (f"averaged over every method, dataset and metric, a run with a worse hyperparameter (lower median) beats a "
            f"run with a better one in {_i(frame['p_worse_beats_better'].mean())} % of pairs of seeds.")


def describe_winners(contrasts: pd.DataFrame) -> str:
    """How many (dataset, metric) cells have a method whose models score significantly above the runner-up's
    (``contrasts`` from :func:`analysis.trends.method_contrasts`; Mann-Whitney at 5 %), and which methods those are."""
    ok = contrasts.dropna(subset=["p"])
    wins = ok[ok["p"] < ALPHA]
    text = (f"in {len(wins)} of the {len(ok)} (dataset, metric) cells the leading method (by median) scores "
            f"significantly above the runner-up (Mann–Whitney p < 0.05 over their models); with no real "
            f"differences about {0.05 * len(ok):.1f} cells would pass by chance")
    if len(wins):
        counts = wins["winner"].value_counts()
        text += "; winners: " + ", ".join(f"{label(m)} {int(c)}" for m, c in counts.items())
    return text + "."


def describe_best_strength(contrasts: pd.DataFrame) -> str:
    """How many (dataset, metric, method) cells have hyperparameter values that differ (``contrasts`` from
    :func:`analysis.trends.strength_contrasts`; Kruskal-Wallis at 5 %) and how many distinct best strengths each
    method has among those cells (1 would be a universal rule)."""
    ok = contrasts.dropna(subset=["p"])
    differ = ok[ok["p"] < ALPHA]
    text = (f"in {len(differ)} of the {len(ok)} (method, dataset, metric) cells the hyperparameter values differ "
            f"(Kruskal–Wallis p < 0.05 over every model; about {0.05 * len(ok):.1f} would by chance)")
    if len(differ):
        spread = differ.groupby("method", sort=False)["best_strength"].nunique()
        text += ("; among those, distinct strengths with the highest median: " +
                 ", ".join(f"{label(m)} {int(n)}" for m, n in spread.items()) + " (1 would be a universal rule)")
    return text + "."


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
    """Spearman of ``metric`` with the efficiency ``column`` per dataset, with its p-value over the models."""
    from analysis.significance import spearman_test

    parts = []
    for d in panels:
        part = sub[sub["dataset"] == d]
        rho, p, n = spearman_test(part[metric], part[column])
        if np.isfinite(rho):
            parts.append(f"{label(d)} {_i(rho)} ({format_p(p)}, n = {n})")
    if not parts:
        return f"{label(metric)} and {column} could not be correlated."
    return f"Spearman of {label(metric)} with {column} (100·ρ): " + "; ".join(parts) + "."


def describe_efficiency_correlations(frame: pd.DataFrame) -> str:
    """How many (dataset, metric, predictor) correlations with efficiency, Modularity excluded, are significantly
    positive or negative (each at 5 %, from rho and its number of models)."""
    no_mod = frame[frame["metric"] != "Modularity"].dropna(subset=["rho"])
    p = np.array([spearman_p(r, int(n)) for r, n in zip(no_mod["rho"], no_mod["n_models"])])
    pos = int(((p < ALPHA) & (no_mod["rho"].to_numpy() > 0)).sum())
    neg = int(((p < ALPHA) & (no_mod["rho"].to_numpy() < 0)).sum())
    return (f"excluding Modularity, {pos} of the {len(no_mod)} (dataset, metric, predictor) correlations with "
            f"efficiency are significantly positive and {neg} significantly negative (p < 0.05 each; about "
            f"{0.05 * len(no_mod):.1f} would be by chance).")


def describe_metric_groups(usable, metric: str) -> str | None:
    """Median GBT accuracy at 100 training points of the low and the high ``metric`` group of each dataset."""
    parts = []
    for dataset, g in usable.items():
        at100 = g[(g["predictor"] == "GBT") & (g["size"] == 100)].set_index("group")["median"]
        if len(at100) >= 2:
            parts.append(f"{label(dataset)} {at100.iloc[0]:.2f} → {at100.iloc[-1]:.2f}")
    if not parts:
        return None
    return (f"median GBT accuracy at 100 training points, low → high {label(metric)} group: " + "; ".join(parts)
            + ".")


def describe_run_overview(runs: pd.DataFrame) -> str:
    """Totals of the done runs: runs, datasets, methods, cells, seeds."""
    configs = runs[["dataset", "method", "hparam_value"]].astype(str).drop_duplicates()
    return (f"{len(runs)} finished runs: {runs['dataset'].nunique()} dataset(s), {runs['method'].nunique()} method(s), "
            f"{len(configs)} (dataset, method, hyperparameter) cells, {runs['seed'].nunique()} distinct seed(s).")


def describe_metric_by_config(sub: pd.DataFrame, dataset: str) -> str:
    """The number of MIG scores on ``dataset``, the configuration with the highest median MIG (named only when the
    configurations differ: Kruskal-Wallis over every run of the mean representation, 5 %), and the median of each
    representation."""
    rep = "mean" if "mean" in set(sub["representation"]) else sorted(set(sub["representation"]))[0]
    part = sub[sub["representation"] == rep]
    configs = part["method"].astype(str) + "(" + part["hparam_value"].map("{:g}".format) + ")"
    _h, p, k = kruskal_test(part["value"].to_numpy(dtype=float), configs.to_numpy())
    med = part.groupby(["method", "hparam_value"])["value"].median()
    text = f"{label(dataset)}: {len(sub)} scores"
    if significant(p):
        (m, v) = med.idxmax()
        text += (f"; the configurations differ (Kruskal–Wallis {format_p(p)}), the highest median MIG is "
                 f"{med.max():.3f} for {label(m)} with {v:g}")
    elif k >= 2:
        text += f"; no clear difference between the {k} configurations (Kruskal–Wallis {format_p(p)})"
    if {"mean", "sampled"} <= set(sub["representation"]):
        by_rep = sub.groupby("representation")["value"].median()
        text += (f"; over all runs the median is {by_rep['mean']:.3f} on the mean and {by_rep['sampled']:.3f} "
                 "on the sampled representation")
    return text + "."




def describe_hparam_spread(spread: pd.DataFrame, metric: str) -> str:
    """Fig. 3 right / 14: in how many (dataset, method) cells the hyperparameter values differ (Kruskal-Wallis over
    every model, 5 %), and the seed spread within one value against the spread of the values' medians."""
    ok = spread.dropna(subset=["p"])
    if ok.empty:
        return f"{label(metric)}: no method has two hyperparameter values, so nothing can be compared."
    differ = int((ok["p"] < ALPHA).sum())
    return (f"{label(metric)}: in {differ} of the {len(ok)} (dataset, method) cells the hyperparameter values differ "
            f"(Kruskal–Wallis p < 0.05 over every model; about {0.05 * len(ok):.1f} would by chance); within one "
            f"value the seeds spread over an interquartile range of {ok['seed_iqr'].median():.3g} (median over the "
            f"values and cells), against a median distance of {ok['median_range'].median():.3g} between the highest "
            f"and the lowest value's median.")


def describe_metric_pairs(correlations: pd.DataFrame, dataset: str) -> str:
    """Fig. 11: how many pairs of metrics correlate significantly over the models of ``dataset`` and the range of
    their Spearman rho."""
    ok = correlations.dropna(subset=["rho"])
    if ok.empty:
        return f"{label(dataset)}: no pair of metrics could be correlated."
    pos = int(((ok["p"] < ALPHA) & (ok["rho"] > 0)).sum())
    neg = int(((ok["p"] < ALPHA) & (ok["rho"] < 0)).sum())
    return (f"{label(dataset)} (n = {int(ok['n'].max())} models): {pos} of the {len(ok)} pairs of metrics correlate "
            f"significantly positively and {neg} negatively (Spearman p < 0.05 each); 100·ρ goes from "
            f"{_i(ok['rho'].min())} to {_i(ok['rho'].max())}.")


def describe_efficiency_tests(tests: pd.DataFrame, predictor: str = "LR") -> str:
    """Fig. 20 / 21: how many (dataset, metric) correlations of a predictor's sample efficiency with the metric are
    significant, and their range."""
    ok = tests.dropna(subset=["rho"])
    if ok.empty:
        return f"no metric could be correlated with the {predictor} sample efficiency."
    pos = int(((ok["p"] < ALPHA) & (ok["rho"] > 0)).sum())
    neg = int(((ok["p"] < ALPHA) & (ok["rho"] < 0)).sum())
    return (f"{pos} of the {len(ok)} (dataset, metric) correlations of {predictor} sample efficiency with the metric "
            f"are significantly positive and {neg} significantly negative (Spearman p < 0.05 each; about "
            f"{0.05 * len(ok):.1f} would be by chance); 100·ρ goes from {_i(ok['rho'].min())} to "
            f"{_i(ok['rho'].max())}.")


def _concordance_text(row) -> str:
    """"the seed with the lower sampled TC has the higher MIG in 78 % of 27 seed pairs (95 % interval 60-90 %,
    Holm p = 0.01)" for one row of :func:`analysis.within.seed_selection`."""
    higher = row["concordance"] >= 0.5
    share, low, high = ((row["concordance"], row["ci_low"], row["ci_high"]) if higher else
                        (1 - row["concordance"], 1 - row["ci_high"], 1 - row["ci_low"]))
    return (f"the seed with the {'higher' if higher else 'lower'} {label(row['selector'])} has the higher "
            f"{label(row['target'])} in {_i(share)} % of {int(row['pairs'])} seed pairs (95 % interval {_i(low)}-"
            f"{_i(high)} %, Holm {format_p(row['p_holm'])})")


def describe_seed_selection(frame: pd.DataFrame, unsupervised: tuple[str, ...]) -> str:
    """What picks the better seed of a configuration on this store: the unsupervised scores (``unsupervised``:
    their column names) and the metrics, each a claim only where its Holm-adjusted p-value over the whole table is
    below 0.05."""
    n_conf, n_seeds = frame.attrs.get("configurations"), frame.attrs.get("seeds")
    where = f"Within a configuration ({n_conf} configurations, up to {n_seeds} seeds each): "
    hits = frame[frame["p_holm"] < ALPHA]
    by_score = frame[frame["selector"].isin(unsupervised)]
    score_hits = hits[hits["selector"].isin(unsupervised)]
    if len(score_hits):
        best = score_hits.loc[score_hits["p_holm"].idxmin()]
        first = (f"{len(score_hits)} of {len(by_score)} (unsupervised score, metric) pairs pick the better seed "
                 f"beyond chance; e.g. {_concordance_text(best)}")
    else:
        smallest = by_score["p_holm"].min() if len(by_score) else float("nan")
        first = (f"no unsupervised score is shown to pick the better seed on any metric (smallest Holm-adjusted "
                 f"p = {smallest:.2g} over {len(by_score)} pairs)" if len(by_score) else
                 "the store has no unsupervised scores to choose a seed with")
    pairs = frame[~frame["selector"].isin(unsupervised)]
    pair_hits = hits[~hits["selector"].isin(unsupervised)]
    if len(pair_hits):
        best = pair_hits.loc[pair_hits["p_holm"].idxmin()]
        second = (f"the metrics agree on which seed is better for {len(pair_hits)} of {len(pairs)} metric pairs; "
                  f"e.g. {_concordance_text(best)}")
    elif len(pairs):
        second = (f"no two metrics are shown to agree on which seed is better (smallest Holm-adjusted "
                  f"p = {pairs['p_holm'].min():.2g} over {len(pairs)} pairs)")
    else:
        second = "the store has fewer than two metrics to compare"
    return where + first + "; " + second + "."



# ---- pages 12-14: the analyses of the saved models (dstudy models) ------------------------------------------------

def _num(value: float) -> str:
    """A score for a sentence: three decimals, or two significant digits below 0.01."""
    value = float(value)
    return f"{value:.2g}" if value != 0 and abs(value) < 0.01 else f"{value:.3f}"


def describe_rotation(effects: pd.DataFrame, likelihood: dict, reference: pd.DataFrame | None = None) -> str:
    """Theorem 1 on this store: which metrics the rotation lowers (a direction only where the Holm-adjusted
    Wilcoxon signed-rank p-value is below 0.05), whether the likelihood stayed the same (``likelihood`` from
    :func:`analysis.rotation.likelihood_summary`: "the same" only when every difference is within its tolerance),
    and, for scale, what the rotation does to a perfectly disentangled code (``reference``, from
    :func:`analysis.rotation.reference_rotation`)."""
    parts = []
    if effects is not None and len(effects):
        n = int(effects["models"].max())
        moved = effects[effects["p_holm"] < ALPHA]
        lower = moved[moved["change_median"] < 0]
        higher = moved[moved["change_median"] > 0]
        if len(lower):
            parts.append(f"rotating the latent space lowers {len(lower)} of {len(effects)} metrics (Wilcoxon "
                         f"signed-rank over up to {n} models, Holm): " + "; ".join(
                             f"{label(r.metric)} from {_num(r.mean_median)} to {_num(r.rotated_median)} (median; "
                             f"lower on {_i(r.falls)} % of the models, {format_p(r.p_holm)})"
                             for r in lower.itertuples()))
        if len(higher):
            parts.append("it raises " + ", ".join(f"{label(r.metric)} ({format_p(r.p_holm)})"
                                                  for r in higher.itertuples()))
        rest = effects[~effects["metric"].isin(moved["metric"])]
        if len(rest):
            parts.append(("no clear change" if len(moved) else "no metric changes clearly") + " for " + ", ".join(
                f"{label(r.metric)} (median {_num(r.mean_median)} → {_num(r.rotated_median)}, {format_p(r.p_holm)})"
                for r in rest.itertuples()))
    if likelihood.get("models", 0):
        if likelihood["equal"]:
            parts.append(f"the rotated models have the same IWAE log-likelihood as the trained ones (median "
                         f"{likelihood['median']:.1f} nats per image; largest difference "
                         f"{likelihood['max_abs_difference']:.2g} nats over {likelihood['models']} models, float "
                         f"rounding), as Theorem 1 says")
        else:
            parts.append(f"the rotated models' IWAE log-likelihood differs from the trained ones' by up to "
                         f"{likelihood['max_abs_difference']:.2g} nats ({likelihood['models']} models), more than "
                         f"float rounding: the rotation was not applied consistently")
    if reference is not None and len(reference):
        parts.append("for scale, the same rotation takes a perfectly disentangled code (the dSprites factors "
                     "themselves) " + ", ".join(f"{label(r.metric)} from {_num(r.code)} to {_num(r.rotated)}"
                                               for r in reference.itertuples()))
    if not parts:
        return "No rotated scores or likelihoods to describe."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def describe_udr_selection(frame: pd.DataFrame) -> str:
    """UDR-based selection on this store: "beats random" only for the metrics whose Holm-adjusted permutation
    p-value is below 0.05 (:func:`analysis.udr.udr_selection`)."""
    attrs = frame.attrs
    where = (f"Choosing, among the {attrs.get('configurations')} configurations trained with one seed, the model with "
             f"the highest UDR ({attrs.get('models')} models, {attrs.get('seeds')} seeds): ")
    hits = frame[(frame["p_holm"] < ALPHA) & (frame["rate"] > frame["chance"])]
    if len(hits):
        text = (f"it beats random selection on {len(hits)} of {len(frame)} metrics, better than chance: " + "; ".join(
            f"{label(r.metric)} in {_i(r.rate)} % of trials (95 % interval {_i(r.ci_low)}-{_i(r.ci_high)} %, "
            f"chance {_i(r.chance)} %, Holm {format_p(r.p_holm)})" for r in hits.itertuples()))
    else:
        smallest = frame["p_holm"].min()
        text = (f"UDR is not shown to pick a better model than a random one on any metric (win rates "
                f"{_i(frame['rate'].min())}-{_i(frame['rate'].max())} % against chance "
                f"{_i(frame['chance'].min())}-{_i(frame['chance'].max())} %; smallest Holm-adjusted permutation "
                f"{format_p(smallest)} over {len(frame)} metrics)")
    transfer = frame.dropna(subset=["transfer"])
    if len(transfer):
        text += (f"; choosing with the metric itself on another seed (Table 1, same metric and dataset) wins in "
                 f"{_i(transfer['transfer'].min())}-{_i(transfer['transfer'].max())} %")
    return where + text + "."


def describe_variance_components(frame: pd.DataFrame) -> str:
    """Where the metrics' variance comes from: seeds "differ beyond evaluation noise" only for the rows whose
    Holm-adjusted F-test p-value is below 0.05 (:func:`analysis.replicates.variance_components`)."""
    n_rep = int(frame["replicates"].max())
    start = (f"With {n_rep} evaluations of each model ({int(frame['models'].max())} models, "
             f"{int(frame['configurations'].max())} configurations): ")
    seeds = frame[frame["p_seed_holm"] < ALPHA]
    med_train = frame["training_share"].median()
    if len(seeds):
        text = (f"the seeds of a configuration differ beyond the metric's evaluation noise for {len(seeds)} of "
                f"{len(frame)} metrics (F test, Holm), e.g. " + "; ".join(
                    f"{label(r.metric)}: training noise {_i(r.training_share)} % of the within-configuration "
                    f"variance (95 % interval {_i(r.training_share_low)}-{_i(r.training_share_high)} %, "
                    f"{format_p(r.p_seed_holm)})" for r in seeds.head(3).itertuples()))
    else:
        text = (f"no metric shows a seed effect larger than its evaluation noise (smallest Holm-adjusted "
                f"F-test {format_p(frame['p_seed_holm'].min())}); what looks like a seed effect may be the noise "
                f"of scoring each model once")
    noisy = frame[frame["share_eval_low"] > 0.5]
    text += (f"; the median share of the within-configuration variance due to training noise is {_i(med_train)} %"
             if pd.notna(med_train) else "")
    if len(noisy):
        text += ("; evaluation noise is more than half of all the variance (the 95 % interval of its share above "
                 "50 %) for " + ", ".join(label(m) for m in noisy["metric"]))
    return start + text + "."


__all__ = [
    "describe_metric_agreement", "describe_dataset_agreement", "describe_downstream", "describe_violins",
    "curve_results", "describe_curves", "curve_table", "describe_curve_table", "violin_table",
    "describe_violin_table", "describe_variance", "describe_unsupervised", "describe_tc_scatter",
    "describe_paper_comparison", "describe_seed_beats", "describe_winners", "describe_best_strength",
    "describe_transfer", "describe_transfer_sensitivity", "describe_efficiency_scatter",
    "describe_efficiency_correlations", "describe_metric_groups", "describe_run_overview",
    "describe_metric_by_config", "describe_hparam_spread", "describe_metric_pairs", "describe_efficiency_tests",
    "describe_seed_selection", "describe_rotation", "describe_udr_selection", "describe_variance_components",
]
