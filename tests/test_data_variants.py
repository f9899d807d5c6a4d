"""Colour, noisy and Scream dSprites: exact transforms and the reference's draw order (parallel RandomState)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from training.data import get_dataset, render_dsprites
from training.data.dsprites import ScreamDSprites
from training.data.scream import SUBSTITUTE_SHAPE, substitute_background

SIZES = [3, 6, 40, 32, 32]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DSTUDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DSTUDY_DATA", raising=False)
    monkeypatch.delenv("DISENTANGLEMENT_LIB_DATA", raising=False)


def _reference_base(rs, num):
    """Reference steps shared by all variants: latent draws, colour factor draw (size 1), binary images (n,64,64,1)."""
    factors = np.stack([rs.randint(s, size=num) for s in SIZES], axis=1)
    rs.randint(1, size=num)
    images = render_dsprites(*factors.T)[..., None].astype(np.float32)
    return factors, images


def _reference_color(rs, num):
    factors, obs = _reference_base(rs, num)
    obs = np.repeat(obs, 3, axis=3)
    color = np.repeat(np.repeat(rs.uniform(0.5, 1, [num, 1, 1, 3]), 64, axis=1), 64, axis=2)
    return factors, obs * color


def _reference_noisy(rs, num):
    factors, obs = _reference_base(rs, num)
    obs = np.repeat(obs, 3, axis=3)
    noise = rs.uniform(0, 1, [num, 64, 64, 3])
    return factors, np.minimum(obs + noise, 1.0)


def _reference_scream(rs, num, scream):
    factors, obs = _reference_base(rs, num)
    obs = np.repeat(obs, 3, axis=3).astype(np.float64)
    for i in range(num):
        x_crop = rs.randint(0, scream.shape[0] - 64)
        y_crop = rs.randint(0, scream.shape[1] - 64)
        background = (scream[x_crop:x_crop + 64, y_crop:y_crop + 64] + rs.uniform(0, 1, size=3)) / 2.0
        mask = obs[i] == 1
        background[mask] = 1 - background[mask]
        obs[i] = background
    return factors, obs


@pytest.mark.parametrize("name, reference", [("color_dsprites", _reference_color),
                                             ("noisy_dsprites", _reference_noisy)])
def test_variant_matches_reference_stream(name, reference):
    ds = get_dataset(name)
    assert ds.observation_shape == (64, 64, 3) and ds.factors_num_values == SIZES
    rs, ref = np.random.RandomState(11), np.random.RandomState(11)
    factors, obs = ds.sample(23, rs)
    ref_factors, ref_obs = reference(ref, 23)
    assert np.array_equal(factors, ref_factors)
    assert obs.dtype == np.float32 and obs.shape == (23, 64, 64, 3)
    np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))   # bit-exact
    assert rs.randint(1 << 30) == ref.randint(1 << 30)   # the streams stay aligned after the call
    # a second call continues the same stream (the training loop draws batch after batch)
    np.testing.assert_array_equal(ds.sample(5, rs)[1], reference(ref, 5)[1].astype(np.float32))


def test_color_semantics():
    ds = get_dataset("color_dsprites")
    factors, obs = ds.sample(30, np.random.RandomState(5))
    sprite = render_dsprites(*factors.T).astype(bool)
    assert np.all(obs[~sprite] == 0)                         # black background
    colours = obs[np.arange(30), ...].max(axis=(1, 2))       # (30, 3): the sprite's colour per sample
    assert colours.min() >= 0.5 and colours.max() < 1.0
    for i in range(30):                                      # one colour per sample, the same on every pixel
        assert np.ptp(obs[i][sprite[i]], axis=0).max() == 0


def test_noisy_semantics():
    obs = get_dataset("noisy_dsprites").sample(8, np.random.RandomState(2))
    factors, images = obs
    sprite = render_dsprites(*factors.T).astype(bool)
    assert np.all(images[sprite] == 1.0)
    background = images[~sprite]
    assert background.min() >= 0 and background.max() < 1
    assert abs(background.mean() - 0.5) < 0.01 and abs(background.std() - np.sqrt(1 / 12)) < 0.01


def test_scream_substitute_matches_reference_stream():
    ds = get_dataset("scream_dsprites")
    assert ds.source["scream"] == "substitute"
    assert ds.source["background"]["kind"] == "substitute"
    json.dumps(ds.source)
    rs, ref = np.random.RandomState(4), np.random.RandomState(4)
    factors, obs = ds.sample(12, rs)
    ref_factors, ref_obs = _reference_scream(ref, 12, substitute_background())
    assert np.array_equal(factors, ref_factors)
    np.testing.assert_array_equal(obs, ref_obs.astype(np.float32))
    assert rs.randint(1 << 30) == ref.randint(1 << 30)


def test_substitute_background_is_deterministic_and_colourful():
    image = substitute_background()
    assert image.shape == SUBSTITUTE_SHAPE and image.dtype == np.float64
    assert image.min() >= 0 and image.max() <= 1
    assert np.array_equal(np.round(image * 255), image * 255)   # quantised like a decoded JPEG
    assert image.std(axis=(0, 1)).min() > 0.08                   # varied in every channel
    assert np.abs(image[..., 0] - image[..., 2]).mean() > 0.1    # coloured, not grey
    substitute_background.cache_clear()
    assert np.array_equal(substitute_background(), image)


def test_scream_uses_the_users_painting(tmp_path):
    rs = np.random.RandomState(0)
    painting = (rs.rand(370, 300, 3) * 255).astype(np.uint8)   # portrait, like the painting (W/H = 0.81)
    folder = tmp_path / "data" / "scream"
    folder.mkdir(parents=True)
    Image.fromarray(painting).save(folder / "scream.jpg", quality=95)
    ds = get_dataset("scream_dsprites", data_dir=tmp_path / "data")
    assert ds.source["scream"] == "painting"
    assert ds.source["background"]["path"].endswith("scream.jpg")
    assert len(ds.source["background"]["sha256"]) == 64
    assert ds.scream.shape == (274, 222, 3)       # thumbnail((350, 274)) keeps the aspect: 300 * 274 / 370
    rs, ref = np.random.RandomState(9), np.random.RandomState(9)
    obs = ds.sample(6, rs)[1]
    np.testing.assert_array_equal(obs, _reference_scream(ref, 6, ds.scream)[1].astype(np.float32))


def test_scream_painting_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(Exception, match="cannot read the Scream painting"):
        ScreamDSprites(scream_path=bad)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((60, 200, 3), dtype=np.uint8)).save(small)
    with pytest.raises(Exception, match="too small"):
        ScreamDSprites(scream_path=small)


def test_variants_share_factors_with_dsprites_full():
    base = get_dataset("dsprites_full").sample(4, np.random.RandomState(1))[0]
    for name in ("color_dsprites", "noisy_dsprites", "scream_dsprites"):
        assert np.array_equal(get_dataset(name).sample(4, np.random.RandomState(1))[0], base)
