"""analysis.transfer: exact transfer rates (equal to the enumerated trials), chance on pure noise, 100 % on perfectly
transferable effects."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.frames import METRIC_NAMES, model_table
from analysis.transfer import (
    RANDOM_SEED_CHOICES, TARGET_SEED_CHOICES, score_tensor, transfer_intervals, transfer_rate, transfer_sensitivity,
    transfer_win_rates,
)
from helpers.grids import run_grid, to_tidy

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
    rates = transfer_win_rates(_store("noise"))
    assert list(rates.index) == ["same_metric", "other_metric"]
    assert list(rates.columns) == ["same_dataset", "other_dataset"]
    assert ((rates >= 0) & (rates <= 1)).all().all() and rates.attrs["reason"] is None


def _brute_force(v, same_metric, same_dataset, target_seed, random_seed, may_match):
    """Every trial of the paper's procedure enumerated with its probability; trials touching a missing score are
    dropped, as a simulation drops them."""
    n_d, n_m, n_c, n_s = v.shape
    num = den = tie = 0.0
    for d, m, s in itertools.product(range(n_d), range(n_m), range(n_s)):
        column = v[d, m, :, s]
        if np.isnan(column).all():
            continue
        chosen = [c for c in range(n_c) if column[c] == np.nanmax(column)]
        targets_d = [d] if same_dataset else [e for e in range(n_d) if e != d]
        targets_m = [m] if same_metric else [f for f in range(n_m) if f != m]
        seeds = [t for t in range(n_s) if t != s] if target_seed == "different" else list(range(n_s))
        for c, e, f, t in itertools.product(chosen, targets_d, targets_m, seeds):
            rivals = [(cr, sr) for cr in range(n_c) for sr in (range(n_s) if random_seed == "independent" else [t])
                      if may_match or cr != c]
            p = 1 / (len(chosen) * len(targets_d) * len(targets_m) * len(seeds) * len(rivals))
            for cr, sr in rivals:
                x, y = v[e, f, c, t], v[e, f, cr, sr]
                if not (np.isnan(x) or np.isnan(y)):
                    den, num, tie = den + p, num + p * (x >= y), tie + p * (x == y)
    return num / den, 0.5 + 0.5 * tie / den


@pytest.mark.parametrize("options", list(itertools.product([True, False], [True, False], TARGET_SEED_CHOICES,
                                                           RANDOM_SEED_CHOICES, [True, False])))
def test_exact_rates_equal_the_enumerated_trials(options):
    rs = np.random.RandomState(3)
    values = rs.randint(0, 4, size=(3, 2, 4, 3)).astype(float)     # four levels: many ties in every step
    values[0, 1, 2, 1] = values[2, 0, 0, 0] = np.nan
    same_metric, same_dataset, target_seed, random_seed, may_match = options
    rate, chance, coverage = transfer_rate(values, same_metric, same_dataset, target_seed=target_seed,
                                           random_seed=random_seed, random_may_match=may_match)
    expected = _brute_force(values, *options)
    assert (rate, chance) == pytest.approx(expected, abs=1e-12)
    assert 0 < coverage <= 1


def test_pure_noise_is_at_chance():
    cells = transfer_intervals(_store("noise"), n_boot=50, random_state=1)
    # the only ties: the random model is c* itself (same config, same seed): P = 1/36 * 1/6, chance = 0.5 + P/2
    assert np.allclose(cells["chance"], 0.5 + 1 / (36 * 6) / 2, atol=0.002)
    assert np.all(np.abs(cells["rate"] - 0.5) < 0.03)
    assert (cells["excess_low"] < 0).all() and (cells["excess_high"] > 0).all()   # no cell beats chance


def test_ties_count_as_wins_and_a_tied_choice_is_split_evenly():
    store = _store("coarse")
    cells = transfer_intervals(store, n_boot=0)
    # under no information the rate is 0.5 + P(tie)/2; same-dataset cells with s' != s carry no seed information
    assert np.all(np.abs(cells["rate"] - cells["chance"]) < 0.03)
    assert (cells["chance"] > 0.6).all()                  # three levels: P(tie) about 1/3
    # a saturated metric: every configuration ties at the top, so the choice is uniform, not the first label
    saturated = score_tensor(store).values.copy()
    saturated[:] = 1.0
    rate, chance, _ = transfer_rate(saturated, True, True)
    assert rate == 1.0 and chance == 1.0


def test_perfectly_transferable_effects_win_always():
    rates = transfer_win_rates(_store("transferable"))
    np.testing.assert_allclose(rates.to_numpy(), 1.0)


def test_intervals_contain_the_rate_and_are_deterministic():
    store = _store("noise")
    a = transfer_win_rates(store)
    cells = transfer_intervals(store, n_boot=40, random_state=7)
    again = transfer_intervals(store, n_boot=40, random_state=7)
    pd.testing.assert_frame_equal(cells, again)
    for row in a.index:
        for col in a.columns:
            assert cells.loc[(row, col), "rate"] == a.loc[row, col]
            assert cells.loc[(row, col), "ci_low"] <= cells.loc[(row, col), "ci_high"]


def test_single_dataset_leaves_other_dataset_cells_empty():
    store = _store("noise")
    one = store[store["dataset"] == "cars3d"]
    rates = transfer_win_rates(one)
    assert rates["other_dataset"].isna().all() and rates["same_dataset"].notna().all()
    assert "1 dataset (needs 2)" in rates.attrs["reason"]


def test_options_are_validated_and_swept():
    store = _store("transferable")
    tensor = score_tensor(store)
    # a random configuration that may not equal c* always loses to c* (strictly): no ties at all
    rate, chance, _ = transfer_rate(tensor.values, True, True, random_may_match=False)
    assert rate == 1.0 and chance == 0.5
    with pytest.raises(ValueError, match="target_seed"):
        transfer_rate(tensor.values, True, True, target_seed="same")
    with pytest.raises(ValueError, match="random_seed"):
        transfer_rate(tensor.values, True, True, random_seed="other")
    sweep = transfer_sensitivity(store)
    assert len(sweep) == 8 * 4 and sweep["rate"].eq(1.0).all()


def test_score_tensor_layout():
    tensor = score_tensor(_store("transferable", n_seeds=2))
    assert tensor.values.shape == (3, 6, 36, 2)
    assert tensor.datasets == DATASETS and tensor.metrics == tuple(METRIC_NAMES)
    assert "beta_vae(16)" in tensor.configs
