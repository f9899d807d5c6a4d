"""Real-file loaders on tiny files written in the real formats: dSprites npz, SmallNORB binary matrix, Cars3D .mat."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from training.data import binary_matrix, get_dataset
from training.data.cars3d import Cars3D
from training.data.dsprites import load_npz
from training.data.registry import clear_cache
from training.data.smallnorb import CHUNKS, SmallNORB
from training.errors import DataMissingError, UserError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)
    clear_cache()
    yield
    clear_cache()


# --- dSprites npz --------------------------------------------------------------------------------------------------
NPZ_SIZES = [1, 3, 2, 2, 2, 3]   # color, shape, scale, orientation, posX, posY (reduced grid)
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"


def _write_npz(path, sizes=NPZ_SIZES, drop_images=0, bad_classes=False, drop_key=None):
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), axis=1).astype(np.int64)
    imgs = np.zeros((n, 64, 64), dtype=np.uint8)
    for i in range(n):                       # image i has exactly i + 1 white pixels
        imgs[i].ravel()[: i + 1] = 1
    if bad_classes:
        classes[[0, 1]] = classes[[1, 0]]
    metadata = {"latents_sizes": np.array(sizes), "latents_names": ("color", "shape", "scale", "orientation",
                                                                       "posX", "posY"),
                "version": 1, "title": "test"}
    arrays = {"imgs": imgs[: n - drop_images], "latents_classes": classes,
              "latents_values": classes.astype(np.float64), "metadata": np.array(metadata, dtype=object)}
    if drop_key:
        arrays.pop(drop_key)
    np.savez_compressed(path, **arrays)
    return path


def test_npz_loader_feeds_all_four_dsprites_datasets(tmp_path):
    root = tmp_path / "data"
    (root / "dsprites").mkdir(parents=True)
    _write_npz(root / "dsprites" / NPZ_NAME)
    ds = get_dataset("dsprites_full", data_dir=root)
    assert ds.source["kind"] == "file" and ds.source["path"].endswith(NPZ_NAME) and len(ds.source["sha256"]) == 64
    assert ds.factors_num_values == NPZ_SIZES[1:]
    rs, ref = np.random.RandomState(1), np.random.RandomState(1)
    factors, obs = ds.sample(30, rs)
    assert np.array_equal(factors, np.stack([ref.randint(s, size=30) for s in NPZ_SIZES[1:]], axis=1))
    index = factors @ np.array([24, 12, 6, 3, 1])
    assert np.array_equal(obs.reshape(30, -1).sum(axis=1), index + 1)   # the right image for each factor vector
    assert obs.dtype == np.float32 and set(np.unique(obs)) <= {0.0, 1.0}
    for name in ("color_dsprites", "noisy_dsprites", "scream_dsprites"):
        variant = get_dataset(name, data_dir=root)
        assert variant.source["kind"] == "file" and variant.base is ds.base   # one copy of the images
        assert variant.sample(3, np.random.RandomState(0))[1].shape == (3, 64, 64, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"drop_images": 1}, "incomplete grid"),
    ({"bad_classes": True}, "latents_classes"),
    ({"drop_key": "metadata"}, "missing key"),
    ({"drop_key": "imgs"}, "missing key"),
])
def test_npz_loader_errors(tmp_path, kwargs, message):
    path = _write_npz(tmp_path / NPZ_NAME, **kwargs)
    with pytest.raises(UserError, match=message) as info:
        load_npz(path)
    assert NPZ_NAME in str(info.value)


def test_npz_truncated_or_corrupt(tmp_path):
    path = _write_npz(tmp_path / NPZ_NAME)
    original = path.read_bytes()
    path.write_bytes(original[:-400])
    with pytest.raises(UserError, match=NPZ_NAME):
        load_npz(path)
    corrupt = bytearray(original)
    for i in range(200, 260):     # damage compressed image data inside the archive
        corrupt[i] ^= 0x5A
    path.write_bytes(bytes(corrupt))
    with pytest.raises(UserError, match=NPZ_NAME):
        load_npz(path)


# --- SmallNORB ------------------------------------------------------------------------------------------------------
NORB_SIZES = [2, 2, 2, 2, 2]     # category, instance, elevation, azimuth/2, lighting


def _norb_chunks(drop=0):
    """Two chunks of a full reduced grid; instance 1 in training, 0 in testing (like the real split)."""
    grid = np.stack(np.unravel_index(np.arange(32), NORB_SIZES), axis=1)
    chunks = []
    for instance in (1, 0):
        rows = grid[grid[:, 1] == instance]
        state = rows @ np.array([16, 8, 4, 2, 1])
        dat = np.zeros((len(rows), 2, 96, 96), dtype=np.uint8)
        dat[:, 0] = (7 * state + 3)[:, None, None]    # constant image encoding its state (Lanczos keeps constants)
        dat[:, 1] = 255                               # the second camera is ignored
        cat = rows[:, 0].astype(np.int32)
        info = np.column_stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]]).astype(np.int32)
        chunks.append((dat, cat, info))
    if drop:
        dat, cat, info = chunks[0]
        chunks[0] = (dat[:-drop], cat[:-drop], info[:-drop])
    return chunks


def _write_norb(folder, gz=False, drop=0):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".mat.gz" if gz else ".mat"
    for chunk, arrays in zip(CHUNKS, _norb_chunks(drop)):
        for kind, array in zip(("dat", "cat", "info"), arrays):
            binary_matrix.write(folder / f"{chunk}-{kind}{suffix}", array)
    return folder


def test_binary_matrix_round_trip_and_header(tmp_path):
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.arange(5, dtype=np.int32),
                  np.arange(6, dtype=np.float64).reshape(3, 2), np.arange(4, dtype=np.int16)):
        data = binary_matrix.encode(array)
        assert len(data) == 8 + 4 * max(3, array.ndim) + array.nbytes
        assert np.array_equal(binary_matrix.parse(data), array)
    # the documented sizes of the real -cat / -info headers: 20 bytes (ndim 1 and 2 store 3 dims)
    assert len(binary_matrix.encode(np.zeros(24300, np.int32))) == 97220
    assert len(binary_matrix.encode(np.zeros((24300, 4), np.int32))) == 388820
    assert binary_matrix.encode(np.zeros(1, np.uint8))[:4] == bytes.fromhex("554C3D1E")


@pytest.mark.parametrize("gz", [False, True])
def test_smallnorb_loader_and_draw_order(tmp_path, gz):
    root = tmp_path / "data"
    _write_norb(root / "small_norb", gz=gz)
    ds = get_dataset("smallnorb", data_dir=root)
    assert ds.factor_names == ["category", "elevation", "azimuth", "lighting"]
    assert ds.factors_num_values == [2, 2, 2, 2] and ds.observation_shape == (64, 64, 1)
    assert ds.source["kind"] == "files" and len(ds.source["files"]) == 6
    json.dumps(ds.source)
    rs, ref = np.random.RandomState(5), np.random.RandomState(5)
    factors, obs = ds.sample(50, rs)
    ref_latent = np.stack([ref.randint(2, size=50) for _ in range(4)], axis=1)
    ref_instance = ref.randint(2, size=50)          # the nuisance factor, drawn after the latents
    assert np.array_equal(factors, ref_latent)
    assert rs.randint(1 << 30) == ref.randint(1 << 30)
    assert obs.shape == (50, 64, 64, 1) and obs.dtype == np.float32
    full = np.column_stack([factors[:, 0], ref_instance, factors[:, 1:]])
    state = full @ np.array([16, 8, 4, 2, 1])
    assert np.allclose(obs[:, 32, 32, 0] * 255, 7 * state + 3, atol=0.01)
    assert np.ptp(obs[0]) == 0     # constant images stay constant through the Lanczos resize


def test_smallnorb_uses_the_resize_cache(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _write_norb(root / "small_norb")
    first = get_dataset("smallnorb", data_dir=root)
    clear_cache()
    import training.data.smallnorb as module

    monkeypatch.setattr(module, "resize_images", lambda images: pytest.fail("cache not used"))
    second = get_dataset("smallnorb", data_dir=root)
    assert np.array_equal(first.images, second.images)


def test_smallnorb_missing_files(tmp_path):
    with pytest.raises(DataMissingError) as info:
        get_dataset("smallnorb", data_dir=tmp_path)
    assert str(tmp_path / "small_norb") in str(info.value) and "training-dat.mat" in str(info.value)
    with pytest.raises(DataMissingError, match="no data root"):
        get_dataset("smallnorb")
    folder = _write_norb(tmp_path / "partial" / "small_norb")
    (folder / f"{CHUNKS[1]}-info.mat").unlink()
    with pytest.raises(DataMissingError, match="testing-info"):
        SmallNORB(folder)


def test_smallnorb_wrong_magic(tmp_path):
    folder = _write_norb(tmp_path / "small_norb")
    path = folder / f"{CHUNKS[0]}-cat.mat"
    data = bytearray(path.read_bytes())
    data[0:4] = (0x12345678).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="wrong magic number 0x12345678") as info:
        SmallNORB(folder)
    assert "training-cat.mat" in str(info.value)


def test_smallnorb_truncated_plain_and_gz(tmp_path):
    folder = _write_norb(tmp_path / "a" / "small_norb")
    path = folder / f"{CHUNKS[0]}-dat.mat"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="truncated") as info:
        SmallNORB(folder)
    assert "training-dat.mat" in str(info.value)
    folder = _write_norb(tmp_path / "b" / "small_norb", gz=True)
    path = folder / f"{CHUNKS[1]}-dat.mat.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(UserError, match="testing-dat.mat.gz"):
        SmallNORB(folder)


def test_smallnorb_incomplete_grid(tmp_path):
    folder = _write_norb(tmp_path / "small_norb", drop=1)
    with pytest.raises(UserError, match="incomplete factor grid: 1 of 32 states missing"):
        SmallNORB(folder)


def test_smallnorb_mismatched_lengths(tmp_path):
    folder = _write_norb(tmp_path / "small_norb")
    binary_matrix.write(folder / f"{CHUNKS[0]}-cat.mat", np.zeros(3, np.int32))
    with pytest.raises(UserError, match="training-cat.mat: expected 16 integer categories"):
        SmallNORB(folder)


# --- Cars3D ---------------------------------------------------------------------------------------------------------
N_ELEV, N_AZIM = 2, 3


def _write_cars(folder, names=("car_001_mesh", "car_002_mesh", "car_003_mesh"), size=128, list_txt=None):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        im = np.zeros((size, size, 3, N_AZIM, N_ELEV), dtype=np.uint8)
        for a in range(N_AZIM):
            for e in range(N_ELEV):
                im[:, :, 0, a, e] = 10 * e + 1          # red encodes elevation, green azimuth, blue the car
                im[:, :, 1, a, e] = 10 * a + 1
                im[:, :, 2, a, e] = 10 * int(name.split("_")[1]) + 1
        scipy.io.savemat(folder / f"{name}.mat", {"im": im, "mask": np.ones((size, size, N_AZIM, N_ELEV), np.uint8)},
                         do_compression=True)
    if list_txt is not None:
        (folder / "list.txt").write_text("\n".join(list_txt) + "\n")
    return folder


def test_cars3d_sorted_order_and_draw_order(tmp_path):
    root = tmp_path / "data"
    _write_cars(root / "cars", names=("car_003_mesh", "car_001_mesh", "car_002_mesh"))
    ds = get_dataset("cars3d", data_dir=root)
    assert ds.factor_names == ["elevation", "azimuth", "object"]
    assert ds.factors_num_values == [N_ELEV, N_AZIM, 3] and ds.observation_shape == (64, 64, 3)
    assert ds.source["object_order"] == "sorted names" and ds.source["num_files"] == 3
    json.dumps(ds.source)
    rs, ref = np.random.RandomState(2), np.random.RandomState(2)
    factors, obs = ds.sample(40, rs)
    assert np.array_equal(factors, np.stack([ref.randint(s, size=40) for s in (N_ELEV, N_AZIM, 3)], axis=1))
    assert rs.randint(1 << 30) == ref.randint(1 << 30)
    pixel = np.rint(obs[:, 10, 10] * 255).astype(int)
    assert np.array_equal(pixel[:, 0], 10 * factors[:, 0] + 1)
    assert np.array_equal(pixel[:, 1], 10 * factors[:, 1] + 1)
    assert np.array_equal(pixel[:, 2], 10 * (factors[:, 2] + 1) + 1)   # object id = position in sorted names


def test_cars3d_list_txt_order(tmp_path):
    folder = _write_cars(tmp_path / "cars", list_txt=["car_002_mesh", "car_003_mesh", "car_001_mesh"])
    ds = Cars3D(folder)
    assert ds.source["object_order"] == "list.txt"
    obs = ds.sample_observations_from_factors(np.array([[0, 0, 0], [1, 2, 1], [0, 1, 2]]), np.random.RandomState(0))
    assert np.rint(obs[:, 0, 0, 2] * 255).astype(int).tolist() == [21, 31, 11]


def test_cars3d_errors(tmp_path):
    with pytest.raises(DataMissingError) as info:
        get_dataset("cars3d", data_dir=tmp_path)
    assert str(tmp_path / "cars") in str(info.value)
    with pytest.raises(DataMissingError, match="no data root"):
        get_dataset("cars3d")
    # list.txt naming a file that is not there
    folder = _write_cars(tmp_path / "a" / "cars", list_txt=["car_001_mesh", "car_009_mesh"])
    with pytest.raises(UserError, match="car_009_mesh"):
        Cars3D(folder)
    # a file without 'im'
    folder = _write_cars(tmp_path / "b" / "cars")
    scipy.io.savemat(folder / "car_004_mesh.mat", {"mask": np.zeros((4, 4))})
    with pytest.raises(UserError, match="car_004_mesh.mat: no 'im'"):
        Cars3D(folder)
    # a truncated file
    folder = _write_cars(tmp_path / "c" / "cars")
    path = folder / "car_002_mesh.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="car_002_mesh.mat"):
        Cars3D(folder)
    # one car with fewer views: incomplete grid
    folder = _write_cars(tmp_path / "d" / "cars")
    scipy.io.savemat(folder / "car_004_mesh.mat", {"im": np.zeros((64, 64, 3, N_AZIM - 1, N_ELEV), np.uint8)})
    with pytest.raises(UserError, match="incomplete grid"):
        Cars3D(folder)


def test_device_tables_are_the_c_order_grid(tmp_path):
    """``device_table()`` (device-resident sampling): row i is the image of C-order full factor index i."""
    root = tmp_path / "data"
    _write_norb(root / "small_norb")
    _write_cars(root / "cars", names=("car_002_mesh", "car_001_mesh", "car_003_mesh"))
    for name in ("smallnorb", "cars3d"):
        ds = get_dataset(name, data_dir=root)
        table, scale = ds.device_table()
        assert table.dtype == np.uint8 and table.shape[0] == int(np.prod(ds.factor_sizes))
        assert scale == pytest.approx(1 / 255)
        all_factors = np.stack(np.unravel_index(np.arange(table.shape[0]), ds.factor_sizes), axis=1)
        rs = np.random.RandomState(0)
        pick = rs.randint(table.shape[0], size=12)
        latent = all_factors[pick][:, ds.latent_factor_indices]
        if name == "smallnorb":   # pin the nuisance instance by replaying the stream's draw
            rs2 = np.random.RandomState(9)
            obs = ds.sample_observations_from_factors(latent, rs2)
            instance = np.random.RandomState(9).randint(ds.factor_sizes[1], size=12)
            rows = np.column_stack([latent[:, 0], instance, latent[:, 1:]]) @ ds.factor_bases
        else:
            obs = ds.sample_observations_from_factors(latent, rs)
            rows = pick
        expected = table[rows].astype(np.float32) * np.float32(scale)
        assert np.array_equal(obs.reshape(expected.shape[0], -1), expected.reshape(expected.shape[0], -1))
