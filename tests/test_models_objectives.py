"""The six objectives against independent NumPy computations on fixed tensors (the paper's Section 3 and the cited methods)."""
import math

import numpy as np
import pytest
import torch

from training.models import objectives as O
from training.models.architecture import (Discriminator, Encoder, GaussianVAE, init_weights, permute_dims,
                                          sample_latent)

RS = np.random.RandomState(1234)
N, L = 7, 10
MEAN = RS.normal(0, 1.3, (N, L))
LOGVAR = RS.normal(-1.0, 0.7, (N, L))
Z = MEAN + np.exp(LOGVAR / 2) * RS.normal(size=(N, L))
LOGITS = RS.normal(0, 3, (N, 1, 4, 4))
TARGETS = RS.uniform(0, 1, (N, 1, 4, 4))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small tensors run fastest on one thread (two spinning OpenMP threads stall on a shared, loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def np_kl(mean, logvar):
    return np.mean(0.5 * np.sum(mean ** 2 + np.exp(logvar) - logvar - 1, axis=1))


def test_reconstruction_loss_is_per_example_sum_of_sigmoid_cross_entropy():
    p = 1 / (1 + np.exp(-LOGITS))
    ce = -(TARGETS * np.log(p) + (1 - TARGETS) * np.log(1 - p))
    expected = ce.reshape(N, -1).sum(1).mean()
    assert O.reconstruction_loss(t(LOGITS), t(TARGETS)).item() == pytest.approx(expected, rel=1e-10)


def test_kl_loss():
    assert O.kl_loss(t(MEAN), t(LOGVAR)).item() == pytest.approx(np_kl(MEAN, LOGVAR), rel=1e-12)
    # KL of the prior itself is zero
    assert O.kl_loss(torch.zeros(3, L), torch.zeros(3, L)).item() == 0.0


def test_beta_vae_regularizer():
    hp = O.resolve_hparams("beta_vae", {"beta": 6})
    reg = O.regularizer("beta_vae", kl=O.kl_loss(t(MEAN), t(LOGVAR)), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z),
                        step=0, hparams=hp)
    assert reg.item() == pytest.approx(6 * np_kl(MEAN, LOGVAR), rel=1e-12)


def brute_force_tc(z, mean, logvar):
    """The minibatch-weighted TC written out with scalar loops and math.log / math.exp."""
    n, dims = z.shape

    def log_q(j, i, l):
        var = math.exp(logvar[i, l])
        return -0.5 * ((z[j, l] - mean[i, l]) ** 2 / var + logvar[i, l] + math.log(2 * math.pi))

    total = 0.0
    for j in range(n):
        joint = math.log(sum(math.exp(sum(log_q(j, i, l) for l in range(dims))) for i in range(n)))
        product = sum(math.log(sum(math.exp(log_q(j, i, l)) for i in range(n))) for l in range(dims))
        total += joint - product
    return total / n


def numpy_tc(z, mean, logvar):
    from scipy.special import logsumexp
    log_q = -0.5 * ((z[:, None, :] - mean[None]) ** 2 / np.exp(logvar[None]) + logvar[None] + np.log(2 * np.pi))
    return np.mean(logsumexp(log_q.sum(2), axis=1) - logsumexp(log_q, axis=1).sum(1))


def test_total_correlation_mws_matches_numpy_and_brute_force():
    got = O.total_correlation_mws(t(Z), t(MEAN), t(LOGVAR)).item()
    assert got == pytest.approx(numpy_tc(Z, MEAN, LOGVAR), rel=1e-10)
    assert got == pytest.approx(brute_force_tc(Z, MEAN, LOGVAR), rel=1e-9)


def test_total_correlation_mws_is_invariant_to_dropped_constants_and_batch_order():
    perm = np.random.RandomState(0).permutation(N)
    a = O.total_correlation_mws(t(Z), t(MEAN), t(LOGVAR)).item()
    b = O.total_correlation_mws(t(Z[perm]), t(MEAN[perm]), t(LOGVAR[perm])).item()
    assert a == pytest.approx(b, rel=1e-12)


def test_beta_tc_vae_regularizer():
    hp = O.resolve_hparams("beta_tc_vae", {"beta": 4})
    reg = O.regularizer("beta_tc_vae", kl=O.kl_loss(t(MEAN), t(LOGVAR)), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z),
                        step=0, hparams=hp)
    assert reg.item() == pytest.approx(np_kl(MEAN, LOGVAR) + 3 * numpy_tc(Z, MEAN, LOGVAR), rel=1e-10)
    hp1 = O.resolve_hparams("beta_tc_vae", {"beta": 1})
    reg1 = O.regularizer("beta_tc_vae", kl=O.kl_loss(t(MEAN), t(LOGVAR)), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z),
                         step=0, hparams=hp1)
    assert reg1.item() == pytest.approx(np_kl(MEAN, LOGVAR), rel=1e-12)  # beta = 1 is the plain VAE


def test_dip_covariances():
    cov_i = np.cov(MEAN, rowvar=False, bias=True)
    np.testing.assert_allclose(O.dip_covariance(t(MEAN), t(LOGVAR), "dip_vae_i").numpy(), cov_i, rtol=1e-10,
                               atol=1e-12)
    cov_ii = cov_i + np.diag(np.exp(LOGVAR).mean(0))
    np.testing.assert_allclose(O.dip_covariance(t(MEAN), t(LOGVAR), "dip_vae_ii").numpy(), cov_ii, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("method, factor", [("dip_vae_i", 10.0), ("dip_vae_ii", 1.0)])
def test_dip_regularizers(method, factor):
    lam = 5.0
    cov = np.cov(MEAN, rowvar=False, bias=True)
    if method == "dip_vae_ii":
        cov = cov + np.diag(np.exp(LOGVAR).mean(0))
    off = sum(cov[i, j] ** 2 for i in range(L) for j in range(L) if i != j)
    diag = sum((cov[i, i] - 1) ** 2 for i in range(L))
    expected = np_kl(MEAN, LOGVAR) + lam * off + factor * lam * diag
    hp = O.resolve_hparams(method, {"lambda_od": lam})
    assert hp["lambda_d"] == factor * lam
    reg = O.regularizer(method, kl=O.kl_loss(t(MEAN), t(LOGVAR)), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z), step=0,
                        hparams=hp)
    assert reg.item() == pytest.approx(expected, rel=1e-10)


def test_annealed_capacity_schedule_over_steps():
    steps = np.array([0, 1, 50_000, 99_999, 100_000, 100_001, 300_000], dtype=np.float64)
    expected = np.minimum(25.0, 25.0 * steps / 100_000)
    got = O.annealed_capacity(torch.tensor(steps), 25.0, 100_000.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for s, e in zip(steps, expected):
        assert O.annealed_capacity(int(s), 25.0) == pytest.approx(e)
    assert O.annealed_capacity(10, 4.0, iteration_threshold=20) == pytest.approx(2.0)


@pytest.mark.parametrize("step", [0, 40_000, 250_000])
def test_annealed_vae_regularizer(step):
    kl = np_kl(MEAN, LOGVAR)
    hp = O.resolve_hparams("annealed_vae", {"c_max": 10})
    assert hp["gamma"] == 1000.0 and hp["iteration_threshold"] == 100_000.0
    reg = O.regularizer("annealed_vae", kl=t(kl), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z), step=step, hparams=hp)
    assert reg.item() == pytest.approx(1000 * abs(kl - min(10.0, 10.0 * step / 100_000)), rel=1e-12)


def test_factor_vae_tc_and_discriminator_loss():
    rs = np.random.RandomState(7)
    real, perm = rs.normal(0, 4, (N, 2)), rs.normal(0, 4, (N, 2))
    real[0] = [30.0, -30.0]  # saturates: the reference's clipping of p to [1e-6, 1 - 1e-6] matters here
    perm[1] = [-30.0, 30.0]

    def softmax(a):
        e = np.exp(a - a.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p_real = np.clip(softmax(real), 1e-6, 1 - 1e-6)
    p_perm = np.clip(softmax(perm), 1e-6, 1 - 1e-6)
    expected = -(0.5 * np.log(p_real[:, 0]).mean() + 0.5 * np.log(p_perm[:, 1]).mean())
    assert O.discriminator_loss(t(real), t(perm)).item() == pytest.approx(expected, rel=1e-10)
    tc = np.mean(real[:, 0] - real[:, 1])
    assert O.factor_total_correlation(t(real)).item() == pytest.approx(tc, rel=1e-12)
    hp = O.resolve_hparams("factor_vae", {"gamma": 30})
    reg = O.regularizer("factor_vae", kl=O.kl_loss(t(MEAN), t(LOGVAR)), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z),
                        step=0, hparams=hp, discriminator_logits=t(real))
    assert reg.item() == pytest.approx(np_kl(MEAN, LOGVAR) + 30 * tc, rel=1e-10)


def test_vae_losses_keys_and_identities():
    hp = O.resolve_hparams("beta_vae", {"beta": 2})
    out = O.vae_losses("beta_vae", targets=t(TARGETS), logits=t(LOGITS), mean=t(MEAN), logvar=t(LOGVAR), z=t(Z),
                       step=0, hparams=hp)
    assert set(out) == {"reconstruction_loss", "kl_loss", "regularizer", "loss", "elbo"}
    assert out["loss"].item() == pytest.approx(out["reconstruction_loss"].item() + out["regularizer"].item())
    assert out["elbo"].item() == pytest.approx(-(out["reconstruction_loss"].item() + out["kl_loss"].item()))


def test_permute_dims_permutes_each_column_independently():
    z = torch.arange(40, dtype=torch.float32).reshape(8, 5)
    noise = torch.rand(8, 5, generator=torch.Generator().manual_seed(3))
    out = permute_dims(z, noise)
    for j in range(5):
        assert sorted(out[:, j].tolist()) == z[:, j].tolist()
        np.testing.assert_array_equal(out[:, j].numpy(), z[:, j].numpy()[np.argsort(noise[:, j].numpy())])
    assert not all(torch.equal(out[:, j], z[:, j]) for j in range(5))


@pytest.mark.parametrize("bad, message", [
    (("no_such_vae", {"beta": 1}), "unknown method"),
    (("beta_vae", {"gamma": 1}), "unknown hyperparameter"),
    (("beta_vae", {}), "needs the hyperparameter 'beta'"),
    (("dip_vae_i", {"lambda_od": 1, "lambda_d": 3}), "unknown hyperparameter"),
    (("beta_vae", {"beta": float("nan")}), "finite"),
    (("beta_vae", {"beta": "big"}), "must be a number"),
    (("annealed_vae", {"c_max": 5, "iteration_threshold": 0}), "iteration_threshold"),
])
def test_resolve_hparams_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        O.resolve_hparams(*bad)


def test_architecture_shapes_and_parameter_counts():
    for c in (1, 3):
        vae = GaussianVAE(c)
        x = torch.rand(2, c, 64, 64)
        mean, logvar = vae.encoder(x)
        assert mean.shape == logvar.shape == (2, 10)
        assert vae.decoder(mean).shape == (2, c, 64, 64)
    enc = Encoder(1)
    # conv 1->32 k4, 32->32 k4, 32->64 k2, 64->64 k2, dense 1024->256, two heads 256->10
    expected = (16 * 32 + 32) + (16 * 32 * 32 + 32) + (4 * 32 * 64 + 64) + (4 * 64 * 64 + 64) + (1024 * 256 + 256) \
        + 2 * (256 * 10 + 10)
    assert sum(p.numel() for p in enc.parameters()) == expected
    disc = Discriminator()
    assert disc(torch.zeros(3, 10)).shape == (3, 2)
    assert len(disc.hidden) == 6 and all(layer.out_features == 1000 for layer in disc.hidden)


def test_init_is_glorot_uniform_with_zero_biases_and_seeded():
    a = init_weights(GaussianVAE(1), torch.Generator().manual_seed(0))
    b = init_weights(GaussianVAE(1), torch.Generator().manual_seed(0))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb)
        if name.endswith("bias"):
            assert torch.count_nonzero(pa) == 0
    w = a.encoder.dense.weight  # 1024 -> 256
    bound = math.sqrt(6 / (1024 + 256))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.95 * bound


def test_objectives_work_under_vmap_over_stacked_models():
    from torch.func import functional_call, stack_module_state, vmap
    models = [init_weights(GaussianVAE(1), torch.Generator().manual_seed(s)) for s in range(3)]
    params, buffers = stack_module_state(models)
    x = torch.rand(3, 4, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(3, 4, 10, generator=torch.Generator().manual_seed(2))
    beta = torch.tensor([1.0, 2.0, 4.0])

    def loss(p, b, xi, ei, bi):
        mean, logvar = functional_call(models[0].encoder, {k[8:]: v for k, v in p.items() if k.startswith("enc")},
                                       (xi,))
        z = sample_latent(mean, logvar, ei)
        logits = functional_call(models[0].decoder, {k[8:]: v for k, v in p.items() if k.startswith("dec")}, (z,))
        out = O.vae_losses("beta_tc_vae", targets=xi, logits=logits, mean=mean, logvar=logvar, z=z,
                           step=torch.tensor(3.0), hparams=O.resolve_hparams("beta_tc_vae", {"beta": bi}))
        return out["loss"]

    batched = vmap(loss)(params, buffers, x, eps, beta)
    for i, m in enumerate(models):
        mean, logvar = m.encoder(x[i])
        z = sample_latent(mean, logvar, eps[i])
        single = O.vae_losses("beta_tc_vae", targets=x[i], logits=m.decoder(z), mean=mean, logvar=logvar, z=z,
                              step=3, hparams=O.resolve_hparams("beta_tc_vae", {"beta": float(beta[i])}))["loss"]
        assert batched[i].item() == pytest.approx(single.item(), rel=1e-5)
