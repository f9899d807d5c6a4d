"""train_model, TrainedModel, representation functions and artifacts on a tiny fake dataset (fast, CPU)."""
import re

import numpy as np
import pytest
import torch

from training.engine.train import (CHECKPOINT_FILE, Trainer, TrainedModel, TrainingDivergedError, sample_batch, train_model)

TINY = dict(batch_size=4, num_eval_samples=8, progress=False, device="cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny batches run fastest on one thread (and two spinning OpenMP threads stall on a shared, loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FakeDataset:
    """The dataset interface (training.data.base): two factors place an 8x8 bright square on a 64x64 canvas."""

    def __init__(self, channels=1, nan_after=None, shape=None):
        self.num_factors = 2
        self.factors_num_values = [8, 8]
        self.observation_shape = shape or (64, 64, channels)
        self.factor_names = ["x", "y"]
        self.calls = 0
        self.nan_after = nan_after

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(v, size=num) for v in self.factors_num_values], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        out = np.zeros((len(factors),) + tuple(self.observation_shape), np.float32)
        for i, (a, b) in enumerate(factors):
            out[i, 8 * a:8 * a + 8, 8 * b:8 * b + 8, :] = 0.25 + 0.75 * random_state.uniform()
        self.calls += 1
        if self.nan_after is not None and self.calls > self.nan_after:
            out[:] = np.nan
        return out

    def sample(self, num, random_state):
        f = self.sample_factors(num, random_state)
        return f, self.sample_observations_from_factors(f, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


def weights(model):
    state = {"vae." + k: v.clone() for k, v in model.vae.state_dict().items()}
    if model.discriminator is not None:
        state.update({"disc." + k: v.clone() for k, v in model.discriminator.state_dict().items()})
    return state


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def without_time(results):
    return {k: v for k, v in results.items() if k != "train_seconds"}


def test_training_is_deterministic_and_seed_dependent():
    a = train_model(FakeDataset(), "beta_tc_vae", {"beta": 4}, seed=3, steps=3, **TINY)
    b = train_model(FakeDataset(), "beta_tc_vae", {"beta": 4}, seed=3, steps=3, **TINY)
    c = train_model(FakeDataset(), "beta_tc_vae", {"beta": 4}, seed=4, steps=3, **TINY)
    assert_same_weights(a, b)
    assert without_time(a.train_results) == without_time(b.train_results)
    assert not torch.equal(a.vae.encoder.conv1.weight, c.vae.encoder.conv1.weight)
    assert a.train_results != c.train_results


def test_train_results_keys_and_identities():
    m = train_model(FakeDataset(), "dip_vae_ii", {"lambda_od": 2}, seed=0, steps=2, **TINY)
    r = m.train_results
    assert {"reconstruction_loss", "kl_loss", "regularizer", "loss", "elbo", "train_seconds",
            "num_eval_samples"} <= set(r)
    assert r["num_eval_samples"] == 8 and r["global_step"] == 2
    assert r["elbo"] == pytest.approx(-(r["reconstruction_loss"] + r["kl_loss"]), rel=1e-6)
    assert r["loss"] == pytest.approx(r["reconstruction_loss"] + r["regularizer"], rel=1e-6)
    assert r["train_seconds"] > 0
    assert (m.method, m.hparams, m.seed, m.steps, m.batch_size) == ("dip_vae_ii", {"lambda_od": 2.0}, 0, 2, 4)


def test_prefetch_thread_does_not_change_results():
    a = train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=5, steps=3, prefetch=0, **TINY)
    b = train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=5, steps=3, prefetch=3, **TINY)
    assert_same_weights(a, b)


def test_reference_data_order_trains_deterministically_on_its_own_stream():
    a = train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=5, steps=2, data_order="reference", **TINY)
    b = train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=5, steps=2, data_order="reference", **TINY)
    c = train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=5, steps=2, **TINY)
    assert_same_weights(a, b)
    assert a.data_order == "reference" and c.data_order == "batched"
    assert not torch.equal(a.vae.encoder.conv1.weight, c.vae.encoder.conv1.weight)


def test_batches_are_drawn_one_example_at_a_time_like_the_reference():
    ds = FakeDataset()
    batch = sample_batch(ds, 5, np.random.RandomState(9))
    rs = np.random.RandomState(9)
    expected = np.concatenate([ds.sample_observations(1, rs) for _ in range(5)])
    np.testing.assert_array_equal(batch, expected)


@pytest.mark.parametrize("method, hparams", [("factor_vae", {"gamma": 10}), ("annealed_vae", {"c_max": 5})])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, method, hparams):
    full = train_model(FakeDataset(), method, hparams, seed=1, steps=5, **TINY)

    def interrupt(t, losses):
        if t == 3:  # after the 4th update; the last checkpoint is at step 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(FakeDataset(), method, hparams, seed=1, steps=5, checkpoint_dir=tmp_path, checkpoint_every=2,
                    on_step=interrupt, **TINY)
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["step"] == 2
    seen = []
    resumed = train_model(FakeDataset(), method, hparams, seed=1, steps=5, checkpoint_dir=tmp_path,
                          checkpoint_every=2, on_step=lambda t, losses: seen.append(t), **TINY)
    assert seen == [2, 3, 4]
    assert_same_weights(full, resumed)
    assert without_time(full.train_results) == without_time(resumed.train_results)
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["step"] == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_resumes_and_matches_cpu_closely(tmp_path):
    args = dict(batch_size=4, num_eval_samples=8, progress=False, device="cuda")
    full = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=1, steps=4, **args)
    train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=1, steps=2, checkpoint_dir=tmp_path, **args)
    resumed = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=1, steps=4, checkpoint_dir=tmp_path, **args)
    assert resumed.device.type == "cuda"
    for a, b in zip(weights(full).values(), weights(resumed).values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    cpu = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=1, steps=4, **TINY)
    for key in ("reconstruction_loss", "kl_loss", "loss"):
        assert full.train_results[key] == pytest.approx(cpu.train_results[key], rel=1e-3, abs=1e-3)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=1, steps=2, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="another run"):
        train_model(FakeDataset(), "beta_vae", {"beta": 4}, seed=1, steps=2, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="beyond"):
        train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=1, steps=1, checkpoint_dir=tmp_path, **TINY)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / CHECKPOINT_FILE).write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train_model(FakeDataset(), "beta_vae", {"beta": 2}, seed=1, steps=2, checkpoint_dir=tmp_path / "other",
                    **TINY)


def test_nan_loss_raises_and_never_reaches_a_checkpoint(tmp_path):
    # one sample_observations call per batch (data_order="batched"): NaN data from the 3rd batch (step 2) on
    ds = FakeDataset(nan_after=2)
    with pytest.raises(TrainingDivergedError, match=r"non-finite .*loss=nan.* by step 2 \(beta_vae, beta=2, seed 0\)"):
        train_model(ds, "beta_vae", {"beta": 2}, seed=0, steps=6, checkpoint_dir=tmp_path, checkpoint_every=1,
                    prefetch=0, **TINY)
    assert issubclass(TrainingDivergedError, RuntimeError)
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["trainer"]["vae"].values())


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="beta_vea", hparams={"beta": 1}), "unknown method"),
    (dict(method="beta_vae", hparams={"gamma": 1}), "unknown hyperparameter"),
    (dict(method="factor_vae", hparams={"beta": 1}), "unknown hyperparameter"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=-5), "steps must be"),
    (dict(steps=2.5), "steps must be"),
    (dict(batch_size=1), "batch_size must be an integer >= 2"),
    (dict(seed=-1), "seed"),
    (dict(num_channels=3), "channel"),
    (dict(dataset=FakeDataset(shape=(32, 32, 1))), "64x64xC"),
    (dict(dataset=object()), "dataset interface"),
    (dict(data_order="shuffled"), "data_order"),
    (dict(num_threads=0), "num_threads"),
    (dict(device="cuda:0"), "CUDA") if not torch.cuda.is_available() else (dict(steps=0), "steps"),
    (dict(device="tpu"), "device"),
])
def test_bad_input_raises_value_error(kwargs, message):
    args = dict(dataset=FakeDataset(), method="beta_vae", hparams={"beta": 1}, seed=0, steps=1, **TINY)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        train_model(args.pop("dataset"), args.pop("method"), args.pop("hparams"), **args)


def test_factor_vae_optimisers_are_separate():
    batch = torch.from_numpy(sample_batch(FakeDataset(), 6, np.random.RandomState(0)))
    trainer = Trainer("factor_vae", {"gamma": 20}, seed=0, num_channels=1, device=torch.device("cpu"))
    noise_states = (trainer.latent_noise.get_state(), trainer.permutation_noise.get_state())
    losses = trainer.losses(batch, 0)
    vae_p, disc_p = trainer.vae_params, trainer.disc_params
    g_vae = torch.autograd.grad(losses["loss"], vae_p, retain_graph=True)
    g_vae_on_disc = torch.autograd.grad(losses["loss"], disc_p, retain_graph=True)
    g_disc = torch.autograd.grad(losses["discriminator_loss"], disc_p, retain_graph=True)
    g_disc_on_vae = torch.autograd.grad(losses["discriminator_loss"], vae_p, allow_unused=True)
    # both cross gradients exist (the TC term depends on the discriminator; its loss reaches the encoder through z)
    assert any(g.abs().sum() > 0 for g in g_vae_on_disc)
    assert any(g is not None and g.abs().sum() > 0 for g in g_disc_on_vae)
    trainer.latent_noise.set_state(noise_states[0])
    trainer.permutation_noise.set_state(noise_states[1])
    before_vae = [p.detach().clone() for p in vae_p]
    before_disc = [p.detach().clone() for p in disc_p]
    trainer.step(batch, 0)
    for p, g in zip(vae_p, g_vae):  # the VAE optimiser got d(VAE loss) only
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    for p, g in zip(disc_p, g_disc):  # the discriminator optimiser got d(discriminator loss) only
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    assert all(not torch.equal(a, p) for a, p in zip(before_vae, vae_p) if a.abs().sum() > 0)
    assert any(not torch.equal(a, p) for a, p in zip(before_disc, disc_p))
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert trainer.discriminator_optimizer.param_groups[0]["betas"] == (0.5, 0.9)
    assert {id(p) for p in trainer.optimizer.param_groups[0]["params"]}.isdisjoint(
        {id(p) for p in trainer.discriminator_optimizer.param_groups[0]["params"]})


@pytest.mark.parametrize("frozen", ["vae", "discriminator"])
def test_factor_vae_step_with_one_side_frozen(frozen):
    lrs = {"learning_rate": 0.0} if frozen == "vae" else {"discriminator_learning_rate": 0.0}
    base = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=2, steps=1, num_eval_samples=0,
                       batch_size=4, progress=False, learning_rate=0.0, discriminator_learning_rate=0.0)
    moved = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=2, steps=2, num_eval_samples=0,
                        batch_size=4, progress=False, **lrs)
    same_vae = all(torch.equal(a, b) for a, b in zip(base.vae.parameters(), moved.vae.parameters()))
    same_disc = all(torch.equal(a, b) for a, b in zip(base.discriminator.parameters(),
                                                      moved.discriminator.parameters()))
    assert (same_vae, same_disc) == ((True, False) if frozen == "vae" else (False, True))


def test_annealed_vae_uses_the_global_step():
    batch = torch.from_numpy(sample_batch(FakeDataset(), 4, np.random.RandomState(0)))
    trainer = Trainer("annealed_vae", {"c_max": 50}, seed=0, num_channels=1, device=torch.device("cpu"))
    for t in (0, 30_000, 200_000):
        with torch.no_grad():
            out = trainer.losses(batch, t)
        expected = 1000 * abs(out["kl_loss"].item() - min(50.0, 50.0 * t / 100_000))
        assert out["regularizer"].item() == pytest.approx(expected, rel=1e-4)


@pytest.fixture(scope="module")
def trained():
    return train_model(FakeDataset(), "beta_vae", {"beta": 4}, seed=0, steps=2, **TINY)


def test_representation_functions(trained):
    obs = FakeDataset().sample_observations(7, np.random.RandomState(1))
    mean_fn = trained.representation_fn("mean", batch_size=3)
    codes = mean_fn(obs)
    assert codes.shape == (7, 10) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, trained.representation_fn("mean", batch_size=256)(obs), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        mu, logvar = trained.vae.encoder(torch.from_numpy(obs).permute(0, 3, 1, 2))
    np.testing.assert_allclose(codes, mu.numpy(), rtol=1e-5, atol=1e-6)
    s1 = trained.representation_fn("sampled", seed=11, batch_size=3)
    s2 = trained.representation_fn("sampled", seed=11)
    first = s1(obs)
    np.testing.assert_allclose(first, s2(obs), rtol=1e-5, atol=1e-6)  # seeded, independent of batching
    assert not np.allclose(first, s1(obs))  # the noise stream advances between calls
    assert not np.allclose(first, trained.representation_fn("sampled", seed=12)(obs))
    # the noise has the encoder's scale: (sample - mean) / std is standard normal
    eps = (first - mu.numpy()) / np.exp(0.5 * logvar.numpy())
    expected = torch.randn(7, 10, generator=torch.Generator().manual_seed(11)).numpy()
    np.testing.assert_allclose(eps, expected, rtol=1e-3, atol=1e-3)


def test_representation_function_rejects_bad_input(trained):
    with pytest.raises(ValueError, match="unknown representation"):
        trained.representation_fn("median")
    with pytest.raises(ValueError, match="3 channel"):
        trained.representation_fn("mean")(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        trained.representation_fn("mean")(np.zeros((2, 32, 32, 1), np.float32))


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "model.pt")
    loaded = TrainedModel.load(path, device="cpu")
    assert loaded.device.type == "cpu"
    assert (loaded.method, loaded.hparams, loaded.seed, loaded.steps) == ("beta_vae", {"beta": 4.0}, 0, 2)
    assert loaded.train_results == trained.train_results
    assert_same_weights(trained, loaded)
    obs = FakeDataset().sample_observations(5, np.random.RandomState(2))
    np.testing.assert_array_equal(loaded.representation_fn("sampled", seed=3)(obs),
                                  trained.representation_fn("sampled", seed=3)(obs))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable dstudy model"):
        TrainedModel.load(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="no model file"):
        TrainedModel.load(tmp_path / "missing.pt")


def test_factor_vae_save_load_keeps_the_discriminator(tmp_path):
    m = train_model(FakeDataset(), "factor_vae", {"gamma": 10}, seed=0, steps=1, **TINY)
    loaded = TrainedModel.load(m.save(tmp_path / "f.pt"), device="cpu")
    assert_same_weights(m, loaded)


def test_artifacts(trained, tmp_path):
    from PIL import Image
    paths = trained.save_artifacts(tmp_path / "art", num_inputs=2, num_values=5, num_reconstructions=10)
    traversal = Image.open(paths["traversal"])
    # 2 blocks of 10 rows (one per latent) x (input + 5 values) tiles of 64 px with 4 px gaps, 12 px between blocks
    assert traversal.size == (6 * 64 + 5 * 4, 2 * (10 * 64 + 9 * 4) + 12)
    recon = Image.open(paths["reconstructions"])
    assert recon.size == (8 * 64 + 7 * 4, 4 * 64 + 3 * 4)  # 10 inputs -> 2 rows of 8, each above its reconstruction
    grid = np.asarray(recon, dtype=np.float32) / 255
    obs = FakeDataset().sample_observations(10, np.random.RandomState(0))
    np.testing.assert_allclose(grid[:64, :64], obs[0, :, :, 0], atol=1 / 255)
    with pytest.raises(ValueError, match="channel"):
        trained.save_artifacts(tmp_path / "x", dataset=FakeDataset(channels=3))


def test_training_by_dataset_name_and_artifacts_after_load(tmp_path):
    data = pytest.importorskip("training.data")
    try:
        data.get_dataset("dsprites_full")
    except Exception as exc:  # noqa: BLE001 - the procedural generator is a colleague's module
        pytest.skip(f"dsprites_full unavailable: {exc}")
    m = train_model("dsprites_full", "annealed_vae", {"c_max": 5, "iteration_threshold": 10}, seed=0, steps=2,
                    **TINY)
    assert m.dataset_name == "dsprites_full" and m.num_channels == 1
    loaded = TrainedModel.load(m.save(tmp_path / "m.pt"), device="cpu")
    assert loaded.hparams == {"c_max": 5.0, "iteration_threshold": 10.0}
    paths = loaded.save_artifacts(tmp_path / "art", num_inputs=1, num_values=3, num_reconstructions=4)
    assert all(p.stat().st_size > 0 for p in paths.values())
    with pytest.raises(ValueError, match="channel"):
        train_model("dsprites_full", "beta_vae", {"beta": 1}, seed=0, steps=1, num_channels=3, **TINY)


@pytest.mark.slow
def test_compiled_training_matches_eager():
    eager = train_model(FakeDataset(), "beta_tc_vae", {"beta": 6}, seed=0, steps=3, **TINY)
    compiled = train_model(FakeDataset(), "beta_tc_vae", {"beta": 6}, seed=0, steps=3, compile=True, **TINY)
    for a, b in zip(weights(eager).values(), weights(compiled).values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for key in ("reconstruction_loss", "kl_loss", "regularizer"):
        assert compiled.train_results[key] == pytest.approx(eager.train_results[key], rel=1e-4, abs=1e-4)


def test_training_options_are_validated_once_with_one_line_per_bad_value():
    from training.engine.options import STUDY_KEYS, TrainingOptions

    default = TrainingOptions()
    assert TrainingOptions.of(None) == default and TrainingOptions.of({"prefetch": 0}).prefetch == 0
    assert TrainingOptions.of(default, num_eval_samples=5).num_eval_samples == 5
    assert TrainingOptions.from_study({"precision": "bf16"}).precision == "bf16"
    for bad, message in [({"num_eval_samples": -1}, "num_eval_samples must be an integer >= 0"),
                         ({"precision": "fp16"}, "precision must be one of fp32, tf32, bf16"),
                         ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
                         ({"impl": "magic"}, "impl must be one of"),
                         ({"momentum": 0.9}, "unknown training option(s) momentum")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            TrainingOptions.of(**bad)
    with pytest.raises(ValueError, match=re.escape(f"accepted: {', '.join(STUDY_KEYS)}")):
        TrainingOptions.from_study({"prefetch": 0})        # a speed option is not part of a study
    with pytest.raises(ValueError, match="trains in fp32"):
        train_model(FakeDataset(), "beta_vae", {"beta": 1.0}, 0, 1, precision="bf16")
