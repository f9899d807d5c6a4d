"""Device-resident data (training.engine.device_data), tested on CPU tensors: bit unpacking, the variant transforms against
the reference formulas (training.data.dsprites), determinism and per-run independence of the streams."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.engine.device_data import (DeviceBatches, DeviceSampler, color_transform, device_data_seed, device_sampler,
                                  noisy_transform, scream_transform, unpack_bits)
from training.engine.train import derive_seeds


def _sprites(n=12, seed=0):
    rs = np.random.RandomState(seed)
    sprites = np.zeros((n, 64, 64), np.uint8)
    for i in range(n):   # a distinct rectangle per image, so every image is recognisable
        r, c = rs.randint(0, 48, size=2)
        sprites[i, r:r + 4 + i % 12, c:c + 16] = 1
    return sprites


def test_unpack_bits_inverts_numpy_packbits():
    sprites = _sprites()
    packed = np.packbits(sprites.reshape(len(sprites), -1), axis=1)
    out = unpack_bits(torch.from_numpy(packed))
    assert out.dtype == torch.uint8 and out.shape == (len(sprites), 64, 64)
    np.testing.assert_array_equal(out.numpy(), sprites)


def test_plain_sampler_returns_table_rows_from_bits_and_bytes():
    sprites = _sprites()
    packed = torch.from_numpy(np.packbits(sprites.reshape(len(sprites), -1), axis=1))
    for sampler in (DeviceSampler(packed, bits=True), DeviceSampler(torch.from_numpy(sprites))):
        g = torch.Generator().manual_seed(1)
        draws = sampler.draw(50, g)
        batch = sampler.render(draws)
        assert batch.shape == (50, 64, 64, 1) and batch.dtype == torch.float32
        np.testing.assert_array_equal(batch[..., 0].numpy(), sprites[draws["index"].numpy()].astype(np.float32))
        assert set(draws["index"].tolist()) <= set(range(len(sprites)))


def test_indices_cover_the_table_uniformly():
    table = torch.zeros((10, 64, 64), dtype=torch.uint8)
    sampler = DeviceSampler(table)
    counts = np.bincount(sampler.draw(20000, torch.Generator().manual_seed(0))["index"].numpy(), minlength=10)
    assert counts.min() > 1800 and counts.max() < 2200   # 2000 expected, sd ~42


def test_photo_table_scaled_to_unit_range():
    rs = np.random.RandomState(0)
    table = rs.randint(0, 256, size=(5, 64, 64, 3)).astype(np.uint8)
    sampler = DeviceSampler(torch.from_numpy(table), scale=1 / 255)
    draws = sampler.draw(7, torch.Generator().manual_seed(3))
    batch = sampler.render(draws)
    assert batch.shape == (7, 64, 64, 3) and sampler.channels == 3
    np.testing.assert_allclose(batch.numpy(), table[draws["index"].numpy()] / 255.0, rtol=1e-6)


def test_color_transform_matches_reference_formula():
    sprites = _sprites(4)
    u = np.random.RandomState(2).uniform(size=(4, 1, 1, 3)).astype(np.float32)
    out = color_transform(torch.from_numpy(sprites), torch.from_numpy(u)).numpy()
    expected = sprites[..., None] * (0.5 + 0.5 * u)   # colour ~ U[0.5, 1) per channel, black background
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out[sprites == 0].max() == 0.0
    on = out[sprites == 1]
    assert on.min() >= 0.5 and on.max() < 1.0


def test_noisy_transform_matches_reference_formula():
    sprites = _sprites(4)
    noise = np.random.RandomState(2).uniform(size=(4, 64, 64, 3)).astype(np.float32)
    out = noisy_transform(torch.from_numpy(sprites), torch.from_numpy(noise)).numpy()
    np.testing.assert_allclose(out, np.minimum(sprites[..., None] + noise, 1.0), rtol=1e-6)
    assert np.all(out[sprites == 1] == 1.0)


def test_scream_transform_matches_reference_formula():
    sprites = _sprites(5)
    rs = np.random.RandomState(4)
    background = rs.uniform(size=(90, 80, 3)).astype(np.float32)
    rows = rs.randint(0, 90 - 64, size=5)
    cols = rs.randint(0, 80 - 64, size=5)
    shifts = rs.uniform(size=(5, 3)).astype(np.float32)
    out = scream_transform(torch.from_numpy(sprites), torch.from_numpy(background), torch.from_numpy(rows),
                           torch.from_numpy(cols), torch.from_numpy(shifts)).numpy()
    for i in range(5):   # the reference: crop, (crop + c) / 2, invert where the sprite is on
        crop = background[rows[i]:rows[i] + 64, cols[i]:cols[i] + 64]
        v = (crop + shifts[i]) / 2.0
        expected = np.where(sprites[i][..., None] == 1, 1.0 - v, v)
        np.testing.assert_allclose(out[i], expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", ["none", "color", "noisy", "scream"])
def test_streams_are_seeded_and_independent_of_the_pack(variant):
    sprites = torch.from_numpy(_sprites())
    background = torch.rand((100, 90, 3), generator=torch.Generator().manual_seed(0))
    sampler = DeviceSampler(sprites, variant=variant, background=background if variant == "scream" else None)
    pack = DeviceBatches(sampler, 6, {0: 11, 1: 12, 2: 13})
    alone = DeviceBatches(sampler, 6, {5: 12})
    a1, a2 = pack.next([0, 1, 2]), pack.next([0, 1, 2])
    b1, b2 = alone.next([5]), alone.next([5])
    channels = 1 if variant == "none" else 3
    assert a1.shape == (3, 6, 64, 64, channels)
    torch.testing.assert_close(a1[1], b1[0], rtol=0, atol=0)   # run seeded 12: same batches in or out of a pack
    torch.testing.assert_close(a2[1], b2[0], rtol=0, atol=0)
    assert not torch.equal(a1[0], a1[1]) and not torch.equal(a1[1], a2[1])
    assert float(a1.min()) >= 0.0 and float(a1.max()) <= 1.0
    # dropping a run from the pack does not disturb the others' streams
    a3 = pack.next([1])
    b3 = alone.next([5])
    torch.testing.assert_close(a3[0], b3[0], rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["none", "color", "noisy", "scream"])
def test_blocks_are_the_streams_definition(variant):
    """A run's generator draws each block of B steps at once (index, then the variant's small draws), and the noisy
    variant's noise step by step after it: steps 0..6 with B = 3, rebuilt from the definition by hand."""
    sprites = torch.from_numpy(_sprites())
    background = torch.rand((100, 90, 3), generator=torch.Generator().manual_seed(0))
    sampler = DeviceSampler(sprites, variant=variant, background=background if variant == "scream" else None)
    batches = DeviceBatches(sampler, 4, {7: 21}, block=3)
    got = [batches.next([7])[0] for _ in range(7)]
    g = torch.Generator().manual_seed(device_data_seed(21))
    for start in (0, 3, 6):
        block = {"index": torch.randint(len(sprites), (3, 4), generator=g)}
        if variant == "color":
            block["uniform"] = torch.rand((3, 4, 1, 1, 3), generator=g)
        elif variant == "scream":
            block["rows"] = torch.randint(100 - 64, (3, 4), generator=g)
            block["cols"] = torch.randint(90 - 64, (3, 4), generator=g)
            block["shifts"] = torch.rand((3, 4, 3), generator=g)
        for t in range(start, min(start + 3, 7)):
            step = {name: d[t - start] for name, d in block.items()}
            if variant == "noisy":
                step["noise"] = torch.rand((4, 64, 64, 3), generator=g)
            torch.testing.assert_close(got[t], sampler.render(step), rtol=0, atol=0)


def test_a_run_leaving_mid_block_keeps_the_others_streams():
    sampler = DeviceSampler(torch.from_numpy(_sprites()), variant="color")
    pack = DeviceBatches(sampler, 5, {0: 1, 1: 2, 2: 3}, block=4)
    alone = DeviceBatches(sampler, 5, {9: 3}, block=4)
    for t in range(9):   # run 0 leaves at step 2, run 1 at step 5 (two blocks, one boundary crossed)
        runs = [0, 1, 2] if t < 2 else ([1, 2] if t < 5 else [2])
        torch.testing.assert_close(pack.next(runs)[-1], alone.next([9])[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="block"):
        DeviceBatches(sampler, 5, {0: 1}, block=0)


def test_device_seed_is_independent_of_the_engine_seeds():
    seeds = derive_seeds(3)
    assert device_data_seed(3) not in seeds.values()
    assert device_data_seed(3) == device_data_seed(3) != device_data_seed(4)


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        DeviceSampler(torch.zeros((3, 64, 64)))
    with pytest.raises(ValueError, match="shape"):
        DeviceSampler(torch.zeros((3, 32, 32), dtype=torch.uint8))
    with pytest.raises(ValueError, match="background"):
        DeviceSampler(torch.zeros((3, 64, 64), dtype=torch.uint8), variant="scream")
    with pytest.raises(ValueError, match="variant"):
        DeviceSampler(torch.zeros((3, 64, 64), dtype=torch.uint8), variant="sepia")


class _TableDataset:
    name = "tiny_photos"
    factor_sizes = [2, 3]
    observation_shape = (64, 64, 3)

    def device_table(self):
        return np.arange(6 * 64 * 64 * 3, dtype=np.int64).reshape(6, 64, 64, 3) % 256, 1 / 255


def test_device_sampler_from_dataset_hooks():
    sampler = device_sampler(_TableDataset(), "cpu")
    assert sampler.num_rows == 6 and sampler.channels == 3
    assert device_sampler(object(), "cpu") is None


def test_device_sampler_for_dsprites_file_table():
    from training.data.dsprites import DSpritesImages, ScreamDSprites

    sizes = [1, 2, 1, 1, 2, 3]
    array = _sprites(12)
    images = DSpritesImages(sizes, ["color", "shape", "scale", "orientation", "posX", "posY"], {"kind": "test"},
                            array)
    dataset = ScreamDSprites(images)
    sampler = device_sampler(dataset, "cpu")
    assert sampler.variant == "scream" and sampler.num_rows == 12 and not sampler.bits
    batch = sampler.sample(4, torch.Generator().manual_seed(0))
    assert batch.shape == (4, 64, 64, 3)
