"""Shapes3D: procedural factor semantics, draw order, G-buffer cache, and the 3dshapes.h5 loader on tiny files."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from training.data import get_dataset
from training.data import shapes3d_render as render
from training.data.shapes3d import FileShapes3D, ProceduralShapes3D
from training.errors import UserError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)


@pytest.fixture(scope="module")
def dataset():
    return ProceduralShapes3D(cache_folder="/nonexistent-dstudy-cache-for-tests")


def _image(ds, floor=0, wall=3, obj=6, scale=4, shape=0, orientation=7):
    return ds.images_uint8(np.array([[floor, wall, obj, scale, shape, orientation]]))[0].astype(int)


def _changed(a, b):
    return np.abs(a - b).sum(axis=-1) > 0


def test_interface_and_draw_order(dataset):
    ds = get_dataset("shapes3d")
    assert ds.name == "shapes3d" and ds.source["kind"] == "procedural"
    json.dumps(ds.source)
    assert ds.num_factors == 6 and ds.factors_num_values == [10, 10, 10, 8, 4, 15]
    assert ds.factor_names == ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]
    assert ds.observation_shape == (64, 64, 3)
    rs, ref = np.random.RandomState(8), np.random.RandomState(8)
    factors, obs = dataset.sample(5, rs)
    assert np.array_equal(factors, np.stack([ref.randint(s, size=5) for s in (10, 10, 10, 8, 4, 15)], axis=1))
    assert rs.randint(1 << 30) == ref.randint(1 << 30)   # no further draws
    assert obs.shape == (5, 64, 64, 3) and obs.dtype == np.float32
    assert obs.min() >= 0 and obs.max() <= 1
    assert np.abs(obs * 255 - np.rint(obs * 255)).max() < 1e-3   # multiples of 1/255, like the uint8 originals
    assert np.array_equal(np.rint(obs * 255).astype(np.uint8), dataset.images_uint8(factors))


def test_floor_hue_colours_the_floor(dataset):
    a, b = _image(dataset, floor=0), _image(dataset, floor=5)
    changed = _changed(a, b)
    assert changed[60:].mean() > 0.8          # the bottom rows are floor
    assert not changed[:10].any()             # the sky never changes
    assert not changed[30, 28:36].any()       # the object (at the centre) keeps its colour
    assert np.allclose(a[62, 2], [255, 0, 0], atol=30)   # lit floor at hue 0 is red


def test_wall_hue_colours_the_walls(dataset):
    a, b = _image(dataset, wall=0), _image(dataset, wall=5)
    changed = _changed(a, b)
    assert changed[20:34, :8].all() and changed[20:34, -8:].all()   # wall band at the image edges
    assert not changed[:10].any() and not changed[58:].any()        # not the sky, not the floor


def test_object_hue_colours_only_the_object(dataset):
    a, b = _image(dataset, obj=1, shape=2), _image(dataset, obj=6, shape=2)
    changed = _changed(a, b)
    assert changed[40:46, 29:35].all()        # the sphere at the horizontal centre
    assert not changed[:, :12].any() and not changed[:, -12:].any()
    assert 50 < changed.sum() < 900


def test_scale_grows_the_object(dataset):
    for shape in range(4):
        g = dataset.gbuffers(render.config_index(np.arange(8), shape, 7))
        area = (g[:, 0, :, :, 2] > 0).sum(axis=(1, 2))
        assert np.all(np.diff(area) > 0), (shape, area)
        top_row = [np.nonzero((gi[0, :, :, 2] > 0).any(axis=1))[0].min() for gi in g]
        assert np.all(np.diff(top_row) <= 0) and top_row[-1] < top_row[0]   # grows upward from the floor
        bottom_row = [np.nonzero((gi[0, :, :, 2] > 0).any(axis=1))[0].max() for gi in g]
        assert np.ptp(bottom_row) <= 3                                       # standing on the same ground point


def test_shapes_differ_and_capsule_is_tallest(dataset):
    g = dataset.gbuffers(render.config_index(4, np.arange(4), 7))
    masks = g[:, 0, :, :, 2] > 0
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] != masks[j]).sum() > 20
    heights = [np.ptp(np.nonzero(m.any(axis=1))[0]) for m in masks]
    assert np.argmax(heights) == 3


def test_orientation_turns_the_camera(dataset):
    g = dataset.gbuffers(render.config_index(4, 0, np.arange(15)))
    walls = g[:, 0, :, :, 1] > 0
    assert (walls[0] != walls[14]).sum() > 50                  # the room's corners move with the azimuth
    obj = g[:, 0, :, :, 2] > 0
    for k in range(15):                                         # the orbit keeps the object at the centre
        cols = np.nonzero(obj[k].any(axis=0))[0]
        assert abs((cols.min() + cols.max()) / 2 - 31.5) <= 2.5
        # the geometry is mirror-symmetric: azimuth -a is the mirror image of +a
        assert (obj[k] != obj[14 - k][:, ::-1]).sum() <= 4
        assert (walls[k] != walls[14 - k][:, ::-1]).sum() <= 8
    # the cube's visible faces change with the view: at 0 deg one face, at +-30 deg two
    assert (obj[0] != obj[7]).sum() > 20


def test_gbuffers_do_not_depend_on_batching():
    together = render.render_gbuffers([1, 6], [3, 0], [2, 11])
    alone = np.concatenate([render.render_gbuffers([1], [3], [2]), render.render_gbuffers([6], [0], [11])])
    assert np.array_equal(together, alone)


def test_gbuffer_cache_is_saved_loaded_and_rebuilt(tmp_path, monkeypatch):
    calls = []

    def cheap(scale, shape, orientation):
        calls.append(len(np.atleast_1d(scale)))
        idx = render.config_index(np.asarray(scale), np.asarray(shape), np.asarray(orientation))
        g = np.zeros((len(idx),) + render.GBUFFER_SHAPE, dtype=np.float32)
        g[:, 0, :, :, 0] = (idx[:, None, None] % 7) / 7
        return g

    monkeypatch.setattr(render, "render_gbuffers", cheap)
    folder = tmp_path / "gb"
    first = ProceduralShapes3D(cache_folder=folder)
    first.precompute()
    assert sum(calls) == 480
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"shapes3d_gbuffers_v{render.VERSION}.json", f"shapes3d_gbuffers_v{render.VERSION}.npy"]
    second = ProceduralShapes3D(cache_folder=folder)
    assert second._ready.all() and sum(calls) == 480
    assert np.array_equal(second.gbuffers(np.arange(480)), first.gbuffers(np.arange(480)))
    npy = folder / f"shapes3d_gbuffers_v{render.VERSION}.npy"
    npy.write_bytes(npy.read_bytes()[:1000])      # truncated cache: ignored and rebuilt
    third = ProceduralShapes3D(cache_folder=folder)
    assert not third._ready.any()
    third.precompute()
    assert sum(calls) == 960
    assert ProceduralShapes3D(cache_folder=folder)._ready.all()


# --- 3dshapes.h5 loader ------------------------------------------------------------------------------------------
SMALL_SIZES = (2, 2, 3, 2, 2, 3)


def _write_h5(path, sizes=SMALL_SIZES, shuffle=True, drop=0, images_key="images", labels_key="labels",
              image_shape=(64, 64, 3)):
    rs = np.random.RandomState(0)
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    values = [np.linspace(0, 0.9, 10)[:sizes[0]], np.linspace(0, 0.9, 10)[:sizes[1]],
              np.linspace(0, 0.9, 10)[:sizes[2]], np.linspace(0.75, 1.25, sizes[3]), np.arange(sizes[4]),
              np.linspace(-30, 30, sizes[5])]
    labels = np.stack([values[j][grid[:, j]] for j in range(6)], axis=1)
    images = np.zeros((len(grid),) + image_shape, dtype=np.uint8)
    flat = images.reshape(len(grid), -1)
    flat[:, :6] = grid * 40              # each image encodes its own classes in its first pixels
    order = rs.permutation(len(grid)) if shuffle else np.arange(len(grid))
    order = order[:len(order) - drop]
    with h5py.File(path, "w") as handle:
        handle.create_dataset(images_key, data=images[order])
        handle.create_dataset(labels_key, data=labels[order])
    return path


def test_h5_loader_reads_a_shuffled_reduced_grid(tmp_path):
    root = tmp_path / "data"
    (root / "3dshapes").mkdir(parents=True)
    _write_h5(root / "3dshapes" / "3dshapes.h5")
    ds = get_dataset("shapes3d", data_dir=root)
    assert isinstance(ds, FileShapes3D)
    assert ds.factors_num_values == list(SMALL_SIZES)
    assert ds.source["kind"] == "file" and len(ds.source["sha256"]) == 64
    factors, obs = ds.sample(40, np.random.RandomState(3))
    assert obs.dtype == np.float32 and obs.shape == (40, 64, 64, 3)
    encoded = np.rint(obs.reshape(40, -1)[:, :6] * 255).astype(int) // 40
    assert np.array_equal(encoded, factors)    # the image of each factor vector is the right one
    assert ds.images.dtype == np.uint8


def test_h5_at_root_is_accepted(tmp_path):
    _write_h5(tmp_path / "3dshapes.h5", shuffle=False)
    assert isinstance(get_dataset("shapes3d", data_dir=tmp_path), FileShapes3D)


@pytest.mark.parametrize("kwargs, message", [
    ({"drop": 1}, "incomplete factor grid"),
    ({"images_key": "imgs"}, "missing dataset"),
    ({"labels_key": "latents"}, "missing dataset"),
    ({"image_shape": (32, 32, 3)}, "images must be uint8"),
])
def test_h5_loader_errors(tmp_path, kwargs, message):
    path = _write_h5(tmp_path / "3dshapes.h5", **kwargs)
    with pytest.raises(UserError, match=message) as info:
        FileShapes3D(path)
    assert "3dshapes.h5" in str(info.value)


def test_h5_truncated_or_garbage_file(tmp_path):
    path = _write_h5(tmp_path / "3dshapes.h5")
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError, match="3dshapes.h5"):
        FileShapes3D(path)
    path.write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(UserError, match="not a readable 3dshapes HDF5"):
        FileShapes3D(path)


def test_h5_device_table_follows_the_lookup(tmp_path):
    ds = FileShapes3D(_write_h5(tmp_path / "3dshapes.h5", shuffle=True))
    table, scale = ds.device_table()
    assert table.shape == (int(np.prod(SMALL_SIZES)), 64, 64, 3)
    grid = np.stack(np.unravel_index(np.arange(table.shape[0]), SMALL_SIZES), axis=1)
    assert np.array_equal(table.reshape(len(grid), -1)[:, :6] // 40, grid)   # row i holds the image of state i


@pytest.mark.slow
def test_procedural_device_table_matches_sampling(tmp_path):
    ds = ProceduralShapes3D(cache_folder=tmp_path)
    table, scale = ds.device_table()
    assert table.shape == (480000, 64, 64, 3)
    factors, obs = ds.sample(50, np.random.RandomState(0))
    rows = factors @ np.array([48000, 4800, 480, 60, 15, 1])
    assert np.array_equal(table[rows].astype(np.float32) * np.float32(scale), obs)
