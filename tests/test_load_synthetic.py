"""analysis.synthetic: the planted structure is there (so report pages show known findings) and every key is written."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from analysis import load, synthetic
from training.vocabulary import METRIC_KEYS


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "s.sqlite"
    synthetic.build_synthetic_store(
        path, datasets=["dsprites_full", "color_dsprites", "cars3d"], seeds=20, random_state=1,
        evaluations=[e for e, _ in METRIC_KEYS.values()] + ["unsupervised"])
    scores = load.load_scores(path)
    wide = scores.assign(col=scores["representation"].astype(str) + ":" + scores["metric"].astype(str) + ":"
                         + scores["key"].astype(str)).pivot_table(
        index=["dataset", "method", "hparam_value", "seed"], columns="col", values="value", observed=True)
    return wide.reset_index()


def _metric(wide, name, rep="mean"):
    evaluation, key = METRIC_KEYS[name]
    return wide[f"{rep}:{evaluation}:{key}"]


def test_reproducible(tmp_path):
    a = synthetic.build_synthetic_store(tmp_path / "a.sqlite", datasets=["cars3d"], methods=["dip_vae_i"], seeds=2,
                                        evaluations=["dci"], random_state=5)
    b = synthetic.build_synthetic_store(tmp_path / "b.sqlite", datasets=["cars3d"], methods=["dip_vae_i"], seeds=2,
                                        evaluations=["dci"], random_state=5)
    pd.testing.assert_series_equal(load.load_scores(a)["value"], load.load_scores(b)["value"])


def test_values_in_range(frames):
    for name in METRIC_KEYS:
        values = _metric(frames, name)
        assert values.between(0, 1).all(), name


def test_metric_agreement_strong_on_dsprites_mild_on_cars(frames):
    def rho(dataset, a, b):
        sub = frames[frames["dataset"] == dataset]
        return spearmanr(_metric(sub, a), _metric(sub, b))[0]
    assert rho("dsprites_full", "BetaVAE Score", "FactorVAE Score") > 0.8
    assert rho("dsprites_full", "MIG", "DCI Disentanglement") > 0.8
    assert rho("dsprites_full", "BetaVAE Score", "MIG") < rho("dsprites_full", "MIG", "DCI Disentanglement")
    assert rho("cars3d", "MIG", "DCI Disentanglement") < rho("dsprites_full", "MIG", "DCI Disentanglement") - 0.2
    assert abs(rho("dsprites_full", "Modularity", "MIG")) < 0.3


def test_hyperparameters_transfer_only_between_dsprites_and_color(frames):
    med = frames.groupby(["dataset", "method", "hparam_value"])["mean:dci:disentanglement"].median().unstack("dataset")
    assert spearmanr(med["dsprites_full"], med["color_dsprites"])[0] > 0.7
    assert abs(spearmanr(med["dsprites_full"], med["cars3d"])[0]) < 0.5


def test_variance_shares_near_table5(frames):
    sub = frames[frames["dataset"] == "cars3d"]
    y = _metric(sub, "MIG").to_numpy()
    def r2(groups):
        means = pd.Series(y).groupby(groups.to_numpy()).transform("mean").to_numpy()
        return 1 - ((y - means) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    r_method = r2(sub["method"])
    r_config = r2(sub["method"].astype(str) + sub["hparam_value"].astype(str))
    assert 0.1 < r_method < r_config < 0.9


def test_total_correlation_directions(frames):
    for method in ("beta_vae", "beta_tc_vae"):
        sub = frames[(frames["method"] == method) & (frames["dataset"] == "dsprites_full")]
        med = sub.groupby("hparam_value")[["sampled:unsupervised:gaussian_total_correlation",
                                           "mean:unsupervised:gaussian_total_correlation"]].median()
        assert spearmanr(med.index, med.iloc[:, 0])[0] < -0.8      # sampled TC falls with strength
        assert spearmanr(med.index, med.iloc[:, 1])[0] > 0.8       # mean TC rises


def test_every_key_of_every_evaluation(tmp_path):
    path = synthetic.build_synthetic_store(tmp_path / "k.sqlite", datasets=["dsprites_full", "shapes3d"],
                                           methods={"beta_vae": [1.0]}, seeds=1)
    scores = load.load_scores(path)
    keys = scores.groupby(["dataset", "representation", "metric"], observed=True)["key"].apply(set)
    for (dataset, _rep, metric), found in keys.items():
        k = synthetic.NUM_FACTORS[dataset]
        expected = {
            "beta_vae_sklearn": {"train_accuracy", "eval_accuracy"},
            "factor_vae_metric": {"train_accuracy", "eval_accuracy", "num_active_dims"},
            "mig": {"discrete_mig"},
            "dci": {"informativeness_train", "informativeness_test", "disentanglement", "completeness"},
            "modularity_explicitness": {"modularity_score", "explicitness_score_train", "explicitness_score_test"},
            "sap_score": {"SAP_score"},
            "unsupervised": {"gaussian_total_correlation", "gaussian_wasserstein_correlation",
                             "gaussian_wasserstein_correlation_norm", "mutual_info_score"},
        }.get(metric)
        if expected is None:
            expected = {f"{s}:{stat}" for s in (10, 100, 1000, 10000) for stat in (
                "mean_train_accuracy", "mean_test_accuracy", "min_train_accuracy", "min_test_accuracy")}
            expected |= {f"{s}:{kind}_accuracy_factor_{i}" for s in (10, 100, 1000, 10000)
                         for kind in ("train", "test") for i in range(k)}
            assert len(expected) == 4 * (4 + 2 * k)
        assert found == expected | {"elapsed_time"}, (dataset, metric)
    assert len(keys) == 2 * 2 * 9
    # downstream per-factor test accuracies average to the mean key
    sub = scores[(scores["metric"] == "downstream_task_boosted_trees") & (scores["representation"] == "mean")
                 & (scores["dataset"] == "shapes3d")].set_index("key")["value"]
    np.testing.assert_allclose(np.mean([sub[f"100:test_accuracy_factor_{i}"] for i in range(6)]),
                               sub["100:mean_test_accuracy"])
