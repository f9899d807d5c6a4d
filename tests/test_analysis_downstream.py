"""analysis.downstream, analysis.unsupervised and analysis.total_correlation on planted structure."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.downstream import (
    DOWNSTREAM_QUANTITIES, accuracy_by_metric_group, downstream_correlations, downstream_table,
    efficiency_correlations,
)
from analysis.frames import DOWNSTREAM_COLUMNS, METRIC_NAMES
from analysis.total_correlation import mean_above_sampled, tc_curves, tc_table, tc_trends
from analysis.unsupervised import (
    UNSUPERVISED_SCORES, unsupervised_correlations, unsupervised_correlations_all,
    unsupervised_downstream_correlations,
)
from helpers.grids import run_grid, to_tidy


def _downstream_store(with_downstream=True, n_seeds=3):
    runs = run_grid(datasets=("dsprites_full", "cars3d"), n_seeds=n_seeds)
    rs = np.random.RandomState(0)
    z = rs.uniform(size=len(runs))
    cols = {m: z for m in METRIC_NAMES}
    cols["Modularity"] = rs.uniform(size=len(runs))
    if with_downstream:
        for column in DOWNSTREAM_COLUMNS:                   # accuracy rises with the metric (monotone)
            cols[column] = 0.2 + 0.5 * z + (0.2 if column.endswith("10000") else 0.0)
        cols["LR100"] = 0.5 - 0.3 * z                      # ... except LR100, which falls with it
    return runs, z, to_tidy(runs, cols)


def test_downstream_correlations_planted():
    _runs, _z, tidy = _downstream_store()
    rho = downstream_correlations(tidy, "dsprites_full")
    assert list(rho.columns) == list(DOWNSTREAM_QUANTITIES) and list(rho.index) == list(METRIC_NAMES)
    assert rho.loc["MIG", "GBT10000"] == pytest.approx(1.0)
    assert rho.loc["DCI Disentanglement", "LR100"] == pytest.approx(-1.0)
    # Eff(LR) = LR100 / LR10000 falls with z; Eff(GBT) = (0.2 + .5z) / (0.4 + .5z) rises with z
    assert rho.loc["MIG", "Eff(LR)"] == pytest.approx(-1.0)
    assert rho.loc["MIG", "Eff(GBT)"] == pytest.approx(1.0)
    assert rho.attrs["reason"] is None


def test_efficiency_values_and_long_frame():
    _runs, z, tidy = _downstream_store()
    table = downstream_table(tidy, "cars3d")
    np.testing.assert_allclose(table["Eff(GBT)"], (0.2 + 0.5 * table["MIG"]) / (0.4 + 0.5 * table["MIG"]))
    eff = efficiency_correlations(tidy)
    assert len(eff) == 2 * 6 * 2
    assert eff.set_index(["dataset", "metric", "predictor"]).loc[("cars3d", "SAP", "GBT"), "rho"] == pytest.approx(1)


def test_store_without_downstream_says_so():
    _runs, _z, tidy = _downstream_store(with_downstream=False)
    rho = downstream_correlations(tidy, "cars3d")
    assert rho.isna().all().all() and "no downstream accuracies on cars3d" in rho.attrs["reason"]
    assert efficiency_correlations(tidy).attrs["reason"]
    absent = downstream_correlations(tidy, "shapes3d")
    assert "no models on shapes3d" in absent.attrs["reason"]


def test_accuracy_by_metric_group_terciles():
    _runs, _z, tidy = _downstream_store()
    groups = accuracy_by_metric_group(tidy, "dsprites_full", "MIG")
    gbt = groups[(groups["predictor"] == "GBT") & (groups["size"] == 100)].sort_values("group")
    assert list(gbt["group"]) == [0, 1, 2] and gbt["n_models"].sum() == 108
    assert gbt["median"].is_monotonic_increasing
    assert (gbt["group_low"].to_numpy()[1:] > gbt["group_high"].to_numpy()[:-1]).all()
    with pytest.raises(ValueError):
        accuracy_by_metric_group(tidy, "dsprites_full", "MIG", n_groups=0)


def test_unsupervised_correlations_with_and_without_runs():
    runs, z, tidy = _downstream_store()
    n = len(runs)
    tidy2 = to_tidy(runs, {"tc_sampled": -z, "tc_mean": z ** 2})
    both = __import__("pandas").concat([tidy, tidy2], ignore_index=True)
    run_frame = runs.assign(reconstruction_loss=1 - z, kl_loss=np.linspace(0, 1, n), elbo=np.nan)
    rho = unsupervised_correlations(both, "dsprites_full", runs=run_frame)
    assert list(rho.index) == list(UNSUPERVISED_SCORES)
    assert rho.loc["reconstruction_loss", "MIG"] == pytest.approx(-1.0)
    assert rho.loc["tc_sampled", "BetaVAE Score"] == pytest.approx(-1.0)
    assert rho.loc["tc_mean", "SAP"] == pytest.approx(1.0)
    assert rho.attrs["reason"] is None and "lower" in rho.attrs["convention"]
    no_runs = unsupervised_correlations(both, "dsprites_full")
    assert no_runs.loc["kl_loss"].isna().all() and "pass runs=" in no_runs.attrs["reason"]
    down = unsupervised_downstream_correlations(both, "cars3d", runs=run_frame)
    assert down.loc["tc_sampled", "GBT1000"] == pytest.approx(-1.0)
    long = unsupervised_correlations_all(both, runs=run_frame)
    assert set(long["dataset"]) == {"dsprites_full", "cars3d"} and len(long) == 2 * 5 * 6


def _tc_store():
    runs = run_grid(datasets=("color_dsprites",), n_seeds=3)
    strength_rank = runs.groupby("method")["hparam_value"].rank(method="dense").to_numpy() - 1
    rs = np.random.RandomState(1)
    sampled = 0.1 * np.exp(-strength_rank) * (1 + 0.01 * rs.uniform(size=len(runs)))
    mean = 0.1 * (0.5 + strength_rank) * (1 + 0.01 * rs.uniform(size=len(runs)))
    return runs, to_tidy(runs, {"tc_sampled": sampled, "tc_mean": mean})


def test_tc_trends_planted_directions():
    _runs, tidy = _tc_store()
    trends = tc_trends(tidy).set_index(["method", "representation"])
    # sampled TC falls with strength, mean TC rises, for every method but AnnealedVAE (its axis is reversed)
    for method in ("beta_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tc_vae"):
        assert trends.loc[(method, "sampled"), "rho"] == pytest.approx(-1.0)
        assert trends.loc[(method, "mean"), "rho"] == pytest.approx(1.0)
    assert trends.loc[("annealed_vae", "sampled"), "rho"] == pytest.approx(1.0)
    forward = tc_trends(tidy, annealed_reversed=False).set_index(["method", "representation"])
    assert forward.loc[("annealed_vae", "sampled"), "rho"] == pytest.approx(-1.0)
    curves = tc_curves(tidy)
    assert curves["n_seeds"].eq(3).all() and len(curves) == 36 * 2


def test_mean_above_sampled_fraction():
    _runs, tidy = _tc_store()
    out = mean_above_sampled(tidy).set_index(["dataset", "method"])
    # mean ~ 0.1 (0.5 + r) vs sampled ~ 0.1 exp(-r): below at r = 0, above for r >= 1 -> 5 of the 6 values
    assert out.loc[("all", "all"), "fraction"] == pytest.approx(5 / 6)
    assert out.loc[("color_dsprites", "beta_vae"), "n_models"] == 18
    assert tc_table(tidy, "mutual_info_score").attrs["reason"].startswith("no mutual_info_score")
