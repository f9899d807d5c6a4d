"""training.evaluation.metrics.utils and the registry / run_metric() contract."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.grid_data import GridData
from training.evaluation.metrics import default_protocol, registry, run_metric, utils
from training.vocabulary import EVALUATIONS


# ------------------------------------------------------------------------------------------ histogram discretiser
def test_histogram_labels_edges_and_dtype():
    row = np.array([[0.0, 0.05, 0.1, 0.5, 0.95, 1.0]], dtype=np.float32)
    disc = utils.histogram_discretize(row, 20)
    assert disc.dtype == np.float32 and disc.shape == row.shape
    # min -> 1, max -> 20 (last bin closed), a value on an interior edge -> upper bin
    np.testing.assert_array_equal(disc[0], [1, 2, 3, 11, 20, 20])


def test_histogram_constant_row_gets_middle_label_and_rows_are_independent():
    target = np.vstack([np.full(5, 7.0), np.arange(5.0) * 100])
    disc = utils.histogram_discretize(target, 20)
    np.testing.assert_array_equal(disc[0], 11.0)
    np.testing.assert_array_equal(disc[1], [1, 6, 11, 16, 20])


def test_histogram_edges_follow_the_input_dtype():
    # Edges computed in float32 vs float64 can put a value on different sides of an edge; the discretiser must use
    # the input's own dtype (metrics/REFERENCE.md 1.3), i.e. exactly np.digitize(x, np.histogram(x, 20)[1][:-1]).
    rs = np.random.RandomState(3)
    x32 = rs.randn(4, 5000).astype(np.float32)
    expected = np.stack([np.digitize(r, np.histogram(r, 20)[1][:-1]) for r in x32]).astype(np.float32)
    np.testing.assert_array_equal(utils.histogram_discretize(x32), expected)


def test_discrete_mutual_info_and_entropy():
    ys = np.array([[0, 0, 1, 1], [0, 1, 0, 1]])
    mus = np.array([[5.0, 5.0, 6.0, 6.0]])
    np.testing.assert_allclose(utils.discrete_mutual_info(mus, ys), [[np.log(2), 0.0]], atol=1e-15)
    np.testing.assert_allclose(utils.discrete_entropy(np.array([[0, 0, 1, 1], [3, 3, 3, 3]])), [np.log(2), 0.0])


def test_normalize_data_uses_given_statistics():
    data = np.array([[1.0, 3.0], [2.0, 2.0 + 1e-9]])
    normed, mean, std = utils.normalize_data(data)
    np.testing.assert_allclose(mean, [2.0, 2.0 + 5e-10])
    np.testing.assert_allclose(normed[0], [-1.0, 1.0])
    other, m2, s2 = utils.normalize_data(np.array([[5.0], [2.0]]), mean, std)
    assert other[0, 0] == pytest.approx(3.0) and m2 is mean and s2 is std


# ---------------------------------------------------------------------------------------------- sampling helpers
class RecordingData(GridData):
    def __init__(self, sizes):
        super().__init__(sizes)
        self.calls = []

    def sample(self, num, random_state):
        self.calls.append(num)
        return super().sample(num, random_state)


def test_generate_batch_factor_code_draws_in_reference_chunks():
    data = RecordingData((3, 4))
    calls = []

    def rep(obs):
        calls.append(len(obs))
        return obs[:, ::-1].astype(np.float32)

    mus, ys = utils.generate_batch_factor_code(data, rep, 37, np.random.RandomState(5), 16)
    assert data.calls == [16, 16, 5]
    assert mus.shape == (2, 37) and ys.shape == (2, 37) and mus.dtype == np.float32
    # same factors as drawing chunk by chunk by hand
    rs = np.random.RandomState(5)
    expected = np.vstack([GridData((3, 4)).sample(n, rs)[0] for n in (16, 16, 5)]).T
    np.testing.assert_array_equal(ys, expected)
    np.testing.assert_array_equal(mus, ys[::-1].astype(np.float32))
    assert sum(calls) == 37 and len(calls) == 1  # encoder calls grouped
    calls.clear()
    utils.generate_batch_factor_code(data, rep, 37, np.random.RandomState(5), 16, encode_batch_size=16)
    assert calls == [16, 16, 5]  # the reference's exact call pattern on request


def test_generate_batch_factor_code_rejects_bad_representation_and_sizes():
    data = GridData((3, 4))
    with pytest.raises(ValueError, match="representation function"):
        utils.generate_batch_factor_code(data, lambda o: o[:, 0], 10, np.random.RandomState(0), 4)
    with pytest.raises(ValueError, match="num_points"):
        utils.generate_batch_factor_code(data, lambda o: o, 0, np.random.RandomState(0), 4)


def test_obtain_representation_chunks():
    calls = []
    obs = np.arange(10.0).reshape(5, 2)

    def rep(x):
        calls.append(len(x))
        return x * 2

    codes = utils.obtain_representation(obs, rep, 2)
    assert calls == [2, 2, 1]
    np.testing.assert_array_equal(codes, (obs * 2).T)


# ----------------------------------------------------------------------------------------------- registry/evaluate
def test_registry_covers_the_vocabulary():
    assert set(registry.EVALUATION_FUNCTIONS) == set(EVALUATIONS)
    assert registry.EVALUATION_FUNCTIONS["downstream_task_boosted_trees"] == (
        "training.evaluation.metrics.downstream", "compute_boosted_trees")


@pytest.mark.parametrize("name,expected", [
    ("mig", {"num_train": 10000, "batch_size": 16}),
    ("beta_vae_sklearn", {"batch_size": 64, "num_train": 10000, "num_eval": 5000}),
    ("factor_vae_metric", {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000}),
    ("sap_score", {"num_train": 10000, "num_test": 5000, "batch_size": 16, "continuous_factors": False}),
    ("modularity_explicitness", {"num_train": 10000, "num_test": 5000, "batch_size": 16}),
    ("unsupervised", {"num_train": 10000, "batch_size": 16}),
])
def test_default_protocols_are_the_study_sizes(name, expected):
    assert default_protocol(name) == expected


def test_evaluate_rejects_unknown_names_and_overrides():
    data = GridData((3, 4))
    with pytest.raises(ValueError, match="unknown evaluation"):
        run_metric("no_such_metric", data, lambda o: o, 0)
    with pytest.raises(ValueError, match="num_eval"):
        run_metric("mig", data, lambda o: o, 0, num_eval=10)
    with pytest.raises(ValueError, match="positive integer"):
        run_metric("mig", data, lambda o: o, 0, num_train=-5)
    with pytest.raises(ValueError, match="RandomState"):
        run_metric("mig", data, lambda o: o, "seed", num_train=20)


def test_evaluate_returns_floats_with_reference_keys_and_is_reproducible():
    data = GridData((3, 4, 5))
    rep = lambda obs: obs + 0.01 * np.sin(obs @ np.array([[3.1, 7.3, 1.1], [5.9, 1.7, 2.2], [2.3, 4.1, 6.5]]))  # noqa: E731
    expected_keys = {
        "mig": {"discrete_mig"},
        "sap_score": {"SAP_score"},
        "modularity_explicitness": {"modularity_score", "explicitness_score_train", "explicitness_score_test"},
        "unsupervised": {"gaussian_total_correlation", "gaussian_wasserstein_correlation",
                         "gaussian_wasserstein_correlation_norm", "mutual_info_score"},
    }
    for name, keys in expected_keys.items():
        sizes = {"num_train": 200} | ({"num_test": 100} if name in ("sap_score", "modularity_explicitness") else {})
        first = run_metric(name, data, rep, np.random.RandomState(7), **sizes)
        assert set(first) == keys and all(type(v) is float for v in first.values())
        assert run_metric(name, data, rep, 7, fast=True, **sizes) == first  # int seed == RandomState(seed)
