"""Theorem 1 made concrete (training.evaluation.rotation, training.evaluation.likelihood): the rotation is a Haar-
distributed element of SO(d); the rotated model has the same IWAE likelihood as the trained one; an axis-aligned code
loses its MIG when rotated. Then the page's analysis (analysis.rotation): paired changes, a direction only when the
signed-rank test passes, the likelihood called "the same" only within its tolerance."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from analysis.plots.captions import describe_rotation
from analysis.rotation import likelihood_summary, likelihood_table, rotation_effects, rotation_pairs
from helpers.grid_data import GridData
from helpers.grids import run_grid, to_tidy
from training.evaluation.likelihood import (DiagonalVAE, gaussian_log_density, iwae_estimate,
                                            iwae_log_likelihoods, log_importance_weights)
from training.evaluation.replicates import run_seeded
from training.evaluation.rotation import RotatedModel, RotatedVAE, check_rotation, haar_rotation, study_rotation
from training.evaluation.scoring import EVALUATION_SEEDS
from training.models.architecture import GaussianVAE, init_weights

DRAWS = 4000


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    rs = np.random.RandomState(123)
    return np.stack([haar_rotation(10, rs) for _ in range(DRAWS)])


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
def test_rotation_is_orthogonal_with_determinant_one(dim):
    rs = np.random.RandomState(dim)
    for _ in range(50):
        r = haar_rotation(dim, rs)
        np.testing.assert_allclose(r.T @ r, np.eye(dim), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


def test_study_rotation_is_fixed_and_checked():
    np.testing.assert_array_equal(study_rotation(), haar_rotation(10, np.random.RandomState(0)))
    with pytest.raises(ValueError):
        check_rotation(np.diag([-1.0, 1.0, 1.0]), 3)                       # a reflection is not a rotation
    with pytest.raises(ValueError):
        check_rotation(2 * np.eye(3), 3)


def test_entries_have_the_haar_moments(draws):
    # Haar on SO(d): every entry has mean 0 and variance 1/d; standard error of a mean over 4,000 draws ~0.005
    assert np.abs(draws.mean(axis=0)).max() < 0.025
    np.testing.assert_allclose((draws ** 2).mean(axis=0), 0.1, atol=0.02)
    # the trace of a Haar rotation of SO(d), d >= 3, has mean 0 and second moment 1 (the character of an
    # irreducible representation: E |tr R|^2 = 1); standard errors of the two means ~0.016 and ~0.03
    trace = np.trace(draws, axis1=1, axis2=2)
    assert abs(trace.mean()) < 0.07 and abs((trace ** 2).mean() - 1.0) < 0.15


def test_an_entry_has_the_haar_marginal(draws):
    # the first column is uniform on the sphere: (R_11 + 1) / 2 ~ Beta((d - 1) / 2, (d - 1) / 2)
    p = stats.kstest((draws[:, 0, 0] + 1) / 2, stats.beta(4.5, 4.5).cdf).pvalue
    assert p > 0.001


def test_the_distribution_is_invariant_under_a_fixed_rotation(draws):
    # left invariance: A R has the distribution of R; compare the traces of the two samples
    a = haar_rotation(10, np.random.RandomState(99))
    shifted = np.trace(np.einsum("ij,njk->nik", a, draws[:DRAWS // 2]), axis1=1, axis2=2)
    plain = np.trace(draws[DRAWS // 2:], axis1=1, axis2=2)
    assert stats.ks_2samp(shifted, plain).pvalue > 0.001


def test_iwae_estimate_and_full_covariance_density():
    assert iwae_estimate(np.log([[1.0, 3.0]]))[0] == pytest.approx(np.log(2.0))
    assert iwae_estimate(np.full((2, 5), -7.0)).tolist() == [-7.0, -7.0]
    rs = np.random.RandomState(0)
    scale = torch.as_tensor(rs.normal(size=(2, 3, 3)))
    mean = torch.as_tensor(rs.normal(size=(2, 3)))
    z = torch.as_tensor(rs.normal(size=(2, 4, 3)))
    got = gaussian_log_density(z, mean, scale).numpy()
    for n in range(2):
        cov = (scale[n] @ scale[n].T).numpy()
        expected = stats.multivariate_normal(mean[n].numpy(), cov).logpdf(z[n].numpy())
        np.testing.assert_allclose(got[n], expected, rtol=1e-10)


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    vae = init_weights(GaussianVAE(1, 10), torch.Generator().manual_seed(0))
    with torch.no_grad():       # a spread of posterior scales, some latents sharp (sigma ~ 0.05), some near the prior
        vae.encoder.logvar.bias.copy_(torch.linspace(-6.0, 0.0, 10))
    return vae


def test_rotated_model_has_the_same_likelihood(tiny_vae):
    rs = np.random.RandomState(1)
    obs = (rs.uniform(size=(6, 64, 64, 1)) > 0.85).astype(np.float32)
    rotation = study_rotation()
    out = iwae_log_likelihoods(tiny_vae, obs, {"trained": DiagonalVAE(tiny_vae),
                                               "rotated": RotatedVAE(tiny_vae, rotation)}, num_samples=20, seed=3)
    # Tolerance: the latent arithmetic is float64, so the rotated sample R z and the decoder's input R^T (R z)
    # equal z to ~1e-15 relative, and the float32 decoder sees the same input unless a value sits within that of
    # a float32 rounding boundary; log q differs by the float64 rounding of two Cholesky factorisations (~1e-12
    # relative). So 1e-9 of |log p(x)| (~3,000 nats here) bounds the difference with a wide margin; measured 0.
    np.testing.assert_allclose(out["rotated"], out["trained"], rtol=1e-9)
    # and the estimate is a likelihood, not a constant: other observations get other values
    assert np.ptp(out["trained"]) > 1.0


def test_rotation_changes_each_weight_only_by_rounding(tiny_vae):
    rs = np.random.RandomState(2)
    images = torch.as_tensor((rs.uniform(size=(3, 1, 64, 64)) > 0.9).astype(np.float32))
    noise = torch.randn((3, 7, 10), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain = log_importance_weights(DiagonalVAE(tiny_vae), images, noise)
        rotated = log_importance_weights(RotatedVAE(tiny_vae, study_rotation()), images, noise)
    torch.testing.assert_close(rotated, plain, rtol=1e-9, atol=0.0)


class AxisAligned:
    """A 'model' whose mean code is axis-aligned by construction: latents 0-2 are the three factors (observations of
    GridData are the factor indices), latents 3-9 small noise, as collapsed latents are."""
    num_latent = 10

    def representation_fn(self, kind, seed=0, batch_size=256):
        rs = np.random.RandomState(seed)

        def representation(observations):
            obs = np.asarray(observations, dtype=np.float64)
            return np.hstack([obs, 0.01 * rs.normal(size=(obs.shape[0], 7))]).astype(np.float32)
        return representation


def test_rotating_an_axis_aligned_code_collapses_its_mig():
    data = GridData((10, 10, 10))
    seeds = {"mig": EVALUATION_SEEDS[("mean", "mig")]}
    protocol = {"scale": 0.2}
    plain = run_seeded(AxisAligned().representation_fn("mean"), data, ["mig"], seeds, protocol, "mean")[0]
    rotated = run_seeded(RotatedModel(AxisAligned(), study_rotation()).representation_fn("mean"), data, ["mig"],
                         seeds, protocol, "rotated")[0]
    assert plain.error is None and rotated.error is None and rotated.representation == "rotated"
    assert plain.scores["discrete_mig"] > 0.9
    assert rotated.scores["discrete_mig"] < 0.3 * plain.scores["discrete_mig"]


def test_rotated_representation_is_r_times_the_code():
    obs = np.arange(12, dtype=np.float32).reshape(4, 3)
    r = study_rotation()
    plain = AxisAligned().representation_fn("mean", seed=5)(obs)
    rotated = RotatedModel(AxisAligned(), r).representation_fn("mean", seed=5)(obs)
    np.testing.assert_allclose(rotated, plain @ r.T, rtol=1e-6, atol=1e-6)


# ---- the page's analysis (analysis.rotation) ----------------------------------------------------------------------

def _rotated_store(drop: float, random_state: int, likelihood_gap: float = 0.0) -> pd.DataFrame:
    """Tidy rows of 27 models: MIG and SAP on ``mean`` and ``rotated`` (rotated MIG = mean MIG - ``drop`` + noise,
    SAP unchanged but for noise) and each model's two likelihoods (differing by ``likelihood_gap``)."""
    rs = np.random.RandomState(random_state)
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae", "beta_tc_vae", "dip_vae_i"), n_seeds=3,
                    values_per_method=3)
    mig, sap = rs.uniform(0.2, 0.4, len(runs)), rs.uniform(0.1, 0.2, len(runs))
    parts = [to_tidy(runs, {"MIG": mig, "SAP": sap}),
             to_tidy(runs, {"MIG": mig - drop + 0.01 * rs.normal(size=len(runs)),
                            "SAP": sap + 0.01 * rs.normal(size=len(runs))}, representation="rotated")]
    trained = rs.uniform(-60, -40, len(runs))
    for key, value in (("log_likelihood", trained), ("log_likelihood_rotated", trained + likelihood_gap),
                       ("max_abs_difference", np.full(len(runs), abs(likelihood_gap)))):
        parts.append(runs.assign(representation="model", metric="likelihood", key=key, value=value))
    return pd.concat(parts, ignore_index=True)


def test_a_planted_drop_is_named_and_the_likelihood_called_the_same():
    scores = _rotated_store(0.2, 0)
    pairs = rotation_pairs(scores)
    assert len(pairs) == 54 and set(pairs["metric"].astype(str)) == {"MIG", "SAP"}
    effects = rotation_effects(pairs, n_boot=500).set_index("metric")
    assert effects.loc["MIG", "change_median"] == pytest.approx(-0.2, abs=0.01)
    assert effects.loc["MIG", "ci_low"] < -0.19 and effects.loc["MIG", "ci_high"] > -0.21
    assert effects.loc["MIG", "falls"] == 1.0 and effects.loc["MIG", "p_holm"] < 0.001
    summary = likelihood_summary(likelihood_table(scores))
    assert summary["models"] == 27 and summary["equal"] and summary["max_abs_difference"] == 0.0
    text = describe_rotation(effects.reset_index(), summary)
    assert text.startswith("Rotating the latent space lowers 1 of 2 metrics")
    assert "MIG from" in text and "no clear change for SAP" in text
    assert "have the same IWAE log-likelihood" in text


def test_no_direction_on_noise_and_a_changed_likelihood_is_reported():
    claims = 0
    for k in range(20):
        effects = rotation_effects(rotation_pairs(_rotated_store(0.0, k)), n_boot=100, random_state=k)
        claims += "lowers" in describe_rotation(effects, {}) or "raises" in describe_rotation(effects, {})
    assert claims <= 3                         # Holm over 2 metrics: ~5 % of draws, 3 of 20 allows 2.2 sd
    summary = likelihood_summary(likelihood_table(_rotated_store(0.0, 0, likelihood_gap=0.5)))
    assert not summary["equal"]
    assert "differs from the trained ones' by up to 0.5 nats" in describe_rotation(None, summary)


def test_without_rotated_scores_the_page_gets_a_reason():
    runs = run_grid(datasets=("dsprites_full",), methods=("beta_vae",), n_seeds=2, values_per_method=2)
    tidy = to_tidy(runs, {"MIG": np.arange(4.0)})
    assert "dstudy models" in rotation_pairs(tidy).attrs["reason"]
    assert "dstudy models" in likelihood_table(tidy).attrs["reason"]
    assert likelihood_summary(likelihood_table(tidy))["models"] == 0


def test_a_disentangled_code_loses_its_scores_under_the_rotation():
    """The reference for scale: the factors themselves score high on every metric and the study's rotation takes
    them near the floor (MIG: every factor's information spread over all ten latents)."""
    from analysis.rotation import reference_code, reference_rotation

    codes, factors = reference_code(num_points=2000, random_state=1)
    assert codes.shape == (10, 2000) and factors.shape == (5, 2000)
    assert np.allclose(codes[:5].mean(axis=1), 0, atol=0.1) and np.allclose(codes[:5].std(axis=1), 1, atol=0.1)
    assert [len(np.unique(f)) for f in factors] == [3, 6, 40, 32, 32]
    table = reference_rotation().set_index("metric")
    assert list(table.index) == ["MIG", "Modularity", "SAP"]
    assert table.loc["MIG", "code"] > 0.7 and table.loc["MIG", "rotated"] < 0.15
    assert table.loc["SAP", "rotated"] < table.loc["SAP", "code"] / 3
    assert table.loc["Modularity", "rotated"] < table.loc["Modularity", "code"] - 0.1
    identity = reference_rotation(rotation=np.eye(10))
    assert np.array_equal(identity["code"], identity["rotated"])
    text = describe_rotation(None, {}, table.reset_index())
    assert text.startswith("For scale, the same rotation takes a perfectly disentangled code") and "MIG from 0.82" in text
