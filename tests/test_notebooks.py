"""The report notebooks are thin, parameterized and committed without outputs; the plot helpers they call say the
right thing about constructed numbers."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import papermill  # noqa: E402
import pytest  # noqa: E402

from analysis import plots, report  # noqa: E402

NOTEBOOKS = report.notebook_paths()
MAX_CELL_LINES = 8


def test_one_notebook_per_analysis_family():
    names = [p.stem for p in NOTEBOOKS]
    assert names[0] == "00_overview" and len(names) >= 11       # the overview + a page per family of figures
    assert len(set(n.split("_")[0] for n in names)) == len(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_parameterized_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    params = papermill.inspect_notebook(str(path))
    assert {"store_path", "cache_dir"} <= set(params)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit notebooks without outputs"
            assert len(cell.source.splitlines()) <= MAX_CELL_LINES, cell.source
    assert report.notebook_title(path) == nb.cells[0].source.splitlines()[0][2:]


def _matrix(values, names):
    return pd.DataFrame(np.asarray(values, dtype=float), index=names, columns=names)


def test_describe_metric_agreement():
    names = list(plots.METRIC_SHORT)
    m = np.full((6, 6), 0.5)
    np.fill_diagonal(m, 1.0)
    m[2, 3] = m[3, 2] = 0.9           # MIG-DCI tightest
    m[4, :] = m[:, 4] = 0.1           # Modularity
    m[4, 4] = 1.0
    text = plots.describe_metric_agreement("noisy_dsprites", _matrix(m, names), n=300)
    # 10 pairs without Modularity: nine at 50 and one at 90 -> mean 54; 90 against 50 over 300 models is significant
    assert text == ("Noisy-dSprites: the 10 pairs of metrics other than Modularity have a mean Spearman of 54 (out of "
                    "100); the tightest pair is MIG–DCI (90), above the next, BetaVAE–FactorVAE (50; p < 0.001); "
                    "Modularity's mean correlation with the others is 10 (n = 300 models).")
    # without the number of models nothing can be tested, so no pair is named
    assert "tightest" not in plots.describe_metric_agreement("noisy_dsprites", _matrix(m, names))


def test_describe_dataset_agreement():
    names = ["dsprites_full", "color_dsprites", "cars3d"]
    text = plots.describe_dataset_agreement("MIG", _matrix([[1, .8, .1], [.8, 1, .3], [.1, .3, 1]], names), n=36)
    assert text == ("MIG: dSprites↔Color-dSprites ρ = 80; the other 2 dataset pairs average 20; the highest pair is "
                    "dSprites↔Color-dSprites (80), above Color-dSprites↔Cars3D (30; p = 0.0019) (n = 36 "
                    "configurations).")


def test_describe_curves_detects_trends():
    rng = np.random.RandomState(0)
    strength = np.repeat(np.linspace(0, 1, 6), 5)                  # six strengths x five seeds
    models = pd.DataFrame({"dataset": "cars3d", "method": ["beta_vae"] * 30 + ["dip_vae_i"] * 30,
                           "strength": np.tile(strength, 2),
                           "value": np.r_[strength, -strength] + 0.05 * rng.uniform(size=60)})
    text = plots.describe_curves(models, "cars3d", "dataset")
    assert text.startswith("Cars3D: β-VAE rises (ρ = +0.99, p < 0.001), highest median at strength 1.0 (the "
                           "strengths differ, Kruskal–Wallis p < 0.001); DIP-VAE-I falls (ρ = -0.99, p < 0.001), "
                           "highest median at strength 0.0")
    assert text.endswith("(Spearman over every model; p Holm-adjusted over the 4 tests of this panel).")


def test_describe_variance_uses_unweighted_means():
    r2 = pd.DataFrame({"method": [0.2, 0.4], "method_x_hparam": [0.5, 0.7]},
                      index=pd.MultiIndex.from_tuples([("a", "MIG"), ("b", "MIG")], names=["dataset", "metric"]))
    text = plots.describe_variance(r2)
    assert "the 2 (dataset, metric) cells" in text and "explains 30 %" in text and "strength 60 %" in text
    assert "remaining 40 %" in text


def test_heatmap_shows_integer_100_rho_without_negative_zero():
    names = ["MIG", "DCI Disentanglement"]
    fig = plots.rho_heatmap_grid({"cars3d": _matrix([[1.0, -0.004], [-0.004, 1.0]], names)})
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "0", "100", "100"]
    assert fig.axes[0].get_title() == "Cars3D"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["MIG", "DCI"]


def test_run_overview():
    runs = pd.DataFrame({"run_id": list("abcdef"), "dataset": ["cars3d"] * 4 + ["dsprites_full"] * 2,
                         "method": ["beta_vae"] * 6, "hparam_name": "beta",
                         "hparam_value": [1.0, 1.0, 4.0, 4.0, 1.0, 1.0], "seed": [0, 1, 0, 3, 5, 6]})
    out = plots.run_overview(runs)
    assert out.values.tolist() == [["dsprites_full", "beta_vae", "beta", "1", 2, "5–6"],
                                   ["cars3d", "beta_vae", "beta", "1, 4", 4, "0–1, 3"]]


def test_violin_and_curve_grids_draw_one_panel_per_dataset():
    rng = np.random.RandomState(0)
    long = pd.DataFrame({"dataset": np.repeat(["dsprites_full", "cars3d"], 60),
                         "method": np.tile(np.repeat(["beta_vae", "factor_vae"], 30), 2),
                         "value": rng.uniform(size=120)})
    fig = plots.violin_grid(long, ["dsprites_full", "cars3d"], "dataset")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["dSprites", "Cars3D"]
    text = plots.describe_violins(long.assign(value=np.where(long["method"] == "beta_vae", 0.9, 0.1)),
                                  "cars3d", "dataset", "MIG")
    assert text.startswith("Cars3D (MIG): medians range from 0.1 (FactorVAE) to 0.9 (β-VAE)")
    assert "0 of the 1 method pairs overlap" in text


def test_notebooks_import_analysis_functions_directly_and_cite_only_the_paper():
    import re
    from pathlib import Path

    sources = {p.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells) for p in NOTEBOOKS}
    package = Path(plots.__file__).parent
    sources.update({f"plots/{p.name}": p.read_text(encoding="utf-8") for p in package.glob("*.py")})
    outside = re.compile(r"spec/|DESIGN\.md|\bspec\b|[Ss]ection 1\.\d")
    for name, text in sources.items():
        assert "plots.need" not in text and "importlib" not in text, name
        assert not outside.search(text), (name, outside.search(text).group(0))
    assert not hasattr(plots, "need")
    assert set(plots.__all__) <= set(dir(plots))
