"""Procedural dSprites: the sprites' geometry recovered from the original LÖVE renderer, rendered centre-sampled.

All lengths are in pixels of the 64x64 image, y (rows) pointing down. A pixel (row r, col c) is 1 exactly when its
centre (c + 0.5, r + 0.5) lies inside the transformed shape; there is no anti-aliasing.

* anchor: x = 16 + 32 posX, y = 16 + 32 posY, with posX, posY in linspace(0, 1, 32) (posY = 0 is the top row);
* a local shape point (u, v) (v down, scale 1) lands at
  x = ax + s (u cos t + v sin t), y = ay + s (-u sin t + v cos t): increasing orientation t turns the sprite
  counter-clockwise as displayed;
* square: |u|, |v| <= 9.6; ellipse: (u / 12.8)^2 + (v / 7.2)^2 <= 1;
* heart: the classic curve x(t) = 16 sin^3 t, y_up(t) = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t, filled, mapped by
  u = 0.6 x, v = -0.661 y_up - 1.445 (upright at orientation 0).

:func:`render_dsprites` renders any batch of factor classes without precomputing the whole dataset: it evaluates only
a 31x31 window around each anchor (the largest sprite fits in a radius of 13.6 px). The heart is tested against a
high-resolution lookup mask filled by an exact scanline of a 4096-vertex polygon.
:func:`dsprites_base_images` renders all 737,280 images once and caches them bit-packed on disk.
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np

from training.data.paths import cache_dir, load_cached_array, save_cached_array

GENERATOR = "dstudy.dsprites_render"
VERSION = 1

FACTOR_SIZES = (1, 3, 6, 40, 32, 32)  # color, shape, scale, orientation, posX, posY
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280

SHAPE_NAMES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

ANCHOR_OFFSET_PX = 16.0
ANCHOR_SPAN_PX = 32.0
SQUARE_HALF_SIDE_PX = 9.6
ELLIPSE_SEMI_AXES_PX = (12.8, 7.2)
HEART_U_PER_X = 0.6
HEART_V_PER_YUP = -0.661
HEART_V_OFFSET_PX = -1.445

_CLASS_SIZES = np.array([[3], [6], [40], [32], [32]])
_WINDOW = 31          # pixels per side of the evaluated window around the anchor
_WINDOW_BEFORE = 15   # window starts this many pixels before floor(anchor)
_HEART_VERTICES = 4096
_HEART_MASK_STEP = 1.0 / 64.0   # mask cell size in heart-curve units (1 unit = 0.6 px horizontally)
_HEART_X_RANGE = (-16.5, 16.5)
_HEART_Y_RANGE = (-17.5, 12.5)


def heart_polygon(num_vertices: int = _HEART_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (x, y_up) of the classic heart curve at ``num_vertices`` equally spaced t in [0, 2 pi)."""
    t = np.arange(num_vertices) * (2.0 * np.pi / num_vertices)
    x = 16.0 * np.sin(t) ** 3
    y = 13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t)
    return x, y


@functools.lru_cache(maxsize=1)
def heart_mask() -> np.ndarray:
    """Boolean inside-mask of the heart in curve units: cell (j, i) covers y_up = Y0 + (j + .5) h, x = X0 + (i + .5) h.

    Filled by an even-odd scanline of :func:`heart_polygon` through each cell row's centre line.
    """
    x, y = heart_polygon()
    x2, y2 = np.roll(x, -1), np.roll(y, -1)
    h = _HEART_MASK_STEP
    n_cols = int(round((_HEART_X_RANGE[1] - _HEART_X_RANGE[0]) / h))
    n_rows = int(round((_HEART_Y_RANGE[1] - _HEART_Y_RANGE[0]) / h))
    xs = _HEART_X_RANGE[0] + (np.arange(n_cols) + 0.5) * h
    mask = np.zeros((n_rows, n_cols), dtype=bool)
    lo, hi = np.minimum(y, y2), np.maximum(y, y2)
    for j in range(n_rows):
        yc = _HEART_Y_RANGE[0] + (j + 0.5) * h
        # half-open rule: an edge crosses the line when yc lies in [lo, hi)
        edges = np.nonzero((lo <= yc) & (yc < hi))[0]
        if edges.size < 2:
            continue
        xa, ya, xb, yb = x[edges], y[edges], x2[edges], y2[edges]
        crossings = np.sort(xa + (yc - ya) * (xb - xa) / (yb - ya))
        starts, ends = crossings[0::2], crossings[1::2]
        inside = np.zeros(n_cols, dtype=np.int32)
        i0 = np.searchsorted(xs, starts)
        i1 = np.searchsorted(xs, ends)
        np.add.at(inside, i0, 1)
        np.add.at(inside, i1[i1 < n_cols], -1)
        mask[j] = np.cumsum(inside) > 0
    return mask


def _inside(shape_id: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether local points (u, v) (pixels at scale 1, v down) lie inside shape ``shape_id``."""
    if shape_id == 0:
        return (np.abs(u) <= SQUARE_HALF_SIDE_PX) & (np.abs(v) <= SQUARE_HALF_SIDE_PX)
    if shape_id == 1:
        a, b = ELLIPSE_SEMI_AXES_PX
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape_id == 2:
        mask = heart_mask()
        h = _HEART_MASK_STEP
        cx = np.floor((u / HEART_U_PER_X - _HEART_X_RANGE[0]) / h).astype(np.int64)
        cy = np.floor(((v - HEART_V_OFFSET_PX) / HEART_V_PER_YUP - _HEART_Y_RANGE[0]) / h).astype(np.int64)
        valid = (cx >= 0) & (cx < mask.shape[1]) & (cy >= 0) & (cy < mask.shape[0])
        out = np.zeros(u.shape, dtype=bool)
        out[valid] = mask[cy[valid], cx[valid]]
        return out
    raise ValueError(f"shape class must be 0, 1 or 2, got {shape_id}")


def render_dsprites(shape, scale, orientation, pos_x, pos_y) -> np.ndarray:
    """Render dSprites images for factor *classes* (integer arrays of equal length n).

    Args:
        shape: 0 square, 1 ellipse, 2 heart. scale: 0..5 (0.5..1.0). orientation: 0..39 (0..2 pi).
        pos_x, pos_y: 0..31 (position 0..1; posY = 0 at the top).

    Returns:
        uint8 array (n, 64, 64) of 0/1 pixels. Pure and vectorised: same classes, same pixels.
    """
    arrays = [np.atleast_1d(np.asarray(a)) for a in (shape, scale, orientation, pos_x, pos_y)]
    if any(a.ndim != 1 for a in arrays) or len({a.shape[0] for a in arrays}) != 1:
        raise ValueError("all factor class arrays must be 1-d with the same length")
    classes = np.array(arrays)
    if not np.issubdtype(classes.dtype, np.integer):
        raise ValueError("factor classes must be integers")
    classes = classes.astype(np.int64, copy=False)
    n = classes.shape[1]
    out = np.zeros((n, 64, 64), dtype=np.uint8)
    if n == 0:
        return out
    bad = (classes < 0) | (classes >= _CLASS_SIZES)
    if bad.any():
        label = ("shape", "scale", "orientation", "posX", "posY")[int(np.nonzero(bad.any(axis=1))[0][0])]
        size = int(_CLASS_SIZES[("shape", "scale", "orientation", "posX", "posY").index(label), 0])
        raise ValueError(f"{label} classes must lie in 0..{size - 1}")
    shape, scale, orientation, pos_x, pos_y = classes
    ax = ANCHOR_OFFSET_PX + ANCHOR_SPAN_PX * POSITIONS[pos_x]
    ay = ANCHOR_OFFSET_PX + ANCHOR_SPAN_PX * POSITIONS[pos_y]
    offsets = np.arange(_WINDOW)
    rows = np.floor(ay).astype(np.int64)[:, None] - _WINDOW_BEFORE + offsets   # (n, W)
    cols = np.floor(ax).astype(np.int64)[:, None] - _WINDOW_BEFORE + offsets
    dy = (rows + 0.5 - ay[:, None])[:, :, None]                               # (n, W, 1)
    dx = (cols + 0.5 - ax[:, None])[:, None, :]                               # (n, 1, W)
    theta = ORIENTATIONS[orientation]
    s = SCALES[scale]
    cos_s = (np.cos(theta) / s)[:, None, None]
    sin_s = (np.sin(theta) / s)[:, None, None]
    u = cos_s * dx - sin_s * dy                                               # (n, W, W)
    v = sin_s * dx + cos_s * dy
    if n == 1 or (shape == shape[0]).all():
        window = _inside(int(shape[0]), u, v)
    else:
        window = np.zeros((n, _WINDOW, _WINDOW), dtype=bool)
        for shape_id in range(3):
            members = np.nonzero(shape == shape_id)[0]
            if members.size:
                window[members] = _inside(shape_id, u[members], v[members])
    out[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = window
    return out


def classes_from_index(index: np.ndarray) -> np.ndarray:
    """Full factor classes (n, 6) (color, shape, scale, orientation, posX, posY) of C-order row indices."""
    return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), FACTOR_SIZES), axis=1)


def render_all(chunk: int = 8192, progress=None) -> np.ndarray:
    """All 737,280 dSprites images in the original row order: uint8 (737280, 64, 64), 3.0 GB.

    ``progress``, when given, is called with the number of images rendered so far after each chunk.
    """
    images = np.empty((NUM_IMAGES, 64, 64), dtype=np.uint8)
    for start in range(0, NUM_IMAGES, chunk):
        stop = min(start + chunk, NUM_IMAGES)
        c = classes_from_index(np.arange(start, stop))
        images[start:stop] = render_dsprites(c[:, 1], c[:, 2], c[:, 3], c[:, 4], c[:, 5])
        if progress is not None:
            progress(stop)
    return images


def _cache_paths(folder: Path) -> tuple[Path, Path]:
    stem = f"dsprites_base_v{VERSION}"
    return folder / f"{stem}.packed.npy", folder / f"{stem}.json"


def load_or_build_packed(data_path: Path, meta_path: Path, meta: dict, shape: tuple[int, int],
                         build) -> tuple[np.ndarray, bool]:
    """A uint8 array of ``shape`` cached at ``data_path`` (+ JSON sidecar ``meta_path`` with its SHA-256).

    The cached file is used when the sidecar matches ``meta`` and the array's shape, dtype and SHA-256 check out;
    otherwise ``build()`` is called, its result saved atomically (an unwritable folder only costs time) and
    returned. Returns ``(array, built)``.
    """
    array = load_cached_array(data_path, meta_path, meta, shape, np.uint8)
    if array is not None:
        return array, False
    start = time.perf_counter()
    array = np.ascontiguousarray(build(), dtype=np.uint8)
    if array.shape != tuple(shape):
        raise ValueError(f"built array has shape {array.shape}, expected {tuple(shape)}")
    save_cached_array(data_path, meta_path, meta, array, build_seconds=round(time.perf_counter() - start, 2))
    return array, True


def dsprites_base_images(packed: bool = False, cache_folder: str | os.PathLike | None = None,
                         progress=None) -> np.ndarray:
    """The whole procedural dSprites array, from the disk cache or rendered (~30 s on 2 cores) and cached.

    Args:
        packed: if True return the bit-packed form uint8 (737280, 512) (``np.packbits`` of each flattened
            64x64 image, big-endian bit order, 377 MB; image i is ``np.unpackbits(bits[i]).reshape(64, 64)``, and
            a device can unpack with ``(bits[..., None] >> arange(7, -1, -1)) & 1``); else uint8 (737280, 64, 64)
            of 0/1 (3.0 GB, unpacked from the cache in a few seconds).
        cache_folder: where the cache lives; default ``$DSTUDY_CACHE`` (``~/.cache/dstudy``). The cache file is
            verified by SHA-256 on load and rebuilt when missing or corrupt.
        progress: optional callable receiving the number of images rendered (only when rendering).

    Row i holds the image of C-order factor index i (bases [737280, 245760, 40960, 1024, 32, 1]).
    """
    folder = Path(cache_folder) if cache_folder is not None else cache_dir()
    data_path, meta_path = _cache_paths(folder)

    def build():
        # flat packing equals per-row packing (4096 bits = 512 whole bytes per image) and is much faster
        return np.packbits(render_all(progress=progress).reshape(-1)).reshape(NUM_IMAGES, 64 * 64 // 8)

    bits, _ = load_or_build_packed(data_path, meta_path, {"generator": GENERATOR, "version": VERSION},
                                   (NUM_IMAGES, 64 * 64 // 8), build)
    if packed:
        return bits
    return np.unpackbits(bits.reshape(-1)).reshape(NUM_IMAGES, 64, 64)
