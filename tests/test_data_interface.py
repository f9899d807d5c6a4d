"""Interface conformance and determinism for all seven datasets (SmallNORB and Cars3D on tiny real-format files)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from training.data import binary_matrix, get_dataset
from training.data.registry import clear_cache
from training.data.smallnorb import CHUNKS
from training.vocabulary import DATASETS


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root with tiny SmallNORB and Cars3D files (reduced but complete grids) and nothing else."""
    root = tmp_path_factory.mktemp("data")
    norb = root / "small_norb"
    norb.mkdir()
    sizes = [3, 2, 2, 3, 2]   # category, instance, elevation, azimuth/2, lighting
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    rs = np.random.RandomState(0)
    for chunk, instance in zip(CHUNKS, (1, 0)):
        rows = grid[grid[:, 1] == instance]
        dat = rs.randint(0, 256, size=(len(rows), 2, 96, 96)).astype(np.uint8)
        info = np.column_stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]]).astype(np.int32)
        binary_matrix.write(norb / f"{chunk}-dat.mat.gz", dat)
        binary_matrix.write(norb / f"{chunk}-cat.mat", rows[:, 0].astype(np.int32))
        binary_matrix.write(norb / f"{chunk}-info.mat", info)
    cars = root / "cars"
    cars.mkdir()
    for k in range(4):
        im = rs.randint(0, 256, size=(128, 128, 3, 5, 2)).astype(np.uint8)
        scipy.io.savemat(cars / f"car_{k:03d}_mesh.mat", {"im": im})
    return root


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    clear_cache()
    yield
    clear_cache()


EXPECTED_CHANNELS = {"dsprites_full": 1, "color_dsprites": 3, "noisy_dsprites": 3, "scream_dsprites": 3,
                     "smallnorb": 1, "cars3d": 3, "shapes3d": 3}


@pytest.mark.parametrize("name", DATASETS)
def test_interface_conformance(name, data_root):
    ds = get_dataset(name, data_dir=data_root)
    assert ds.name == name
    assert isinstance(ds.num_factors, int) and ds.num_factors == len(ds.factors_num_values) == len(ds.factor_names)
    assert all(isinstance(v, int) and v >= 1 for v in ds.factors_num_values)
    assert all(isinstance(n, str) for n in ds.factor_names)
    assert tuple(ds.observation_shape) == (64, 64, EXPECTED_CHANNELS[name])
    source = json.loads(json.dumps(ds.source))
    assert source["kind"] in ("procedural", "file", "files")
    rs = np.random.RandomState(0)
    factors = ds.sample_factors(7, rs)
    assert factors.shape == (7, ds.num_factors) and np.issubdtype(factors.dtype, np.integer)
    assert np.all(factors >= 0) and np.all(factors < np.array(ds.factors_num_values))
    obs = ds.sample_observations_from_factors(factors, rs)
    assert obs.shape == (7,) + tuple(ds.observation_shape) and obs.dtype == np.float32
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    f2, o2 = ds.sample(5, np.random.RandomState(3))
    f3, o3 = ds.sample(5, np.random.RandomState(3))
    assert np.array_equal(f2, f3) and np.array_equal(o2, o3)               # determinism
    assert np.array_equal(ds.sample_observations(5, np.random.RandomState(3)), o2)
    assert ds.sample(0, np.random.RandomState(0))[1].shape == (0,) + tuple(ds.observation_shape)
    assert get_dataset(name, data_dir=data_root) is ds                      # cached per (name, root)


@pytest.mark.parametrize("name", DATASETS)
def test_first_draws_are_one_randint_per_latent_factor(name, data_root):
    ds = get_dataset(name, data_dir=data_root)
    rs, ref = np.random.RandomState(123), np.random.RandomState(123)
    factors = ds.sample_factors(9, rs)
    assert np.array_equal(factors, np.stack([ref.randint(s, size=9) for s in ds.factors_num_values], axis=1))


@pytest.mark.parametrize("name", DATASETS)
def test_same_factors_give_the_same_images_where_nothing_is_random(name, data_root):
    ds = get_dataset(name, data_dir=data_root)
    factors = ds.sample_factors(6, np.random.RandomState(1))
    a = ds.sample_observations_from_factors(factors, np.random.RandomState(10))
    b = ds.sample_observations_from_factors(factors, np.random.RandomState(10))
    assert np.array_equal(a, b)
    c = ds.sample_observations_from_factors(factors, np.random.RandomState(11))
    random_per_call = name in ("color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb")
    assert (not np.array_equal(a, c)) == random_per_call     # only nuisance draws depend on the stream


def test_environment_variables_select_the_root(data_root, monkeypatch):
    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(data_root))
    assert get_dataset("cars3d").factors_num_values == [2, 5, 4]
    clear_cache()
    monkeypatch.setenv("DSTUDY_DATA", str(data_root / "nowhere"))   # DSTUDY_DATA wins over the dlib variable
    with pytest.raises(Exception, match="nowhere"):
        get_dataset("cars3d")


@pytest.mark.parametrize("name", DATASETS)
def test_deterministic_render_is_declared_where_images_are_a_function_of_the_factors(name, data_root):
    """dsprites_full, shapes3d, cars3d, smallnorb: an image is a function of its full factor vector (smallnorb's
    instance is drawn first, then nothing); the code table (training.evaluation.code_table) relies on this."""
    from training.evaluation.code_table import IndexedDataset
    ds = get_dataset(name, data_dir=data_root)
    assert ds.deterministic_render == (name in ("dsprites_full", "shapes3d", "cars3d", "smallnorb"))
    if not ds.deterministic_render:
        with pytest.raises(ValueError):
            IndexedDataset(ds)
        return
    indexed = IndexedDataset(ds)
    rs, ref = np.random.RandomState(4), np.random.RandomState(4)
    factors, indices = indexed.sample(6, rs)
    ref_factors, images = ds.sample(6, ref)
    assert np.array_equal(factors, ref_factors)
    assert np.array_equal(ds.render_all_factors(ds.all_factors_of(indices)), images)
    assert rs.randint(2**31) == ref.randint(2**31)     # same draws consumed
    assert np.array_equal(ds.index_of(ds.all_factors_of(indices)), indices)


@pytest.mark.parametrize("name", ["shapes3d", "cars3d", "smallnorb"])
def test_render_configurations_equals_rendering_the_factor_vectors(name, data_root):
    ds = get_dataset(name, data_dir=data_root)
    stop = min(ds.num_configurations, 37)
    expected = ds.render_all_factors(ds.all_factors_of(np.arange(5, stop)))
    assert np.array_equal(ds.render_configurations(5, stop), expected)


def test_dsprites_render_configurations_slices_the_packed_cache_exactly(monkeypatch):
    """Procedural dSprites: configurations come from the bit-packed base array (here a stand-in holding the real
    renders of the first 3,000 configurations, so that the test need not render all 737,280) and equal the
    renderer's images, edges of the packed bytes included."""
    from training.data import dsprites as dsprites_mod
    from training.data import dsprites_render as render
    ds = get_dataset("dsprites_full")
    first = ds.render_all_factors(ds.all_factors_of(np.arange(3000)))
    packed_array = np.packbits(first.astype(np.uint8).reshape(3000, -1), axis=1)
    monkeypatch.setattr(render, "dsprites_base_images", lambda packed, cache_folder: packed_array)
    dsprites_mod._packed_procedural_images.cache_clear()
    try:
        for start, stop in ((0, 64), (1000, 2999), (2999, 3000), (7, 7)):
            images = ds.render_configurations(start, stop)
            assert images.dtype == np.float32 and images.shape == (stop - start, 64, 64, 1)
            assert np.array_equal(images, first[start:stop])
        with pytest.raises(ValueError, match="outside"):
            ds.render_configurations(0, ds.num_configurations + 1)
    finally:
        dsprites_mod._packed_procedural_images.cache_clear()


@pytest.mark.slow
def test_dsprites_render_configurations_through_the_real_cache():
    """The whole procedural array is rendered, cached (~35 s) and read back; sampled ranges equal the renderer."""
    from training.data import dsprites as dsprites_mod
    ds = get_dataset("dsprites_full")
    dsprites_mod._packed_procedural_images.cache_clear()
    try:
        for start in (0, 123_456, ds.num_configurations - 100):
            stop = start + 100
            expected = ds.render_all_factors(ds.all_factors_of(np.arange(start, stop)))
            assert np.array_equal(ds.render_configurations(start, stop), expected)
    finally:
        dsprites_mod._packed_procedural_images.cache_clear()
