"""Matplotlib figure builders of the report: frames in, a ``Figure`` out (no IPython, testable without a kernel).

Correlations and R^2 come in as fractions (the analysis convention) and are drawn as 100*rho / percent. Every
builder returns the Figure without displaying it; :func:`analysis.plots.style.show_figure` displays and closes it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.plots.style import (
    DATASET_LABELS, METHOD_COLORS, METHOD_LABELS, METRIC_SHORT, MIN_FONT, label, wrapped,
)

#: widest figure in inches: at 90 dpi it fills the ~1100 px report page without being scaled down
PAGE_WIDTH = 12.0


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


def rho_heatmap(matrix: pd.DataFrame, ax, title: str | None = None, crosses: pd.DataFrame | None = None):
    """Annotated heatmap of 100*rho (integers, as the paper printed them; never ``-0``) on ``ax``.

    ``crosses``: boolean frame of the same shape; a True cell gets a dagger after its number (its 95 % interval
    contains 0). NaN cells are light grey with a dash. Tick labels are the display labels, long ones wrapped.
    Returns the image (for a shared colour bar).
    """
    values = (matrix.astype(float) * 100).round() + 0.0      # + 0.0 turns -0 into 0
    data = values.to_numpy()
    import matplotlib

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
    ax.set_xticklabels([wrapped(c) for c in matrix.columns], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(data.shape[0]))
    ax.set_yticklabels([wrapped(r, 14) for r in matrix.index])
    ax.set_xticks(np.arange(data.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(data.shape[0] + 1) - 0.5, minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    return image


def rho_heatmap_grid(matrices: Mapping[str, pd.DataFrame], ncols: int | None = None, cell: float = 0.48,
                     crosses: Mapping[str, pd.DataFrame] | None = None, n: Mapping[str, int] | None = None,
                     unit: str = "models"):
    """One annotated 100*rho heatmap per entry, titled with the key's label and, when ``n`` has it, the number of
    observations behind the matrix (``n = 300 models``). Returns the Figure.

    Cells are ``cell`` inches square (room for "-100†" at 9 pt); as many panels go in a row as fit the page width
    (:data:`PAGE_WIDTH`) unless ``ncols`` is given. One colour bar for the whole figure. ``crosses``: per key, the
    cells to mark with a dagger (:func:`rho_heatmap`).
    """
    import matplotlib.pyplot as plt

    shapes = [m.shape for m in matrices.values()] or [(1, 1)]
    rows, cols = max(r for r, _ in shapes), max(c for _, c in shapes)
    label_w = 1.3 if any(len(str(label(r))) > 10 for m in matrices.values() for r in m.index) else 1.0
    panel_w, panel_h = cell * cols + label_w, cell * rows + 1.5
    if ncols is None:
        ncols = max(1, int((PAGE_WIDTH - 0.8) // panel_w))
    ncols = max(1, min(ncols, len(matrices)))
    nrows = math.ceil(len(matrices) / ncols) if matrices else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_w * ncols + 0.8, panel_h * nrows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(matrices):]:
        ax.set_visible(False)
    image = None
    for ax, (name, matrix) in zip(flat, matrices.items()):
        title = label(name)
        if n and n.get(name) is not None:
            title += f" (n = {n[name]} {unit})"
        image = rho_heatmap(matrix, ax, title, None if crosses is None else crosses.get(name))
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=label_w / width, right=1 - 0.8 / width, bottom=1.0 / height,
                        top=1 - 0.45 / height, wspace=0.35, hspace=1.1 / panel_h)
    if image is not None:
        bar = fig.add_axes([1 - 0.55 / width, 0.25, 0.12 / width, 0.5])
        fig.colorbar(image, cax=bar).set_label("100·ρ")
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


def method_scatter_grid(frame: pd.DataFrame, panels: list[str], x: str, y: str, xlabel: str, ylabel: str,
                        log: bool = False, diagonal: bool = False):
    """One point per model coloured by method, one panel per dataset (``frame`` has ``dataset, method, x, y``).

    ``log``: both axes logarithmic (positive values only); ``diagonal``: a dashed y = x line.
    """
    fig, axes = _grid(len(panels), 4, 3.2, 3.0)
    for ax, dataset in zip(axes, panels):
        part = frame[frame["dataset"] == dataset]
        for method in [m for m in METHOD_LABELS if (part["method"] == m).any()]:
            pts = part[part["method"] == method]
            ax.scatter(pts[x], pts[y], s=5, alpha=0.5, color=METHOD_COLORS[method], label=label(method))
        if diagonal:
            lo, hi = min(part[x].min(), part[y].min()), max(part[x].max(), part[y].max())
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(label(dataset))
    if axes:
        handles, labels_ = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels_, loc="upper center", ncol=6, frameon=False, bbox_to_anchor=(0.5, 1.04),
                   markerscale=3)
    _layout(fig, bottom=0.55, hspace=0.65)
    return fig


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


def config_medians_figure(usable: Mapping[str, pd.DataFrame], others: list[str]):
    """Median of every configuration on dSprites (x) against another dataset (y), one panel per (metric, dataset)."""
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
    return fig


def metric_groups_figure(usable: Mapping[str, pd.DataFrame], metric: str):
    """Median downstream accuracy against training size for the groups of ``metric`` (LR and GBT per dataset)."""
    fig, axes = _grid(len(usable) * 2, 4, 3.0, 2.6)
    axes = iter(axes)
    names = {0: "low", 1: "medium", 2: "high"}
    for dataset, g in usable.items():
        for predictor in ("LR", "GBT"):
            ax = next(axes)
            part = g[g["predictor"] == predictor]
            for group, line in part.groupby("group"):
                ax.plot(line["size"], line["median"], marker="o", ms=3,
                        label=f"{names.get(group, group)} {label(metric)}")
            ax.set_xscale("log")
            ax.set_title(f"{label(dataset)}, {predictor}", fontsize=9)
            ax.set_xlabel("training points")
            ax.set_ylabel("test accuracy")
    first = fig.axes[0]
    handles, labels_ = first.get_legend_handles_labels()
    fig.legend(handles, labels_, loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 1.04))
    _layout(fig, bottom=0.55, hspace=0.7)
    return fig


def metric_by_config_figure(long: pd.DataFrame, panels: list[str], metric: str, key: str):
    """Every run's score per configuration (strip plot with the median marked, or median and interquartile range
    when there are more than 10 seeds), by representation, one panel per dataset."""
    import seaborn as sns

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
    return fig
