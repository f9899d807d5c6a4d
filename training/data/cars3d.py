"""Cars3D (``cars3d``) from the user's ``.mat`` files (Reed et al. 2015, as disentanglement_lib reads them); no generator.

Files: ``<root>/cars/car_XXX_mesh.mat`` (183 in the original archive), each with ``im`` uint8 (H, W, 3, azimuth,
elevation) = (128, 128, 3, 24, 4). Object ids: the order of ``list.txt`` (names without extension) when present,
else the sorted file names (the reference used the unsorted directory listing, which depends on the filesystem).
Factors elevation (4), azimuth (24), object (N), all latent, index 4392 elev + 183 azim + obj for the full set.
Sizes come from the files, so small fixtures work. Images are resized to 64x64 with Pillow LANCZOS and kept uint8.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from training.data import paths
from training.data.base import ImageTableDataset
from training.data.shapes3d import state_lookup
from training.errors import DataMissingError, UserError

FACTOR_NAMES = ("elevation", "azimuth", "object")
CACHE_VERSION = 1


def object_files(folder: Path) -> tuple[list[Path], str]:
    """The .mat files in object-id order and how the order was decided (``"list.txt"`` or ``"sorted names"``)."""
    listing = folder / "list.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        files = []
        for name in names:
            path = folder / (name if name.endswith(".mat") else f"{name}.mat")
            if not path.is_file():
                raise UserError(f"{listing}: lists {name!r} but {path} does not exist")
            files.append(path)
        if len(set(files)) != len(files):
            raise UserError(f"{listing}: lists a file more than once")
        return files, "list.txt"
    return sorted(p for p in folder.iterdir() if ".mat" in p.name and p.is_file()), "sorted names"


def read_mat(path: Path) -> np.ndarray:
    """``im`` of one car file: uint8 (H, W, 3, azimuth, elevation)."""
    import scipy.io

    try:
        content = scipy.io.loadmat(path, variable_names=["im"])
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError or its own errors for corrupt files
        raise UserError(f"{path}: not a readable .mat file ({type(exc).__name__}: {exc})") from None
    if "im" not in content:
        raise UserError(f"{path}: no 'im' array")
    im = content["im"]
    if im.ndim != 5 or im.shape[2] != 3:
        raise UserError(f"{path}: 'im' must have shape (H, W, 3, azimuth, elevation), got {im.shape}")
    if im.dtype != np.uint8:
        if not np.issubdtype(im.dtype, np.number) or im.min() < 0 or im.max() > 255:
            raise UserError(f"{path}: 'im' must hold uint8 pixel values, got {im.dtype}")
        im = im.astype(np.uint8)
    return im


def resize_car(im: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3, A, E) -> uint8 (E, A, 64, 64, 3), Pillow LANCZOS per view."""
    from PIL import Image

    height, width, _, n_azimuth, n_elevation = im.shape
    out = np.empty((n_elevation, n_azimuth, 64, 64, 3), dtype=np.uint8)
    for e in range(n_elevation):
        for a in range(n_azimuth):
            view = np.ascontiguousarray(im[:, :, :, a, e])
            if (height, width) == (64, 64):
                out[e, a] = view
            else:
                out[e, a] = np.asarray(Image.fromarray(view, mode="RGB").resize((64, 64), Image.LANCZOS))
    return out


class Cars3D(ImageTableDataset):
    """Cars3D from the .mat files in ``folder``; see the module docstring."""

    name = "cars3d"
    observation_shape = (64, 64, 3)

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        files, order = object_files(folder)
        if not files:
            raise DataMissingError(f"cars3d: no .mat files in {folder}; expected {folder}/car_XXX_mesh.mat")
        checksums = [paths.cached_sha256(p) for p in files]
        combined = hashlib.sha256("".join(f"{p.name}:{c};" for p, c in zip(files, checksums)).encode()).hexdigest()
        cache = paths.cache_dir() / f"cars3d_{combined[:16]}_v{CACHE_VERSION}"
        meta = {"source_sha256": combined, "version": CACHE_VERSION}
        images = None
        shape_file = cache.with_suffix(".json")
        try:
            stored = json.loads(shape_file.read_text())
            grid = tuple(stored["grid"])
            images = paths.load_cached_array(cache.with_suffix(".npy"), shape_file, meta,
                                             (int(np.prod(grid)), 64, 64, 3), np.uint8)
        except (OSError, ValueError, KeyError, TypeError):
            images = None
        if images is None:
            per_object, grid = [], None
            for path in files:
                im = read_mat(path)
                if grid is None:
                    grid = (im.shape[4], im.shape[3])
                elif (im.shape[4], im.shape[3]) != grid:
                    raise UserError(f"{path}: {im.shape[4]} elevations x {im.shape[3]} azimuths, but "
                                    f"{files[0].name} has {grid[0]} x {grid[1]}: incomplete grid")
                per_object.append(resize_car(im))
            # (object, E, A, ...) -> (E, A, object, ...): C order elevation, azimuth, object
            images = np.ascontiguousarray(np.stack(per_object, axis=2)).reshape(-1, 64, 64, 3)
            del per_object
            grid = (grid[0], grid[1], len(files))
            paths.save_cached_array(cache.with_suffix(".npy"), shape_file, meta, images, grid=list(grid))
        sizes = list(grid)
        features = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
        self._lookup = state_lookup(features, sizes, folder)   # the reference's full-grid check (identity here)
        self._init_state_space(sizes, range(3), FACTOR_NAMES)
        self.images = images
        self.source = {"kind": "files", "path": str(folder.resolve()), "num_files": len(files),
                       "object_order": order, "sha256": combined, "resize": "PIL LANCZOS to 64x64 (uint8)"}



def make_cars3d(root: Path | None) -> Cars3D:
    """Cars3D from ``<root>/cars``; DataMissingError naming the expected path when no files are there."""
    if root is None:
        raise DataMissingError(
            "cars3d needs the original files and no data root is set: pass --data-dir / data_dir= or set "
            "DSTUDY_DATA (or DISENTANGLEMENT_LIB_DATA); expected <root>/cars/car_XXX_mesh.mat (+ optional list.txt) "
            "from nips2015-analogy-data.tar.gz (data/cars/)")
    folder = root / paths.CARS3D_DIR
    if not folder.is_dir() or not any(".mat" in p.name for p in folder.iterdir()):
        raise DataMissingError(f"cars3d: no files found; expected {folder}/car_XXX_mesh.mat (+ optional list.txt)")
    return Cars3D(folder)
