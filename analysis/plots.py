"""Figures in the paper's style and the sentences under them, for the report's notebooks (no torch).

Three kinds of helpers:

* figure builders that return a matplotlib ``Figure`` (testable without a kernel): :func:`rho_heatmap_grid`
  (annotated heatmaps of 100*rho, Fig. 2/4/5), :func:`violin_grid` (Fig. 3/13), :func:`curve_grid` (medians
  against regularisation strength, Fig. 1/4/15), :func:`percent_heatmap` (Table 5 as a heatmap);
* ``describe_*`` functions: numbers in, one sentence out, saying what a figure shows on *this* store;
* ``show_*`` functions used by the notebooks: draw, display, and put the sentence under the figure; when the store
  lacks what a figure needs (a result frame's ``attrs['reason']``), they display what is missing instead.

Correlations and R^2 come in as fractions (the analysis convention) and are shown as 100*rho / percent.
"""
from __future__ import annotations

import html
import importlib
import math
from collections.abc import Callable, Mapping

import matplotlib

import numpy as np
import pandas as pd

DATASET_LABELS = {"dsprites_full": "dSprites", "color_dsprites": "Color-dSprites", "noisy_dsprites": "Noisy-dSprites",
                  "scream_dsprites": "Scream-dSprites", "smallnorb": "SmallNORB", "cars3d": "Cars3D",
                  "shapes3d": "Shapes3D"}
METHOD_LABELS = {"beta_vae": "β-VAE", "factor_vae": "FactorVAE", "dip_vae_i": "DIP-VAE-I", "dip_vae_ii": "DIP-VAE-II",
                 "beta_tc_vae": "β-TCVAE", "annealed_vae": "AnnealedVAE"}
METRIC_SHORT = {"BetaVAE Score": "BetaVAE", "FactorVAE Score": "FactorVAE", "MIG": "MIG",
                "DCI Disentanglement": "DCI", "Modularity": "Modularity", "SAP": "SAP"}
METHOD_COLORS = dict(zip(METHOD_LABELS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")))


def label(name) -> str:
    """Display label of a dataset, method or metric name (the name itself when unknown)."""
    name = str(name)
    return DATASET_LABELS.get(name) or METHOD_LABELS.get(name) or METRIC_SHORT.get(name) or name


def setup() -> None:
    """Figure style for the report: seaborn whitegrid, compact fonts, PNG output at a readable resolution."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    matplotlib.rcParams.update({"figure.dpi": 90, "savefig.bbox": "tight", "axes.titleweight": "bold"})


# ---- display helpers (notebook side) ----------------------------------------------------------------------------

def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def note(text: str) -> None:
    """Display a sentence about the store under a figure or table."""
    from IPython.display import HTML

    _display(HTML(f"<p style='margin:.3em 0 1.2em 0;font-size:1.02em'><b>On this store:</b> {html.escape(text)}</p>"))


def missing(text: str) -> None:
    """Display what this store (or this installation) lacks for a figure, instead of the figure."""
    from IPython.display import HTML

    _display(HTML("<div style='border-left:4px solid #e0a800;background:#fff8e1;padding:.4em 1em;margin:.6em 0'>"
                  f"<b>Not shown:</b> {html.escape(text)}</div>"))


def need(module: str, name: str) -> Callable | None:
    """``module.name`` when it can be imported, else None after displaying what is missing."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        missing(f"{module}.{name} is not available in this installation ({exc}), so this part cannot be computed.")
        return None


def reason(frame) -> str | None:
    """``attrs['reason']`` of an analysis result (why it is incomplete), or None."""
    return getattr(frame, "attrs", {}).get("reason") if frame is not None else None


def show_table(frame: pd.DataFrame, percent: bool = False, digits: int = 3, caption: str | None = None) -> None:
    """Display ``frame`` as an HTML table; fractions as percentages with ``percent``."""
    shown = frame.copy()
    if percent:
        numeric = shown.select_dtypes("number").columns
        shown[numeric] = shown[numeric] * 100
        digits = 1
    shown = shown.rename(index=lambda x: label(x) if isinstance(x, str) else x,
                         columns=lambda x: label(x) if isinstance(x, str) else x)
    styler = shown.style.format(precision=digits, na_rep="–")
    if caption:
        styler = styler.set_caption(caption)
    _display(styler)


def show_figure(fig) -> None:
    """Display a matplotlib figure once and close it (so the inline backend does not draw it twice)."""
    import matplotlib.pyplot as plt

    _display(fig)
    plt.close(fig)


# ---- figure builders --------------------------------------------------------------------------------------------

def _grid(n: int, ncols: int, width: float, height: float):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _layout(fig, left: float = 0.7, bottom: float = 0.6, top: float = 0.4, right: float = 0.15,
            wspace: float = 0.35, hspace: float = 0.6) -> None:
    """Fixed margins (in inches) and spacing instead of ``tight_layout``: the grid pages have dozens of axes, and
    each ``tight_layout`` is a full extra draw of the figure (the inline backend already crops to the content)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=min(0.4, left / width), right=1 - min(0.2, right / width),
                        bottom=min(0.4, bottom / height), top=1 - min(0.3, top / height),
                        wspace=wspace, hspace=hspace)


def rho_heatmap(matrix: pd.DataFrame, ax, title: str | None = None) -> None:
    """Annotated heatmap of 100*rho (integers, as the paper printed them); NaN cells stay blank."""
    import seaborn as sns

    values = (matrix.astype(float) * 100).round() + 0.0      # + 0.0 turns -0 into 0
    values = values.rename(index=label, columns=label)
    sns.heatmap(values, ax=ax, vmin=-100, vmax=100, center=0, cmap="RdBu_r", annot=True, fmt=".0f",
                cbar=False, square=True, linewidths=0.5, annot_kws={"size": 8})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    if title:
        ax.set_title(title)


def rho_heatmap_grid(matrices: Mapping[str, pd.DataFrame], ncols: int = 3, size: float = 3.6):
    """One annotated 100*rho heatmap per entry (title = label of the key). Returns the Figure.

    Panels are ``size`` inches on their longer side and keep the matrix's aspect ratio (6 x 10 downstream
    matrices are wide and flat, so the grid has no empty bands between rows).
    """
    shapes = [m.shape for m in matrices.values()] or [(1, 1)]
    rows, cols = max(r for r, _ in shapes), max(c for _, c in shapes)
    cell = size / max(rows, cols)
    fig, axes = _grid(len(matrices), ncols, cell * cols + 1.2, cell * rows + 1.1)
    for ax, (name, matrix) in zip(axes, matrices.items()):
        rho_heatmap(matrix, ax, label(name))
    fig.tight_layout()
    return fig


def percent_heatmap(frame: pd.DataFrame, ax, title: str | None = None, vmax: float = 100) -> None:
    """Annotated heatmap of fractions shown as integer percentages (Table 5 style)."""
    import seaborn as sns

    values = ((frame.astype(float) * 100).round() + 0.0).rename(index=label, columns=label)
    sns.heatmap(values, ax=ax, vmin=0, vmax=vmax, cmap="viridis", annot=True, fmt=".0f", cbar=False,
                linewidths=0.5, annot_kws={"size": 8})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    if title:
        ax.set_title(title)


def violin_grid(long: pd.DataFrame, panels: list[str], panel_col: str, x: str = "method", y: str = "value",
                ncols: int = 4, ylabel: str = "score"):
    """Violin plots of ``y`` per ``x`` (methods in the figures' order), one panel per value of ``panel_col``.

    Drawn with matplotlib's ``violinplot`` (Gaussian KDE, 60 points, cut at the data range) with the median and the
    quartiles marked: a paper-scale page draws 42 panels of 300 models each, which seaborn makes several times
    slower.
    """
    fig, axes = _grid(len(panels), ncols, 3.4, 3.0)
    for ax, panel in zip(axes, panels):
        sub = long[long[panel_col].astype(str) == str(panel)]
        groups = sub.groupby(sub[x].astype(str))[y]
        order = [m for m in METHOD_LABELS if m in groups.groups] + sorted(set(groups.groups) - set(METHOD_LABELS))
        data = [groups.get_group(m).dropna().to_numpy(dtype=float) for m in order]
        keep = [i for i, d in enumerate(data) if len(d)]
        positions = np.arange(len(order))
        varied = [i for i in keep if np.ptp(data[i]) > 0]
        if varied:
            parts = ax.violinplot([data[i] for i in varied], positions=positions[varied], widths=0.8,
                                  showextrema=False, points=60)
            for body, i in zip(parts["bodies"], varied):
                body.set_facecolor(METHOD_COLORS.get(order[i], "grey"))
                body.set_edgecolor("black")
                body.set_linewidth(0.6)
                body.set_alpha(0.85)
        for i in keep:
            q25, q50, q75 = np.percentile(data[i], [25, 50, 75])
            ax.hlines([q25, q75], i - 0.2, i + 0.2, color="black", lw=0.6, linestyles="dashed")
            ax.hlines(q50, i - 0.3, i + 0.3, color="black", lw=1.2)
        ax.set_xticks(positions)
        ax.set_xticklabels([label(m) for m in order], rotation=45, ha="right")
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_title(label(panel))
    _layout(fig, bottom=0.9, hspace=0.75)
    return fig


def curve_grid(curves: pd.DataFrame, panels: list[str], panel_col: str, y: str = "median",
               x: str = "strength", ncols: int = 4, ylabel: str = "median over seeds", log: bool = False,
               band: tuple[str, str] | None = None):
    """Lines of ``y`` against regularisation strength, one line per method, one panel per ``panel_col`` value."""
    fig, axes = _grid(len(panels), ncols, 3.4, 2.8)
    for ax, panel in zip(axes, panels):
        sub = curves[curves[panel_col].astype(str) == str(panel)]
        for method in [m for m in METHOD_LABELS if m in set(sub["method"].astype(str))]:
            line = sub[sub["method"].astype(str) == method].sort_values(x)
            ax.plot(line[x], line[y], marker="o", ms=3, lw=1.4, color=METHOD_COLORS[method], label=label(method))
            if band and band[0] in line and line[band[0]].notna().any():
                ax.fill_between(line[x], line[band[0]], line[band[1]], color=METHOD_COLORS[method], alpha=0.12)
        if log:
            ax.set_yscale("log")
        ax.set_title(label(panel))
        ax.set_xlabel("regularisation strength")
        ax.set_ylabel(ylabel)
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=min(6, len(labels)), frameon=False,
                       bbox_to_anchor=(0.5, 1.04))
    _layout(fig, bottom=0.55, hspace=0.65)
    return fig


# ---- sentences --------------------------------------------------------------------------------------------------

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
    """The unweighted means of a variance-explained table against the paper's 37 % / 59 %."""
    means = r2.attrs.get("means") or {c: r2[c].mean() for c in ("method", "method_x_hparam") if c in r2}
    a, b = means.get("method", float("nan")), means.get("method_x_hparam", float("nan"))
    n = int(r2["method"].notna().sum()) if "method" in r2 else 0
    if not n:
        return "No (dataset, metric) cell had enough models to fit."
    return (f"averaged over the {n} (dataset, metric) cells, the objective explains {_i(a)} % of the metric "
            f"variance and objective × regularisation strength {_i(b)} % (the paper: 37 % and 59 %); the "
            f"remaining {_i((1 - b))} % is credited to the random seed.")


# ---- page sections (notebook cells call these) -------------------------------------------------------------------

def show_matrices(matrices: Mapping[str, pd.DataFrame], describe: Callable[[str, pd.DataFrame], str] | None = None,
                  ncols: int = 3) -> None:
    """Heatmaps of 100*rho for every measurable matrix, one sentence each below; missing ones are listed."""
    usable = {}
    for name, matrix in matrices.items():
        if matrix is None or matrix.size == 0 or not np.isfinite(matrix.to_numpy(dtype=float)).any():
            missing(f"{label(name)}: {reason(matrix) or 'nothing to correlate'}.")
        else:
            usable[name] = matrix
    if not usable:
        return
    show_figure(rho_heatmap_grid(usable, ncols=ncols))
    for name, matrix in usable.items():
        if reason(matrix):
            missing(f"{label(name)}: {reason(matrix)}.")
        if describe is not None:
            note(describe(name, matrix))


def show_violins(long: pd.DataFrame, panels: list[str], panel_col: str, what: str, ncols: int = 4) -> None:
    """Violins per method for every panel present in ``long``, with one sentence per panel."""
    if long is None or long.empty:
        missing(reason(long) or f"no {what} scores in this store.")
        return
    present = [p for p in panels if (long[panel_col].astype(str) == str(p)).any()]
    absent = [p for p in panels if p not in present]
    if absent:
        missing(f"no {what} scores for {', '.join(label(p) for p in absent)}.")
    if not present:
        return
    show_figure(violin_grid(long, present, panel_col, ncols=ncols, ylabel=what))
    for panel in present:
        note(describe_violins(long, panel, panel_col, what))


def show_curves(curves: pd.DataFrame, panels: list[str], panel_col: str, y: str = "median", what: str = "",
                log: bool = False, ncols: int = 4, band: tuple[str, str] | None = None, peak: bool = True) -> None:
    """Median curves against regularisation strength, one panel each, with one sentence per panel (``peak``: name
    the strength of each method's highest median, for scores where higher is better)."""
    if curves is None or curves.empty or y not in curves or not curves[y].notna().any():
        missing(reason(curves) or f"no {what or y} values in this store.")
        return
    present = [p for p in panels if (curves[panel_col].astype(str) == str(p)).any()]
    absent = [p for p in panels if p not in present]
    if absent:
        missing(f"no {what or y} values for {', '.join(label(p) for p in absent)}.")
    if not present:
        return
    show_figure(curve_grid(curves, present, panel_col, y=y, ncols=ncols, ylabel=what or y, log=log, band=band))
    for panel in present:
        note(describe_curves(curves, panel, panel_col, y=y, what=what, peak=peak))


# ---- the paper's printed numbers shown next to this store's (spec/analysis.md, [fig-read, exact]) ---------------

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


# ---- more page sections ------------------------------------------------------------------------------------------

def md(text: str) -> None:
    """Display Markdown (a sub-heading inside a loop)."""
    from IPython.display import Markdown

    _display(Markdown(text))


def datasets_of(frame: pd.DataFrame) -> list[str]:
    """Datasets present in a model table or tidy frame, in the study's order."""
    present = set(frame["dataset"].astype(str)) if len(frame) else set()
    return [d for d in DATASET_LABELS if d in present] + sorted(present - set(DATASET_LABELS))


def metrics_of(table: pd.DataFrame) -> list[str]:
    """Headline metrics (paper names) with at least one score in the model table, in the paper's order."""
    return [m for m in METRIC_SHORT if m in table.columns and table[m].notna().any()]


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
    configs = runs[["dataset", "method", "hparam_value"]].astype(str).drop_duplicates()
    note(f"{len(runs)} finished runs: {runs['dataset'].nunique()} dataset(s), {runs['method'].nunique()} method(s), "
         f"{len(configs)} (dataset, method, hyperparameter) cells, {runs['seed'].nunique()} distinct seed(s).")


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
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = metric_by_config(scores, metric, key)
    long = long[long["dataset"].isin(datasets)]
    if long.empty:
        missing(f"the store has no {metric} scores (key {key}).")
        return
    show_table(config_median_table(long), caption=f"median {key} over seeds, per hyperparameter value")
    panels = [d for d in datasets if d in set(long["dataset"])]
    n_configs = long[["method", "hparam_value"]].drop_duplicates().shape[0]
    wide = n_configs > 12
    fig, axes = _grid(len(panels), 1 if wide else 2, 13.0 if wide else 6.5, 3.3)
    for ax, dataset in zip(axes, panels):
        sub = long[long["dataset"] == dataset].copy()
        methods = [m for m in METHOD_LABELS if m in set(sub["method"])] + sorted(set(sub["method"]) - set(METHOD_LABELS))
        sub["configuration"] = sub["method"].map(label) + "\n" + sub["hparam_value"].map("{:g}".format)
        order = (sub.assign(_m=sub["method"].map({m: i for i, m in enumerate(methods)}))
                 .sort_values(["_m", "hparam_value"])["configuration"].drop_duplicates().tolist())
        if sub.groupby(["configuration", "representation"]).size().max() <= 10:   # few seeds: every run
            sns.stripplot(data=sub, x="configuration", y="value", hue="representation", order=order, dodge=True,
                          ax=ax, size=3.5, alpha=0.7, jitter=0.15)
            sns.pointplot(data=sub, x="configuration", y="value", hue="representation", order=order, dodge=0.4,
                          estimator="median", errorbar=None, linestyle="none", markers="_", markersize=14,
                          ax=ax, legend=False, palette="dark")
        else:                                          # many seeds: median and interquartile range per config
            stats = sub.groupby(["configuration", "representation"])["value"].quantile([0.25, 0.5, 0.75])
            stats = stats.unstack()
            reps = sorted(set(sub["representation"]))
            for k, rep in enumerate(reps):
                part = stats.xs(rep, level="representation").reindex(order)
                xs = np.arange(len(order)) + (k - (len(reps) - 1) / 2) * 0.3
                ax.errorbar(xs, part[0.5], yerr=[part[0.5] - part[0.25], part[0.75] - part[0.5]], fmt="o", ms=3,
                            lw=1, capsize=2, label=rep)
            ax.set_xticks(np.arange(len(order)))
            ax.set_xticklabels(order)
            ax.legend(title="representation", fontsize=7)
        ax.set_title(label(dataset))
        ax.set_xlabel("")
        ax.set_ylabel(f"{key} (MIG)" if metric == "mig" else key)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    show_figure(fig)
    for dataset in panels:
        sub = long[long["dataset"] == dataset]
        med = sub.groupby(["method", "hparam_value", "representation"])["value"].median()
        best = med.xs("mean", level="representation") if "mean" in set(sub["representation"]) else med.droplevel(2)
        (m, v) = best.idxmax()
        text = (f"{label(dataset)}: {len(sub)} scores; the highest median MIG is {best.max():.3f} for {label(m)} "
                f"with {v:g}")
        if {"mean", "sampled"} <= set(sub["representation"]):
            by_rep = sub.groupby("representation")["value"].median()
            text += (f"; over all runs the median is {by_rep['mean']:.3f} on the mean and {by_rep['sampled']:.3f} "
                     "on the sampled representation")
        note(text + ".")


def show_metric_overview(table: pd.DataFrame, datasets: list[str], metrics: list[str]) -> None:
    """Median and interquartile range of each headline metric per dataset (mean representation)."""
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
    fig, axes = _grid(len(panels), 4, 3.2, 3.0)
    for ax, dataset in zip(axes, panels):
        part = sub[sub["dataset"] == dataset]
        for method in [m for m in METHOD_LABELS if (part["method"] == m).any()]:
            pts = part[part["method"] == method]
            ax.scatter(pts["tc_sampled"], pts["tc_mean"], s=5, alpha=0.5, color=METHOD_COLORS[method],
                       label=label(method))
        lo = min(part["tc_sampled"].min(), part["tc_mean"].min())
        hi = max(part["tc_sampled"].max(), part["tc_mean"].max())
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("TC (sampled)")
        ax.set_ylabel("TC (mean)")
        ax.set_title(label(dataset))
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="upper center", ncol=6, frameon=False, bbox_to_anchor=(0.5, 1.04), markerscale=3)
    _layout(fig, bottom=0.55, hspace=0.65)
    show_figure(fig)
    share = float((sub["tc_mean"] > sub["tc_sampled"]).mean())
    note(f"{_i(share)} % of the {len(sub)} models have a larger total correlation in the mean than in the "
         "sampled representation (points above the dashed diagonal).")


def show_paper_comparison(mine: pd.DataFrame, paper: pd.DataFrame, name: str) -> None:
    """This store's matrix, the paper's, and their difference (all as 100*rho), with the mean absolute difference."""
    if mine is None or not np.isfinite(mine.to_numpy(dtype=float)).any():
        missing(f"{name}: {reason(mine) or 'not in this store'}, so there is nothing to compare with the paper.")
        return
    mine = mine.reindex(index=paper.index, columns=paper.columns).astype(float)
    diff = mine - paper
    show_figure(rho_heatmap_grid({f"{name}, this store": mine, f"{name}, paper": paper,
                                  "this store − paper": diff}, ncols=3, size=4.2))
    pairs = pd.Series({(a, b): diff.loc[a, b] for a in diff.index for b in diff.columns if a != b}).dropna()
    note(f"the cells of {name} differ from the paper's by {_i(pairs.abs().mean())} points of 100·ρ on "
         f"average (largest: {_i(pairs.abs().max())}).")


def describe_unsupervised(dataset: str, matrix: pd.DataFrame) -> str:
    """Range and sign of the unsupervised-score correlations on one dataset."""
    values = matrix.stack().dropna()
    if values.empty:
        return f"{label(dataset)}: nothing could be correlated."
    (row, col) = values.abs().idxmax()
    return (f"{label(dataset)}: correlations range from {_i(values.min())} to {_i(values.max())}; "
            f"{int((values > 0).sum())} of {len(values)} are positive; the strongest is {row} vs {label(col)} "
            f"({_i(values[(row, col)])}).")


def show_variance(r2: pd.DataFrame) -> None:
    """Table 5 as two heatmaps (objective; objective x strength, in %) with the paper's means in the sentence."""
    if r2 is None or "method" not in r2 or not r2["method"].notna().any():
        missing(reason(r2) or "no (dataset, metric) cell could be fitted.")
        return
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * r2.index.get_level_values(0).nunique() + 2.2))
    for ax, column, title in zip(axes, ("method", "method_x_hparam"),
                                 ("(a) objective", "(b) objective × regularisation strength")):
        layout = r2[column].unstack("metric").reindex(columns=[m for m in METRIC_SHORT if m in set(
            r2.index.get_level_values("metric"))])
        layout = layout.reindex([d for d in DATASET_LABELS if d in layout.index] +
                                [d for d in layout.index if d not in DATASET_LABELS])
        percent_heatmap(layout, ax, f"% variance explained: {title}")
    fig.tight_layout()
    show_figure(fig)
    note(describe_variance(r2))


def show_seed_beats(frame: pd.DataFrame) -> None:
    """Mean probability (per dataset x metric, averaged over methods) that a worse configuration's run wins."""
    if frame is None or frame.empty:
        missing(reason(frame) or "no method has two hyperparameter values with scores.")
        return
    pivot = frame.groupby(["dataset", "metric"], sort=False)["p_worse_beats_better"].mean().unstack("metric")
    pivot = pivot.reindex(columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot, percent=True, caption="% of run pairs where the worse hyperparameter's run scores higher")
    note(f"averaged over every method, dataset and metric, a run with a worse hyperparameter (lower median) beats a "
         f"run with a better one in {_i(frame['p_worse_beats_better'].mean())} % of pairs of seeds.")


def show_winners(frame: pd.DataFrame) -> None:
    """The best method by median per (dataset, metric) and whether its interquartile range overlaps the runner-up's."""
    if frame is None or frame.empty:
        missing(reason(frame) or "fewer than two methods in this store.")
        return
    pivot = frame.assign(winner=frame["winner"].map(label)).pivot(index="dataset", columns="metric", values="winner")
    pivot = pivot.reindex(columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot, caption="method with the highest median score")
    counts = frame["winner"].value_counts()
    note(f"{counts.size} different methods win at least one of the {len(frame)} (dataset, metric) cells "
         f"(most often {label(counts.index[0])}, {counts.iloc[0]} cells); the winner's interquartile range overlaps "
         f"the runner-up's in {int(frame['iqr_overlap'].sum())} of them.")


def show_best_strength(frame: pd.DataFrame) -> None:
    """Best regularisation strength per method, dataset and metric, and how often it agrees across cells."""
    if frame is None or frame.empty:
        missing(reason(frame) or "no method has two or more hyperparameter values.")
        return
    pivot = frame.pivot_table(index=["method", "dataset"], columns="metric", values="best_strength", aggfunc="first")
    pivot = pivot.reindex(columns=[m for m in METRIC_SHORT if m in pivot.columns])
    show_table(pivot.rename(index=label), digits=1, caption="strength (0 = weakest, 1 = strongest) with the best median")
    spread = frame.groupby("method")["best_strength"].agg(lambda s: s.nunique())
    note("distinct best strengths across the (dataset, metric) cells: " +
         ", ".join(f"{label(m)} {int(n)}" for m, n in spread.items()) + " (1 would be a universal rule).")


def show_config_medians(medians: Mapping[str, pd.DataFrame]) -> None:
    """Scatter of every configuration's median score on dSprites against the same on each other dataset (Fig. 18)."""
    usable = {m: f for m, f in medians.items() if f is not None and "dsprites_full" in f.columns and f.shape[1] > 1}
    if not usable:
        missing("needs dSprites and at least one other dataset.")
        return
    others = [d for d in DATASET_LABELS if any(d in f.columns for f in usable.values()) and d != "dsprites_full"]
    fig, axes = _grid(len(usable) * len(others), len(others), 2.4, 2.4)
    axes = iter(axes)
    for metric, frame in usable.items():
        for dataset in others:
            ax = next(axes)
            if dataset in frame.columns:
                methods = frame.index.get_level_values("method").astype(str)
                ax.scatter(frame["dsprites_full"], frame[dataset], s=10,
                           c=[METHOD_COLORS.get(m, "grey") for m in methods])
            ax.set_title(f"{label(metric)}: {label(dataset)}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.supxlabel("median on dSprites")
    _layout(fig, left=0.5, bottom=0.6, wspace=0.3, hspace=0.55)
    show_figure(fig)
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
    ok = intervals.dropna(subset=["rate"])
    above = ok[ok["excess_low"] > 0]
    same = intervals.loc[("same_metric", "same_dataset")]
    note(f"{len(above)} of {len(ok)} cells beat chance (the 95 % interval of rate - chance above 0); the same-metric, "
         f"same-dataset cell is {100 * same['rate']:.1f} % (paper 80.7 %).")


def show_transfer_sensitivity(frame: pd.DataFrame) -> None:
    """The four rates under each combination of the open choices, as a table of percentages."""
    if frame is None or frame.empty or not frame["rate"].notna().any():
        missing(reason(frame) or "the store cannot fill any cell of the transfer table.")
        return
    pivot = frame.pivot_table(index=["target_seed", "random_seed", "random_may_match"],
                              columns=["metric_cell", "dataset_cell"], values="rate", aggfunc="first")
    pivot = pivot.dropna(axis=1, how="all")
    show_table(pivot, percent=True, caption="win rate (%) under each reading of the procedure")
    spread = pivot.max() - pivot.min()
    note(f"across the readings the rates move by at most {100 * spread.max():.1f} points.")


def show_efficiency_scatter(table: pd.DataFrame, datasets: list[str], metric: str, column: str) -> None:
    """Efficiency against a metric, one point per model coloured by method, one panel per dataset."""
    sub = table[table["dataset"].isin(datasets)].dropna(subset=[metric, column]) \
        if metric in table and column in table else table.iloc[0:0]
    if sub.empty:
        missing(f"the store has no {column} (downstream accuracies at 100 and 10,000 training points) together with "
                f"{metric}.")
        return
    panels = [d for d in datasets if (sub["dataset"] == d).any()]
    fig, axes = _grid(len(panels), 4, 3.2, 3.0)
    for ax, dataset in zip(axes, panels):
        part = sub[sub["dataset"] == dataset]
        for method in [m for m in METHOD_LABELS if (part["method"] == m).any()]:
            pts = part[part["method"] == method]
            ax.scatter(pts[metric], pts[column], s=5, alpha=0.5, color=METHOD_COLORS[method], label=label(method))
        ax.set_title(label(dataset))
        ax.set_xlabel(label(metric))
        ax.set_ylabel(column)
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="upper center", ncol=6, frameon=False, bbox_to_anchor=(0.5, 1.04), markerscale=3)
    _layout(fig, bottom=0.55, hspace=0.65)
    show_figure(fig)
    rhos = {d: sub[sub["dataset"] == d][[metric, column]].corr(method="spearman").iloc[0, 1] for d in panels}
    note(f"Spearman of {label(metric)} with {column}: " +
         ", ".join(f"{label(d)} {_i(r)}" for d, r in rhos.items() if pd.notna(r)) + " (100·ρ).")


def show_efficiency_correlations(frame: pd.DataFrame) -> None:
    """Heatmap-free table of Spearman(metric, efficiency) per dataset and predictor."""
    if frame is None or frame.empty or not frame["rho"].notna().any():
        missing(reason(frame) or "no downstream accuracies in this store.")
        return
    pivot = frame.pivot_table(index=["predictor", "metric"], columns="dataset", values="rho", aggfunc="first")
    pivot = pivot.reindex(columns=[d for d in DATASET_LABELS if d in pivot.columns])
    show_table((pivot * 100).round(0), digits=0, caption="100·ρ between the metric and sample efficiency")
    no_mod = frame[frame["metric"] != "Modularity"]["rho"].dropna()
    note(f"excluding Modularity, {int((no_mod > 0.3).sum())} of {len(no_mod)} (dataset, metric, predictor) "
         f"correlations with efficiency exceed 30 and {int((no_mod < -0.3).sum())} are below −30.")


def show_metric_groups(groups: Mapping[str, pd.DataFrame], metric: str) -> None:
    """Median downstream accuracy against training size for low / medium / high ``metric`` groups (Fig. 22/23)."""
    usable = {d: g for d, g in groups.items() if g is not None and not g.empty}
    for d in groups:
        if d not in usable:
            missing(f"{label(d)}: {reason(groups[d]) or 'no downstream accuracies'}.")
    if not usable:
        return
    fig, axes = _grid(len(usable) * 2, 4, 3.0, 2.6)
    axes = iter(axes)
    names = {0: "low", 1: "medium", 2: "high"}
    for dataset, g in usable.items():
        for predictor in ("LR", "GBT"):
            ax = next(axes)
            part = g[g["predictor"] == predictor]
            for group, line in part.groupby("group"):
                ax.plot(line["size"], line["median"], marker="o", ms=3, label=f"{names.get(group, group)} {label(metric)}")
            ax.set_xscale("log")
            ax.set_title(f"{label(dataset)}, {predictor}", fontsize=9)
            ax.set_xlabel("training points")
            ax.set_ylabel("test accuracy")
    first = fig.axes[0]
    handles, labels_ = first.get_legend_handles_labels()
    fig.legend(handles, labels_, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1.04))
    _layout(fig, bottom=0.55, hspace=0.7)
    show_figure(fig)
    parts = []
    for dataset, g in usable.items():
        at100 = g[(g["predictor"] == "GBT") & (g["size"] == 100)].set_index("group")["median"]
        if len(at100) >= 2:
            parts.append(f"{label(dataset)} {at100.iloc[0]:.2f} → {at100.iloc[-1]:.2f}")
    if parts:
        note(f"median GBT accuracy at 100 training points, lowest → highest {label(metric)} group: " + "; ".join(parts) + ".")
