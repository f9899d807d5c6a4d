"""UDR (training.evaluation.metrics.udr; Duan et al., ICLR 2020): analytic cases of the relative strength, models
that are permutations / sign flips / monotone transforms of each other score exactly 1, independent codes score
low, a collapsed latent is left out, partners are the other seeds of a configuration. Then selection by UDR in the
Table 1 framework (analysis.udr): exact rates by hand, no claim on noise, a planted selector claimed."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.frames import METRIC_NAMES, model_table
from analysis.plots.captions import describe_udr_selection
from analysis.udr import selection_rates, udr_selection, udr_table
from helpers.grids import run_grid, to_tidy
from training.evaluation.metrics.udr import (
    KL_THRESHOLD, gaussian_kl_per_latent, informative_latents, pairwise_udr, relative_strength, spearman_similarity,
    udr_scores,
)


def orthogonal_design(d: int = 4, repeats: int = 3) -> np.ndarray:
    """(2^d * repeats, d) codes of a full two-level factorial: every pair of columns has Spearman exactly 0."""
    grid = np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    return np.tile(grid, (repeats, 1))


def test_relative_strength_by_hand():
    assert relative_strength(np.eye(3)) == 1.0
    # two latents each tied to the same two of the other model: columns 1/2, 1/2, 1; rows the same -> 2/3
    assert relative_strength([[1, 1, 0], [1, 1, 0], [0, 0, 1]]) == pytest.approx(2 / 3)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)       # everything mixed: 1/d
    assert relative_strength(np.zeros((3, 3))) == 0.0                       # nothing shared
    assert relative_strength(np.zeros((0, 4))) == 0.0                       # no informative latent
    # rectangular: 2 x 3, each row one-to-one, the third column unmatched -> columns 1, 1, 0 ; rows 1, 1
    assert relative_strength([[1, 0, 0], [0, 1, 0]]) == pytest.approx(0.5 * (2 / 3 + 1))


def test_spearman_similarity_is_scipys_absolute_spearman():
    rs = np.random.RandomState(0)
    a, b = rs.normal(size=(200, 4)), rs.normal(size=(200, 3))
    b[:, 0] = a[:, 2] ** 3 + 0.1 * b[:, 0]
    expected = np.abs(stats.spearmanr(a, b).statistic[:4, 4:])
    np.testing.assert_allclose(spearman_similarity(a, b), expected, atol=1e-12)


def test_permuted_sign_flipped_monotone_copy_scores_exactly_one():
    a = orthogonal_design()
    b = np.exp(-a[:, [2, 0, 3, 1]])                  # permutation, a sign flip and a monotone map of each latent
    kl = np.ones(4)
    assert pairwise_udr(a, b, kl, kl) == pytest.approx(1.0, abs=1e-12)
    out = udr_scores(np.stack([a, b, -a]), np.ones((3, 4)))
    np.testing.assert_allclose(out["udr"], 1.0, atol=1e-12)
    assert out["num_informative"].tolist() == [4, 4, 4] and out["num_partners"].tolist() == [2, 2, 2]


def test_independent_codes_score_low():
    rs = np.random.RandomState(1)
    out = udr_scores(rs.normal(size=(3, 1000, 10)), np.ones((3, 10)))
    # |rho| ~ 0.025 between independent latents: max^2 / sum ~ 0.01, far below a one-to-one 1 and even below a
    # perfectly mixed code (every |rho| = 1: 1/d = 0.1)
    assert np.all(out["udr"] < 0.1)


def test_a_mixture_scores_between():
    rs = np.random.RandomState(2)
    a = rs.normal(size=(2000, 2))
    mixed = np.stack([a[:, 0] + a[:, 1], a[:, 0] - a[:, 1]], axis=1)       # each latent of one mixes both of the other
    score = pairwise_udr(a, mixed, np.ones(2), np.ones(2))
    # every |rho| = (6 / pi) arcsin(rho_pearson / 2) with rho_pearson = 1 / sqrt(2) (bivariate normal): a matrix of
    # equal entries c scores c / d
    rho = 6 / np.pi * np.arcsin(1 / (2 * np.sqrt(2)))
    assert score == pytest.approx(rho / 2, abs=0.02)


def test_a_collapsed_latent_is_left_out():
    rs = np.random.RandomState(3)
    signal = orthogonal_design(3, 40)                                       # 320 inputs, 3 informative latents
    a = np.hstack([signal, rs.normal(size=(320, 2))])                       # + 2 collapsed latents (noise)
    b = np.hstack([-signal[:, ::-1], rs.normal(size=(320, 2))])
    kl = np.array([1.0, 1.0, 1.0, 0.001, 0.0])                              # the collapsed ones: KL <= 0.01
    assert informative_latents(kl).tolist() == [True, True, True, False, False]
    assert pairwise_udr(a, b, kl, kl) == pytest.approx(1.0, abs=1e-12)
    everything = pairwise_udr(a, b, np.ones(5), np.ones(5))                 # without the mask the noise counts
    assert everything < 0.95
    assert udr_scores(np.stack([a, b]), np.stack([kl, kl]))["num_informative"].tolist() == [3, 3]


def test_kl_per_latent():
    mean = np.array([[0.0, 1.0], [0.0, -1.0]])
    logvar = np.array([[0.0, np.log(0.25)], [0.0, np.log(0.25)]])
    # latent 0: the prior itself; latent 1: 0.5 (1 + 0.25 - log 0.25 - 1)
    np.testing.assert_allclose(gaussian_kl_per_latent(mean, logvar), [0.0, 0.5 * (1 + 0.25 - np.log(0.25) - 1)])
    assert KL_THRESHOLD == 0.01


def test_partners_are_the_other_models_of_the_same_group():
    rs = np.random.RandomState(4)
    a = orthogonal_design()
    noise = rs.normal(size=(48, 4))
    codes = np.stack([a, a[:, ::-1], noise, a, rs.normal(size=(48, 4))])
    out = udr_scores(codes, np.ones((5, 4)), groups=["x", "x", "x", "y", "z"])
    # model 0: partners 1 (UDR 1) and 2 (noise): the median of two is their mean
    assert out["udr"][0] == pytest.approx(0.5 * (1.0 + out["pairwise"][0, 2]))
    assert np.isnan(out["pairwise"][0, 3]) and np.isnan(out["pairwise"][0, 0])
    assert np.isnan(out["udr"][3]) and np.isnan(out["udr"][4])              # no partner: no score
    assert out["num_partners"].tolist() == [2, 2, 2, 0, 0]
    assert out["pairwise"][1, 2] == out["pairwise"][2, 1]


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        udr_scores(np.zeros((2, 10, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        spearman_similarity(np.zeros((10, 3)), np.zeros((11, 3)))


# ---- selection by UDR in the Table 1 framework (analysis.udr) --------------------------------------------------

def test_selection_rate_by_hand():
    # one dataset, one metric, configurations A, B, C with scores 3, 2, 1 on both seeds
    metric = np.array([[[[3.0, 3.0], [2.0, 2.0], [1.0, 1.0]]]])                   # (d, m, c, s)
    best = np.array([[[9.0, 9.0], [5.0, 5.0], [1.0, 1.0]]])                       # UDR picks A on both seeds
    rate, chance, trials = selection_rates(metric, best)
    # A's 3 is >= every one of the 6 models; it ties with the 2 models of A: chance 1/2 + (2/6)/2
    assert rate[0] == pytest.approx(1.0) and chance[0] == pytest.approx(0.5 + 1 / 6) and trials[0] == 2
    worst = best[:, ::-1]                                                          # picks C: 1 beats only ties
    assert selection_rates(metric, worst)[0][0] == pytest.approx(2 / 6)
    tied = np.ones((1, 3, 2))                                                      # no information: every choice
    assert selection_rates(metric, tied)[0][0] == pytest.approx((1 + 4 / 6 + 2 / 6) / 3)


def _table(planted: float, random_state: int) -> pd.DataFrame:
    """A model table of 2 datasets x 3 methods x 3 values x 3 seeds: configuration effects and seed noise on every
    metric; UDR pure noise, plus ``planted`` x MIG."""
    rs = np.random.RandomState(random_state)
    runs = run_grid(datasets=("dsprites_full", "cars3d"), methods=("beta_vae", "factor_vae", "dip_vae_i"),
                    n_seeds=3, values_per_method=3)
    config = pd.factorize(runs[["dataset", "method", "hparam_value"]].apply(tuple, axis=1))[0]
    columns = {m: rs.normal(size=config.max() + 1)[config] + rs.normal(size=len(runs)) for m in METRIC_NAMES}
    table = model_table(to_tidy(runs, columns))
    table["UDR"] = rs.uniform(size=len(table)) + planted * table["MIG"]
    return table


def test_no_claim_on_noise():
    claims = 0
    for k in range(20):
        frame = udr_selection(_table(0.0, k), n_perm=1000, n_boot=20, random_state=k)
        text = describe_udr_selection(frame)
        claims += "beats random" in text or "better than chance" in text
    assert claims <= 3                   # one-sided tests, Holm over 6 metrics: ~5 % of tables, 3 of 20 allows 2.2 sd


def test_a_planted_selector_is_claimed():
    frame = udr_selection(_table(5.0, 0), n_perm=2000, n_boot=300)
    mig = frame.set_index("metric").loc["MIG"]
    assert mig["rate"] > 0.8 and mig["p_holm"] < 0.05 and mig["excess_low"] > 0 and mig["ci_low"] < mig["rate"] <= mig["ci_high"]
    assert mig["trials"] == 6 and frame.attrs["models"] == 54 and frame.attrs["configurations"] == 9
    assert 0 <= mig["transfer"] <= 1
    text = describe_udr_selection(frame)
    assert "beats random selection on" in text and "better than chance" in text and "MIG in" in text


def test_udr_table_reads_the_stored_udr_and_says_when_it_is_missing():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae",), n_seeds=2, values_per_method=2)
    tidy = to_tidy(runs, {"MIG": np.arange(4.0)})
    assert "dstudy models" in udr_selection(udr_table(tidy)).attrs["reason"]
    udr = runs.assign(representation="mean", metric="udr", key="udr", value=[0.1, 0.2, 0.3, np.nan])
    with_udr = udr_table(pd.concat([tidy, udr.dropna(subset=["value"])], ignore_index=True))
    assert with_udr["UDR"].tolist()[:3] == [0.1, 0.2, 0.3] and np.isnan(with_udr["UDR"].iloc[3])
    assert with_udr["MIG"].tolist() == [0.0, 1.0, 2.0, 3.0]
