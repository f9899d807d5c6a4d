"""The paper's supplementary figures: their analysis functions (frames in, frames out) on planted data, and their
page sections, which say in one line what a store lacks."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import supplement  # noqa: E402
from analysis.downstream import accuracy_by_metric_group  # noqa: E402
from analysis.frames import METRIC_NAMES  # noqa: E402
from analysis.plots import pages  # noqa: E402
from analysis.total_correlation import tc_table  # noqa: E402
from helpers.display import displayed_texts  # noqa: E402

METHODS = ["beta_vae", "factor_vae"]
VALUES = {"beta_vae": [1.0, 2.0, 4.0, 6.0], "factor_vae": [10.0, 20.0, 30.0, 40.0]}


def table(seed=0, seeds=6, downstream=True):
    """A model table on two datasets: beta-VAE's FactorVAE score rises with its hyperparameter, FactorVAE's does
    not; MIG and DCI share a quality that also drives LR efficiency; MI and Wasserstein statistics planted."""
    rs = np.random.RandomState(seed)
    rows = [(d, m, v, k / 3, s) for d in ("dsprites_full", "cars3d") for m in METHODS for k, v in enumerate(VALUES[m])
            for s in range(seeds)]
    t = pd.DataFrame(rows, columns=["dataset", "method", "hparam_value", "strength", "seed"])
    t.insert(0, "run_id", [f"r{i}" for i in range(len(t))])
    t["config"] = t["method"] + "(" + t["hparam_value"].map("{:g}".format) + ")"
    quality = rs.normal(size=len(t))
    for name in METRIC_NAMES:
        t[name] = rs.uniform(size=len(t))
    t["FactorVAE Score"] = np.where(t["method"] == "beta_vae", t["strength"], 0.0) + 0.1 * rs.uniform(size=len(t))
    t["MIG"] = quality + 0.1 * rs.normal(size=len(t))
    t["DCI Disentanglement"] = quality + 0.1 * rs.normal(size=len(t))
    for short in ("LR", "GBT"):
        t[f"{short}100"] = 0.5 + 0.05 * quality if downstream else np.nan
        t[f"{short}10000"] = 0.9 if downstream else np.nan
        t[f"Eff({short})"] = t[f"{short}100"] / t[f"{short}10000"]
        for size in (10, 1000):
            t[f"{short}{size}"] = 0.4 + 0.05 * quality if downstream else np.nan
    for rep in ("mean", "sampled"):
        t[f"mi_{rep}"] = 0.2 + 0.1 * t["strength"] * (1 if rep == "mean" else -1) + 0.01 * rs.uniform(size=len(t))
        t[f"wasserstein_{rep}"] = 10 ** (-2 + t["strength"]) * (1 + 0.1 * rs.uniform(size=len(t)))
        t[f"tc_{rep}"] = t[f"wasserstein_{rep}"]
    return t




def test_hparam_distributions_and_spread():
    long = supplement.hparam_distributions(table(), "FactorVAE Score", ["cars3d"])
    assert set(long.columns) == {"dataset", "method", "hparam_value", "strength", "seed", "value"}
    assert len(long) == 2 * 4 * 6 and set(long["dataset"]) == {"cars3d"}
    spread = supplement.hparam_spread(long).set_index("method")
    assert spread.loc["beta_vae", "p"] < 0.001 and spread.loc["beta_vae", "best_hparam_value"] == 6.0
    assert spread.loc["factor_vae", "p"] > 0.01                  # FactorVAE's values do not matter here
    assert spread.loc["beta_vae", "median_range"] == pytest.approx(1.0, abs=0.1)
    assert spread.loc["beta_vae", "n_values"] == 4 and spread.loc["beta_vae", "n_models"] == 24
    empty = supplement.hparam_distributions(table().assign(SAP=np.nan), "SAP")
    assert empty.empty and empty.attrs["reason"] == "no SAP scores in this store"


def test_metric_pairs_and_their_correlations():
    t = table()
    pairs = supplement.metric_pairs(t, "dsprites_full")
    assert pairs["pair"].nunique() == 15 and len(pairs) == 15 * 48 and pairs.attrs["reason"] is None
    rho = supplement.pair_correlations(pairs).set_index("pair")
    assert rho.loc["MIG vs DCI Disentanglement", "rho"] > 0.9 and rho.loc["MIG vs DCI Disentanglement", "p"] < 0.001
    assert rho.loc["MIG vs DCI Disentanglement", "n"] == 48
    lacking = supplement.metric_pairs(t.assign(SAP=np.nan), "dsprites_full")
    assert lacking["pair"].nunique() == 10 and "BetaVAE Score vs SAP" in lacking.attrs["reason"]
    assert supplement.metric_pairs(t, "shapes3d").attrs["reason"] == "dataset shapes3d is not in this store"


def test_efficiency_against_metrics():
    long = supplement.efficiency_against_metrics(table(), "LR")
    assert len(long) == 6 * 96 and long.attrs["reason"] is None
    row = long.iloc[0]
    assert row["efficiency"] == pytest.approx(table().iloc[0]["LR100"] / 0.9)
    tests = supplement.efficiency_tests(long).set_index(["dataset", "metric"])
    assert list(tests.index.get_level_values(0).unique()) == ["dsprites_full", "cars3d"]
    assert tests.loc[("cars3d", "MIG"), "rho"] > 0.9 and tests.loc[("cars3d", "MIG"), "p"] < 0.001
    assert tests.loc[("cars3d", "SAP"), "p"] > 0.001
    none = supplement.efficiency_against_metrics(table(downstream=False), "LR")
    assert none.empty and none.attrs["reason"] == "no LR100, LR10000 accuracies in this store, so no Eff(LR)"
    with pytest.raises(ValueError):
        supplement.efficiency_against_metrics(table(), "SVM")


def test_pages_of_the_supplementary_figures(shown):
    t = table()
    pages.show_hparam_violins(supplement.hparam_distributions(t, "FactorVAE Score"), "FactorVAE Score")
    pages.show_metric_pairs(supplement.metric_pairs(t, "dsprites_full"), "dsprites_full")
    pages.show_efficiency_against_metrics(supplement.efficiency_against_metrics(t, "LR"), "LR")
    pages.show_metric_groups({d: accuracy_by_metric_group(t, d, "MIG") for d in ("dsprites_full", "cars3d")}, "MIG")
    mi = tc_table(t, "mutual_info_score")
    pages.show_curves(mi, ["dsprites_full", "cars3d"], "dataset", y="mean", what="MI (mean)", peak=False)
    figures = [o for o in shown if isinstance(o, matplotlib.figure.Figure)]
    assert len(figures) == 5
    lines = displayed_texts(shown)
    assert any("FactorVAE: in 2 of the 4 (dataset, method) cells the hyperparameter values differ" in x
               for x in lines)
    assert any("dSprites (n = 48 models): " in x and "of the 15 pairs of metrics" in x for x in lines)
    assert any("correlations of LR sample efficiency with the metric" in x for x in lines)
    assert any("low → high MIG group" in x for x in lines)
    assert any("dSprites MI (mean): β-VAE rises" in x for x in lines)


def test_pages_say_in_one_line_what_the_store_lacks(shown):
    t = table(downstream=False).assign(mi_mean=np.nan, mi_sampled=np.nan)
    pages.show_efficiency_against_metrics(supplement.efficiency_against_metrics(t, "LR"), "LR")
    pages.show_metric_pairs(supplement.metric_pairs(t, "shapes3d"), "shapes3d")
    pages.show_hparam_violins(supplement.hparam_distributions(t.assign(MIG=np.nan), "MIG"), "MIG")
    pages.show_curves(tc_table(t, "mutual_info_score"), ["dsprites_full"], "dataset", y="mean", what="MI (mean)")
    assert not [o for o in shown if isinstance(o, matplotlib.figure.Figure)]
    lines = [x for x in displayed_texts(shown) if "Not shown:" in x]
    assert len(lines) == 4
    assert "no LR100, LR10000 accuracies in this store" in lines[0]
    assert "dataset shapes3d is not in this store" in lines[1]
    assert "no MIG scores in this store" in lines[2]
    assert "no mutual_info_score scores" in lines[3]
