"""Analytic cases for the metrics of training.evaluation.metrics (issue 5) and MIG (issue 2).

Codes built on a full factorial design (every factor combination equally often) make different factors exactly
independent in the sample, so mutual information, covariances and hence the scores have closed-form values.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers.grid_data import GridData
from training.evaluation.metrics import run_metric, mig, modularity, sap, unsupervised

SIZES = (3, 4, 5)


def factorial(sizes=SIZES, repeats=20):
    grid = np.array(list(itertools.product(*[range(s) for s in sizes]))).T
    return np.tile(grid, (1, repeats)).astype(np.int64)


YS = factorial()
IDENTITY = YS.astype(np.float64)
DUPLICATED = np.vstack([IDENTITY, IDENTITY])
CONSTANT = np.vstack([IDENTITY, np.full((1, YS.shape[1]), 3.0)])
PAIR = factorial((10, 10), 10)
# A 45-degree rotation of the two codes, scaled by sqrt(2) so that every code is an exact integer: MIG bins each code
# over its own range, so the scale changes nothing, while a product with 1/sqrt(2) would round differently under
# different BLAS kernels and move points across bin edges (MIG 0.022 instead of 0 with OpenBLAS's Sandybridge kernels).
ROTATED = np.vstack([PAIR[0] + PAIR[1], PAIR[0] - PAIR[1]]).astype(np.float64)


# ------------------------------------------------------------------------------------------------------------ MIG
def test_mig_identity_code_is_one():
    assert mig.compute_mig(IDENTITY, YS)["discrete_mig"] == pytest.approx(1.0, abs=1e-12)


def test_mig_duplicated_code_is_zero():
    assert mig.compute_mig(DUPLICATED, YS)["discrete_mig"] == 0.0


def test_mig_code_that_ignores_a_factor():
    # codes for factors 0 and 1 only: factor 2 has no informative code (gap 0), the others a gap of 1.
    assert mig.compute_mig(IDENTITY[:2], YS)["discrete_mig"] == pytest.approx(2.0 / 3.0, abs=1e-12)


def test_mig_rotated_code_is_zero():
    # each factor is equally informative about both rotated codes: no gap
    assert mig.compute_mig(ROTATED, PAIR)["discrete_mig"] == pytest.approx(0.0, abs=1e-12)


def test_mig_constant_code_changes_nothing():
    assert mig.compute_mig(CONSTANT, YS)["discrete_mig"] == pytest.approx(1.0, abs=1e-12)


def test_mig_leaves_out_a_single_valued_factor_and_refuses_all_constant():
    ys = np.vstack([YS, np.zeros((1, YS.shape[1]), dtype=np.int64)])
    assert mig.compute_mig(IDENTITY[:2], ys)["discrete_mig"] == pytest.approx(2.0 / 3.0, abs=1e-12)
    with pytest.raises(ValueError, match="single value"):
        mig.compute_mig(IDENTITY, np.zeros_like(YS))


def test_mig_from_mutual_info_formula():
    m = np.array([[0.9, 0.1], [0.3, 0.5], [0.0, 0.4]])
    h = np.array([1.0, 2.0])
    assert mig.mig_from_mutual_info(m, h) == pytest.approx(((0.9 - 0.3) / 1.0 + (0.5 - 0.4) / 2.0) / 2)


def test_mig_histogram_noise_in_a_collapsed_code_is_informative():
    # Quirk 5 reproduced: the bins span each code's own range, so a code of width 1e-6 is stretched over 20 bins.
    rs = np.random.RandomState(0)
    codes = np.vstack([IDENTITY, 1e-6 * IDENTITY[0] + 1e-7 * rs.rand(YS.shape[1])])
    assert mig.compute_mig(codes, YS)["discrete_mig"] < 1.0


# ------------------------------------------------------------------------------------------- modularity/explicitness
def test_modularity_identity_and_duplicated_are_one():
    assert modularity.compute_modularity_explicitness(IDENTITY, YS, IDENTITY, YS)["modularity_score"] == \
        pytest.approx(1.0, abs=1e-12)
    assert modularity.compute_modularity_explicitness(DUPLICATED, YS, DUPLICATED, YS)["modularity_score"] == \
        pytest.approx(1.0, abs=1e-12)


def test_modularity_rotated_code_is_zero():
    scores = modularity.compute_modularity_explicitness(ROTATED, PAIR, ROTATED, PAIR)
    assert scores["modularity_score"] == pytest.approx(0.0, abs=1e-12)
    assert scores["explicitness_score_test"] == pytest.approx(1.0, abs=1e-9)  # linear decoding still perfect


def test_modularity_constant_code_counts_as_zero_and_explicitness_survives():
    scores = modularity.compute_modularity_explicitness(CONSTANT, YS, CONSTANT, YS)
    assert scores["modularity_score"] == pytest.approx(3.0 / 4.0, abs=1e-12)  # quirk 4: mean over ALL codes
    plain = modularity.compute_modularity_explicitness(IDENTITY, YS, IDENTITY, YS)
    assert scores["explicitness_score_train"] == pytest.approx(plain["explicitness_score_train"], abs=1e-9)
    assert scores["explicitness_score_test"] == pytest.approx(plain["explicitness_score_test"], abs=1e-9)


def test_modularity_formula():
    mi = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # code 0: 1; code 1: 1 - 1/(1*2) = 0.5; code 2: no information -> 0
    assert modularity.modularity(mi) == pytest.approx(0.5)
    assert modularity.modularity(np.array([[0.3], [0.0]])) == pytest.approx(0.5)  # K = 1: informative code -> 1


def test_explicitness_single_class_factor_in_tiny_training_set():
    rs = np.random.RandomState(1)
    ys_train = np.vstack([np.zeros(10, dtype=np.int64), np.arange(10) % 2])
    ys_test = np.vstack([rs.randint(3, size=50), np.arange(50) % 2])  # test has classes never seen in training
    mus_train = np.vstack([ys_train[1] + 0.1 * rs.randn(10), rs.randn(10)])
    mus_test = np.vstack([ys_test[1] + 0.1 * rs.randn(50), rs.randn(50)])
    scores = modularity.compute_modularity_explicitness(mus_train, ys_train, mus_test, ys_test)
    mean, std = mus_train.mean(axis=1)[:, None], mus_train.std(axis=1)[:, None]
    only_second = modularity.explicitness_per_factor((mus_train - mean) / std, ys_train[1], (mus_test - mean) / std,
                                                     ys_test[1])
    assert scores["explicitness_score_train"] == pytest.approx(only_second[0])
    assert scores["explicitness_score_test"] == pytest.approx(only_second[1])
    assert np.isfinite(scores["modularity_score"])


# ----------------------------------------------------------------------------------------------------------- SAP
def test_sap_duplicated_code_is_zero_and_constant_code_changes_nothing():
    identity = sap.compute_sap(IDENTITY, YS, IDENTITY, YS)["SAP_score"]
    assert identity > 0.3
    assert sap.compute_sap(DUPLICATED, YS, DUPLICATED, YS)["SAP_score"] == 0.0
    assert sap.compute_sap(CONSTANT, YS, CONSTANT, YS)["SAP_score"] == pytest.approx(identity, abs=1e-12)


def test_sap_rotated_code_is_zero():
    assert sap.compute_sap(ROTATED, PAIR, ROTATED, PAIR)["SAP_score"] == pytest.approx(0.0, abs=1e-12)


def test_sap_single_class_factor_in_tiny_training_set_scores_gap_zero():
    rs = np.random.RandomState(0)
    ys_train = np.vstack([np.zeros(10, dtype=np.int64), np.arange(10) % 2])
    ys_test = np.vstack([rs.randint(2, size=40), np.arange(40) % 2])
    mus_train = np.vstack([ys_train[1].astype(float), rs.randn(10)])
    mus_test = np.vstack([ys_test[1].astype(float), rs.randn(40)])
    matrix = sap.compute_score_matrix(mus_train, ys_train, mus_test, ys_test)
    np.testing.assert_allclose(matrix[:, 0], np.mean(ys_test[0] == 0))  # constant predictor
    score = sap.compute_sap(mus_train, ys_train, mus_test, ys_test)["SAP_score"]
    only_second = sap.compute_sap(mus_train, ys_train[1:], mus_test, ys_test[1:])["SAP_score"]
    assert score == pytest.approx(only_second / 2)


def test_sap_top_two_gap():
    assert sap.avg_diff_top_two(np.array([[0.9, 0.2], [0.5, 0.6], [0.1, 0.5]])) == pytest.approx((0.4 + 0.1) / 2)


# -------------------------------------------------------------------------------------------------- unsupervised
def test_unsupervised_independent_codes_score_zero():
    scores = unsupervised.compute_unsupervised(IDENTITY)
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
                "gaussian_wasserstein_correlation_norm", "mutual_info_score"):
        assert scores[key] == pytest.approx(0.0, abs=1e-12), key


def test_unsupervised_rotated_code_is_gaussian_independent_but_not_independent():
    scores = unsupervised.compute_unsupervised(ROTATED)
    assert scores["gaussian_total_correlation"] == pytest.approx(0.0, abs=1e-12)
    assert scores["gaussian_wasserstein_correlation"] == pytest.approx(0.0, abs=1e-9)
    assert scores["mutual_info_score"] > 0.5


def test_unsupervised_duplicated_code():
    scores = unsupervised.compute_unsupervised(DUPLICATED)
    assert scores["gaussian_total_correlation"] == np.inf  # a singular Gaussian: infinite total correlation
    # per duplicated pair with variance v: W = 4v - 2 sqrt(2) v, so W / tr = 2 - sqrt(2); real despite sqrtm
    assert scores["gaussian_wasserstein_correlation_norm"] == pytest.approx(2.0 - np.sqrt(2.0), abs=1e-9)
    assert isinstance(scores["gaussian_wasserstein_correlation"], float)


def test_unsupervised_constant_code_leaves_gaussian_scores_unchanged():
    rs = np.random.RandomState(0)
    codes = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]]) @ rs.randn(3, 500)
    plain = unsupervised.compute_unsupervised(codes)
    with_constant = unsupervised.compute_unsupervised(np.vstack([codes, np.full((1, 500), 2.0)]))
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
                "gaussian_wasserstein_correlation_norm"):
        assert with_constant[key] == pytest.approx(plain[key], rel=1e-12), key
    assert with_constant["mutual_info_score"] == pytest.approx(plain["mutual_info_score"] * 6 / 12)


def test_gaussian_total_correlation_formula():
    cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(0.75))


# ------------------------------------------------------------------------------------- BetaVAE and FactorVAE scores
DATA = GridData(SIZES)
SCALE = np.array([s - 1.0 for s in SIZES])
REPRESENTATIONS = {
    "identity": lambda obs: (obs / SCALE).astype(np.float32),
    "duplicated": lambda obs: np.hstack([obs / SCALE, obs / SCALE]),
    "constant": lambda obs: np.hstack([obs / SCALE, np.ones((len(obs), 1))]),
    "rotated": lambda obs: (obs / SCALE) @ np.linalg.qr(np.random.RandomState(0).randn(3, 3))[0].T,
}
SMALL = {"num_train": 300, "num_eval": 200}


@pytest.mark.parametrize("kind", ["identity", "duplicated", "constant"])
def test_beta_and_factor_vae_perfect_for_axis_aligned_codes(kind):
    rep = REPRESENTATIONS[kind]
    beta = run_metric("beta_vae_sklearn", DATA, rep, np.random.RandomState(0), **SMALL)
    assert beta == {"train_accuracy": 1.0, "eval_accuracy": 1.0}
    factor = run_metric("factor_vae_metric", DATA, rep, np.random.RandomState(0), num_variance_estimate=1000, **SMALL)
    num_codes = rep(np.zeros((1, 3))).shape[1]
    # quirk 1 reproduced: num_active_dims is the mask length (all codes), even with a pruned constant code
    assert factor == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": float(num_codes)}


def test_beta_and_factor_vae_penalise_a_rotated_code():
    rep = REPRESENTATIONS["rotated"]
    beta = run_metric("beta_vae_sklearn", DATA, rep, np.random.RandomState(0), **SMALL)
    factor = run_metric("factor_vae_metric", DATA, rep, np.random.RandomState(0), num_variance_estimate=1000, **SMALL)
    assert beta["eval_accuracy"] < 0.95
    assert factor["eval_accuracy"] < 0.8


def test_factor_vae_without_active_codes():
    rep = lambda obs: np.full((len(obs), 4), 0.5)  # noqa: E731
    assert run_metric("factor_vae_metric", DATA, rep, np.random.RandomState(0), num_variance_estimate=100,
                    **SMALL) == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_factor_vae_vote_column_counts_active_codes_only():
    from training.evaluation.metrics import factor_vae
    codes = np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 5.0], [0.0, 3.0, 5.0]])  # code 2 fixed, code 0 inactive
    active = np.array([False, True, True])
    assert factor_vae.vote_column(codes, np.array([1.0, 1.0, 1.0]), active) == 1  # position among active codes
    votes = np.array([[3, 0], [1, 2], [1, 2]])
    assert factor_vae.compute_factor_vae(votes, votes, 3)["train_accuracy"] == pytest.approx(5 / 9)


def test_beta_vae_single_label_training_set():
    from training.evaluation.metrics import beta_vae
    scores = beta_vae.compute_beta_vae(np.ones((4, 2)), np.zeros(4, dtype=np.int64), np.ones((4, 2)),
                                       np.array([0, 1, 0, 0]))
    assert scores == {"train_accuracy": 1.0, "eval_accuracy": 0.75}


# ------------------------------------------------------------------------------------- IRS (outside the study)
def test_irs_identity_and_constant_code():
    from training.evaluation.metrics import irs
    assert irs.compute_irs(IDENTITY, YS) == {"IRS": pytest.approx(1.0, abs=1e-12), "num_active_dims": 3.0}
    # a constant code is dropped before scoring
    assert irs.compute_irs(CONSTANT, YS) == {"IRS": pytest.approx(1.0, abs=1e-12), "num_active_dims": 3.0}
    assert irs.compute_irs(np.zeros((2, 50)), YS[:, :50]) == {"IRS": 0.0, "num_active_dims": 0.0}
    assert irs.compute_irs(ROTATED, PAIR)["IRS"] < 0.6


def test_explicitness_matches_separately_binarised_labels_and_survives_a_missing_test_class():
    from sklearn import linear_model, metrics, preprocessing
    rs = np.random.RandomState(4)
    y_train, y_test = rs.randint(3, size=300), rs.randint(3, size=100)
    x_train = np.vstack([y_train + rs.randn(300), rs.randn(300)])
    x_test = np.vstack([y_test + rs.randn(100), rs.randn(100)])
    # the reference's computation (MultiLabelBinarizer fitted separately on train and test labels)
    clf = linear_model.LogisticRegression().fit(x_train.T, y_train)
    mlb = preprocessing.MultiLabelBinarizer()
    expected = (metrics.roc_auc_score(mlb.fit_transform(y_train[:, None]), clf.predict_proba(x_train.T)),
                metrics.roc_auc_score(mlb.fit_transform(y_test[:, None]), clf.predict_proba(x_test.T)))
    assert modularity.explicitness_per_factor(x_train, y_train, x_test, y_test) == pytest.approx(expected, abs=1e-12)
    # a test sample without class 2 (the reference crashed): AUC over the classes that have positives
    keep = y_test != 2
    auc_train, auc_test = modularity.explicitness_per_factor(x_train, y_train, x_test[:, keep], y_test[keep])
    probs = clf.predict_proba(x_test[:, keep].T)
    one_hot = np.eye(3)[y_test[keep]]
    assert auc_train == pytest.approx(expected[0], abs=1e-12)
    assert auc_test == pytest.approx(metrics.roc_auc_score(one_hot[:, :2], probs[:, :2]), abs=1e-12)
