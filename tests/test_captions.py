"""Prose from noise must not appear: every directional word of a caption ("rises", "falls", "tightest", "highest",
a named winner) is backed by a test at 5 %. On pure noise (uniform draws from np.random.RandomState(seed), many
seeds) such words appear in at most ~5 % of captions; on planted strong effects they appear."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import significance, trends  # noqa: E402
from analysis.correlation import spearman_matrix  # noqa: E402
from analysis.frames import METRIC_NAMES  # noqa: E402
from analysis.plots import captions  # noqa: E402

CLAIM = re.compile(r"\brises\b|\bfalls\b|tightest pair is|highest pair is|strongest is|medians range from|"
                   r"highest median|the methods differ|the configurations differ|more often larger|winners:")
METHODS = ["beta_vae", "factor_vae", "beta_tc_vae", "dip_vae_i", "dip_vae_ii", "annealed_vae"]
SEEDS = 200
# a rate of 5 % over 200 captions has a standard deviation of 1.5 points
NOISE_LIMIT = 0.08


def claims(texts):
    return np.mean([bool(CLAIM.search(t)) for t in texts])


def curve_models(rs, methods=3, strengths=6, seeds=5, slope=0.0, shape=None):
    """One row per model: dataset, method, strength, seed, value = slope * strength (or shape(strength)) + U(0,1)."""
    grid = np.linspace(0, 1, strengths)
    rows = [(m, s, k) for m in METHODS[:methods] for s in grid for k in range(seeds)]
    frame = pd.DataFrame(rows, columns=["method", "strength", "seed"]).assign(dataset="cars3d")
    signal = slope * frame["strength"] if shape is None else shape(frame["strength"])
    return frame.assign(value=signal + rs.uniform(size=len(frame)))


def model_table(rs, methods=3, values=6, seeds=5, method_effect=0.0, strength_effect=0.0):
    """A model table (the columns analysis.frames.as_model_table accepts) of uniform noise plus planted effects on
    every metric: ``method_effect`` * method index and ``strength_effect`` * strength."""
    rows = [(m, v, s) for m in METHODS[:methods] for v in range(values) for s in range(seeds)]
    t = pd.DataFrame(rows, columns=["method", "hparam_value", "seed"])
    t.insert(0, "run_id", [f"r{i}" for i in range(len(t))])
    t.insert(1, "dataset", "cars3d")
    t["hparam_value"] = t["hparam_value"].astype(float)
    t["strength"] = t["hparam_value"] / max(values - 1, 1)
    t["config"] = t["method"] + "(" + t["hparam_value"].map("{:g}".format) + ")"
    index = t["method"].map({m: i for i, m in enumerate(METHODS)})
    for name in METRIC_NAMES:
        t[name] = method_effect * index + strength_effect * t["strength"] + rs.uniform(size=len(t))
    return t


# ---- the tests themselves ---------------------------------------------------------------------------------------

def test_exact_spearman_matches_the_textbook_critical_value():
    # n = 6: |rho| >= 0.886 is the two-sided 5 % critical value; 6 of the 720 orderings give rho >= 33/35 (one
    # adjacent swap or none), and as many give rho <= -33/35
    assert significance.spearman_p(33 / 35, 6) == pytest.approx(2 * 6 / 720)
    assert significance.spearman_p(0.886, 6) < 0.05 < significance.spearman_p(0.82, 6)
    rho, p, n = significance.spearman_test([0, 0.5, 1.0], [1, 2, 3])
    assert (rho, n) == (1.0, 3) and p == pytest.approx(2 / 6)          # three points can never be significant
    assert np.isnan(significance.spearman_test([1, 1, 1, 1], [1, 2, 3, 4])[1])


def test_tests_hold_their_level_on_noise():
    rs = np.random.RandomState(0)
    exact = [significance.spearman_test(np.repeat([0, 0.5, 1], 3), rs.uniform(size=9))[1] for _ in range(400)]
    kw = [significance.kruskal_test(rs.uniform(size=12), np.repeat(list("abcd"), 3))[1] for _ in range(400)]
    assert np.mean(np.array(exact) < 0.05) <= NOISE_LIMIT
    assert np.mean(np.array(kw) < 0.05) <= NOISE_LIMIT
    assert list(significance.holm([0.01, 0.04, np.nan, 0.03])[[0, 1, 3]]) == pytest.approx([0.03, 0.06, 0.06])


# ---- curves (Fig. 1, 4 left, 8, 9, 15, 27, 28) ------------------------------------------------------------------

def test_curve_captions_on_noise_rarely_claim_a_trend():
    texts = [captions.describe_curves(curve_models(np.random.RandomState(seed)), "cars3d", "dataset")
             for seed in range(SEEDS)]
    assert claims(texts) <= NOISE_LIMIT
    assert any("no clear trend (ρ = " in t for t in texts)


def test_curve_captions_at_mini_scale_use_the_exact_test_on_noise():
    # three strengths x three seeds: 9 models per curve, exact permutation p-values
    texts = [captions.describe_curves(curve_models(np.random.RandomState(seed), methods=1, strengths=3, seeds=3),
                                      "cars3d", "dataset") for seed in range(SEEDS)]
    assert claims(texts) <= NOISE_LIMIT


def test_curve_captions_find_planted_trends():
    for seed in range(20):
        rs = np.random.RandomState(seed)
        up = captions.describe_curves(curve_models(rs, slope=3.0), "cars3d", "dataset", peak=False)
        assert up.count(" rises (ρ = +") == 3, up
        down = captions.describe_curves(curve_models(rs, slope=-3.0, methods=1, strengths=3, seeds=3), "cars3d",
                                        "dataset", peak=False)
        assert " falls (ρ = -" in down, down
        hump = captions.describe_curves(curve_models(rs, shape=lambda s: 4 * np.exp(-((s - 0.6) / 0.15) ** 2)),
                                        "cars3d", "dataset")
        assert hump.count("highest median at strength 0.6") == 3, hump


def test_curve_caption_needs_three_strengths_and_every_model():
    # two medians that fall perfectly used to read "falls (rho = -1.00)"; two strengths are never a trend
    two = curve_models(np.random.RandomState(0), methods=1, strengths=2, seeds=3, slope=-5.0)
    text = captions.describe_curves(two, "cars3d", "dataset")
    assert not CLAIM.search(text) and "fewer than 3" in text
    # six medians in perfect order but with large seed noise: the medians alone would give rho = -1
    rs = np.random.RandomState(3)
    models = curve_models(rs, methods=1, strengths=6, seeds=2, slope=-0.05)
    text = captions.describe_curves(models, "cars3d", "dataset", peak=False)
    assert "Spearman over every model" in text


# ---- violins (Fig. 3 left, 13) -----------------------------------------------------------------------------------

def _violin_long(rs, shift=0.0, methods=3, n=10):
    frame = pd.DataFrame({"dataset": "cars3d", "method": np.repeat(METHODS[:methods], n)})
    index = frame["method"].map({m: i for i, m in enumerate(METHODS)})
    return frame.assign(value=shift * index + rs.uniform(size=len(frame)))


def test_violin_captions_on_noise_rarely_name_a_range_of_methods():
    texts = [captions.describe_violins(_violin_long(np.random.RandomState(s)), "cars3d", "dataset", "MIG")
             for s in range(SEEDS)]
    assert claims(texts) <= NOISE_LIMIT
    assert any("no clear difference between the 3 methods" in t for t in texts)


def test_violin_captions_find_planted_differences_and_never_a_range_from_a_value_to_itself():
    for seed in range(20):
        text = captions.describe_violins(_violin_long(np.random.RandomState(seed), shift=2.0), "cars3d", "dataset",
                                         "MIG")
        assert "medians range from" in text and "(β-VAE) to" in text and "(β-TCVAE)" in text, text
    zeros = pd.DataFrame({"dataset": "cars3d", "method": np.repeat(["annealed_vae", "beta_vae"], 5), "value": 0.0})
    text = captions.describe_violins(zeros, "cars3d", "dataset", "MIG")
    assert "medians range" not in text and "no clear difference" in text
    nearly = zeros.assign(value=np.r_[np.zeros(5), 1e-5 * np.arange(1, 6)])
    text = captions.describe_violins(nearly, "cars3d", "dataset", "MIG")
    assert "medians range from 0 (AnnealedVAE) to 3e-05 (β-VAE)" in text         # two values, two methods


# ---- correlation matrices (Fig. 2, 4 centre, 4 right, 24) -------------------------------------------------------

def _metric_matrix(rs, n=60, planted=0.0):
    data = pd.DataFrame(rs.uniform(size=(n, 6)), columns=list(METRIC_NAMES))
    data["DCI Disentanglement"] += planted * data["MIG"]
    data["FactorVAE Score"] += 0.1 * planted * data["BetaVAE Score"]
    matrix = spearman_matrix(data)
    matrix.attrs["n_models"] = n
    return matrix


def test_metric_agreement_captions_on_noise_rarely_name_a_tightest_pair():
    texts = [captions.describe_metric_agreement("cars3d", _metric_matrix(np.random.RandomState(s)))
             for s in range(SEEDS)]
    assert claims(texts) <= NOISE_LIMIT
    assert all("(n = 60 models)" in t for t in texts)


def test_metric_agreement_captions_find_a_planted_tightest_pair():
    for seed in range(20):
        text = captions.describe_metric_agreement("cars3d", _metric_matrix(np.random.RandomState(seed), planted=8.0))
        assert "the tightest pair is MIG–DCI" in text, text


def test_dataset_agreement_captions():
    names = ["dsprites_full", "color_dsprites", "cars3d", "shapes3d"]
    noise = []
    for seed in range(SEEDS):
        rs = np.random.RandomState(seed)
        matrix = spearman_matrix(pd.DataFrame(rs.uniform(size=(36, 4)), columns=names))
        noise.append(captions.describe_dataset_agreement("MIG", matrix, n=36))
    assert claims(noise) <= NOISE_LIMIT
    for seed in range(20):
        rs = np.random.RandomState(seed)
        data = pd.DataFrame(rs.uniform(size=(36, 4)), columns=names)
        data["color_dsprites"] = data["dsprites_full"] + 0.05 * rs.uniform(size=36)
        text = captions.describe_dataset_agreement("MIG", spearman_matrix(data), n=36)
        assert "the highest pair is dSprites↔Color-dSprites" in text, text


def test_unsupervised_captions():
    rows, cols = ["reconstruction_loss", "kl_loss", "tc_mean"], list(METRIC_NAMES)
    noise = []
    for seed in range(SEEDS):
        data = pd.DataFrame(np.random.RandomState(seed).uniform(size=(50, 9)), columns=rows + cols)
        noise.append(captions.describe_unsupervised("cars3d", spearman_matrix(data).loc[rows, cols], n=50))
    assert claims(noise) <= NOISE_LIMIT
    for seed in range(20):
        rs = np.random.RandomState(seed)
        data = pd.DataFrame(rs.uniform(size=(50, 9)), columns=rows + cols)
        data["MIG"] = -data["kl_loss"] + 0.02 * rs.uniform(size=50)
        text = captions.describe_unsupervised("cars3d", spearman_matrix(data).loc[rows, cols], n=50)
        assert "the strongest is kl_loss vs MIG (-" in text, text


# ---- winners, best strengths, best configuration, TC majority ---------------------------------------------------

def test_a_winning_method_is_named_only_when_it_beats_the_runner_up():
    noise = [captions.describe_winners(trends.method_contrasts(model_table(np.random.RandomState(s)), ["MIG"]))
             for s in range(SEEDS)]
    assert claims(noise) <= NOISE_LIMIT
    planted = trends.method_contrasts(model_table(np.random.RandomState(0), method_effect=1.0), ["MIG"])
    text = captions.describe_winners(planted)
    assert planted["winner"].tolist() == ["beta_tc_vae"] and "winners: β-TCVAE 1" in text


def test_a_best_strength_is_named_only_when_the_values_differ():
    noise = [captions.describe_best_strength(trends.strength_contrasts(model_table(np.random.RandomState(s),
                                                                                   methods=1), ["MIG"]))
             for s in range(SEEDS)]
    assert claims(noise) <= NOISE_LIMIT
    planted = trends.strength_contrasts(model_table(np.random.RandomState(0), methods=2, strength_effect=3.0),
                                        ["MIG"])
    assert (planted["best_strength"] == 1.0).all() and (planted["p"] < 0.05).all()
    assert "highest median: β-VAE 1, FactorVAE 1" in captions.describe_best_strength(planted)


def test_the_best_configuration_is_named_only_when_configurations_differ():
    def long(rs, effect):
        t = model_table(rs, methods=2, values=3, seeds=4, strength_effect=effect)
        return t.assign(representation="mean", value=t["MIG"])[["dataset", "method", "hparam_value", "seed",
                                                                  "representation", "value"]]

    noise = [captions.describe_metric_by_config(long(np.random.RandomState(s), 0.0), "cars3d") for s in range(SEEDS)]
    assert claims(noise) <= NOISE_LIMIT
    text = captions.describe_metric_by_config(long(np.random.RandomState(0), 5.0), "cars3d")
    assert "the highest median MIG is" in text and "with 2" in text


def test_tc_majority_is_claimed_only_when_a_sign_test_says_so():
    noise = []
    for seed in range(SEEDS):
        rs = np.random.RandomState(seed)
        noise.append(captions.describe_tc_scatter(pd.DataFrame({"tc_mean": rs.uniform(size=40),
                                                                "tc_sampled": rs.uniform(size=40)})))
    assert claims(noise) <= NOISE_LIMIT
    rs = np.random.RandomState(0)
    text = captions.describe_tc_scatter(pd.DataFrame({"tc_mean": 1 + rs.uniform(size=40),
                                                      "tc_sampled": rs.uniform(size=40)}))
    assert "100 % of the 40 models" in text and "more often larger in the mean representation" in text
