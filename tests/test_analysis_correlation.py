"""analysis.correlation: Spearman matrices on planted rank structure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from analysis.correlation import (
    dataset_correlations, group_spearman, metric_correlations, spearman_array, spearman_table,
)
from analysis.frames import METRIC_NAMES, model_table
from helpers.grids import run_grid, to_tidy


def _planted(datasets=("dsprites_full", "color_dsprites", "cars3d"), n_seeds=4, seed=0):
    """Metrics as monotone functions of one latent (rank-identical), Modularity reversed, SAP independent."""
    runs = run_grid(datasets=datasets, n_seeds=n_seeds)
    rs = np.random.RandomState(seed)
    z = rs.normal(size=len(runs))
    cols = {
        "BetaVAE Score": z, "FactorVAE Score": np.exp(z), "MIG": z ** 3, "DCI Disentanglement": np.tanh(z),
        "Modularity": -z, "SAP": rs.normal(size=len(runs)),
    }
    return runs, cols, to_tidy(runs, cols)


def test_metric_correlations_planted_ranks():
    runs, cols, tidy = _planted()
    rho = metric_correlations(tidy, "cars3d")
    assert list(rho.index) == list(METRIC_NAMES) and list(rho.columns) == list(METRIC_NAMES)
    monotone = ["BetaVAE Score", "FactorVAE Score", "MIG", "DCI Disentanglement"]
    np.testing.assert_allclose(rho.loc[monotone, monotone].to_numpy(), 1.0)
    np.testing.assert_allclose(rho.loc["Modularity", monotone].to_numpy(), -1.0)
    mask = (runs["dataset"] == "cars3d").to_numpy()
    expected = spearmanr(cols["SAP"][mask], cols["MIG"][mask]).statistic
    assert rho.loc["SAP", "MIG"] == pytest.approx(expected)
    assert rho.attrs["reason"] is None and rho.attrs["n_models"] == mask.sum()


def test_metric_correlations_missing_dataset_and_metric():
    runs, cols, tidy = _planted()
    absent = metric_correlations(tidy, "shapes3d")
    assert absent.isna().all().all() and "shapes3d is not in this store" in absent.attrs["reason"]
    no_sap = tidy[tidy["metric"] != "sap_score"]
    rho = metric_correlations(no_sap, "dsprites_full")
    assert rho.loc["SAP"].isna().all() and rho["SAP"].isna().all()
    assert rho.loc["MIG", "BetaVAE Score"] == pytest.approx(1.0)
    assert "SAP" in rho.attrs["reason"] and rho.attrs["missing"] == ["SAP"]


def test_dataset_correlations_config_medians_and_model_pairing():
    runs = run_grid(datasets=("dsprites_full", "color_dsprites", "cars3d"), n_seeds=5)
    rs = np.random.RandomState(1)
    config = pd.factorize(runs["method"] + runs["hparam_value"].astype(str))[0].astype(float)
    sign = runs["dataset"].map({"dsprites_full": 1.0, "color_dsprites": 2.0, "cars3d": -1.0}).to_numpy()
    seed_noise = rs.uniform(-0.3, 0.3, size=len(runs))        # smaller than the config spacing: medians keep order
    tidy = to_tidy(runs, {"MIG": sign * config + seed_noise})
    rho = dataset_correlations(tidy, "mig")
    assert rho.loc["dsprites_full", "color_dsprites"] == pytest.approx(1.0)
    assert rho.loc["dsprites_full", "cars3d"] == pytest.approx(-1.0)
    assert rho.attrs["pairing"] == "config_median" and rho.attrs["reason"] is None
    # per-model pairing pairs (config, seed): the seed noise now enters, so |rho| < 1 but still strongly signed
    per_model = dataset_correlations(tidy, "MIG", pairing="model")
    assert 0.9 < per_model.loc["dsprites_full", "color_dsprites"] < 1.0
    assert per_model.loc["dsprites_full", "cars3d"] < -0.9
    with pytest.raises(ValueError, match="unknown pairing"):
        dataset_correlations(tidy, "mig", pairing="seed")


def test_dataset_correlations_single_dataset_reason():
    runs, cols, tidy = _planted(datasets=("dsprites_full",))
    rho = dataset_correlations(tidy, "MIG")
    assert "at least two datasets" in rho.attrs["reason"]


def test_spearman_array_nan_fallback_matches_pandas():
    rs = np.random.RandomState(3)
    x = rs.randint(0, 4, size=(40, 3)).astype(float)
    x[[1, 5, 9], 1] = np.nan
    x = np.column_stack([x, np.full(40, np.nan)])
    got = spearman_array(x)
    expected = pd.DataFrame(x[:, :3]).corr(method="spearman").to_numpy()
    np.testing.assert_allclose(got[:3, :3], expected)
    assert np.isnan(got[3]).all() and np.isnan(got[:, 3]).all()


def test_spearman_table_min_models():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]})
    assert spearman_table(frame, ["a"], ["b"]).isna().all().all()
    assert spearman_table(frame, ["a"], ["b"], min_models=2).iloc[0, 0] == pytest.approx(-1.0)


def test_group_spearman_matches_scipy():
    rs = np.random.RandomState(0)
    frame = pd.DataFrame({"g": rs.randint(0, 3, 90), "x": rs.randint(0, 5, 90).astype(float),
                          "y": rs.normal(size=90)})
    frame.loc[4, "y"] = np.nan
    out = group_spearman(frame, ["g"], "x", "y").set_index("g")
    for g, grp in frame.dropna().groupby("g"):
        assert out.loc[g, "rho"] == pytest.approx(spearmanr(grp["x"], grp["y"]).statistic)


def test_model_table_input_gives_same_result():
    _runs, _cols, tidy = _planted()
    np.testing.assert_allclose(metric_correlations(model_table(tidy), "dsprites_full").to_numpy(),
                               metric_correlations(tidy, "dsprites_full").to_numpy())
