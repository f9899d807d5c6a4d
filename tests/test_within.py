"""Within-configuration seed selection (analysis.within): exact pair counts, a calibrated null, a sentence that names
a selector only when it is one (pure noise: no claim; a planted selector: the claim)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.frames import METRIC_NAMES
from analysis.plots.captions import describe_seed_selection
from analysis.unsupervised import UNSUPERVISED_SCORES
from analysis.within import (concordance, concordance_interval, concordance_p, pair_counts, seed_selection,
                             tau_matrix)
from helpers.grids import run_grid


def test_pair_counts_by_hand():
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, np.nan], [1.0, 1.0, 2.0]])
    y = np.array([[1.0, 3.0, 2.0], [2.0, 1.0, 5.0], [1.0, 2.0, 3.0]])
    conc, disc = pair_counts(x, y)
    # row 0: (0,1)+ (0,2)+ (1,2)-; row 1: only (0,1), discordant; row 2: (0,1) tied in x, (0,2)+ (1,2)+
    assert conc.tolist() == [2, 0, 2] and disc.tolist() == [1, 1, 0]
    assert concordance(x, y) == (4 / 6, 6)


def test_pooled_tau_equals_kendall_tau_of_one_configuration():
    rs = np.random.RandomState(3)
    x, y = rs.normal(size=(1, 12)), rs.normal(size=(1, 12))
    rate, n = concordance(x, y)
    assert n == 66 and 2 * rate - 1 == pytest.approx(stats.kendalltau(x[0], y[0])[0], abs=1e-12)


def test_concordance_is_symmetric_and_flips_with_the_selector_sign():
    rs = np.random.RandomState(0)
    x, y = rs.normal(size=(5, 4)), rs.normal(size=(5, 4))
    assert concordance(x, y) == concordance(y, x)
    assert concordance(-x, y)[0] == pytest.approx(1 - concordance(x, y)[0])


def test_permutation_p_matches_the_exact_distribution():
    # two configurations of 3 seeds: x is permuted in 3! x 3! = 36 equally likely ways; enumerate them
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    y = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]])
    observed = abs(2 * concordance(x, y)[0] - 1)
    perms = list(itertools.permutations(range(3)))
    stats_ = [abs(2 * concordance(np.stack([x[0, list(a)], x[1, list(b)]]), y)[0] - 1)
              for a in perms for b in perms]
    exact = np.mean(np.array(stats_) >= observed - 1e-12)
    assert concordance_p(x, y, n_perm=40000, random_state=1) == pytest.approx(exact, abs=0.01)


def test_normal_approximation_agrees_with_permutations():
    rs = np.random.RandomState(5)
    x = rs.normal(size=(40, 10))
    y = 0.04 * x + rs.normal(size=(40, 10))                      # 1,800 pairs: at most EXACT_PAIRS, so permuted
    permuted = concordance_p(x, y, n_perm=20000, random_state=0)
    conc, disc = pair_counts(x, y)
    z = (conc.sum() - disc.sum()) / np.sqrt(40 * 10 * 9 * 25 / 18)   # Kendall S summed over 40 configurations of 10
    assert 0.002 < permuted < 0.05
    assert permuted == pytest.approx(2 * stats.norm.sf(abs(z)), rel=0.1)   # Monte Carlo sd ~7 % of p at 20,000
    wide = concordance_p(np.tile(x, (2, 1)), np.tile(y, (2, 1)))       # 3,600 pairs: the normal path
    assert wide == pytest.approx(2 * stats.norm.sf(abs(z) * np.sqrt(2)), rel=1e-9)


def test_p_values_are_uniform_under_the_null():
    rs = np.random.RandomState(11)
    p = [concordance_p(rs.normal(size=(9, 3)), rs.normal(size=(9, 3)), n_perm=2000, random_state=k)
         for k in range(200)]
    assert 0.02 <= np.mean(np.array(p) < 0.05) <= 0.09          # 5 % with binomial sampling error (sd 1.5 %)


def test_interval_covers_the_truth_and_shrinks_with_configurations():
    rs = np.random.RandomState(2)
    x = rs.normal(size=(400, 4))
    y = x + rs.normal(size=(400, 4))                              # Kendall tau of a correlated pair: rho = 1/sqrt(2)
    truth = 0.5 + np.arcsin(1 / np.sqrt(2)) / np.pi               # P(concordant) for a bivariate normal
    low, high = concordance_interval(x, y, n_boot=1000)
    assert low < truth < high and high - low < 0.06
    small = concordance_interval(x[:20], y[:20], n_boot=1000)
    assert small[1] - small[0] > high - low


def _store(n_seeds: int, planted: float, random_state: int) -> pd.DataFrame:
    """A model table of 4 datasets x 3 methods x 3 values x ``n_seeds`` seeds: configuration effects on every
    column (so configurations differ), seed noise inside; ``planted`` > 0 makes the sampled TC track MIG within a
    configuration (the seed with the lower TC has the higher MIG)."""
    rs = np.random.RandomState(random_state)
    runs = run_grid(n_seeds=n_seeds, datasets=("dsprites_full", "color_dsprites", "noisy_dsprites", "smallnorb"),
                    methods=("beta_vae", "factor_vae", "dip_vae_i"), values_per_method=3)
    table = runs.assign(strength=runs.groupby(["dataset", "method"])["hparam_value"].rank(method="dense"))
    config = pd.factorize(runs[["dataset", "method", "hparam_value"]].apply(tuple, axis=1))[0]
    for column in UNSUPERVISED_SCORES + METRIC_NAMES:
        table[column] = rs.normal(size=config.max() + 1)[config] + rs.uniform(size=len(runs))
    table["tc_sampled"] -= planted * table["MIG"]
    return table


def test_no_selector_is_named_on_noise():
    claims = 0
    for k in range(20):
        frame = seed_selection(_store(3, 0.0, k), n_perm=2000, n_boot=200, random_state=k)
        text = describe_seed_selection(frame, UNSUPERVISED_SCORES)
        claims += "beyond chance" in text or "metrics agree" in text
    assert claims <= 3                          # Holm keeps the family-wise rate at 5 %: ~1 of 20, 3 allows 2.2 sd


def test_a_planted_selector_is_found_and_named():
    frame = seed_selection(_store(3, 3.0, 0), n_perm=2000, n_boot=200)
    row = frame[(frame["selector"] == "tc_sampled") & (frame["target"] == "MIG")].iloc[0]
    assert row["concordance"] < 0.2 and row["p_holm"] < 0.05 and row["ci_high"] < 0.5
    text = describe_seed_selection(frame, UNSUPERVISED_SCORES)
    assert "beyond chance" in text and "the seed with the lower TC (sampled) has the higher MIG" in text
    tau, weak = tau_matrix(frame)
    assert tau.loc["tc_sampled", "MIG"] == pytest.approx(2 * row["concordance"] - 1)
    assert not weak.loc["tc_sampled", "MIG"] and weak.loc["kl_loss", "MIG"]
    assert tau.loc["MIG", "SAP"] == tau.loc["SAP", "MIG"]          # metric pairs are filled both ways


def test_one_seed_gives_a_reason_not_a_table():
    frame = seed_selection(_store(1, 0.0, 0))
    assert frame.empty and "two or more seeds" in frame.attrs["reason"]
