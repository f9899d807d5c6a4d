"""SmallNORB (``smallnorb``) from the user's binary-matrix files (LeCun et al. 2004, as disentanglement_lib reads them); no generator.

Files under ``<root>/small_norb/`` (plain ``.mat`` or gzipped ``.mat.gz``)::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat

As in the reference: training then testing, the first image of each stereo pair, features [category, instance,
elevation, azimuth / 2, lighting]; latent factors category, elevation, azimuth, lighting; *instance* is an observation
factor redrawn on every call. Factor sizes are max + 1 of each feature column (5, 10, 9, 18, 6 for the real files) and
the rows must cover that grid exactly once. Images are resized 96 -> 64 with Pillow LANCZOS in mode "L" (uint8,
clipped; the reference's int8/mode-"I" path can leave [0, 1] slightly) and kept uint8 in memory.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from training.data import binary_matrix, paths
from training.data.base import ImageTableDataset
from training.data.shapes3d import state_lookup
from training.errors import DataMissingError, UserError

CHUNKS = ("smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing")
KINDS = ("dat", "cat", "info")
ALL_FACTOR_NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
LATENT_FACTOR_INDICES = (0, 2, 3, 4)
CACHE_VERSION = 1


def expected_files(folder: Path) -> list[Path]:
    return [folder / f"{chunk}-{kind}.mat" for chunk in CHUNKS for kind in KINDS]


def find_files(folder: Path) -> dict[tuple[str, str], Path]:
    """The present file for each (chunk, kind): ``.mat`` preferred over ``.mat.gz``."""
    found = {}
    for chunk in CHUNKS:
        for kind in KINDS:
            for suffix in (".mat", ".mat.gz"):
                candidate = folder / f"{chunk}-{kind}{suffix}"
                if candidate.is_file():
                    found[(chunk, kind)] = candidate
                    break
    return found


def resize_images(images: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W) -> uint8 (n, 64, 64) with Pillow LANCZOS in mode "L"."""
    from PIL import Image

    out = np.empty((images.shape[0], 64, 64), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(image), mode="L").resize((64, 64), Image.LANCZOS))
    return out


def read_chunk(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """One chunk's first-camera images uint8 (n, 96, 96) and features int64 (n, 5) (azimuth not yet halved)."""
    dat = binary_matrix.read(files["dat"])
    cat = binary_matrix.read(files["cat"])
    info = binary_matrix.read(files["info"])
    if dat.dtype != np.uint8 or dat.ndim != 4 or dat.shape[1] != 2:
        raise UserError(f"{files['dat']}: expected uint8 images (n, 2, H, W), got {dat.dtype} {dat.shape}")
    if cat.ndim != 1 or cat.shape[0] != dat.shape[0] or not np.issubdtype(cat.dtype, np.integer):
        raise UserError(f"{files['cat']}: expected {dat.shape[0]} integer categories, got {cat.dtype} {cat.shape}")
    if info.ndim != 2 or info.shape != (dat.shape[0], 4) or not np.issubdtype(info.dtype, np.integer):
        raise UserError(f"{files['info']}: expected integer info ({dat.shape[0]}, 4), got {info.dtype} {info.shape}")
    return dat[:, 0], np.column_stack([cat, info]).astype(np.int64)


class SmallNORB(ImageTableDataset):
    """SmallNORB from the binary-matrix files in ``folder``; see the module docstring."""

    name = "smallnorb"
    observation_shape = (64, 64, 1)

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        found = find_files(folder)
        missing = [f"{chunk}-{kind}.mat[.gz]" for chunk in CHUNKS for kind in KINDS if (chunk, kind) not in found]
        if missing:
            raise DataMissingError(f"smallnorb: missing file(s) in {folder}: {', '.join(missing)}")
        ordered = [found[(chunk, kind)] for chunk in CHUNKS for kind in KINDS]
        checksums = {p.name: paths.cached_sha256(p) for p in ordered}
        combined = hashlib.sha256("".join(f"{k}:{v};" for k, v in checksums.items()).encode()).hexdigest()
        features, stored = [], []
        for chunk in CHUNKS:
            raw, chunk_features = read_chunk({kind: found[(chunk, kind)] for kind in KINDS})
            stored.append(raw)
            features.append(chunk_features)
        features = np.concatenate(features, axis=0)
        if np.any(features[:, 3] % 2):
            raise UserError(f"{folder}: azimuth values must be even (0, 2, ..., 34)")
        features[:, 3] //= 2
        if np.any(features < 0):
            raise UserError(f"{folder}: negative factor values in the cat/info files")
        sizes = [int(s) for s in features.max(axis=0) + 1]
        self._lookup = state_lookup(features, sizes, folder)
        self._init_state_space(sizes, LATENT_FACTOR_INDICES, ALL_FACTOR_NAMES)
        total = features.shape[0]
        cache = paths.cache_dir() / f"smallnorb_{combined[:16]}_v{CACHE_VERSION}"
        meta = {"source_sha256": combined, "version": CACHE_VERSION}
        images = paths.load_cached_array(cache.with_suffix(".npy"), cache.with_suffix(".json"), meta,
                                         (total, 64, 64), np.uint8)
        if images is None:
            images = np.concatenate([resize_images(raw) for raw in stored], axis=0)
            paths.save_cached_array(cache.with_suffix(".npy"), cache.with_suffix(".json"), meta, images)
        self.images = images
        self.source = {"kind": "files", "path": str(folder.resolve()), "files": checksums, "sha256": combined,
                       "resize": "PIL LANCZOS 96->64, mode L (uint8, clipped)"}



def make_smallnorb(root: Path | None) -> SmallNORB:
    """SmallNORB from ``<root>/small_norb``; DataMissingError naming the expected files when they are absent."""
    if root is None:
        names = ", ".join(p.name for p in expected_files(Path("small_norb")))
        raise DataMissingError(
            "smallnorb needs the original files and no data root is set: pass --data-dir / data_dir= or set "
            f"DSTUDY_DATA (or DISENTANGLEMENT_LIB_DATA); expected <root>/small_norb/ with {names} (.gz accepted)")
    folder = root / paths.SMALLNORB_DIR
    if not find_files(folder):
        listing = ", ".join(str(p) for p in expected_files(folder))
        raise DataMissingError(f"smallnorb: no files found; expected {listing} (or the same names with .gz)")
    return SmallNORB(folder)
