"""The background image of Scream-dSprites: the user's copy of Munch's painting, or a built-in substitute.

The reference (disentanglement_lib) opens ``The_Scream.jpg``, shrinks it with ``thumbnail((350, 274))`` (aspect kept,
so about 221 wide x 274 high for the Wikimedia file) and divides by 255. The painting cannot ship with dstudy, so
when ``<root>/scream/scream.jpg`` is absent a deterministic *substitute* is generated: a colourful swirling texture of
274 x 221 x 3 in the painting's palette (orange-red sky bands over dark blue water, a diagonal railing). It changes
the background statistics, which is why the dataset's ``source`` says which one was used.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from training.errors import UserError

SUBSTITUTE_GENERATOR = "dstudy.scream_substitute"
SUBSTITUTE_VERSION = 1
SUBSTITUTE_SHAPE = (274, 221, 3)
THUMBNAIL_SIZE = (350, 274)   # (width, height) bound passed to PIL's thumbnail, as in the reference

# Palette of the substitute, dark to bright (RGB in [0, 1]).
_PALETTE = np.array([
    [0.08, 0.10, 0.22],   # night blue
    [0.16, 0.27, 0.45],   # fjord blue
    [0.33, 0.42, 0.40],   # grey green
    [0.80, 0.38, 0.10],   # orange
    [0.92, 0.62, 0.18],   # yellow orange
    [0.72, 0.16, 0.10],   # red
])


@functools.lru_cache(maxsize=1)
def substitute_background() -> np.ndarray:
    """The deterministic substitute painting: float64 (274, 221, 3) in [0, 1], quantised to multiples of 1/255."""
    height, width, _ = SUBSTITUTE_SHAPE
    rs = np.random.RandomState(1893)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= height
    x /= width
    warp = np.zeros_like(x)
    for _ in range(6):   # smooth domain warp: sum of random low-frequency waves
        fx, fy = rs.uniform(1.0, 5.0, size=2)
        phase = rs.uniform(0, 2 * np.pi)
        warp += rs.uniform(0.2, 0.5) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
    strokes = 0.06 * np.sin(2 * np.pi * (37 * x + 11 * y) + 3 * warp)   # fine brush-stroke ripples
    sky = 0.5 + 0.5 * np.sin(2 * np.pi * (3.2 * y + 0.35 * warp) + strokes * 6)
    water = 0.5 + 0.5 * np.sin(2 * np.pi * (2.1 * x - 1.4 * y + 0.45 * warp) + strokes * 6)
    horizon = 0.45 + 0.08 * np.sin(2 * np.pi * 1.3 * x + 1.0)
    blend = 1.0 / (1.0 + np.exp(-(y - horizon) / 0.03))             # 0 in the sky, 1 in the water
    position = (1 - blend) * (2.8 + 2.2 * sky) + blend * (0.1 + 2.0 * water)   # palette coordinate in [0, 5]
    lower = np.clip(np.floor(position).astype(int), 0, len(_PALETTE) - 2)
    frac = np.clip(position - lower, 0.0, 1.0)[..., None]
    image = (1 - frac) * _PALETTE[lower] + frac * _PALETTE[lower + 1]
    railing = np.abs((y - 0.55) - 0.45 * (x - 0.2)) < 0.035            # a brown diagonal band, like the bridge
    image[railing] = 0.55 * image[railing] + 0.45 * np.array([0.45, 0.25, 0.12])
    image = np.clip(image + strokes[..., None], 0.0, 1.0)
    return np.round(image * 255.0) / 255.0


def load_painting(path: str | Path) -> np.ndarray:
    """The user's painting as the reference prepares it: thumbnail((350, 274)), RGB, / 255 -> float64 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(THUMBNAIL_SIZE)
            array = np.asarray(image, dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"cannot read the Scream painting {path}: {exc}") from None
    if array.shape[0] <= 64 or array.shape[1] <= 64:
        raise UserError(f"the Scream painting {path} is too small after thumbnail((350, 274)): "
                        f"{array.shape[1]}x{array.shape[0]} px; both sides must exceed 64")
    return array
