"""Code table (training.evaluation.code_table): look-ups give the encoder path's codes, draws and noise, hence its numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.evaluation import scoring as ev
from training.evaluation.code_table import MIN_TABLE_CHUNK, CodeTable, IndexedDataset, encoder_images_fn, render_configurations
from training.data import dsprites_render as render
from training.data.dsprites import ColorDSprites, DSprites, DSpritesImages
from training.evaluation.representation import make_representation_fn

SIZES = [1, 3, 2, 5, 4, 4]   # 480 configurations: shape, 2 scales, 5 orientations, 4 x 4 positions

# Bit-equality holds only for the same process, input shapes and thread count: oneDNN and MKL pick their float32
# kernels (and so the order of each dot product's additions) by CPU, batch shape and threads. Between a table row
# (encoded in a batch of 64, one thread) and the encoder path (batches of 256, torch's threads) an encoder output may
# differ in its last bits: measured up to 4.5e-8 on codes of size ~0.25 on an AVX-512 CPU, 0 on an AVX2 one. The
# tolerance below is ~20 float32 ulps at unit scale (a summation-order change in a K-term float32 dot product is
# bounded by about K * 2^-24 * sum |a_i b_i|, here well under 1e-6).
CODE_RTOL, CODE_ATOL = 1e-5, 1e-6


def _images(sizes=SIZES) -> DSpritesImages:
    """Real sprites of a dSprites sub-grid, as a file-backed image array."""
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    full = grid * np.array([1, 1, 5, 8, 10, 10])
    array = render.render_dsprites(full[:, 1], full[:, 2], full[:, 3], full[:, 4], full[:, 5])
    return DSpritesImages(sizes, list(render.FACTOR_NAMES), {"kind": "test"}, array=array)


@pytest.fixture(scope="module")
def dataset():
    return DSprites(_images())


@pytest.fixture(scope="module")
def model(dataset):
    from training.engine.train import train_model
    torch.manual_seed(0)
    return train_model(dataset, "beta_vae", {"beta": 1.0}, seed=0, steps=30, batch_size=16, device="cpu",
                       num_eval_samples=0)


def test_only_deterministic_datasets_get_a_table(dataset):
    assert dataset.deterministic_render
    colour = ColorDSprites(_images())
    assert not colour.deterministic_render
    with pytest.raises(ValueError, match="deterministic"):
        IndexedDataset(colour)
    with pytest.raises(ValueError, match="deterministic"):
        colour.render_all_factors(np.zeros((1, 6), dtype=np.int64))


def test_indexed_dataset_draws_what_the_dataset_draws(dataset):
    indexed = IndexedDataset(dataset)
    rs, ref = np.random.RandomState(5), np.random.RandomState(5)
    for num in (1, 16, 64):
        factors, indices = indexed.sample(num, rs)
        ref_factors, images = dataset.sample(num, ref)
        assert np.array_equal(factors, ref_factors)
        assert indices.shape == (num,) and indices.dtype == np.int64
        assert np.array_equal(dataset.render_all_factors(dataset.all_factors_of(indices)), images)
    assert rs.randint(2**31) == ref.randint(2**31)   # the streams stay in step


def test_table_rows_equal_the_encoder_on_each_image(dataset, model):
    table = model.code_table(dataset)
    assert table.mean.shape == (480, 10) and table.build_seconds > 0
    encode = encoder_images_fn(model.vae.encoder)
    images = dataset.render_all_factors(dataset.all_factors_of(np.arange(480)))
    mean, logvar = encode(images)   # 480 at once vs the table's chunks of 64, each on one thread
    np.testing.assert_allclose(table.mean, mean.numpy(), rtol=CODE_RTOL, atol=CODE_ATOL)
    np.testing.assert_allclose(table.logvar, logvar.numpy(), rtol=CODE_RTOL, atol=CODE_ATOL)
    # same process, shapes and threads: the same bits
    again = model.code_table(dataset)
    assert np.array_equal(again.mean, table.mean) and np.array_equal(again.logvar, table.logvar)


def test_the_table_does_not_depend_on_how_many_threads_build_it(dataset, model):
    encode = encoder_images_fn(model.vae.encoder)
    tables = [CodeTable.build(dataset, encode, workers=w, render_chunk=200) for w in (1, 2, 3, 2)]
    for table in tables[1:3]:  # one thread per worker, but workers=1 encodes on torch's threads: kernels may differ
        np.testing.assert_allclose(table.mean, tables[0].mean, rtol=CODE_RTOL, atol=CODE_ATOL)
        np.testing.assert_allclose(table.logvar, tables[0].logvar, rtol=CODE_RTOL, atol=CODE_ATOL)
    # the same worker count twice: every chunk has the same shape on one thread, so the same bits
    assert np.array_equal(tables[3].mean, tables[1].mean) and np.array_equal(tables[3].logvar, tables[1].logvar)
    with pytest.raises(ValueError, match="workers"):
        CodeTable.build(dataset, encode, workers=0)


def test_configurations_of_a_dataset_without_render_configurations_are_rendered_from_its_factors(dataset):
    class OnlyTheBasics:  # what check_deterministic asks for, not the interface's render_configurations
        def all_factors_of(self, index):
            return dataset.all_factors_of(index)

        def render_all_factors(self, factors):
            return dataset.render_all_factors(factors)
    expected = dataset.render_configurations(10, 75)
    assert np.array_equal(render_configurations(OnlyTheBasics(), 10, 75), expected)
    assert np.array_equal(render_configurations(dataset, 10, 75), expected)


@pytest.mark.parametrize("kind", ["mean", "sampled"])
def test_lookups_equal_the_encoder_path_call_by_call(dataset, model, kind):
    table = model.code_table(dataset)
    direct = make_representation_fn(model.vae.encoder, kind, seed=7)
    looked_up = table.representation_fn(kind, seed=7)
    rs = np.random.RandomState(0)
    # call sizes below, at and above MIN_TABLE_CHUNK and the encoder's batch of 256 (chunks 256 + 44, ...)
    for num in (1, 5, 10, MIN_TABLE_CHUNK - 1, MIN_TABLE_CHUNK, 100, 300, 1024):
        indices = rs.randint(480, size=num)
        images = dataset.render_all_factors(dataset.all_factors_of(indices))
        codes = looked_up(indices)
        if num < MIN_TABLE_CHUNK:  # encoded directly, as the encoder path does: the same shapes, the same bits
            assert np.array_equal(codes, direct(images)), num
        else:  # the same noise, applied to table rows: equal up to the encoder's float32 rounding
            np.testing.assert_allclose(codes, direct(images), rtol=CODE_RTOL, atol=CODE_ATOL, err_msg=str(num))
    with pytest.raises(ValueError, match="indices"):
        looked_up(np.zeros((2, 64, 64, 1), dtype=np.float32))


# chunks above and below MIN_TABLE_CHUNK in every evaluation (e.g. 100 training and 50 test points)
SMALL = {"scale": 0.01, "downstream_num_train": [10, 64],
         "overrides": {"beta_vae_sklearn": {"num_train": 24, "num_eval": 16},
                       "factor_vae_metric": {"num_train": 40, "num_eval": 20}}}


class ExactModel:
    """A model whose encoder is exact arithmetic, so its codes cannot depend on batch shape, threads or CPU: the means
    are counts of lit pixels in six regions of the binary dSprites image (integers, exact in float32 in any summation
    order) divided by a power of two, the log-variances an elementwise function of them. With it the code table must
    give the encoder path's numbers bit for bit: same draws, same noise, same chunks."""

    num_latent = 6
    REGIONS = [(slice(0, 32), slice(0, 64)), (slice(32, 64), slice(0, 64)), (slice(0, 64), slice(0, 32)),
               (slice(0, 64), slice(32, 64)), (slice(16, 48), slice(16, 48)), (slice(0, 64, 2), slice(0, 64, 3))]

    def encode(self, images):
        images = np.asarray(images, dtype=np.float32)
        counts = np.stack([images[:, r, c, 0].sum(axis=(1, 2)) for r, c in self.REGIONS], axis=1)
        mean = torch.from_numpy(np.ascontiguousarray(counts / np.float32(256.0), dtype=np.float32))
        return mean, -1.0 - 0.25 * mean

    def representation_fn(self, kind, seed=0):
        from training.evaluation.representation import chunked_codes
        generator = torch.Generator().manual_seed(int(seed)) if kind == "sampled" else None

        def representation(observations):
            obs = np.asarray(observations, dtype=np.float32)
            return chunked_codes(len(obs), self.num_latent, 256, generator,
                                 lambda start, stop: self.encode(obs[start:stop]))
        return representation

    def code_table(self, dataset):
        return CodeTable.build(dataset, self.encode, workers=2, render_chunk=200)


def test_all_nine_evaluations_are_identical_with_the_code_table_for_an_exact_encoder(dataset):
    model = ExactModel()
    direct = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=2)
    table = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=2, code_table=True)
    assert [(r.representation, r.evaluation) for r in table] == [(r.representation, r.evaluation) for r in direct]
    for a, b in zip(direct, table):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.scores == b.scores, (a.representation, a.evaluation)


#: How far a score may move between the table and the encoder path of a TRAINED encoder, whose codes differ in their
#: last bits only (CODE_ATOL). Smooth functions of the codes (the Gaussian total correlation and Wasserstein scores)
#: move by about as much as the codes. Every other score counts decisions - histogram bins (MIG), classifier
#: predictions (accuracies, DCI, SAP, explicitness) - and a last-bit change can flip the decision on a point that lies
#: on a boundary, or a cross-validated choice of hyperparameter (LogisticRegressionCV): measured here up to 2 of 50
#: downstream test points (0.04) and 8e-5 of explicitness; the reference itself moves up to 11 of 300 test points
#: between OpenBLAS kernel families (tests/data/golden_downstream_small.json, "downstream_arrays_kernel_spread").
SMOOTH_RTOL = 1e-5
DECISION_ATOL = 0.1


@pytest.mark.parametrize("n_jobs", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_all_nine_evaluations_of_a_trained_encoder_agree_with_the_code_table(dataset, model, n_jobs):
    direct = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=n_jobs)
    table = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=n_jobs, code_table=True)
    assert [(r.representation, r.evaluation) for r in table] == [(r.representation, r.evaluation) for r in direct]
    for a, b in zip(direct, table):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.scores.keys() == b.scores.keys()
        for key, value in a.scores.items():
            if a.evaluation == "unsupervised" and key.startswith("gaussian_"):
                assert b.scores[key] == pytest.approx(value, rel=SMOOTH_RTOL, abs=1e-9), (a.evaluation, key)
            else:
                assert b.scores[key] == pytest.approx(value, abs=DECISION_ATOL), (a.evaluation, key)
    # the same path twice in one process (same shapes, same threads): the same numbers, bit for bit
    again = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=n_jobs, code_table=True)
    assert [r.scores for r in again] == [r.scores for r in table]


def test_code_table_option_is_refused_where_it_cannot_hold(dataset, model):
    with pytest.raises(ValueError, match="deterministic"):
        ev.evaluate_model_records(model, ColorDSprites(_images()), ["mig"], SMALL, code_table=True)

    class NoTable:
        def representation_fn(self, kind, seed=0):
            return lambda obs: obs.reshape(len(obs), -1)[:, :3]
    with pytest.raises(ValueError, match="code_table"):
        ev.evaluate_model_records(NoTable(), dataset, ["mig"], SMALL, code_table=True)


def test_table_checks_its_arrays(dataset):
    with pytest.raises(ValueError, match="num_configurations"):
        CodeTable(dataset, np.zeros((10, 4)), np.zeros((10, 4)), encode_images=None)
