"""Uncertainty on the report's pages: Spearman heatmaps show n and mark cells whose 95 % seed-bootstrap interval
contains 0; Table 5 shows R^2 with its interval, the R^2 expected with no effect and the adjusted R^2."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import uncertainty  # noqa: E402
from analysis.bootstrap import bootstrap_metric_correlations, bootstrap_variance_explained  # noqa: E402
from analysis.claims.controls import adjusted_r2  # noqa: E402
from analysis.frames import METRIC_NAMES  # noqa: E402
from analysis.plots import captions, figures, pages, style  # noqa: E402
from helpers.display import displayed_texts  # noqa: E402

METHODS = ["beta_vae", "factor_vae", "beta_tc_vae"]


def model_table(seed=0, seeds=6):
    """Three methods x three values x ``seeds`` seeds on two datasets; MIG and DCI track a planted quality, the
    other metrics are noise."""
    rs = np.random.RandomState(seed)
    rows = [(d, m, v, s) for d in ("dsprites_full", "cars3d") for m in METHODS for v in (1.0, 2.0, 4.0)
            for s in range(seeds)]
    t = pd.DataFrame(rows, columns=["dataset", "method", "hparam_value", "seed"])
    t.insert(0, "run_id", [f"r{i}" for i in range(len(t))])
    t["strength"] = t["hparam_value"].map({1.0: 0.0, 2.0: 0.5, 4.0: 1.0})
    t["config"] = t["method"] + "(" + t["hparam_value"].map("{:g}".format) + ")"
    quality = t["method"].map({m: i for i, m in enumerate(METHODS)}) + t["strength"] + 0.5 * rs.normal(size=len(t))
    for name in METRIC_NAMES:
        t[name] = rs.uniform(size=len(t))
    t["MIG"] = quality + 0.1 * rs.normal(size=len(t))
    t["DCI Disentanglement"] = quality + 0.1 * rs.normal(size=len(t))
    return t




def test_rho_matrices_and_crossing_cells():
    long = pd.DataFrame({"row": ["a", "a", "b", "b"], "column": ["a", "b", "a", "b"], "rho": [1.0, 0.3, 0.3, 1.0],
                         "ci_low": [1.0, -0.1, -0.1, 1.0], "ci_high": [1.0, 0.6, 0.6, 1.0]})
    m = uncertainty.rho_matrices(long)
    assert m.rho.loc["a", "b"] == 0.3 and m.low.loc["a", "b"] == -0.1
    assert m.crosses_zero.to_numpy().tolist() == [[False, True], [True, False]]
    wide = uncertainty.rho_matrices(pd.concat([long, pd.DataFrame({"row": ["a", "b"], "column": ["z", "z"],
                                                                   "rho": np.nan, "ci_low": np.nan,
                                                                   "ci_high": np.nan})]))
    kept, dropped = wide.drop_empty()
    assert list(kept.rho.columns) == ["a", "b"] and dropped == ["z"]


def test_null_r2_and_variance_table_match_their_definitions():
    assert uncertainty.null_r2(3, 27) == pytest.approx(2 / 26)
    assert uncertainty.null_r2(9, 27) == pytest.approx(8 / 26)
    table = model_table()
    boot = bootstrap_variance_explained(table, n_boot=50)
    out = uncertainty.variance_table(table, boot)
    row = out.loc[("cars3d", "MIG")]
    sub = table[table["dataset"] == "cars3d"]
    assert row["n_models"] == 54 and row["n_methods"] == 3 and row["n_configs"] == 9
    assert row["method_null"] == pytest.approx(2 / 53) and row["method_x_hparam_null"] == pytest.approx(8 / 53)
    codes, uniques = pd.factorize(sub["config"])
    assert row["method_x_hparam_adjusted"] == pytest.approx(adjusted_r2(sub["MIG"].to_numpy()[None], codes,
                                                                        len(uniques))[0])
    assert row["method_ci_low"] <= row["method"] <= row["method_ci_high"]
    mean = out.loc[("all", "mean")]
    cells = out.drop(index="all", level="dataset")
    assert mean["method"] == pytest.approx(cells["method"].mean())
    assert mean["method_adjusted"] == pytest.approx(cells["method_adjusted"].mean())
    # the planted quality explains MIG far beyond chance; noise does not: its adjusted R^2 is near 0
    assert row["method_adjusted"] > 0.5
    assert abs(cells.xs("SAP", level="metric")["method_x_hparam_adjusted"]).max() < 0.3
    text = captions.describe_variance(out)
    assert "expected with no effect:" in text and "adjusted R²" in text and "[" in text


def test_heatmap_marks_crossing_cells_and_titles_carry_n():
    names = ["MIG", "DCI Disentanglement"]
    rho = pd.DataFrame([[1.0, 0.12], [0.12, 1.0]], index=names, columns=names)
    crosses = pd.DataFrame([[False, True], [True, False]], index=names, columns=names)
    fig = figures.rho_heatmap_grid({"cars3d": rho}, crosses={"cars3d": crosses}, n={"cars3d": 54})
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["100", "100", "12†", "12†"]
    assert ax.get_title() == "Cars3D\n(n = 54 models)"
    assert all(t.get_fontsize() >= style.MIN_FONT for t in ax.texts)


def test_show_correlations_marks_uncertain_cells_and_says_what_they_mean(shown):
    table = model_table()
    boot = {d: bootstrap_metric_correlations(table, d, n_boot=100) for d in ("dsprites_full", "cars3d")}
    pages.show_correlations(boot, uncertainty.models_per_dataset(table), "models", captions.describe_metric_agreement,
                            n_boot=100)
    fig = next(o for o in shown if isinstance(o, matplotlib.figure.Figure))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["dSprites\n(n = 54 models)", "Cars3D\n(n = 54 models)"]
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert any(c.endswith("†") for c in cells)                       # the noise metrics cross 0
    mig_dci = boot["cars3d"].set_index(["row", "column"]).loc[("MIG", "DCI Disentanglement")]
    assert mig_dci["ci_low"] > 0                                      # the planted pair does not
    texts = displayed_texts(shown)
    assert any("† marks a cell whose 95 % seed-bootstrap interval (100 resamples of the seeds) contains 0" in t
               for t in texts)
    assert any("seed-bootstrap interval that excludes 0" in t and "(n = 54 models)" in t for t in texts)


def test_show_correlations_drops_empty_rows_and_a_matrix_with_one_dataset(shown):
    long = pd.DataFrame({"row": ["a", "a", "a", "b", "b", "b"], "column": ["a", "b", "x", "a", "b", "x"],
                         "rho": [1.0, 0.5, np.nan, 0.5, 1.0, np.nan], "ci_low": [1, 0.2, np.nan, 0.2, 1, np.nan],
                         "ci_high": [1, 0.8, np.nan, 0.8, 1, np.nan]})
    single = pd.DataFrame({"row": ["cars3d"], "column": ["cars3d"], "rho": [1.0], "ci_low": [1.0],
                           "ci_high": [1.0]})
    single.attrs["reason"] = "needs two datasets; this store has 1"
    pages.show_correlations({"cars3d": long, "MIG": single}, {"cars3d": 10})
    texts = displayed_texts(shown)
    assert any("no values for x in this store" in t for t in texts)
    assert any("MIG: needs two datasets; this store has 1" in t for t in texts)
    fig = next(o for o in shown if isinstance(o, matplotlib.figure.Figure))
    assert len([ax for ax in fig.axes if ax.get_title()]) == 1           # the single-dataset matrix is not drawn
