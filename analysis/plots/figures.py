"""Matplotlib figure builders of the report: frames in, a ``Figure`` out (no IPython, testable without a kernel).

Correlations and R^2 come in as fractions (the analysis convention) and are drawn as 100*rho / percent. Every
builder returns the Figure without displaying it; :func:`analysis.plots.style.show_figure` displays and closes it.

Legibility rules every builder follows on the report's ~1,100 px page: a figure is at most :data:`PAGE_WIDTH`
inches wide (so it is never scaled down), text is at least :data:`~analysis.plots.style.MIN_FONT` points, long tick
labels are wrapped or rotated so they do not overlap, a legend shared by the panels sits above them (never on the
data), small multiples are titled with their dataset or metric, and log axes are labelled 0.01, 0.02, 0.05 ...
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.plots.style import (
    DATASET_LABELS, METHOD_COLORS, METRIC_SHORT, MIN_FONT, label, method_order, wrapped,
)

#: widest figure in inches: at 90 dpi it fills the ~1,100 px report page without being scaled down
PAGE_WIDTH = 12.0
#: height in inches reserved above the panels for a shared legend
LEGEND_SPACE = 0.45
_MARGIN_L, _MARGIN_R = 0.75, 0.2


def _grid(n: int, ncols: int, width: float, height: float, sharey: bool = False):
    """``n`` panels in rows of at most ``ncols``, each ``width`` x ``height`` inches, the row at most
    :data:`PAGE_WIDTH` wide (panels shrink to fit). Unused axes are hidden. Returns (figure, list of axes)."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    width = min(width, (PAGE_WIDTH - _MARGIN_L - _MARGIN_R) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + _MARGIN_L + _MARGIN_R, height * nrows),
                             squeeze=False, sharey=sharey)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _layout(fig, left: float = _MARGIN_L, bottom: float = 0.65, top: float = 0.35, right: float = _MARGIN_R,
            wspace: float = 0.45, hspace: float = 0.75, legend: bool = False) -> None:
    """Fixed margins (inches) and spacing instead of ``tight_layout`` (each ``tight_layout`` is a full extra draw of
    a figure with dozens of axes). ``legend``: reserve :data:`LEGEND_SPACE` above the panels for a shared legend."""
    width, height = fig.get_size_inches()
    top = top + (LEGEND_SPACE if legend else 0.0)
    fig.subplots_adjust(left=min(0.45, left / width), right=1 - min(0.2, right / width),
                        bottom=min(0.45, bottom / height), top=1 - min(0.45, top / height),
                        wspace=wspace, hspace=hspace)


def _shared_legend(fig, handles, labels, ncol: int | None = None, markerscale: float = 1.0) -> None:
    """One legend for all panels, centred in the space :func:`_layout` reserved above them (off the data)."""
    if not handles:
        return
    width, height = fig.get_size_inches()
    longest = max(len(str(t)) for t in labels)
    fits = max(1, int(width / (0.5 + 0.085 * longest)))
    fig.legend(handles, labels, loc="upper center", ncol=ncol or min(6, len(labels), fits), frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.02 / height), fontsize=MIN_FONT + 0.5, markerscale=markerscale,
               handlelength=1.6, columnspacing=1.2)


def _method_handles(methods: Sequence[str], marker: str | None = "o", line: bool = True):
    """Legend handles and labels for ``methods`` in their colours (a line with a marker, or a marker alone)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=METHOD_COLORS.get(m, "grey"), marker=marker, ms=5, lw=1.6 if line else 0)
               for m in methods]
    return handles, [label(m) for m in methods]


def log_axis(ax, axis: str = "y") -> None:
    """Make ``axis`` logarithmic with plain tick labels (0.01, 0.02, 0.05, 0.1 ...), never ``2x10^-2``: ticks at 1,
    2 and 5 times the powers of ten (every integer multiple when the data span less than a decade)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = getattr(ax, f"get_{axis}lim")()
    span = math.log10(hi / lo) if lo > 0 and hi > lo else 3.0
    subs = np.arange(1.0, 10.0) if span < 1 else (1.0, 2.0, 5.0) if span < 2 else (1.0,)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _category_ticks(ax, names: Sequence[str], width: int = 10, rotate: bool | None = None) -> None:
    """Categorical x ticks with the display labels of ``names``, wrapped at ``width`` characters; rotated by 40
    degrees (anchored at their end, so they never overlap) when there are more than 4 or they are long."""
    ax.set_xticks(np.arange(len(names)))
    texts = [wrapped(n, width) for n in names]
    if rotate is None:
        rotate = len(names) > 4 or any(len(t) > 8 for t in texts)
    if rotate:
        ax.set_xticklabels([label(n) for n in names], rotation=40, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(texts)


# ---- heatmaps -----------------------------------------------------------------------------------------------------

def rho_heatmap(matrix: pd.DataFrame, ax, title: str | None = None, crosses: pd.DataFrame | None = None):
    """Annotated heatmap of 100*rho (integers, as the paper printed them; never ``-0``) on ``ax``.

    ``crosses``: boolean frame of the same shape; a True cell gets a dagger after its number (its 95 % interval
    contains 0). NaN cells are light grey with a dash. Tick labels are the display labels, long ones wrapped.
    Returns the image (for a shared colour bar).
    """
    import matplotlib

    values = (matrix.astype(float) * 100).round() + 0.0      # + 0.0 turns -0 into 0
    data = values.to_numpy()
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=-100, vmax=100, aspect="equal")
    marks = crosses.reindex(index=matrix.index, columns=matrix.columns).fillna(False).to_numpy(dtype=bool) \
        if crosses is not None else np.zeros(data.shape, dtype=bool)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "–" if np.isnan(v) else f"{v:.0f}" + ("†" if marks[i, j] else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=MIN_FONT,
                    color="white" if np.isfinite(v) and abs(v) >= 60 else "black")
    ax.set_xticks(np.arange(data.shape[1]))
    ax.set_xticklabels([label(c) for c in matrix.columns], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(data.shape[0]))
    ax.set_yticklabels([wrapped(r, 14) for r in matrix.index])
    ax.set_xticks(np.arange(data.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(data.shape[0] + 1) - 0.5, minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    return image


def rho_heatmap_grid(matrices: Mapping[str, pd.DataFrame], ncols: int | None = None, cell: float = 0.43,
                     crosses: Mapping[str, pd.DataFrame] | None = None, n: Mapping[str, int] | None = None,
                     unit: str = "models", bar_label: str = "100·ρ"):
    """One annotated 100*rho heatmap per entry, titled with the key's label and, when ``n`` has it, the number of
    observations behind the matrix (``n = 300 models``). Returns the Figure.

    Cells are ``cell`` inches square (room for "-100†" at 9 pt); as many panels go in a row as fit
    :data:`PAGE_WIDTH` unless ``ncols`` is given. One colour bar for the whole figure. ``crosses``: per key, the
    cells to mark with a dagger (:func:`rho_heatmap`); ``bar_label`` names the colour bar (another rank correlation
    in [-1, 1] can be drawn the same way).
    """
    import matplotlib.pyplot as plt

    shapes = [m.shape for m in matrices.values()] or [(1, 1)]
    rows, cols = max(r for r, _ in shapes), max(c for _, c in shapes)
    longest = max([len(label(r)) for m in matrices.values() for r in m.index] or [4])
    label_w = min(1.3, 0.25 + 0.075 * longest)
    titles = [len(label(k)) for k in matrices] + ([len(f"(n = {v} {unit})") for v in n.values() if v is not None]
                                                  if n else [])
    panel_w = max(cell * cols + label_w + 0.15, 0.085 * max(titles or [0]) + label_w)
    panel_h = cell * rows + 1.65
    if ncols is None:
        ncols = max(1, int((PAGE_WIDTH - 0.6) // panel_w))
    ncols = max(1, min(ncols, len(matrices)))
    nrows = math.ceil(len(matrices) / ncols) if matrices else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols + 0.6, panel_h * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(matrices):]:
        ax.set_visible(False)
    image = None
    for ax, (name, matrix) in zip(flat, matrices.items()):
        title = label(name)
        if n and n.get(name) is not None:
            title += f"\n(n = {n[name]} {unit})"
        image = rho_heatmap(matrix, ax, title, None if crosses is None else crosses.get(name))
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=label_w / width, right=1 - 0.6 / width, bottom=0.95 / height,
                        top=1 - 0.55 / height, wspace=(panel_w - cell * cols) / (cell * cols),
                        hspace=1.3 / (cell * rows))
    if image is not None:
        bar = fig.add_axes([1 - 0.42 / width, 0.3, 0.1 / width, 0.4])
        fig.colorbar(image, cax=bar).set_label(bar_label)
    return fig


def percent_heatmap(frame: pd.DataFrame, ax, title: str | None = None, vmax: float = 100) -> None:
    """Annotated heatmap of fractions shown as integer percentages (Table 5 style)."""
    import seaborn as sns

    values = ((frame.astype(float) * 100).round() + 0.0).rename(index=label, columns=label)
    sns.heatmap(values, ax=ax, vmin=0, vmax=vmax, cmap="viridis", annot=True, fmt=".0f", cbar=False,
                linewidths=0.5, annot_kws={"size": MIN_FONT})
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    if title:
        ax.set_title(title)


def variance_figure(r2: pd.DataFrame, columns: tuple[str, str] = ("method", "method_x_hparam"),
                    titles: tuple[str, str] = ("R², objective", "R², objective × strength")):
    """Two heatmaps of percentages (datasets x metrics) of the ``columns`` of a frame indexed by (dataset, metric):
    Table 5's layout. Adjusted R^2 can be negative: the colour scale starts at 0 and such cells show their value."""
    import matplotlib.pyplot as plt

    metrics = [m for m in METRIC_SHORT if m in set(r2.index.get_level_values("metric"))]
    datasets = list(dict.fromkeys(r2.index.get_level_values("dataset")))
    datasets = [d for d in DATASET_LABELS if d in datasets] + [d for d in datasets if d not in DATASET_LABELS]
    height = 0.42 * len(datasets) + 1.9
    fig, axes = plt.subplots(1, 2, figsize=(min(PAGE_WIDTH, 1.6 + 2 * (0.62 * len(metrics) + 1.5)), height))
    for ax, column, title in zip(axes, columns, titles):
        layout = r2[column].unstack("metric").reindex(index=datasets, columns=metrics)
        percent_heatmap(layout, ax, title)
    fig.tight_layout()
    return fig


# ---- distributions ------------------------------------------------------------------------------------------------

def _violins(ax, data: list[np.ndarray], positions: np.ndarray, colors: list[str], points: bool,
             width: float = 0.8) -> None:
    """Violins (Gaussian KDE, cut at the data range) with the median (solid) and quartiles (dashed) marked; with
    ``points`` every value is drawn as a dot (the spread over seeds)."""
    varied = [i for i, d in enumerate(data) if len(d) > 1 and np.ptp(d) > 0]
    if varied:
        parts = ax.violinplot([data[i] for i in varied], positions=positions[varied], widths=width,
                              showextrema=False, points=60)
        for body, i in zip(parts["bodies"], varied):
            body.set_facecolor(colors[i])
            body.set_edgecolor("black")
            body.set_linewidth(0.6)
            body.set_alpha(0.55 if points else 0.85)
    rs = np.random.RandomState(0)
    for i, d in enumerate(data):
        if not len(d):
            continue
        q25, q50, q75 = np.percentile(d, [25, 50, 75])
        x = positions[i]
        ax.hlines([q25, q75], x - width * 0.25, x + width * 0.25, color="black", lw=0.7, linestyles="dashed")
        ax.hlines(q50, x - width * 0.38, x + width * 0.38, color="black", lw=1.4)
        if points:
            ax.scatter(x + rs.uniform(-0.12, 0.12, size=len(d)) * width, d, s=9, color=colors[i],
                       edgecolor="black", linewidth=0.3, zorder=3)


def violin_grid(long: pd.DataFrame, panels: list[str], panel_col: str, x: str = "method", y: str = "value",
                ncols: int = 4, ylabel: str = "score", title: str | None = None, points: bool | None = None):
    """Violins of ``y`` per ``x`` (methods in the figures' order), one panel per value of ``panel_col``.

    Matplotlib's ``violinplot`` (Gaussian KDE, 60 points, cut at the data range) with the median and quartiles
    marked; ``points`` (default: when a violin has at most 40 values) adds every model as a dot. ``title``: a
    heading above all panels (e.g. the metric).
    """
    fig, axes = _grid(len(panels), ncols, *((4.2, 3.4) if len(panels) <= 2 else (3.0, 3.0)))
    for ax, panel in zip(axes, panels):
        sub = long[long[panel_col].astype(str) == str(panel)]
        groups = sub.groupby(sub[x].astype(str))[y]
        order = method_order(groups.groups)
        data = [groups.get_group(m).dropna().to_numpy(dtype=float) for m in order]
        show_points = points if points is not None else max([len(d) for d in data] or [0]) <= 40
        _violins(ax, data, np.arange(len(order)), [METHOD_COLORS.get(m, "grey") for m in order], show_points)
        _category_ticks(ax, order)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_ylabel(ylabel)
        ax.set_title(label(panel))
    _layout(fig, bottom=1.0, top=0.35 + (0.3 if title else 0.0), hspace=0.85)
    if title:
        fig.suptitle(title, y=1 - 0.08 / fig.get_size_inches()[1], va="top", fontweight="bold")
    return fig


def hparam_violin_grid(long: pd.DataFrame, datasets: list[str], methods: list[str], ylabel: str = "score",
                       points: bool | None = None):
    """Score distribution per hyperparameter value (Fig. 3 right / 14): one row of panels per dataset, one column
    per method, one violin per value, every seed a dot when there are at most 40 per value.

    ``long``: one row per model with ``dataset, method, hparam_value, value``. Panels are titled with the method and
    the rows labelled with the dataset; the x ticks are the method's hyperparameter values."""
    fig, axes = _grid(len(datasets) * len(methods), len(methods), 2.1, 2.3, sharey=False)
    for r, dataset in enumerate(datasets):
        for c, method in enumerate(methods):
            ax = axes[r * len(methods) + c]
            sub = long[(long["dataset"] == dataset) & (long["method"] == method)]
            values = sorted(set(sub["hparam_value"]))
            data = [sub.loc[sub["hparam_value"] == v, "value"].dropna().to_numpy(dtype=float) for v in values]
            show_points = points if points is not None else max([len(d) for d in data] or [0]) <= 40
            _violins(ax, data, np.arange(len(values)), [METHOD_COLORS.get(method, "grey")] * len(values),
                     show_points, width=0.75)
            ax.set_xticks(np.arange(len(values)))
            ax.set_xticklabels([f"{v:g}" for v in values], rotation=0 if len(values) <= 4 else 45)
            ax.set_xlim(-0.6, max(len(values), 1) - 0.4)
            if not len(values):
                ax.text(0.5, 0.5, "no models", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(label(method))
            if c == 0:
                ax.set_ylabel(f"{label(dataset)}\n{ylabel}", fontweight="bold" if len(datasets) > 1 else None)
    _layout(fig, left=1.0, bottom=0.6, hspace=0.45, wspace=0.4)
    return fig


# ---- curves and scatters ------------------------------------------------------------------------------------------

def curve_grid(curves: pd.DataFrame, panels: list[str], panel_col: str, y: str = "median",
               x: str = "strength", ncols: int = 4, ylabel: str = "median over seeds", log: bool = False,
               band: tuple[str, str] | None = None):
    """Lines of ``y`` against regularisation strength, one line per method, one panel per ``panel_col`` value, one
    legend above the panels. A method with a single strength in a panel has no line there (the caller says so).
    ``band``: columns of a shaded range (the interquartile range over seeds)."""
    fig, axes = _grid(len(panels), ncols, *((4.0, 3.2) if len(panels) <= 2 else (2.8, 2.7)))
    drawn: list[str] = []
    for ax, panel in zip(axes, panels):
        sub = curves[curves[panel_col].astype(str) == str(panel)]
        for method in method_order(sub["method"]):
            line = sub[sub["method"].astype(str) == method].sort_values(x)
            if line[x].nunique() < 2:
                continue
            color = METHOD_COLORS.get(method, "grey")
            ax.plot(line[x], line[y], marker="o", ms=3.5, lw=1.5, color=color)
            if band and band[0] in line and line[band[0]].notna().any():
                ax.fill_between(line[x], line[band[0]], line[band[1]], color=color, alpha=0.13, lw=0)
            drawn.append(method)
        if log and (sub[y] > 0).any():
            log_axis(ax, "y")
        ax.set_title(label(panel))
        ax.set_xlabel("regularisation strength")
        ax.set_ylabel(ylabel)
        ax.set_xticks([0, 0.5, 1.0])
    _layout(fig, bottom=0.6, hspace=0.8, legend=True)
    _shared_legend(fig, *_method_handles(method_order(set(drawn))))
    return fig


def method_scatter_grid(frame: pd.DataFrame, panels: list[str], x: str, y: str, xlabel: str, ylabel: str,
                        log: bool = False, diagonal: bool = False, panel_col: str = "dataset", ncols: int = 4,
                        titles: Mapping[str, str] | None = None):
    """One point per model coloured by method, one panel per value of ``panel_col`` (``frame`` has ``panel_col``,
    ``method``, ``x``, ``y``), one legend above the panels.

    ``log``: both axes logarithmic (positive values only); ``diagonal``: a dashed y = x line; ``titles``: panel
    titles (default: the label of the panel value)."""
    fig, axes = _grid(len(panels), ncols, *((3.8, 3.6) if len(panels) <= 2 else (2.8, 2.8)))
    seen: set[str] = set()
    for ax, panel in zip(axes, panels):
        part = frame[frame[panel_col].astype(str) == str(panel)]
        size = 14 if len(part) <= 200 else 6
        for method in method_order(part["method"]):
            pts = part[part["method"] == method]
            ax.scatter(pts[x], pts[y], s=size, alpha=0.6, color=METHOD_COLORS.get(method, "grey"), linewidth=0)
            seen.add(method)
        if diagonal and len(part):
            lo, hi = min(part[x].min(), part[y].min()), max(part[x].max(), part[y].max())
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        if log and len(part):
            log_axis(ax, "x")
            log_axis(ax, "y")
        ax.set_xlabel(xlabel if isinstance(xlabel, str) else xlabel(panel))
        ax.set_ylabel(ylabel if isinstance(ylabel, str) else ylabel(panel))
        ax.set_title((titles or {}).get(panel, label(panel)))
    _layout(fig, bottom=0.65, hspace=0.8, wspace=0.5, legend=True)
    _shared_legend(fig, *_method_handles(method_order(seen), line=False))
    return fig


def scatter_matrix_grid(frame: pd.DataFrame, rows: list[str], cols: list[str], row_col: str, col_col: str,
                        x: str, y: str, ylabel: str, xlabel=None):
    """Small multiples of one point per model coloured by method: a row of panels per value of ``row_col`` (labelled
    on the left), a column per value of ``col_col`` (titled on the top row), one legend above."""
    fig, axes = _grid(len(rows) * len(cols), len(cols), 2.0, 2.0)
    seen: set[str] = set()
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r * len(cols) + c]
            part = frame[(frame[row_col].astype(str) == str(row)) & (frame[col_col].astype(str) == str(col))]
            for method in method_order(part["method"]):
                pts = part[part["method"] == method]
                ax.scatter(pts[x], pts[y], s=5 if len(part) > 200 else 10, alpha=0.6,
                           color=METHOD_COLORS.get(method, "grey"), linewidth=0)
                seen.add(method)
            if r == 0:
                ax.set_title(label(col))
            if c == 0:
                ax.set_ylabel(f"{label(row)}\n{ylabel}")
            if r == len(rows) - 1:
                ax.set_xlabel(xlabel(col) if callable(xlabel) else (xlabel or label(col)))
            ax.locator_params(nbins=4)
    _layout(fig, left=1.0, bottom=0.6, hspace=0.35, wspace=0.35, legend=True)
    _shared_legend(fig, *_method_handles(method_order(seen), line=False))
    return fig


def config_medians_figure(usable: Mapping[str, pd.DataFrame], others: list[str]):
    """Median of every configuration on dSprites (x) against another dataset (y): a row of panels per metric
    (labelled on the left), a column per other dataset (titled on the top row), colour = method."""
    frames = []
    for metric, frame in usable.items():
        for dataset in others:
            if dataset in frame.columns:
                part = frame[["dsprites_full", dataset]].rename(columns={dataset: "other"}).reset_index()
                part.attrs = {}
                frames.append(part.assign(metric=metric, dataset=dataset))
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["method", "dsprites_full", "other", "metric", "dataset"])
    long["method"] = long["method"].astype(str)
    if len(others) <= 2:         # few other datasets: one row per dataset, the metrics side by side
        return scatter_matrix_grid(long, others, list(usable), "dataset", "metric", "dsprites_full", "other",
                                   ylabel="median", xlabel=lambda _c: "median on dSprites")
    return scatter_matrix_grid(long, list(usable), others, "metric", "dataset", "dsprites_full", "other",
                               ylabel="median", xlabel=lambda _c: "median on dSprites")


def metric_groups_figure(usable: Mapping[str, pd.DataFrame], metric: str):
    """Median downstream accuracy against training size (log axis: 10, 100, 1000, 10000) for the groups of models
    of increasing ``metric`` (LR and GBT panels per dataset), one legend above."""
    import matplotlib

    names = {0: "low", 1: "medium", 2: "high"}
    n_groups = max(int(g["group"].max()) + 1 for g in usable.values())
    cmap = matplotlib.colormaps["viridis"]
    colors = [cmap(0.15 + 0.7 * k / max(n_groups - 1, 1)) for k in range(n_groups)]
    fig, axes = _grid(len(usable) * 2, 4, 2.8, 2.6)
    axes_iter = iter(axes)
    for dataset, g in usable.items():
        for predictor in ("LR", "GBT"):
            ax = next(axes_iter)
            part = g[g["predictor"] == predictor]
            for group, line in part.groupby("group"):
                line = line.sort_values("size")
                ax.plot(line["size"], line["median"], marker="o", ms=3.5, color=colors[int(group)])
                ax.fill_between(line["size"], line["q25"], line["q75"], color=colors[int(group)], alpha=0.12, lw=0)
            if len(part):
                log_axis(ax, "x")
                ax.set_xticks(sorted(set(part["size"])))
            ax.set_title(f"{label(dataset)}, {predictor}")
            ax.set_xlabel("training points")
            ax.set_ylabel("test accuracy")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[k], marker="o", ms=5) for k in range(n_groups)]
    labels = [f"{names.get(k, k) if n_groups == 3 else f'group {k + 1}'} {label(metric)}" for k in range(n_groups)]
    _layout(fig, bottom=0.65, hspace=0.8, legend=True)
    _shared_legend(fig, handles, labels, ncol=n_groups)
    return fig


def metric_by_config_figure(long: pd.DataFrame, panels: list[str], metric: str, key: str):
    """Every run's score per configuration by representation (dots and the median when a configuration has at most
    10 seeds, else median and interquartile range), one full-width panel per dataset. The x axis is grouped by
    method: ticks are the hyperparameter values, the method's name is centred under its group."""
    reps = sorted(set(long["representation"]))
    palette = dict(zip(reps, ("#1f77b4", "#e07b00", "#2ca02c", "#7f7f7f")))
    n_configs = long.groupby("dataset")[["method", "hparam_value"]].apply(lambda f: len(f.drop_duplicates())).max()
    width = min(PAGE_WIDTH, max(5.5, 0.32 * n_configs * max(1, len(reps)) + 1.2))
    fig, axes = _grid(len(panels), 1, width, 3.3)
    rs = np.random.RandomState(0)
    for ax, dataset in zip(axes, panels):
        sub = long[long["dataset"] == dataset]
        configs = []
        for method in method_order(sub["method"]):
            configs += [(method, v) for v in sorted(set(sub.loc[sub["method"] == method, "hparam_value"]))]
        pos = {c: i for i, c in enumerate(configs)}
        many = sub.groupby(["method", "hparam_value", "representation"]).size().max() > 10
        for k, rep in enumerate(reps):
            part = sub[sub["representation"] == rep]
            shift = (k - (len(reps) - 1) / 2) * 0.3
            xs = part.apply(lambda r: pos[(r["method"], r["hparam_value"])], axis=1).to_numpy(dtype=float) + shift
            stats = part.groupby(["method", "hparam_value"])["value"].quantile([0.25, 0.5, 0.75]).unstack()
            cx = np.array([pos[c] for c in stats.index], dtype=float) + shift
            if many:
                ax.errorbar(cx, stats[0.5], yerr=[stats[0.5] - stats[0.25], stats[0.75] - stats[0.5]], fmt="o",
                            ms=3.5, lw=1, capsize=2, color=palette[rep], label=rep)
            else:
                ax.scatter(xs + rs.uniform(-0.06, 0.06, len(xs)), part["value"], s=10, alpha=0.7,
                           color=palette[rep], label=rep)
                ax.hlines(stats[0.5], cx - 0.13, cx + 0.13, color="black", lw=1.6)
        ax.set_xticks(np.arange(len(configs)))
        ax.set_xticklabels([f"{v:g}" for _m, v in configs])
        ax.set_xlim(-0.6, len(configs) - 0.4)
        start = 0
        for method in method_order(sub["method"]):
            count = sum(1 for m, _v in configs if m == method)
            if start:
                ax.axvline(start - 0.5, color="#999999", lw=0.8)
            ax.text(start + (count - 1) / 2, -0.16, label(method), transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize=MIN_FONT, fontweight="bold")
            start += count
        ax.set_title(label(dataset))
        ax.set_ylabel(f"{key} (MIG)" if metric == "mig" else key)
        ax.legend(title="representation", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                  fontsize=MIN_FONT, title_fontsize=MIN_FONT)
    _layout(fig, bottom=0.8, right=1.5, hspace=0.6)
    return fig



# ---- page 14: where a metric's variance comes from ------------------------------------------------------------------

#: The three variance components of :func:`analysis.replicates.variance_components`, their legend and colour.
COMPONENTS = (("config", "configurations", "#4c72b0"), ("seed", "seeds (training noise)", "#dd8452"),
              ("eval", "evaluations (evaluation noise)", "#9d9d9d"))


def variance_components_figure(frame: pd.DataFrame):
    """Stacked horizontal bars of the variance shares (percent) of every metric, one panel per dataset, one legend
    above; ``frame`` has ``dataset, metric, share_config, share_seed, share_eval``."""
    from matplotlib.patches import Patch

    datasets = [d for d in DATASET_LABELS if d in set(frame["dataset"])] + sorted(
        set(frame["dataset"]) - set(DATASET_LABELS))
    n_metrics = int(frame.groupby("dataset").size().max())
    fig, axes = _grid(len(datasets), 2, 5.6 if len(datasets) > 1 else 8.0, 0.42 * n_metrics + 1.3)
    for ax, dataset in zip(axes, datasets):
        part = frame[frame["dataset"] == dataset]
        part = part.set_index(part["metric"].astype(str)).reindex(
            [m for m in METRIC_SHORT if m in set(part["metric"].astype(str))])
        y = np.arange(len(part))
        left = np.zeros(len(part))
        for component, _text, color in COMPONENTS:
            width = 100 * part[f"share_{component}"].fillna(0.0).to_numpy(dtype=float)
            ax.barh(y, width, left=left, color=color, height=0.62)
            left += width
        ax.set_yticks(y)
        ax.set_yticklabels([METRIC_SHORT.get(m, m) for m in part.index])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of the metric's variance")
        ax.set_title(label(dataset))
    _layout(fig, left=1.1, bottom=0.6, legend=True, wspace=0.35)
    _shared_legend(fig, [Patch(color=color) for _c, _t, color in COMPONENTS], [t for _c, t, _col in COMPONENTS])
    return fig


__all__ = [
    "PAGE_WIDTH", "LEGEND_SPACE", "log_axis", "rho_heatmap", "rho_heatmap_grid", "percent_heatmap", "variance_figure",
    "violin_grid", "hparam_violin_grid", "curve_grid", "method_scatter_grid", "scatter_matrix_grid",
    "config_medians_figure", "metric_groups_figure", "metric_by_config_figure", "variance_components_figure",
]
