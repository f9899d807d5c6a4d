"""``get_dataset``: the seven study datasets by name, from the user's files when present, else procedural.

Where the data come from: dSprites and its three variants and Shapes3D have procedural generators and
use a real file when one is found under the data root; SmallNORB and Cars3D need the user's files and raise
:class:`~training.errors.DataMissingError` naming the expected paths otherwise. Dataset objects are cached per
(name, data root) within a process, so the study runner may call :func:`get_dataset` for every run.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from training.data import paths
from training.data.base import GroundTruthDataset
from training.vocabulary import DATASETS

_CACHE: dict[tuple[str, str | None], GroundTruthDataset] = {}


def _dsprites_images(root: Path | None):
    from training.data import dsprites

    if root is not None and (root / paths.DSPRITES_FILE).is_file():
        return dsprites.npz_images(root / paths.DSPRITES_FILE)
    return dsprites.procedural_images()


def _build_dsprites_full(root):
    from training.data.dsprites import DSprites
    return DSprites(_dsprites_images(root))


def _build_color(root):
    from training.data.dsprites import ColorDSprites
    return ColorDSprites(_dsprites_images(root))


def _build_noisy(root):
    from training.data.dsprites import NoisyDSprites
    return NoisyDSprites(_dsprites_images(root))


def _build_scream(root):
    from training.data.dsprites import ScreamDSprites, scream_path_in
    return ScreamDSprites(_dsprites_images(root), scream_path=scream_path_in(root))


def _build_shapes3d(root):
    from training.data import shapes3d
    return shapes3d.make_shapes3d(root)


def _build_cars3d(root):
    from training.data import cars3d
    return cars3d.make_cars3d(root)


def _build_smallnorb(root):
    from training.data import smallnorb
    return smallnorb.make_smallnorb(root)


BUILDERS: dict[str, Callable[[Path | None], GroundTruthDataset]] = {
    "dsprites_full": _build_dsprites_full,
    "color_dsprites": _build_color,
    "noisy_dsprites": _build_noisy,
    "scream_dsprites": _build_scream,
    "smallnorb": _build_smallnorb,
    "cars3d": _build_cars3d,
    "shapes3d": _build_shapes3d,
}
assert tuple(BUILDERS) == DATASETS


def get_dataset(name: str, data_dir: str | os.PathLike | None = None) -> GroundTruthDataset:
    """The dataset ``name`` (one of :data:`training.vocabulary.DATASETS`) with the dataset interface of :mod:`training.data.base`.

    ``data_dir`` overrides the data root (else ``$DSTUDY_DATA``, else ``$DISENTANGLEMENT_LIB_DATA``). The object is
    cached per (name, resolved data root): later calls return the same object.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid names).
        DataMissingError: ``smallnorb`` / ``cars3d`` without files (the message names the expected paths).
        UserError: a present file is corrupt, truncated or incomplete.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    root = paths.data_root(data_dir)
    key = (name, str(root.resolve()) if root is not None else None)
    dataset = _CACHE.get(key)
    if dataset is None:
        dataset = BUILDERS[name](root)
        _CACHE[key] = dataset
    return dataset


def clear_cache() -> None:
    """Forget every cached dataset object (e.g. after files under the data root changed)."""
    _CACHE.clear()
    from training.data import dsprites
    dsprites._load_npz_cached.cache_clear()
