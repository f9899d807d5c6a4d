"""The study's seven ground-truth datasets behind one interface (:mod:`training.data.base`).

Entry points: :func:`get_dataset` (by vocabulary name, cached per data root), :func:`render_dsprites` (pure,
vectorised dSprites renderer for factor classes) and :func:`dsprites_base_images` (the whole 737,280-image base array,
cached on disk). Each dataset's module says what it reproduces and where it departs.
"""
from training.data.dsprites_render import dsprites_base_images, render_dsprites
from training.data.registry import clear_cache, get_dataset

__all__ = ["get_dataset", "clear_cache", "render_dsprites", "dsprites_base_images"]
