"""Factor-traversal previews: one row per factor, that factor's values left to right, from one random base sample.

Every tile is drawn with a fresh ``RandomState(seed)``, so a dataset's per-call nuisance draws (the colour of
color_dsprites, the noise, the Scream crop, the SmallNORB instance) are the same across a grid and only the traversed
factor changes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.errors import UserError

TILE = 64
GAP = 2
LABEL_WIDTH = 96


def traversal_values(size: int, max_columns: int) -> np.ndarray:
    """Up to ``max_columns`` evenly spaced class indices of a factor with ``size`` values (first and last included)."""
    if size <= max_columns:
        return np.arange(size)
    return np.unique(np.round(np.linspace(0, size - 1, max_columns)).astype(int))


def traversal_tiles(dataset, seed: int = 0, max_columns: int = 10) -> list[tuple[str, np.ndarray]]:
    """Per latent factor: (name, uint8 (k, 64, 64, 3) tiles) traversing it from a base sample drawn with ``seed``."""
    base = dataset.sample_factors(1, np.random.RandomState(seed))[0]
    rows = []
    for j, (name, size) in enumerate(zip(dataset.factor_names, dataset.factors_num_values)):
        tiles = []
        for value in traversal_values(size, max_columns):
            factors = base.copy()
            factors[j] = value
            obs = dataset.sample_observations_from_factors(factors[None], np.random.RandomState(seed + 1))[0]
            if obs.shape[-1] == 1:
                obs = np.repeat(obs, 3, axis=-1)
            tiles.append(np.clip(np.rint(obs * 255.0), 0, 255).astype(np.uint8))
        rows.append((name, np.stack(tiles)))
    return rows


def traversal_grid(dataset, seed: int = 0, max_columns: int = 10) -> np.ndarray:
    """The preview as an RGB uint8 image (H, W, 3): a label column, then one row of tiles per factor."""
    from PIL import Image, ImageDraw

    rows = traversal_tiles(dataset, seed, max_columns)
    n_cols = max(len(t) for _, t in rows)
    height = len(rows) * (TILE + GAP) + GAP
    width = LABEL_WIDTH + n_cols * (TILE + GAP) + GAP
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, (_, tiles) in enumerate(rows):
        top = GAP + r * (TILE + GAP)
        for c, tile in enumerate(tiles):
            left = LABEL_WIDTH + GAP + c * (TILE + GAP)
            canvas[top:top + TILE, left:left + TILE] = tile
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for r, (name, tiles) in enumerate(rows):
        top = GAP + r * (TILE + GAP)
        draw.text((4, top + TILE // 2 - 12), name, fill=(0, 0, 0))
        draw.text((4, top + TILE // 2 + 2), f"{len(tiles)} of {dataset.factors_num_values[r]}", fill=(90, 90, 90))
    return np.asarray(image)


def save_preview(dataset, out: str | Path, seed: int = 0, max_columns: int = 10) -> Path:
    """Write :func:`traversal_grid` as a PNG to ``out`` (parent folders created); returns the path."""
    from PIL import Image

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"preview output must be a .png file, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(traversal_grid(dataset, seed, max_columns)).save(out)
    return out
