"""analysis.transfer: the transfer simulation on pure noise (~chance) and on perfectly transferable effects (100 %)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.frames import METRIC_NAMES, model_table
from analysis.transfer import (
    binomial_interval, score_tensor, simulate_cell, transfer_intervals, transfer_sensitivity, transfer_win_rates,
)
from test_analysis_helpers import run_grid, to_tidy

DATASETS = ("dsprites_full", "color_dsprites", "cars3d")


def _store(kind: str, n_seeds: int = 6, seed: int = 0) -> pd.DataFrame:
    runs = run_grid(datasets=DATASETS, n_seeds=n_seeds)
    rs = np.random.RandomState(seed)
    if kind == "noise":              # continuous noise: no information, (almost) no ties
        cols = {m: rs.normal(size=len(runs)) for m in METRIC_NAMES}
    elif kind == "coarse":           # noise on 3 levels: many ties
        cols = {m: rs.randint(0, 3, size=len(runs)).astype(float) for m in METRIC_NAMES}
    else:                            # one config ordering shared by every dataset, metric and seed
        config = pd.factorize(runs["method"] + runs["hparam_value"].astype(str))[0].astype(float)
        cols = {m: config.copy() for m in METRIC_NAMES}
    return model_table(to_tidy(runs, cols))


def test_table_shape_and_fractions():
    rates = transfer_win_rates(_store("noise"), n_draws=2000)
    assert list(rates.index) == ["same_metric", "other_metric"]
    assert list(rates.columns) == ["same_dataset", "other_dataset"]
    assert ((rates >= 0) & (rates <= 1)).all().all() and rates.attrs["reason"] is None


def test_pure_noise_is_at_chance():
    cells = transfer_intervals(_store("noise"), n_draws=10000, random_state=1)
    # the only ties: the random model is c* itself (same config, same seed): P = 1/36 * 1/6, chance = 0.5 + P/2
    assert np.allclose(cells["chance"], 0.5 + 1 / (36 * 6) / 2, atol=0.002)
    # 10,000 draws give a binomial sd of 0.005
    assert np.all(np.abs(cells["rate"] - 0.5) < 0.03)


def test_ties_count_as_wins():
    cells = transfer_intervals(_store("coarse"), n_draws=10000, random_state=2)
    assert (cells["tie_rate"] > 0.25).all()              # three levels: P(tie) about 1/3
    # under no information the rate is 0.5 + P(tie)/2; same-dataset cells with s' != s carry no seed information
    assert np.all(np.abs(cells["rate"] - cells["chance"]) < 0.03)


def test_perfectly_transferable_effects_win_always():
    rates = transfer_win_rates(_store("transferable"), n_draws=5000)
    np.testing.assert_allclose(rates.to_numpy(), 1.0)


def test_deterministic_and_consistent_with_intervals():
    store = _store("noise")
    a = transfer_win_rates(store, n_draws=3000, random_state=7)
    b = transfer_win_rates(store, n_draws=3000, random_state=7)
    pd.testing.assert_frame_equal(a, b)
    cells = transfer_intervals(store, n_draws=3000, random_state=7)
    for row in a.index:
        for col in a.columns:
            assert cells.loc[(row, col), "rate"] == a.loc[row, col]
            assert cells.loc[(row, col), "ci_low"] <= a.loc[row, col] <= cells.loc[(row, col), "ci_high"]
    assert not a.equals(transfer_win_rates(store, n_draws=3000, random_state=8))


def test_single_dataset_leaves_other_dataset_cells_empty():
    store = _store("noise")
    one = store[store["dataset"] == "cars3d"]
    rates = transfer_win_rates(one, n_draws=1000)
    assert rates["other_dataset"].isna().all() and rates["same_dataset"].notna().all()
    assert "1 datasets (needs 2)" in rates.attrs["reason"]


def test_options_change_draws_and_are_validated():
    store = _store("transferable")
    tensor = score_tensor(store)
    # a random configuration that may not equal c* always loses to c* (strictly): no ties at all
    counts = simulate_cell(tensor.values, True, True, 2000, np.random.RandomState(0), random_may_match=False)
    assert counts["wins"] == 2000 and counts["ties"] == 0
    with pytest.raises(ValueError, match="target_seed"):
        simulate_cell(tensor.values, True, True, 10, np.random.RandomState(0), target_seed="same")
    with pytest.raises(ValueError, match="random_seed"):
        simulate_cell(tensor.values, True, True, 10, np.random.RandomState(0), random_seed="other")
    sweep = transfer_sensitivity(store, n_draws=500)
    assert len(sweep) == 8 * 4 and sweep["rate"].eq(1.0).all()


def test_score_tensor_layout():
    tensor = score_tensor(_store("transferable", n_seeds=2))
    assert tensor.values.shape == (3, 6, 36, 2)
    assert tensor.datasets == DATASETS and tensor.metrics == tuple(METRIC_NAMES)
    assert "beta_vae(16)" in tensor.configs


def test_wilson_interval_known_value():
    low, high = binomial_interval(np.array([50, 0]), np.array([100, 0]))
    assert low[0] == pytest.approx(0.4038, abs=1e-4) and high[0] == pytest.approx(0.5962, abs=1e-4)
    assert np.isnan(low[1]) and np.isnan(high[1])
