"""Golden tests: this package's metrics against numbers produced once by the reference implementation.

The numbers come from shared/tools/reference_oracle.py run in a throwaway virtualenv with the PyPI package
disentanglement-lib==1.5 (never a dependency); ``tests/data/golden_reference.json`` says how. Inputs: fixed synthetic
codes/factors (``golden_reference_inputs.npz``; float64, and the same arrays cast to float32 for the float32 run)
and a tiny seeded grid dataset (described in the JSON's ``setup.protocol_dataset``) sampled through the full
protocols. Tolerance: 1e-6 absolute (the implementations agree to the last bit on these inputs).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.grid_data import GridData
from training.evaluation.metrics import mig, modularity, run_metric, sap, unsupervised, utils

DATA = Path(__file__).resolve().parent / "data"
TOL = 1e-6


def load_golden(dtype: str = "float64") -> dict:
    name = "golden_reference.json" if dtype == "float64" else "golden_reference_float32.json"
    return json.loads((DATA / name).read_text())


def load_inputs(dtype: str = "float64"):
    with np.load(DATA / "golden_reference_inputs.npz") as z:
        return (z["mus_train"].astype(dtype), z["ys_train"], z["mus_test"].astype(dtype), z["ys_test"])


def grid_setup():
    setup = load_golden()["setup"]["protocol_dataset"]
    sizes = np.array(setup["factor_sizes"], dtype=np.float64)
    w, freq, amp = (np.array(setup[k]) for k in ("w", "freq", "amp"))

    def representation(obs):
        z = np.tanh((obs / (sizes - 1.0)) @ w.T)
        z[:, :5] += np.sin(obs @ freq.T) * amp[:5]
        return z

    return GridData(setup["factor_sizes"]), representation, setup


def close(actual: dict, expected: dict):
    assert set(actual) == set(expected), (sorted(actual), sorted(expected))
    for key in expected:
        assert actual[key] == pytest.approx(float(expected[key]), abs=TOL), key


@pytest.fixture(scope="module", params=["float64", "float32"])
def case(request):
    return load_golden(request.param)["arrays"], load_inputs(request.param)


def test_float32_inputs_are_the_cast_float64_inputs():
    golden = load_golden("float32")
    assert golden["meta"]["data"]["dtype"] == "float32"
    mus = load_inputs("float32")[0]
    first = np.array(golden["arrays"]["helpers"]["histogram_discretize_first8_points"])
    np.testing.assert_array_equal(utils.histogram_discretize(mus)[:, :8], first)


def test_helpers(case):
    golden, (mtr, ytr, _, _) = case
    disc = utils.histogram_discretize(mtr, 20)
    assert disc.dtype == mtr.dtype
    np.testing.assert_array_equal(disc[:, :8], np.array(golden["helpers"]["histogram_discretize_first8_points"]))
    counts = np.bincount(disc[0].astype(np.int64), minlength=21)[1:]
    np.testing.assert_array_equal(counts, golden["helpers"]["histogram_bin_counts_code0"])
    np.testing.assert_allclose(utils.discrete_mutual_info(disc, ytr), golden["helpers"]["discrete_mutual_info"],
                               atol=TOL, rtol=0)
    np.testing.assert_allclose(utils.discrete_entropy(ytr), golden["helpers"]["discrete_entropy"], atol=TOL, rtol=0)


def test_mig(case):
    golden, (mtr, ytr, _, _) = case
    close(mig.compute_mig(mtr, ytr), golden["mig"])


def test_sap(case):
    golden, args = case
    np.testing.assert_allclose(sap.compute_score_matrix(*args), golden["sap_score_matrix_discrete"], atol=TOL, rtol=0)
    close(sap.compute_sap(*args), golden["sap_score"])
    close(sap.compute_sap(*args, continuous_factors=True), golden["sap_score_continuous"])


def test_modularity_explicitness(case):
    golden, args = case
    close(modularity.compute_modularity_explicitness(*args), golden["modularity_explicitness"])


def test_unsupervised(case):
    golden, (mtr, _, _, _) = case
    close(unsupervised.compute_unsupervised(mtr), golden["unsupervised"])
    cov = np.cov(mtr)
    helpers = golden["unsupervised_helpers"]
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(helpers["gaussian_total_correlation"],
                                                                         abs=TOL)
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(
        helpers["gaussian_wasserstein_correlation"], abs=TOL)


class ReplayData:
    """Hands out the fixed arrays in order (observations = codes), like the oracle's replay dataset."""

    def __init__(self, mus_blocks, ys_blocks):
        self.mus = np.concatenate(mus_blocks, axis=1).T
        self.ys = np.concatenate(ys_blocks, axis=1).T
        self.num_factors = self.ys.shape[1]
        self.pos = 0

    def sample(self, num, random_state):
        part = slice(self.pos, self.pos + num)
        self.pos += num
        return self.ys[part], self.mus[part]


@pytest.mark.parametrize("name,key", [("mig", "mig"), ("sap_score", "sap_score"), ("unsupervised", "unsupervised")])
def test_sampling_protocols_on_replayed_arrays(name, key):
    """The whole evaluation (sampling in chunks of 16, train then test) through ``evaluate``."""
    golden = load_golden()["arrays"]
    mtr, ytr, mte, yte = load_inputs()
    sizes = {"num_train": mtr.shape[1]}
    if name in ("sap_score", "modularity_explicitness"):
        sizes["num_test"] = mte.shape[1]
    data = ReplayData([mtr, mte], [ytr, yte])
    result = run_metric(name, data, lambda x: np.asarray(x), np.random.RandomState(0), **sizes)
    close(result, golden[key])


@pytest.mark.parametrize("name,key,sizes", [
    ("beta_vae_sklearn", "beta_vae_sklearn", {"num_train": 500, "num_eval": 250}),
    ("factor_vae_metric", "factor_vae_score", {"num_train": 500, "num_eval": 250, "num_variance_estimate": 1000}),
    ("mig", "mig_sampled", {"num_train": 1000}),
])
def test_protocols_on_grid_dataset(name, key, sizes):
    """Random-draw order: the reference's numbers from a seeded dataset and the same RandomState seed."""
    data, representation, setup = grid_setup()
    result = run_metric(name, data, representation, np.random.RandomState(setup["seed"]), **sizes)
    close(result, load_golden()["protocol"][key])


@pytest.mark.parametrize("encode_batch_size", [64, 128, 4096])
def test_encoder_grouping_does_not_change_scores(encode_batch_size):
    """Grouping encoder calls (speed) leaves the draws and therefore the scores of a deterministic code unchanged."""
    from training.evaluation.metrics import beta_vae, factor_vae
    data, representation, setup = grid_setup()
    golden = load_golden()["protocol"]
    close(beta_vae.compute(data, representation, np.random.RandomState(0), num_train=500, num_eval=250,
                           encode_batch_size=encode_batch_size), golden["beta_vae_sklearn"])
    close(factor_vae.compute(data, representation, np.random.RandomState(0), num_train=500, num_eval=250,
                             num_variance_estimate=1000, encode_batch_size=encode_batch_size),
          golden["factor_vae_score"])
    mus_a, ys_a = utils.generate_batch_factor_code(data, representation, 1000, np.random.RandomState(0), 16,
                                                   encode_batch_size=encode_batch_size)
    mus_b, ys_b = utils.generate_batch_factor_code(data, representation, 1000, np.random.RandomState(0), 16,
                                                   encode_batch_size=16)
    np.testing.assert_array_equal(ys_a, ys_b)
    np.testing.assert_array_equal(mus_a, mus_b)


def test_irs(case):
    from training.evaluation.metrics import irs
    golden, (mtr, ytr, _, _) = case
    result = irs.compute_irs(mtr, ytr)
    assert result["IRS"] == pytest.approx(golden["irs"]["IRS"], abs=TOL)
    # deliberate fix (metrics/REFERENCE.md item 15): the count of active codes, not the reference's sum of their values
    assert result["num_active_dims"] == mtr.shape[0]
