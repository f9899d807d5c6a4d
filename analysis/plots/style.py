"""Labels, colours, figure style and the notebook-side display helpers of the report.

Everything here is presentation: display labels of datasets, methods and metrics (:func:`label`), one colour per
method (:data:`METHOD_COLORS`), the matplotlib style of every figure (:func:`setup`), and the helpers that put a
figure, a table or a sentence on a page (:func:`show_figure`, :func:`show_table`, :func:`note`, :func:`missing`,
:func:`md`). The display helpers import IPython lazily, so the figure builders and captions stay usable (and
testable) without a kernel.
"""
from __future__ import annotations

import html

import matplotlib
import pandas as pd

DATASET_LABELS = {"dsprites_full": "dSprites", "color_dsprites": "Color-dSprites", "noisy_dsprites": "Noisy-dSprites",
                  "scream_dsprites": "Scream-dSprites", "smallnorb": "SmallNORB", "cars3d": "Cars3D",
                  "shapes3d": "Shapes3D"}
METHOD_LABELS = {"beta_vae": "β-VAE", "factor_vae": "FactorVAE", "dip_vae_i": "DIP-VAE-I", "dip_vae_ii": "DIP-VAE-II",
                 "beta_tc_vae": "β-TCVAE", "annealed_vae": "AnnealedVAE"}
METRIC_SHORT = {"BetaVAE Score": "BetaVAE", "FactorVAE Score": "FactorVAE", "MIG": "MIG",
                "DCI Disentanglement": "DCI", "Modularity": "Modularity", "SAP": "SAP"}
METHOD_COLORS = dict(zip(METHOD_LABELS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")))
COLUMN_LABELS = {"reconstruction_loss": "reconstruction", "kl_loss": "KL", "elbo": "ELBO", "tc_sampled": "TC (sampled)",
                 "tc_mean": "TC (mean)", "mi_mean": "MI (mean)", "mi_sampled": "MI (sampled)",
                 "wasserstein_mean": "Wasserstein (mean)", "wasserstein_sampled": "Wasserstein (sampled)"}
STATISTIC_LABELS = {"tc": "total correlation", "mi": "mutual information", "wasserstein": "Wasserstein correlation",
                    "wasserstein_norm": "normalised Wasserstein correlation"}

#: smallest font size (points) of any text in a figure; figures are shown at 90 dpi on a ~1100 px page
MIN_FONT = 9


def label(name) -> str:
    """Display label of a dataset, method or metric name (the name itself when unknown)."""
    name = str(name)
    return (DATASET_LABELS.get(name) or METHOD_LABELS.get(name) or METRIC_SHORT.get(name) or COLUMN_LABELS.get(name)
            or name)


def wrapped(name, width: int = 10) -> str:
    """:func:`label` broken into lines of at most ``width`` characters at hyphens and spaces (tick labels)."""
    text = label(name)
    if len(text) <= width:
        return text
    parts = text.replace("-", "-\u0000").replace(" ", " \u0000").split("\u0000")
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line.rstrip())
            line = part
        else:
            line += part
    lines.append(line.rstrip())
    return "\n".join(lines)


def method_order(methods) -> list[str]:
    """``methods`` (strings) in the figures' order: the known methods first, then the others alphabetically."""
    present = {str(m) for m in methods}
    return [m for m in METHOD_LABELS if m in present] + sorted(present - set(METHOD_LABELS))


def setup() -> None:
    """Figure style for the report: seaborn whitegrid, fonts of at least :data:`MIN_FONT` points, PNG at 90 dpi."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    matplotlib.rcParams.update({
        "figure.dpi": 90, "savefig.bbox": "tight", "axes.titleweight": "bold",
        "font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "xtick.labelsize": MIN_FONT,
        "ytick.labelsize": MIN_FONT, "legend.fontsize": MIN_FONT + 0.5, "figure.titlesize": 11,
    })


def datasets_of(frame: pd.DataFrame) -> list[str]:
    """Datasets present in a model table or tidy frame, in the study's order."""
    present = set(frame["dataset"].astype(str)) if len(frame) else set()
    return [d for d in DATASET_LABELS if d in present] + sorted(present - set(DATASET_LABELS))


def metrics_of(table: pd.DataFrame) -> list[str]:
    """Headline metrics (paper names) with at least one score in the model table, in the paper's order."""
    return [m for m in METRIC_SHORT if m in table.columns and table[m].notna().any()]


def reason(frame) -> str | None:
    """``attrs['reason']`` of an analysis result (why it is incomplete), or None."""
    return getattr(frame, "attrs", {}).get("reason") if frame is not None else None


# ---- display helpers (notebook side) ----------------------------------------------------------------------------

def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def note(text: str) -> None:
    """Display a sentence about the store under a figure or table."""
    from IPython.display import HTML

    _display(HTML(f"<p style='margin:.3em 0 1.2em 0;font-size:1.02em'><b>On this store:</b> {html.escape(text)}</p>"))


def missing(text: str) -> None:
    """Display what this store lacks for a figure, instead of the figure (one line)."""
    from IPython.display import HTML

    _display(HTML("<div style='border-left:4px solid #e0a800;background:#fff8e1;padding:.4em 1em;margin:.6em 0'>"
                  f"<b>Not shown:</b> {html.escape(text)}</div>"))


def key(text: str) -> None:
    """Display the key of a figure's marks (what a dagger or a shaded band means), in small grey type."""
    from IPython.display import HTML

    _display(HTML(f"<p style='margin:.1em 0 .6em 0;color:#555;font-size:.92em'>{html.escape(text)}</p>"))


def md(text: str) -> None:
    """Display Markdown (a sub-heading inside a loop)."""
    from IPython.display import Markdown

    _display(Markdown(text))


def show_table(frame: pd.DataFrame, percent: bool = False, digits: int = 3, caption: str | None = None) -> None:
    """Display ``frame`` as an HTML table; fractions as percentages with ``percent``; NaN as an en dash."""
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


__all__ = [
    "DATASET_LABELS", "METHOD_LABELS", "METRIC_SHORT", "METHOD_COLORS", "COLUMN_LABELS", "STATISTIC_LABELS",
    "MIN_FONT", "label", "wrapped", "method_order", "setup", "datasets_of", "metrics_of", "reason", "note", "missing",
    "key", "md", "show_table", "show_figure",
]
