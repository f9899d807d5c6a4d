"""dSprites and its colour, noise and Scream variants (Matthey et al. 2017; the colour, noise and Scream variants of the paper's Section 4).

The base images come either from the procedural renderer (:mod:`training.data.dsprites_render`, rendered per batch,
no precomputation) or, when the user has it, from the original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
(kept uint8 in memory, cast per batch). Latent factors: shape, scale, orientation, posX, posY; the colour factor
(size 1) is an observation factor and consumes no random numbers.

Variant draws follow the factor draws on the same RandomState, in the reference's order:
color: ``uniform(0.5, 1, [n,1,1,3])``; noisy: ``uniform(0, 1, [n,64,64,3])``; scream: per sample
``randint(0, H-64)``, ``randint(0, W-64)``, ``uniform(0, 1, size=3)``.
"""
from __future__ import annotations

import functools
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from training.data import dsprites_render as render
from training.data import scream as scream_mod
from training.data.base import GroundTruthDataset
from training.data.paths import cache_dir, cached_sha256
from training.errors import UserError

LATENT_FACTOR_INDICES = (1, 2, 3, 4, 5)


class DSpritesImages:
    """Where base images come from: ``images(all_factors) -> uint8 (n, 64, 64)`` of 0/1 plus a ``source`` dict."""

    def __init__(self, factor_sizes, all_factor_names, source: dict, array: np.ndarray | None = None):
        self.factor_sizes = list(factor_sizes)
        self.all_factor_names = list(all_factor_names)
        self.source = source
        self.array = array
        self._bases = (np.prod(self.factor_sizes) // np.cumprod(self.factor_sizes)).astype(np.int64)

    def images(self, all_factors: np.ndarray) -> np.ndarray:
        if self.array is None:
            return render.render_dsprites(all_factors[:, 1], all_factors[:, 2], all_factors[:, 3],
                                          all_factors[:, 4], all_factors[:, 5])
        return self.array[all_factors @ self._bases]

    def memory_bytes(self) -> int:
        return 0 if self.array is None else int(self.array.nbytes)


def procedural_images() -> DSpritesImages:
    return DSpritesImages(render.FACTOR_SIZES, render.FACTOR_NAMES,
                          {"kind": "procedural", "generator": render.GENERATOR, "version": render.VERSION})


@functools.lru_cache(maxsize=2)
def _load_npz_cached(path: str, size: int, mtime_ns: int) -> DSpritesImages:
    return load_npz(path)


def npz_images(path: str | os.PathLike) -> DSpritesImages:
    """:func:`load_npz`, shared between the four dSprites datasets while the file is unchanged."""
    stat = Path(path).stat()
    return _load_npz_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def load_npz(path: str | os.PathLike) -> DSpritesImages:
    """Read the original dSprites npz: ``imgs`` uint8 (N, 64, 64), ``metadata`` (pickled dict), ``latents_classes``.

    Factor sizes and names come from the metadata (``latents_sizes``, ``latents_names``), so reduced test files work.
    ``imgs`` must hold prod(sizes) images; ``latents_classes``, when present, must be the full grid in C order.
    Raises UserError naming the file and the problem otherwise.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=True, encoding="latin1")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable dSprites npz file ({exc})") from None
    with archive:
        missing = [k for k in ("imgs", "metadata") if k not in archive.files]
        if missing:
            raise UserError(f"{path}: missing key(s) {', '.join(missing)} (found {', '.join(archive.files)})")
        try:
            metadata = archive["metadata"]
            metadata = metadata.item() if isinstance(metadata, np.ndarray) else metadata
            sizes = [int(s) for s in np.asarray(metadata["latents_sizes"]).ravel()]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in metadata["latents_names"]]
        except Exception as exc:  # pickled content of unknown shape
            raise UserError(f"{path}: metadata lacks latents_sizes / latents_names ({exc})") from None
        if len(sizes) != 6 or len(names) != 6 or sizes[0] != 1:
            raise UserError(f"{path}: expected 6 factors (color of size 1, shape, scale, orientation, posX, posY), "
                            f"got sizes {sizes}")
        try:
            imgs = archive["imgs"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{path}: cannot read imgs ({exc}); the file is truncated or corrupt") from None
        expected = int(np.prod(sizes))
        if imgs.ndim != 3 or imgs.shape[1:] != (64, 64):
            raise UserError(f"{path}: imgs has shape {imgs.shape}, expected (N, 64, 64)")
        if imgs.shape[0] != expected:
            raise UserError(f"{path}: imgs holds {imgs.shape[0]} images but the factor grid {sizes} needs "
                            f"{expected}: incomplete grid")
        if "latents_classes" in archive.files:
            try:
                classes = archive["latents_classes"]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise UserError(f"{path}: cannot read latents_classes ({exc})") from None
            grid = np.stack(np.unravel_index(np.arange(expected), sizes), axis=1)
            if classes.shape != grid.shape or not np.array_equal(classes, grid):
                raise UserError(f"{path}: latents_classes do not cover the factor grid {sizes} once in C order")
    imgs = np.ascontiguousarray(imgs, dtype=np.uint8)
    source = {"kind": "file", "path": str(path.resolve()), "sha256": cached_sha256(path)}
    return DSpritesImages(sizes, names, source, imgs)


class DSprites(GroundTruthDataset):
    """``dsprites_full``: binary sprites, observations (64, 64, 1) of 0.0 / 1.0."""

    name = "dsprites_full"
    observation_shape = (64, 64, 1)
    deterministic_render = True

    def __init__(self, images: DSpritesImages | None = None):
        self.base = images if images is not None else procedural_images()
        self._init_state_space(self.base.factor_sizes, LATENT_FACTOR_INDICES, self.base.all_factor_names)
        self.source = dict(self.base.source)

    def base_images(self, all_factors: np.ndarray) -> np.ndarray:
        """Binary base images uint8 (n, 64, 64) of full factor vectors (n, 6)."""
        return self.base.images(all_factors)

    def memory_bytes(self) -> int:
        return self.base.memory_bytes()

    def _render(self, all_factors, random_state):
        return self.base_images(all_factors)[..., None].astype(np.float32)

    def render_configurations(self, start: int, stop: int) -> np.ndarray:
        """Images float32 (stop - start, 64, 64, 1) of C-order configurations ``start..stop-1``, sliced from the base
        array: the loaded file's, or for the procedural images the bit-packed disk cache of all 737,280 images
        (:func:`training.data.dsprites_render.dsprites_base_images`, built once per machine, ~35 s, 377 MB; read
        once per process). Unpacking costs ~3.5 us per image against ~29 us for rendering (2 cores), which matters
        for a code table (737,280 images per model). Equal to the rendered images (the cache holds the same
        renderer's output)."""
        if not 0 <= int(start) <= int(stop) <= self.num_configurations:
            raise ValueError(f"{self.name}: configuration range [{start}, {stop}) outside "
                             f"[0, {self.num_configurations})")
        if self.base.array is not None:
            return self.base.array[int(start):int(stop), :, :, None].astype(np.float32)
        bits = _packed_procedural_images(str(cache_dir()))
        return np.unpackbits(bits[int(start):int(stop)], axis=1).reshape(-1, 64, 64, 1).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _packed_procedural_images(cache_folder: str) -> np.ndarray:
    """The procedural images bit-packed, uint8 (737280, 512), loaded (or rendered and cached) once per process."""
    return render.dsprites_base_images(packed=True, cache_folder=cache_folder)


class ColorDSprites(DSprites):
    """``color_dsprites``: each sprite times a colour drawn per sample from U[0.5, 1)^3, on black."""

    name = "color_dsprites"
    deterministic_render = False  # draws per image
    observation_shape = (64, 64, 3)

    def _render(self, all_factors, random_state):
        sprite = self.base_images(all_factors)
        color = random_state.uniform(0.5, 1, [sprite.shape[0], 1, 1, 3]).astype(np.float32)
        # 1.0 * c and 0.0 * c are exact, so float32 arithmetic equals the reference's float64 product cast to float32
        return sprite[..., None].astype(np.float32) * color


class NoisyDSprites(DSprites):
    """``noisy_dsprites``: min(sprite + U[0, 1) noise per pixel and channel, 1)."""

    name = "noisy_dsprites"
    deterministic_render = False  # draws per image
    observation_shape = (64, 64, 3)

    def _render(self, all_factors, random_state):
        sprite = self.base_images(all_factors)
        # uniform(0, 1, shape) is 0 + 1 * random_sample(shape): the same draws and the same values, a little faster
        noise = random_state.random_sample([sprite.shape[0], 64, 64, 3]).astype(np.float32)
        noise[sprite.astype(bool)] = 1.0   # min(1 + u, 1) = 1 on the sprite, u elsewhere
        return noise


class ScreamDSprites(DSprites):
    """``scream_dsprites``: a random 64x64 crop of the background, colour-shifted, with the sprite inverted into it.

    ``scream_path``: the painting to use (thumbnailed to fit 350x274 as in the reference); None uses the built-in
    deterministic substitute. ``source["scream"]`` is ``"painting"`` or ``"substitute"``.
    """

    name = "scream_dsprites"
    observation_shape = (64, 64, 3)
    deterministic_render = False  # draws per image

    def __init__(self, images: DSpritesImages | None = None, scream_path: str | os.PathLike | None = None):
        super().__init__(images)
        if scream_path is not None:
            self.scream = scream_mod.load_painting(scream_path)
            background = {"kind": "painting", "path": str(Path(scream_path).resolve()),
                          "sha256": cached_sha256(scream_path),
                          "shape": list(self.scream.shape)}
            self.source["scream"] = "painting"
        else:
            self.scream = scream_mod.substitute_background()
            background = {"kind": "substitute", "generator": scream_mod.SUBSTITUTE_GENERATOR,
                          "version": scream_mod.SUBSTITUTE_VERSION, "shape": list(self.scream.shape)}
            self.source["scream"] = "substitute"
        self.source["background"] = background

    def _render(self, all_factors, random_state):
        sprite = self.base_images(all_factors).astype(bool)
        n = sprite.shape[0]
        height, width = self.scream.shape[:2]
        rows = np.empty(n, dtype=np.int64)
        cols = np.empty(n, dtype=np.int64)
        shifts = np.empty((n, 3))
        for i in range(n):   # the reference interleaves the three draws per sample
            rows[i] = random_state.randint(0, height - 64)
            cols[i] = random_state.randint(0, width - 64)
            shifts[i] = random_state.random_sample(3)   # = uniform(0, 1, size=3), bit for bit
        # the patch gather and colour shift in float64 as in the reference, then one cast to float32
        background = np.empty((n, 64, 64, 3))
        for i in range(n):
            background[i] = self.scream[rows[i]:rows[i] + 64, cols[i]:cols[i] + 64]
        background += shifts[:, None, None, :]
        background *= 0.5                                   # (patch + c) / 2, exact
        inverted = 1.0 - background
        np.copyto(background, inverted, where=sprite[..., None])
        return background.astype(np.float32)


def scream_path_in(root: Path | None) -> Path | None:
    """``<root>/scream/scream.jpg`` when it exists, else None."""
    if root is None:
        return None
    candidate = root / "scream" / "scream.jpg"
    return candidate if candidate.is_file() else None
