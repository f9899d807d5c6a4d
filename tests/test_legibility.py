"""Figures are legible at the report's width (~1,100 px at 90 dpi): at most PAGE_WIDTH inches wide, text of at
least MIN_FONT points, x tick labels that do not overlap, legends off the data, titled small multiples, plain log
tick labels; a curve with a single strength is not drawn and one line says so."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis.frames import METRIC_NAMES  # noqa: E402
from analysis.plots import figures, pages, style  # noqa: E402
from helpers.display import displayed_texts  # noqa: E402

DATASETS = list(style.DATASET_LABELS)
METHODS = list(style.METHOD_LABELS)
HPARAMS = {"beta_vae": [1, 2, 4, 6, 8, 16], "factor_vae": [10, 20, 30, 40, 50, 100], "dip_vae_i": [1, 2, 5, 10, 20, 50],
           "dip_vae_ii": [1, 2, 5, 10, 20, 50], "beta_tc_vae": [1, 2, 4, 6, 8, 10],
           "annealed_vae": [5, 10, 25, 50, 75, 100]}


@pytest.fixture(autouse=True)
def report_style():
    style.setup()
    yield
    plt.close("all")


def models(seeds=5, rs=None):
    """Paper-grid model rows (7 datasets x 6 methods x 6 values x ``seeds``) with a value, TC-like positive values
    spanning three decades and every metric."""
    rs = rs or np.random.RandomState(0)
    rows = [(d, m, v, k / 5, s) for d in DATASETS for m in METHODS for k, v in enumerate(HPARAMS[m])
            for s in range(seeds)]
    frame = pd.DataFrame(rows, columns=["dataset", "method", "hparam_value", "strength", "seed"])
    frame["value"] = rs.uniform(size=len(frame))
    frame["tc"] = 10 ** rs.uniform(-3, 0, size=len(frame))
    for name in METRIC_NAMES:
        frame[name] = rs.uniform(size=len(frame))
    return frame


def check(fig, min_font=style.MIN_FONT):
    """Every legibility rule on a drawn figure; returns the figure's texts."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.get_tightbbox(renderer).width
    assert width <= figures.PAGE_WIDTH + 0.35, f"figure {width:.1f} in wide"
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    small = {(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < min_font - 1e-6}
    assert not small, f"text below {min_font} pt: {sorted(small)[:5]}"
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text().strip()]
        for ta, tb in zip(labels, labels[1:]):
            angle = np.deg2rad(ta.get_rotation())
            if abs(np.sin(angle)) < 1e-6:        # horizontal labels: their boxes must not overlap
                assert not ta.get_window_extent(renderer).overlaps(tb.get_window_extent(renderer)), \
                    f"x tick labels {ta.get_text()!r} and {tb.get_text()!r} overlap"
            else:                                # rotated labels are parallel strips: their distance across the
                # strips (anchor spacing times the sine of the angle) must exceed the height of a line of text
                step = abs(ax.transData.transform((tb.get_position()[0], 0))[0]
                           - ax.transData.transform((ta.get_position()[0], 0))[0])
                height = ta.get_fontsize() * fig.dpi / 72
                assert step * abs(np.sin(angle)) >= height, \
                    f"rotated x tick labels {ta.get_text()!r} and {tb.get_text()!r} overlap"
        for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
            assert "$" not in t.get_text() and "10^" not in t.get_text(), t.get_text()
    axes_boxes = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible() and ax.has_data()]
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(a) for a in axes_boxes), "a legend covers a panel"
    return [t.get_text() for t in texts]


def test_violin_grid_at_paper_scale():
    long = models()
    texts = check(figures.violin_grid(long, DATASETS, "dataset", ylabel="MIG", title="MIG"))
    assert all(style.label(d) in texts for d in DATASETS) and "AnnealedVAE" in texts and "DIP-VAE-I" in texts


def test_hparam_violins_label_rows_and_columns():
    long = models(seeds=8)
    fig = figures.hparam_violin_grid(long, DATASETS, METHODS, ylabel="FactorVAE")
    texts = check(fig)
    assert [ax.get_title() for ax in fig.axes[:6]] == [style.label(m) for m in METHODS]
    assert all(any(t.startswith(style.label(d) + "\n") for t in texts) for d in DATASETS)
    assert "100" in texts and "16" in texts                      # the hyperparameter values are the x ticks


def test_curves_on_a_log_axis_have_plain_ticks_and_a_legend_off_the_data():
    long = models()
    curves = pages.curve_summary(long, "dataset", "tc")
    fig = figures.curve_grid(curves, DATASETS, "dataset", log=True)
    texts = check(fig)
    assert fig.legends and {"0.001", "0.01", "0.1"} <= set(texts)


def test_scatters_and_small_multiples():
    long = models(seeds=2)
    check(figures.method_scatter_grid(long.assign(y=long["tc"]), DATASETS, "tc", "y", "TC (sampled)", "TC (mean)",
                                      log=True, diagonal=True))
    melted = long.melt(id_vars=["dataset", "method", "seed"], value_vars=list(METRIC_NAMES), var_name="metric",
                       value_name="score").assign(efficiency=lambda f: f["score"])
    fig = figures.scatter_matrix_grid(melted, DATASETS, list(METRIC_NAMES), "dataset", "metric", "score",
                                      "efficiency", ylabel="Eff(LR)")
    texts = check(fig)
    assert [ax.get_title() for ax in fig.axes[:6]] == [style.label(m) for m in METRIC_NAMES]
    assert all(any(t.startswith(style.label(d)) for t in texts) for d in DATASETS)


def test_heatmaps_with_daggers_fit_the_page():
    rs = np.random.RandomState(0)
    cols = ["LR10", "LR100", "LR1000", "LR10000", "GBT10", "GBT100", "GBT1000", "GBT10000", "Eff(LR)", "Eff(GBT)"]
    wide = {d: pd.DataFrame(rs.uniform(-1, 1, (6, 10)), index=list(METRIC_NAMES), columns=cols) for d in DATASETS}
    crosses = {d: m.abs() < 0.3 for d, m in wide.items()}
    texts = check(figures.rho_heatmap_grid(wide, crosses=crosses, n={d: 1800 for d in DATASETS}))
    assert any(t.endswith("†") for t in texts) and "dSprites\n(n = 1800 models)" in texts
    square = {m: pd.DataFrame(rs.uniform(-1, 1, (7, 7)), index=DATASETS, columns=DATASETS) for m in METRIC_NAMES}
    check(figures.rho_heatmap_grid(square, n={m: 36 for m in METRIC_NAMES}, unit="configurations"))


def test_grouped_configurations_and_metric_groups():
    long = models(seeds=3)
    long = pd.concat([long.assign(representation="mean"), long.assign(representation="sampled")])
    fig = figures.metric_by_config_figure(long[long["dataset"].isin(DATASETS[:2])], DATASETS[:2], "mig",
                                          "discrete_mig")
    texts = check(fig)
    assert "AnnealedVAE" in texts and "β-VAE" in texts                 # method names under their groups
    groups = pd.DataFrame([(g, p, s, 0.2 + 0.1 * g + 0.05 * np.log10(s)) for g in range(3) for p in ("LR", "GBT")
                           for s in (10, 100, 1000, 10000)], columns=["group", "predictor", "size", "median"])
    groups["q25"], groups["q75"] = groups["median"] - 0.02, groups["median"] + 0.02
    texts = check(figures.metric_groups_figure({d: groups for d in DATASETS}, "MIG"))
    assert {"10", "100", "1000", "10000", "high MIG"} <= set(texts)


def test_config_medians_label_their_rows_and_columns():
    long = models(seeds=2)
    medians = {m: long.groupby(["method", "hparam_value", "dataset"])[m].median().unstack("dataset")
               for m in METRIC_NAMES}
    fig = figures.config_medians_figure(medians, DATASETS[1:])
    texts = check(fig)
    assert [ax.get_title() for ax in fig.axes[:6]] == [style.label(d) for d in DATASETS[1:]]
    two = figures.config_medians_figure(medians, DATASETS[1:2])       # one other dataset: metrics side by side
    assert [ax.get_title() for ax in two.axes[:6]] == [style.label(m) for m in METRIC_NAMES]
    assert "median on dSprites" in texts


def test_a_curve_needs_two_strengths_and_the_page_says_what_is_missing(shown):
    long = models(seeds=3)
    long = long[(long["dataset"] == "cars3d") & ((long["method"] != "factor_vae") | (long["hparam_value"] == 10))]
    pages.show_curves(long, ["cars3d"], "dataset", what="MIG")
    fig = next(o for o in shown if isinstance(o, matplotlib.figure.Figure))
    assert len(fig.axes[0].lines) == 5                               # FactorVAE (one value) has no line
    lines = displayed_texts(shown)
    assert any("no curve for FactorVAE on Cars3D (a single regularisation strength" in t for t in lines)
    assert not any("FactorVAE rises" in t or "FactorVAE falls" in t for t in lines)
