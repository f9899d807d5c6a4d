"""train_packed beyond equivalence: a diverging run stops alone, invalid runs fail alone, bad arguments are
rejected, device-resident data (forced on CPU) trains deterministically, the noise blocks draw each run's own
stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.packed_baselines import models_for, train_packed_any
from helpers.packs import BlobDataset, assert_same_run
from test_packed_equivalence import HAVE_TRITON
from training.engine.packed import NoiseBlocks, train_packed
from training.engine.train import Trainer, TrainingDivergedError, train_model


@pytest.mark.parametrize("impl, workers", [("loop", None), ("gemm", 1)])
def test_a_diverging_run_stops_alone(impl, workers):
    dataset = BlobDataset()
    # lambda_od = 3e38 makes lambda_d = 3e39, inf in float32: that run's loss is inf at the first step and it
    # diverges; the others are untouched. With one worker the run is dropped from a pack of three (its rows taken
    # out of the stacked parameters and Adam states, here in gemm's matrix layout)
    runs = [({"lambda_od": 1.0}, 0), ({"lambda_od": 3e38}, 1), ({"lambda_od": 4.0}, 2)]
    out = train_packed(dataset, "dip_vae_i", runs, steps=3, batch_size=4, device="cpu", num_eval_samples=4,
                       impl=impl, workers=workers)
    assert isinstance(out[1], TrainingDivergedError)
    assert "lambda_od=3e+38" in str(out[1]) and "seed 1" in str(out[1])
    for idx in (0, 2):
        hparams, seed = runs[idx]
        single = train_model(dataset, "dip_vae_i", hparams, seed, 3, batch_size=4, device="cpu",
                             num_eval_samples=4, progress=False)
        assert_same_run(out[idx], single, steps=3)


def test_invalid_runs_fail_alone_and_bad_arguments_raise():
    dataset = BlobDataset()
    out = train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0), ({"gamma": 1.0}, 1), ({"beta": 2.0}, -1)],
                       steps=1, batch_size=4, device="cpu", num_eval_samples=0)
    assert not isinstance(out[0], Exception)
    assert isinstance(out[1], ValueError) and "beta" in str(out[1])
    assert isinstance(out[2], ValueError) and "seed" in str(out[2])
    assert set(out[0].train_results) == {"train_seconds", "num_eval_samples", "global_step", "pack_size"}
    with pytest.raises(ValueError, match="method"):
        train_packed(dataset, "vae", [({"beta": 1.0}, 0)], steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=0)
    with pytest.raises(ValueError, match="runs"):
        train_packed(dataset, "beta_vae", [], steps=1)
    with pytest.raises(ValueError, match="data_order"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=1, data_order="shuffled")
    with pytest.raises(ValueError, match="precision"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=1, precision="fp8")
    with pytest.raises(ValueError, match="CUDA"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=1, device="cpu", precision="tf32")
    with pytest.raises(ValueError, match="impl"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=1, device="cpu", impl="im2col")
    # the comparison baselines run through benchmarks/packed_baselines.py only
    with pytest.raises(ValueError, match="impl must be one of loop, gemm, triton, got 'vmap'"):
        train_packed(dataset, "beta_vae", [({"beta": 1.0}, 0)], steps=1, device="cpu", impl="vmap")


class TableBlobs(BlobDataset):
    """BlobDataset with a device image table over its 8 x 8 factor grid (no noise in the table)."""

    factor_sizes = [8, 8]

    def device_table(self):
        table = np.zeros((64, 64, 64, 1), np.uint8)
        for idx in range(64):
            r, c = divmod(idx, 8)
            table[idx, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = 255
        return table, 1 / 255


def test_device_data_path_trains_deterministically():
    dataset = TableBlobs()
    runs = [({"c_max": 5.0}, 0), ({"c_max": 50.0}, 1)]
    kwargs = dict(steps=2, batch_size=4, device="cpu", num_eval_samples=0, device_data=True)
    first = train_packed(dataset, "annealed_vae", runs, **kwargs)
    again = train_packed(dataset, "annealed_vae", runs, **kwargs, prefetch=0)   # drawn in the loop: the same
    host = train_packed(dataset, "annealed_vae", runs, **{**kwargs, "device_data": False})
    assert [m.data_order for m in first] == ["device", "device"] and host[0].data_order == "batched"
    for a, b, h in zip(first, again, host):
        for name, value in a.vae.state_dict().items():
            torch.testing.assert_close(value, b.vae.state_dict()[name], rtol=0, atol=0)
        # another data stream than the numpy one: different weights after training
        assert not torch.equal(a.vae.state_dict()["encoder.conv1.weight"], h.vae.state_dict()["encoder.conv1.weight"])
    with pytest.raises(ValueError, match="device-resident"):
        train_packed(BlobDataset(), "beta_vae", [({"beta": 1.0}, 0)], steps=1, device="cpu", device_data=True)


def test_device_data_drawn_ahead_keeps_each_survivor_of_a_diverged_run_on_its_own_stream():
    # the background thread has drawn the next batches for all three runs when run 1 is dropped after step 0: the
    # survivors still train on their own streams, as in a pack without run 1
    dataset = TableBlobs()
    runs = [({"lambda_od": 1.0}, 0), ({"lambda_od": 3e38}, 1), ({"lambda_od": 4.0}, 2)]
    kwargs = dict(steps=3, batch_size=4, device="cpu", num_eval_samples=0, device_data=True, workers=1)
    out = train_packed(dataset, "dip_vae_i", runs, **kwargs)
    alone = train_packed(dataset, "dip_vae_i", [runs[0], runs[2]], **kwargs)
    assert isinstance(out[1], TrainingDivergedError)
    for survivor, reference in zip((out[0], out[2]), alone):
        for name, value in survivor.vae.state_dict().items():
            torch.testing.assert_close(value, reference.vae.state_dict()[name])


@pytest.mark.parametrize("impl", ["vmap", "bmm", "gemm"])
def test_bf16_autocast_path_runs_and_stays_close_to_fp32(impl):
    # the mixed-precision path of PackedModels (and of the baselines' subclasses), exercised through CPU autocast
    def make(precision):
        trainers = [Trainer("factor_vae", {"gamma": 10.0}, s, 1, torch.device("cpu"), channels_last=False,
                            fused_adam=False) for s in range(2)]
        return models_for(impl)(trainers, torch.device("cpu"), 1e-4, 1e-4, precision=precision, impl=impl)

    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, 4, 1, 64, 64), generator=g)
    eps, perm = torch.randn((2, 4, 10), generator=g), torch.rand((2, 4, 10), generator=g)
    full, half = make("fp32"), make("bf16")
    a, b = full.step(x, eps, perm, 0), half.step(x, eps, perm, 0)
    for key in ("reconstruction_loss", "loss", "discriminator_loss"):
        assert b[key].dtype == torch.float32
        torch.testing.assert_close(b[key], a[key], rtol=1e-2, atol=1e-2)
    moved = (half.vae_params["encoder.conv1.weight"] - make("bf16").vae_params["encoder.conv1.weight"]).detach().abs()
    assert float(moved.max()) > 0   # the bf16 step updated the fp32 master weights


def test_cpu_workers_split_the_pack_into_single_threaded_sub_packs_without_changing_runs():
    dataset = BlobDataset()
    runs = [({"beta": 1.0}, 0), ({"beta": 4.0}, 1), ({"beta": 2.0}, 2)]
    threads_before = torch.get_num_threads()
    calls = []
    split = train_packed(dataset, "beta_vae", runs, steps=3, batch_size=4, device="cpu", num_eval_samples=4,
                         workers=2, on_step=lambda t, losses: calls.append((t, losses["loss"].shape[0])))
    whole = train_packed(dataset, "beta_vae", runs, steps=3, batch_size=4, device="cpu", num_eval_samples=4,
                         workers=1)
    for a, b in zip(split, whole):
        assert_same_run(a, b, steps=3)  # also asserts pack_size 3 for the split pack
    # one train_seconds for the whole pack (its wall time / K), as for an unsplit pack
    assert len({m.train_results["train_seconds"] for m in split}) == 1
    # runs dealt round-robin: sub-packs {0, 2} and {1}, each reporting its own steps
    assert sorted(calls) == sorted([(t, 2) for t in range(3)] + [(t, 1) for t in range(3)])
    assert torch.get_num_threads() == threads_before  # the worker threads' setting stays theirs
    with pytest.raises(ValueError, match="workers"):
        train_packed(dataset, "beta_vae", runs, steps=1, device="cpu", workers=0)


@pytest.mark.parametrize("impl", ["loop", "vmap"])
def test_bf16_on_cpu_trains_each_run_close_to_its_fp32_twin(impl):
    # bf16 autocast is allowed on the CPU (to measure its effect without a GPU): every run trains, its results are
    # fp32 numbers near the fp32 run's, and the weights differ from fp32 by more than float rounding
    dataset = BlobDataset()
    runs = [({"beta": 1.0}, 0), ({"beta": 4.0}, 1)]
    options = dict(steps=3, batch_size=8, device="cpu", num_eval_samples=16, progress=False, impl=impl, workers=1)
    full = train_packed_any(dataset, "beta_vae", runs, precision="fp32", **options)
    half = train_packed_any(dataset, "beta_vae", runs, precision="bf16", **options)
    for a, b in zip(full, half):
        for key in ("reconstruction_loss", "kl_loss", "elbo"):
            assert b.train_results[key] == pytest.approx(a.train_results[key], rel=2e-2, abs=0.5)
        wa, wb = a.vae.encoder.conv2.weight.detach(), b.vae.encoder.conv2.weight.detach()
        assert wb.dtype == torch.float32
        assert 1e-6 < float((wa - wb).abs().max()) < 1e-3


def test_cpu_kernel_choices_step_aside_under_cpu_autocast():
    from training.kernels.cpu import use_fast_cpu_layers
    from training.models.architecture import GaussianVAE
    torch.manual_seed(0)
    vae = use_fast_cpu_layers(GaussianVAE(1))
    encoder, decoder = vae.encoder, vae.decoder
    x = torch.rand(2, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, _ = encoder(x)
        logits = decoder(mean.float())
    assert mean.dtype == torch.bfloat16 and logits.dtype == torch.bfloat16   # the plain layers, autocast
    assert not logits.grad_fn.name().startswith("_PhaseForwardConvTranspose")
    assert encoder(x)[0].dtype == torch.float32


@pytest.mark.parametrize("n", [8, 4])
@pytest.mark.parametrize("method, hparams", [("factor_vae", {"gamma": 10.0}), ("beta_vae", {"beta": 4.0})])
def test_noise_blocks_draw_what_each_step_draws(method, hparams, n):
    """Blocks of noise (n = 8: one randn of (b, n, L) per run and block; n = 4: blocks of one step) equal the step by
    step draws of Trainer.noise, also after a run leaves the pack mid-block, and leave every generator where the step
    by step draws leave it."""
    def trainers():
        return {i: Trainer(method, dict(hparams), seed, 1, torch.device("cpu"), channels_last=False,
                           fused_adam=False) for i, seed in enumerate((3, 11, 5))}

    blocked, stepwise = trainers(), trainers()
    noise = NoiseBlocks(blocked, [0, 1, 2], n, torch.device("cpu"), steps=7, block=3)
    assert noise.block == (3 if n == 8 else 1)
    rows = [0, 1, 2]
    for t in range(7):
        if t == 4:
            rows = [0, 2]   # run 1 diverged: the rest of its block is dropped with it
        eps, perm = noise.next(rows)
        for r, i in enumerate(rows):
            want_eps, want_perm = stepwise[i].noise(n)
            assert torch.equal(eps[r], want_eps)
            assert (perm is None) == (want_perm is None)
            if perm is not None:
                assert torch.equal(perm[r], want_perm)
    for i in (0, 2):   # the evaluation after training continues from the same generator states
        assert torch.equal(blocked[i].latent_noise.get_state(), stepwise[i].latent_noise.get_state())
    with pytest.raises(RuntimeError, match="noise"):
        noise.next(rows)


@pytest.mark.skipif(not HAVE_TRITON, reason="impl 'triton' needs the triton package")
def test_triton_impl_trains_the_runs_that_gemm_trains():
    """impl "triton" (fused kernels; Triton's interpreter without CUDA) against impl "gemm", which the equivalence
    tests hold equal to train_model: the 3-channel path, two runs, two steps (the full equivalence: -m slow)."""
    runs = [({"lambda_od": 2.0}, 0), ({"lambda_od": 20.0}, 7)]
    dataset = BlobDataset(channels=3)
    out = {impl: train_packed(dataset, "dip_vae_ii", runs, steps=2, batch_size=4, device="cpu", num_eval_samples=4,
                              impl=impl) for impl in ("gemm", "triton")}
    for gemm_run, triton_run in zip(out["gemm"], out["triton"]):
        assert not isinstance(triton_run, Exception), triton_run
        assert_same_run(triton_run, gemm_run, steps=2, pack_size=2)


@pytest.mark.skipif(not HAVE_TRITON, reason="impl 'triton' needs the triton package")
def test_triton_impl_runs_measured_gemm_layers_with_gemm(monkeypatch):
    """Where the measured table says the gemm layer is faster (triton_layers.GEMM_LAYERS), impl "triton" runs that
    layer with gemm's kernels and stores its weights in gemm's layout; the trained runs are unchanged."""
    from training.kernels import triton_layers
    from training.engine.packed import _gemm_layers
    from training.models.architecture import GaussianVAE

    monkeypatch.setattr(triton_layers, "GEMM_LAYERS", set())
    chosen = [{"kind": "conv4x4_s2", "c": 32, "o": 32, "height": 32, "impl": "gemm"},
              {"kind": "conv_transpose4x4_s2", "c": 32, "o": 1, "height": 32, "impl": "gemm"},
              {"kind": "conv2x2_s2", "c": 32, "o": 64, "height": 16, "impl": "triton"}]
    assert triton_layers.set_layer_impls(chosen) == 2
    layers = _gemm_layers(GaussianVAE(1, 10), "triton")
    assert [name for name, layer in layers.items() if layer.impl == "gemm"] == ["encoder.conv2.weight",
                                                                                 "decoder.deconv4.weight"]
    assert layers["encoder.conv3.weight"].form == "s2d" and layers["decoder.deconv3.weight"].form == "phases"
    runs = [({"beta": 1.0}, 0), ({"beta": 8.0}, 3)]
    out = {impl: train_packed(BlobDataset(), "beta_vae", runs, steps=2, batch_size=4, device="cpu",
                              num_eval_samples=4, impl=impl) for impl in ("gemm", "triton")}
    for gemm_run, triton_run in zip(out["gemm"], out["triton"]):
        assert_same_run(triton_run, gemm_run, steps=2, pack_size=2)
    with pytest.raises(ValueError, match="layer choice"):
        triton_layers.set_layer_impls([dict(chosen[0], impl="cudnn")])


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TRITON, reason="impl 'triton' needs the triton package")
def test_compiled_triton_impl_matches_eager():
    """compile=True with impl "triton": torch.compile compiles the step around the fused kernels (custom operators)
    and trains the same runs (here on the CPU, the kernels in Triton's interpreter)."""
    runs = [({"beta": 1.0}, 0), ({"beta": 8.0}, 3)]
    out = {compiled: train_packed(BlobDataset(), "beta_vae", runs, steps=2, batch_size=4, device="cpu",
                                  num_eval_samples=4, impl="triton", compile=compiled) for compiled in (False, True)}
    for eager_run, compiled_run in zip(out[False], out[True]):
        assert_same_run(compiled_run, eager_run, steps=2, pack_size=2)
