"""Shapes3D (``shapes3d``): the user's ``3dshapes.h5`` when present, else the procedural room of
:mod:`training.data.shapes3d_render`.

Factors (all latent, the last varies fastest): floor_hue 10, wall_hue 10, object_hue 10, scale 8, shape 4,
orientation 15. Observations are (64, 64, 3) float32 in [0, 1], multiples of 1/255, converted per batch; the file's
images stay uint8 in memory (5.9 GB for the full file; the reference's float32 copy would be 23.6 GB).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from training.data import paths
from training.data import shapes3d_render as render
from training.data.base import GroundTruthDataset, ImageTableDataset
from training.errors import UserError

FACTOR_NAMES = list(render.FACTOR_NAMES)


class ProceduralShapes3D(GroundTruthDataset):
    """Procedural Shapes3D: 480 geometry G-buffers (computed on first use, cached on disk) coloured by the hues.

    ``cache_folder``: where the full G-buffer set is cached (default ``$DSTUDY_CACHE``). Configurations are rendered
    lazily as batches need them; once all 480 exist they are saved, and a later process loads them (47 MB).
    """

    name = "shapes3d"
    observation_shape = (64, 64, 3)
    deterministic_render = True

    def __init__(self, cache_folder: str | Path | None = None):
        self._init_state_space(render.FACTOR_SIZES, range(6), FACTOR_NAMES)
        self.source = {"kind": "procedural", "generator": render.GENERATOR, "version": render.VERSION}
        folder = Path(cache_folder) if cache_folder is not None else paths.cache_dir()
        stem = f"shapes3d_gbuffers_v{render.VERSION}"  # the shape check also rejects other layouts
        self._cache_files = (folder / f"{stem}.npy", folder / f"{stem}.json")
        self._cache_meta = {"generator": render.GENERATOR, "version": render.VERSION}
        shape = (render.NUM_CONFIGS,) + render.GBUFFER_SHAPE
        cached = paths.load_cached_array(*self._cache_files, self._cache_meta, shape, np.float32)
        if cached is not None:
            self._gbuffers = cached
            self._ready = np.ones(render.NUM_CONFIGS, dtype=bool)
        else:
            self._gbuffers = np.zeros(shape, dtype=np.float32)
            self._ready = np.zeros(render.NUM_CONFIGS, dtype=bool)
        self._saved = cached is not None
        self.build_seconds = 0.0
        self._lock = threading.Lock()   # a prefetching thread and the caller may ask for missing configurations

    def gbuffers(self, configs: np.ndarray) -> np.ndarray:
        """G-buffers (n, 2, 64, 64, 3) of configuration rows (n,) (:func:`render.config_index`), rendered if missing."""
        configs = np.asarray(configs, dtype=np.int64)
        if not self._ready[configs].all():
            with self._lock:
                self._render_missing(configs)
        return self._gbuffers[configs]

    def _render_missing(self, configs: np.ndarray) -> None:
        missing = np.unique(configs[~self._ready[configs]])
        if missing.size:
            start = time.perf_counter()
            for chunk in np.array_split(missing, max(1, missing.size // 16)):
                sc, rest = np.divmod(chunk, 4 * 15)
                sh, ori = np.divmod(rest, 15)
                self._gbuffers[chunk] = render.render_gbuffers(sc, sh, ori)
                self._ready[chunk] = True
            self.build_seconds += time.perf_counter() - start
            if self._ready.all() and not self._saved:
                self._saved = paths.save_cached_array(*self._cache_files, self._cache_meta, self._gbuffers,
                                                      build_seconds=round(self.build_seconds, 2))

    def precompute(self) -> float:
        """Render (or load) all 480 G-buffers now; returns the seconds spent rendering."""
        self.gbuffers(np.arange(render.NUM_CONFIGS))
        return self.build_seconds

    def device_table(self, chunk: int = 4800) -> tuple[np.ndarray, float]:
        """All 480,000 images rendered for device-resident sampling: (uint8 (480000, 64, 64, 3), scale 1/255).

        Row i is the image of C-order factor index i. 5.9 GB of host memory; renders the G-buffers first if needed
        and composes ``chunk`` images at a time (about 20 s on one idle core).
        """
        self.precompute()
        total = int(np.prod(self.factor_sizes))
        table = np.empty((total, 64, 64, 3), dtype=np.uint8)
        for start in range(0, total, chunk):
            f = np.stack(np.unravel_index(np.arange(start, min(start + chunk, total)), self.factor_sizes), axis=1)
            table[start:start + len(f)] = self.images_uint8(f)
        return table, 1.0 / 255.0

    def memory_bytes(self) -> int:
        return int(self._gbuffers.nbytes)

    def images_uint8(self, all_factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 64, 64, 3) images of full factor vectors (n, 6)."""
        f = np.asarray(all_factors, dtype=np.int64)
        g = self.gbuffers(render.config_index(f[:, 3], f[:, 4], f[:, 5]))
        return render.compose_uint8(g, f[:, 0], f[:, 1], f[:, 2])

    def _render(self, all_factors, random_state):
        f = all_factors
        g = self.gbuffers(render.config_index(f[:, 3], f[:, 4], f[:, 5]))
        return render.compose(g, f[:, 0], f[:, 1], f[:, 2])


class FileShapes3D(ImageTableDataset):
    """Shapes3D from ``3dshapes.h5`` (``images`` uint8 (N, 64, 64, 3), ``labels`` float64 (N, 6))."""

    name = "shapes3d"
    observation_shape = (64, 64, 3)

    def __init__(self, path: str | Path):
        path = Path(path)
        images, labels = _read_h5(path)
        sizes, lookup = grid_lookup(labels, path)
        self._init_state_space(sizes, range(6), FACTOR_NAMES)
        self.images = images
        self._lookup = lookup
        self.source = {"kind": "file", "path": str(path.resolve()), "sha256": paths.cached_sha256(path)}



def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in ("images", "labels") if k not in handle]
            if missing:
                raise UserError(f"{path}: missing dataset(s) {', '.join(missing)} (found {', '.join(handle)})")
            images_ds, labels_ds = handle["images"], handle["labels"]
            if images_ds.ndim != 4 or images_ds.shape[1:] != (64, 64, 3) or images_ds.dtype != np.uint8:
                raise UserError(f"{path}: images must be uint8 (N, 64, 64, 3), got {images_ds.dtype} {images_ds.shape}")
            if labels_ds.ndim != 2 or labels_ds.shape != (images_ds.shape[0], 6):
                raise UserError(f"{path}: labels must have shape ({images_ds.shape[0]}, 6), got {labels_ds.shape}")
            labels = labels_ds[()]
            images = np.empty(images_ds.shape, dtype=np.uint8)
            step = 20000
            for start in range(0, images.shape[0], step):   # chunked read: no second full copy in memory
                images[start:start + step] = images_ds[start:start + step]
    except UserError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable 3dshapes HDF5 file ({exc})") from None
    return images, labels


def grid_lookup(labels: np.ndarray, path: Path | str) -> tuple[list[int], np.ndarray]:
    """Factor sizes from the label values and the row of every C-order state (StateSpaceAtomIndex).

    Each column's distinct values, sorted, are its classes. Raises UserError unless the rows cover the full grid
    exactly once. Returns (sizes, lookup) with ``lookup[state_index] = row``.
    """
    labels = np.asarray(labels)
    classes = np.empty(labels.shape, dtype=np.int64)
    sizes = []
    for j in range(labels.shape[1]):
        values, inverse = np.unique(np.round(labels[:, j], 9), return_inverse=True)
        classes[:, j] = inverse.ravel()
        sizes.append(int(values.size))
    return sizes, state_lookup(classes, sizes, path)


def state_lookup(classes: np.ndarray, sizes, path) -> np.ndarray:
    """``lookup[state] = row`` for factor classes (N, k) that must cover prod(sizes) states exactly once."""
    sizes = [int(s) for s in sizes]
    total = int(np.prod(sizes))
    classes = np.asarray(classes, dtype=np.int64)
    if np.any(classes < 0) or np.any(classes >= np.asarray(sizes)):
        raise UserError(f"{path}: factor values outside the sizes {sizes}")
    states = np.ravel_multi_index(tuple(classes.T), sizes) if classes.size else np.zeros(0, np.int64)
    counts = np.bincount(states, minlength=total)
    if classes.shape[0] != total or np.any(counts != 1):
        raise UserError(f"{path}: incomplete factor grid: {int((counts == 0).sum())} of {total} states missing, "
                        f"{int((counts > 1).sum())} repeated (sizes {sizes}, {classes.shape[0]} rows)")
    lookup = np.empty(total, dtype=np.int64)
    lookup[states] = np.arange(total)
    return lookup


def shapes3d_file(root: Path | None) -> Path | None:
    """The first existing ``3dshapes.h5`` under the data root (``3dshapes/3dshapes.h5``, then ``3dshapes.h5``)."""
    if root is None:
        return None
    for relative in paths.SHAPES3D_FILES:
        if (root / relative).is_file():
            return root / relative
    return None


def make_shapes3d(root: Path | None) -> GroundTruthDataset:
    """The file-backed dataset when ``3dshapes.h5`` exists under ``root``, else the procedural one."""
    path = shapes3d_file(root)
    return FileShapes3D(path) if path is not None else ProceduralShapes3D()
