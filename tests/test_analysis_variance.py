"""analysis.variance: R^2 by construction, summaries, distributions, winners, seed-vs-config, best strength."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.frames import METRIC_NAMES, model_table
from analysis.variance import (
    best_strength, config_cube, method_winners, paper_layout, r_squared_between, r_squared_ols, r_squared_table,
    score_distributions, seed_beats_config, strength_curves, variance_explained, variance_summary,
    worse_beats_better,
)
from helpers.grids import run_grid, to_tidy

METHOD_EFFECT = {"beta_vae": 0.0, "factor_vae": 1.0, "dip_vae_i": 2.0, "dip_vae_ii": 3.0, "beta_tc_vae": 4.0,
                 "annealed_vae": 5.0}


def _constructed(n_seeds=4):
    """Scores with exactly known R^2: y = method effect + hyperparameter effect (zero mean within each method)
    + seed effect (zero mean within each configuration), with sums of squares 1 : 1 : 2 after scaling."""
    runs = run_grid(datasets=("dsprites_full", "cars3d"), n_seeds=n_seeds)
    method = runs["method"].map(METHOD_EFFECT).to_numpy()
    slot = runs.groupby(["dataset", "method"])["hparam_value"].rank(method="dense").to_numpy() - 3.5  # mean 0
    seed = runs["seed"].to_numpy() - (n_seeds - 1) / 2                                                # mean 0
    def scaled(v):
        return v / np.sqrt((v ** 2).sum() / 2)      # same sum of squares per dataset (two identical halves)
    m = method - method.mean()
    y = scaled(m) * 1.0 + scaled(slot) * 1.0 + scaled(seed) * np.sqrt(2.0)
    return runs, y


def test_r_squared_by_construction():
    runs, y = _constructed()
    tidy = to_tidy(runs, {name: y for name in METRIC_NAMES})
    r2 = variance_explained(tidy)
    assert list(r2.index.names) == ["dataset", "metric"] and len(r2) == 2 * 6
    np.testing.assert_allclose(r2["method"], 0.25, atol=1e-9)
    np.testing.assert_allclose(r2["method_x_hparam"], 0.5, atol=1e-9)
    np.testing.assert_allclose(r2["seed"], 0.5, atol=1e-9)
    assert r2.attrs["means"]["method"] == pytest.approx(0.25) and r2.attrs["reason"] is None
    layout = paper_layout(r2, "method_x_hparam")
    assert layout.shape == (2, 6) and np.allclose(layout.to_numpy(), 0.5)


def test_ols_equals_between_group_share_and_table():
    rs = np.random.RandomState(0)
    y = rs.normal(size=200)
    groups = rs.randint(0, 7, size=200)
    ols = r_squared_ols(y, groups)
    assert ols == pytest.approx(r_squared_between(y, groups))
    # replication weights = duplicating rows
    w = rs.randint(0, 3, size=(4, 200)).astype(float)
    for b in range(4):
        rows = np.repeat(np.arange(200), w[b].astype(int))
        assert r_squared_between(y, groups, w)[b] == pytest.approx(r_squared_ols(y[rows], groups[rows]))
    assert r_squared_ols(y, np.zeros(200)) == 0.0
    assert np.isnan(r_squared_ols(np.ones(5), np.arange(5)))


def test_r_squared_table_matches_statsmodels():
    runs = run_grid(datasets=("dsprites_full", "smallnorb"), n_seeds=3)
    rs = np.random.RandomState(2)
    tidy = to_tidy(runs, {name: rs.normal(size=len(runs)) + (runs["method"] == "dip_vae_i") for name in METRIC_NAMES})
    table = model_table(tidy)
    r2 = variance_explained(table)
    fast = r_squared_table(table, "config").stack()
    np.testing.assert_allclose(fast.to_numpy(), r2["method_x_hparam"].to_numpy())
    np.testing.assert_allclose(r_squared_table(table, "method").stack().to_numpy(), r2["method"].to_numpy())


def test_variance_missing_metric_and_summary():
    runs, y = _constructed()
    tidy = to_tidy(runs, {"MIG": y, "SAP": y})
    r2 = variance_explained(tidy)
    assert r2.loc[("cars3d", "DCI Disentanglement"), "reason"].startswith("0 models")
    summary = variance_summary(r2)
    overall = summary[summary["level"] == "all"].iloc[0]
    assert overall["n_cells"] == 4 and overall["method"] == pytest.approx(0.25)
    assert set(summary["level"]) == {"all", "metric", "dataset"}
    empty = variance_explained(tidy[tidy["metric"] == "nothing"])
    assert empty.empty and empty.attrs["reason"]


def test_score_distributions_and_curves():
    runs, y = _constructed(n_seeds=3)
    tidy = to_tidy(runs, {"MIG": y})
    long = score_distributions(tidy, dataset="cars3d", metric="mig")
    assert len(long) == 36 * 3 and set(long["metric"]) == {"MIG"}
    assert long.loc[long["method"] == "beta_tc_vae", "method_code"].eq(2).all()   # the figures' code order
    curves = strength_curves(tidy, metric="MIG")
    assert len(curves) == 2 * 36 and curves["n_seeds"].eq(3).all()
    assert score_distributions(tidy, dataset="shapes3d").attrs["reason"].startswith("no scores")


def test_method_winners_planted():
    runs = run_grid(datasets=("dsprites_full",), n_seeds=5)
    rs = np.random.RandomState(0)
    y = runs["method"].map(METHOD_EFFECT).to_numpy() * 10 + rs.normal(size=len(runs))
    out = method_winners(to_tidy(runs, {"MIG": y, "SAP": -y}))
    by_metric = out.set_index("metric")
    assert by_metric.loc["MIG", "winner"] == "annealed_vae" and by_metric.loc["MIG", "runner_up"] == "beta_tc_vae"
    assert by_metric.loc["SAP", "winner"] == "beta_vae"
    assert not by_metric["iqr_overlap"].any()           # effects of 10 vs noise of 1: ranges are disjoint


def test_seed_beats_config_brute_force():
    runs = run_grid(datasets=("cars3d",), methods=("factor_vae", "beta_vae"), n_seeds=4)
    rs = np.random.RandomState(5)
    y = rs.randint(0, 5, size=len(runs)).astype(float)        # many ties: strictly greater only
    tidy = to_tidy(runs, {"MIG": y})
    out = seed_beats_config(tidy).set_index("method")
    table = model_table(tidy)
    for method in ("factor_vae", "beta_vae"):
        x = table[table["method"] == method].pivot(index="hparam_value", columns="seed", values="MIG").to_numpy()
        med = np.median(x, axis=1)
        ps = [(x[i][:, None] > x[j][None, :]).mean() for i in range(6) for j in range(6) if med[i] < med[j]]
        assert out.loc[method, "p_worse_beats_better"] == pytest.approx(np.mean(ps))
        assert out.loc[method, "n_pairs"] == len(ps)


def test_worse_beats_better_separated_configs_never_win():
    arr = np.arange(6 * 5, dtype=float).reshape(1, 6, 5)       # slot h's scores all above slot h-1's
    p, n = worse_beats_better(arr)
    assert p[0] == 0.0 and n[0] == 15


def test_best_strength_planted():
    runs = run_grid(datasets=("dsprites_full", "cars3d"), methods=("beta_vae",), n_seeds=3)
    peak = runs["dataset"].map({"dsprites_full": 2.0, "cars3d": 16.0}).to_numpy()
    y = -np.abs(runs["hparam_value"].to_numpy() - peak)
    out = best_strength(to_tidy(runs, {"MIG": y})).set_index("dataset")
    assert out.loc["dsprites_full", "best_hparam_value"] == 2.0 and out.loc["dsprites_full", "best_strength"] == 0.2
    assert out.loc["cars3d", "best_strength"] == 1.0 and out["n_values"].eq(6).all()


def test_config_cube_layout_and_resample():
    runs = run_grid(datasets=("cars3d", "dsprites_full"), methods=("beta_vae", "annealed_vae"), n_seeds=3)
    y = np.arange(len(runs), dtype=float)
    cube = config_cube(to_tidy(runs, {"MIG": y}), ["MIG"])
    assert cube.datasets == ("dsprites_full", "cars3d")           # study order
    assert cube.values.shape == (1, 4, 6, 3)
    assert cube.group_method == ("beta_vae", "annealed_vae", "beta_vae", "annealed_vae")
    np.testing.assert_allclose(cube.strength[1], [1.0, 0.8, 0.6, 0.4, 0.2, 0.0])   # annealed c_max 5 .. 100
    rep = cube.resample(np.array([2, 2, 0]))
    np.testing.assert_array_equal(rep.values[..., 0], cube.values[..., 2])
    np.testing.assert_array_equal(rep.values[..., 2], cube.values[..., 0])
    assert rep.seeds == (0, 1, 2)
    assert pd.isna(config_cube(to_tidy(runs.iloc[:5], {"MIG": y[:5]}), ["MIG"]).values).sum() > 0
