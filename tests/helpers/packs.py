"""A tiny dataset and the checks that a packed run equals the run trained alone (tests of the packed engine)."""
from __future__ import annotations

import math

import numpy as np


class BlobDataset:
    """A tiny ground-truth dataset with the dataset interface: a bright square at (row, col) on a grey ramp.

    Factors: row (8 values), col (8 values); observations (64, 64, C) float32 in [0, 1]. Cheap to sample, so the
    equivalence tests spend their time in training, not in rendering.
    """

    name = "blobs"

    def __init__(self, channels: int = 1):
        self.observation_shape = (64, 64, channels)
        self.factors_num_values = [8, 8]
        self.num_factors = 2
        self.factor_names = ["row", "col"]

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(8, size=num), random_state.randint(8, size=num)], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        n = factors.shape[0]
        ramp = np.linspace(0.0, 0.3, 64, dtype=np.float32)
        out = np.broadcast_to(ramp[None, :, None, None], (n, 64, 64, self.observation_shape[2])).copy()
        for k, (r, c) in enumerate(factors):
            out[k, 8 * r:8 * r + 8, 8 * c:8 * c + 8, :] = 1.0
        out += 0.05 * random_state.uniform(size=out.shape).astype(np.float32)
        return np.clip(out, 0.0, 1.0)

    def sample(self, num, random_state):
        f = self.sample_factors(num, random_state)
        return f, self.sample_observations_from_factors(f, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


HPARAMS = {
    "beta_vae": [1.0, 4.0, 16.0],
    "factor_vae": [10.0, 10.0, 100.0],
    "dip_vae_i": [1.0, 5.0, 50.0],
    "dip_vae_ii": [2.0, 2.0, 20.0],
    "beta_tc_vae": [1.0, 6.0, 10.0],
    "annealed_vae": [5.0, 25.0, 100.0],
}
SEEDS = [0, 7, 3]
STEPS = 3
BATCH = 4
EVAL = 10   # three evaluation batches, the last one partial
LR = 1e-4


def assert_close_weights(name, packed, single, steps):
    """Weights equal to float tolerance.

    Adam normalises each gradient element by its running RMS, so where a gradient is ~0 (a unit that is off for
    this batch) its rounding noise turns into an update of up to ~lr: a handful of such elements (at most 2, or
    0.1 % of a large tensor) may differ by at most 2 * lr per step, while all other elements agree to float32
    rounding.
    """
    diff = (packed - single).abs()
    assert float(diff.max()) <= 2 * LR * steps + 1e-6, f"{name}: max abs difference {float(diff.max())}"
    loose = int((diff > 1e-5 + 1e-4 * single.abs()).sum())
    assert loose <= max(2, diff.numel() // 1000), f"{name}: {loose} of {diff.numel()} elements differ"


def assert_same_run(packed_model, single_model, steps=None, pack_size=3):
    steps = STEPS if steps is None else steps
    single = dict(single_model.vae.state_dict())
    for name, value in packed_model.vae.state_dict().items():
        assert_close_weights(name, value, single[name], steps)
    if single_model.discriminator is not None:
        disc = dict(single_model.discriminator.state_dict())
        for name, value in packed_model.discriminator.state_dict().items():
            assert_close_weights("discriminator." + name, value, disc[name], steps)
    else:
        assert packed_model.discriminator is None
    for key, value in single_model.train_results.items():
        if key == "train_seconds":
            continue
        assert math.isclose(packed_model.train_results[key], value, rel_tol=1e-5, abs_tol=1e-4), \
            (key, packed_model.train_results[key], value)
    assert packed_model.train_results["pack_size"] == pack_size
    assert packed_model.seed == single_model.seed and packed_model.hparams == single_model.hparams
    assert packed_model.data_order == single_model.data_order


# the reference per-example data order for two methods, the default batched order for the others
