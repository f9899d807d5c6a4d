"""Code table (training.code_table): look-ups give the encoder path's codes, draws and noise, hence its numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training import evaluate as ev
from training.code_table import MIN_TABLE_CHUNK, CodeTable, IndexedDataset, encoder_images_fn, render_configurations
from training.data import dsprites_render as render
from training.data.dsprites import ColorDSprites, DSprites, DSpritesImages
from training.representation import make_representation_fn

SIZES = [1, 3, 2, 5, 4, 4]   # 480 configurations: shape, 2 scales, 5 orientations, 4 x 4 positions


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
    from training.train import train_model
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
    mean, logvar = encode(images)   # 480 at once vs the table's chunks of 256 (the last 224 rows padded)
    assert np.array_equal(table.mean, mean.numpy()) and np.array_equal(table.logvar, logvar.numpy())


def test_the_table_does_not_depend_on_how_many_threads_build_it(dataset, model):
    encode = encoder_images_fn(model.vae.encoder)
    tables = [CodeTable.build(dataset, encode, workers=w, render_chunk=200) for w in (1, 2, 3)]
    for table in tables[1:]:
        assert np.array_equal(table.mean, tables[0].mean) and np.array_equal(table.logvar, tables[0].logvar)
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
        assert np.array_equal(looked_up(indices), direct(images)), num
    with pytest.raises(ValueError, match="indices"):
        looked_up(np.zeros((2, 64, 64, 1), dtype=np.float32))


# chunks above and below MIN_TABLE_CHUNK in every evaluation (e.g. 100 training and 50 test points)
SMALL = {"scale": 0.01, "downstream_num_train": [10, 64],
         "overrides": {"beta_vae_sklearn": {"num_train": 24, "num_eval": 16},
                       "factor_vae_metric": {"num_train": 40, "num_eval": 20}}}


@pytest.mark.parametrize("n_jobs", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_all_nine_evaluations_are_identical_with_the_code_table(dataset, model, n_jobs):
    direct = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=n_jobs)
    table = ev.evaluate_model_records(model, dataset, None, SMALL, n_jobs=n_jobs, code_table=True)
    assert [(r.representation, r.evaluation) for r in table] == [(r.representation, r.evaluation) for r in direct]
    for a, b in zip(direct, table):
        assert a.error is None and b.error is None, (a.error, b.error)
        assert a.scores == b.scores, (a.representation, a.evaluation)


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
