"""Packed training equals single-run training: weights and train_results of each run of a pack of K = 3 match
``train_model`` on the same run, for all six methods and every impl, the engine's and the comparison baselines' (CPU,
float tolerance)."""
from __future__ import annotations

import pytest
import torch

from benchmarks.packed_baselines import BASELINE_IMPLS, train_packed_any
from training.engine.packed import train_packed
from training.engine.train import train_model
from helpers.packs import BATCH, EVAL, HPARAMS, SEEDS, STEPS, BlobDataset, assert_same_run
from training.vocabulary import METHODS

try:   # impl "triton": without CUDA its kernels run in Triton's interpreter (TRITON_INTERPRET=1: conftest.py)
    import triton  # noqa: F401
    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False
needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="impl 'triton' needs the triton package")


DATA_ORDER = {"factor_vae": "reference", "beta_tc_vae": "reference"}


# The engine's impls "loop" (the CPU default), "gemm" and "triton", and the comparison baselines of
# benchmarks/packed_baselines.py ("vmap": grouped convolutions and batched matrix products under vmap; "bmm": im2col
# packed layers; "grouped": grouped convolutions). In the default run: loop for every method; vmap, gemm and grouped
# for the discriminator and the 3-channel path; bmm for the 3-channel path (the rest, and triton, whose interpreted
# kernels take ~1.5 min per method: -m slow; test_packed.py holds triton equal to gemm in the default run)
CASES = [(m, "loop") for m in METHODS] + [
    pytest.param(m, "vmap", marks=() if m in ("factor_vae", "dip_vae_ii") else pytest.mark.slow) for m in METHODS] + [
    pytest.param(m, "bmm", marks=() if m == "dip_vae_ii" else pytest.mark.slow) for m in METHODS] + [
    pytest.param(m, impl, marks=() if m in ("factor_vae", "dip_vae_ii") else pytest.mark.slow)
    for impl in ("gemm", "grouped") for m in METHODS] + [
    pytest.param(m, "triton", marks=(needs_triton, pytest.mark.slow)) for m in METHODS]


@pytest.mark.parametrize("method, impl", CASES)
def test_each_packed_run_equals_the_run_trained_alone(method, impl):
    name = METHODS[method][0]
    runs = [({name: v}, s) for v, s in zip(HPARAMS[method], SEEDS)]
    dataset = BlobDataset(channels=3 if method == "dip_vae_ii" else 1)
    order = DATA_ORDER.get(method, "batched")
    train = train_packed_any if impl in BASELINE_IMPLS else train_packed
    packed = train(dataset, method, runs, steps=STEPS, batch_size=BATCH, device="cpu", num_eval_samples=EVAL,
                   data_order=order, impl=impl)
    assert len(packed) == 3
    for (hparams, seed), model in zip(runs, packed):
        assert not isinstance(model, Exception), model
        single = train_model(dataset, method, hparams, seed, STEPS, batch_size=BATCH, device="cpu",
                             num_eval_samples=EVAL, progress=False, data_order=order)
        assert_same_run(model, single)
    # the runs of a pack really are different models (seeds and hyperparameters differ)
    w = [m.vae.state_dict()["encoder.conv1.weight"] for m in packed]
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])
