"""Procedural dSprites: golden frames, geometry invariants, the reference's draw order, the registry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.data import dsprites_render as render
from training.data import get_dataset, render_dsprites

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GIF = SHARED_DATA / "dsprites.gif"
FRAMES_JSON = SHARED_DATA / "dsprites_gif_frames.json"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)


@pytest.mark.skipif(not (GIF.is_file() and FRAMES_JSON.is_file()), reason="shared golden dSprites frames absent")
def test_golden_frames_match_real_dsprites():
    from PIL import Image

    frames = json.loads(FRAMES_JSON.read_text())["frames"]
    with Image.open(GIF) as gif:
        real = []
        for i in range(gif.n_frames):
            gif.seek(i)
            real.append(np.asarray(gif.convert("L")) > 127)
    real = np.stack(real)
    assert real.shape == (len(frames), 64, 64)
    classes = {k: np.array([f[k] for f in frames]) for k in ("shape", "scale", "orientation", "posX", "posY")}
    rendered = render_dsprites(classes["shape"], classes["scale"], classes["orientation"],
                               classes["posX"], classes["posY"]).astype(bool)
    mismatch = (rendered != real).sum(axis=(1, 2))
    assert mismatch.mean() <= 1.0, mismatch.mean()
    assert mismatch.max() <= 8
    for shape in range(3):   # each shape on its own: none may hide behind the others' good fit
        assert mismatch[classes["shape"] == shape].mean() <= 1.5


def test_renderer_is_binary_and_sized():
    rs = np.random.RandomState(3)
    c = [rs.randint(k, size=200) for k in (3, 6, 40, 32, 32)]
    images = render_dsprites(*c)
    assert images.shape == (200, 64, 64) and images.dtype == np.uint8
    assert set(np.unique(images)) <= {0, 1}
    assert images.reshape(200, -1).sum(axis=1).min() > 20   # every sprite is visible


def test_square_area_and_position():
    # square at scale 1, orientation 0: side 19.2 px -> 19 or 20 pixel centres per side
    img = render_dsprites([0], [5], [0], [0], [0])[0]
    rows, cols = np.nonzero(img)
    assert 19 <= np.ptp(rows) + 1 <= 20 and 19 <= np.ptp(cols) + 1 <= 20
    assert abs(rows.mean() + 0.5 - 16.0) < 0.6 and abs(cols.mean() + 0.5 - 16.0) < 0.6
    # posY grows downward, posX to the right; anchor 16 + 32 pos
    img = render_dsprites([0], [5], [0], [31], [31])[0]
    rows, cols = np.nonzero(img)
    assert abs(rows.mean() + 0.5 - 48.0) < 0.6 and abs(cols.mean() + 0.5 - 48.0) < 0.6
    down = np.nonzero(render_dsprites([1], [3], [0], [10], [20])[0])[0].mean()
    up = np.nonzero(render_dsprites([1], [3], [0], [10], [5])[0])[0].mean()
    assert down > up


def test_scale_grows_area_quadratically():
    areas = render_dsprites([0] * 6, np.arange(6), [0] * 6, [15] * 6, [15] * 6).sum(axis=(1, 2))
    side = 19.2 * render.SCALES   # pixel centres inside a side of length L: floor(L) or ceil(L) per axis
    assert np.all(np.diff(areas) > 0)
    assert np.all(areas >= np.floor(side) ** 2) and np.all(areas <= np.ceil(side) ** 2)


def test_orientation_wraps_and_symmetries():
    for shape in range(3):
        a = render_dsprites([shape], [4], [0], [12], [17])[0]
        b = render_dsprites([shape], [4], [39], [12], [17])[0]
        assert np.array_equal(a, b)   # 0 and 2 pi render identically
    # ellipse at orientation 0 is wider than tall; a quarter turn (~ index 9.75) makes it taller than wide
    e0 = np.nonzero(render_dsprites([1], [5], [0], [16], [16])[0])
    e10 = np.nonzero(render_dsprites([1], [5], [10], [16], [16])[0])
    assert np.ptp(e0[1]) > np.ptp(e0[0]) and np.ptp(e10[0]) > np.ptp(e10[1])


def test_heart_is_upright_and_turns_counter_clockwise():
    heart = render_dsprites([2], [5], [0], [0], [16])[0]   # posX 0: anchor column 16.0, mirror axis of cols 0..31
    rows, cols = np.nonzero(heart)
    top_width = heart[rows.min() + 2].sum()
    bottom_width = heart[rows.max() - 2].sum()
    assert top_width > bottom_width            # lobes up, tip down
    assert np.array_equal(heart[:, :32], heart[:, :32][:, ::-1])   # left-right symmetric about the anchor
    # a quarter turn counter-clockwise (as displayed) sends the tip from the bottom to the right
    quarter = render_dsprites([2], [5], [10], [16], [16])[0]
    r, c = np.nonzero(quarter)
    left_height = quarter[:, c.min() + 2].sum()
    right_height = quarter[:, c.max() - 2].sum()
    assert left_height > right_height   # the lobes (the wide part) turn to the left, the tip to the right
    assert np.ptp(c) > np.ptp(r) - 2


def test_renderer_validates_classes():
    with pytest.raises(ValueError, match="shape"):
        render_dsprites([3], [0], [0], [0], [0])
    with pytest.raises(ValueError, match="posY"):
        render_dsprites([0], [0], [0], [0], [32])
    with pytest.raises(ValueError, match="same length"):
        render_dsprites([0, 1], [0], [0], [0], [0])


def test_classes_from_index_is_c_order():
    idx = np.array([0, 1, 31, 32, 1024, 40960, 245760, 737279])
    c = render.classes_from_index(idx)
    bases = np.array([737280, 245760, 40960, 1024, 32, 1])
    assert np.array_equal(c @ bases, idx)
    assert c[-1].tolist() == [0, 2, 5, 39, 31, 31]


def test_packed_cache_round_trip_and_rebuild(tmp_path):
    """The disk-cache logic behind dsprites_base_images on a small array (the full render is the slow test)."""
    calls = []

    def build():
        calls.append(1)
        return np.arange(40 * 16, dtype=np.uint8).reshape(40, 16)

    data, meta = tmp_path / "c" / "a.npy", tmp_path / "c" / "a.json"
    info = {"generator": "test", "version": 1}
    first, built = render.load_or_build_packed(data, meta, info, (40, 16), build)
    assert built and len(calls) == 1
    again, built = render.load_or_build_packed(data, meta, info, (40, 16), build)
    assert not built and len(calls) == 1 and np.array_equal(first, again)
    # a corrupt byte is detected by the checksum and the array rebuilt
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    rebuilt, built = render.load_or_build_packed(data, meta, info, (40, 16), build)
    assert built and np.array_equal(rebuilt, first)
    # a truncated file and a missing sidecar are rebuilt as well
    data.write_bytes(data.read_bytes()[:50])
    assert render.load_or_build_packed(data, meta, info, (40, 16), build)[1]
    meta.unlink()
    assert render.load_or_build_packed(data, meta, info, (40, 16), build)[1]
    # another generator version does not reuse the cache
    assert render.load_or_build_packed(data, meta, {"generator": "test", "version": 2}, (40, 16), build)[1]
    assert len(calls) == 5


def _reference_factor_draws(rs, num, sizes):
    """The reference's latent draws: one randint(size, size=num) per factor, in order."""
    return np.stack([rs.randint(s, size=num) for s in sizes], axis=1)


def test_dsprites_full_interface_and_draw_order():
    ds = get_dataset("dsprites_full")
    assert ds.name == "dsprites_full"
    assert ds.num_factors == 5 and ds.factors_num_values == [3, 6, 40, 32, 32]
    assert ds.factor_names == ["shape", "scale", "orientation", "posX", "posY"]
    assert ds.observation_shape == (64, 64, 1)
    json.dumps(ds.source)
    assert ds.source["kind"] == "procedural" and ds.source["version"] == render.VERSION
    rs, ref = np.random.RandomState(42), np.random.RandomState(42)
    factors, obs = ds.sample(17, rs)
    assert np.array_equal(factors, _reference_factor_draws(ref, 17, [3, 6, 40, 32, 32]))
    assert rs.randint(1 << 30) == ref.randint(1 << 30)   # the colour factor (size 1) consumed nothing
    assert obs.shape == (17, 64, 64, 1) and obs.dtype == np.float32
    expected = render_dsprites(*factors.T)[..., None].astype(np.float32)
    assert np.array_equal(obs, expected)
    # determinism and sample_observations = sample()[1]
    a = ds.sample_observations(9, np.random.RandomState(7))
    b = ds.sample(9, np.random.RandomState(7))[1]
    assert np.array_equal(a, b)


def test_factor_validation():
    ds = get_dataset("dsprites_full")
    with pytest.raises(ValueError, match="shape"):
        ds.sample_observations_from_factors(np.zeros((2, 4), dtype=int), np.random.RandomState(0))
    with pytest.raises(ValueError, match="out of range"):
        ds.sample_observations_from_factors(np.array([[0, 0, 0, 0, 32]]), np.random.RandomState(0))
    with pytest.raises(ValueError, match="RandomState"):
        ds.sample(2, 0)


def test_registry_names_and_caching(tmp_path):
    with pytest.raises(ValueError, match="dsprites_full.*shapes3d"):
        get_dataset("mnist")
    assert get_dataset("dsprites_full") is get_dataset("dsprites_full")
    assert get_dataset("dsprites_full", data_dir=tmp_path) is not get_dataset("dsprites_full")


@pytest.mark.slow
def test_full_base_array_rows_are_the_c_order_grid(tmp_path):
    images = render.dsprites_base_images(packed=False, cache_folder=tmp_path / "full")
    assert images.shape == (737280, 64, 64) and images.dtype == np.uint8
    idx = np.random.RandomState(0).randint(737280, size=300)
    c = render.classes_from_index(idx)
    assert np.array_equal(images[idx], render_dsprites(c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5]))
    packed = render.dsprites_base_images(packed=True, cache_folder=tmp_path / "full")
    assert np.array_equal(np.unpackbits(packed[idx], axis=1).reshape(-1, 64, 64), images[idx])
