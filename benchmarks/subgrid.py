"""A dSprites *sub-grid* for GPU benchmarks: real rendered frames, held on the device, ready in seconds.

posX and posY take every ``stride``-th value (stride 4: 3 x 6 x 40 x 8 x 8 = 46,080 frames), so rendering the whole
table takes seconds instead of the minutes of the full 737,280-image table. The training computation per step is
exactly the paper's (batch 64 of 64x64x1 images through the shared architecture); only the pool the batches are drawn
from is smaller, which does not change the cost of a step. Used by ``gpu_pack.py`` and ``precision.py
--dataset dsprites_subgrid``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from training.data.base import GroundTruthDataset  # noqa: E402
from training.data.dsprites_render import render_dsprites  # noqa: E402


class DSpritesSubgrid(GroundTruthDataset):
    """dSprites with posX, posY restricted to every ``stride``-th class: the dataset interface (through
    :class:`training.data.base.GroundTruthDataset`) plus ``device_table()`` (the whole grid as uint8 (rows, 64, 64),
    C order) for :mod:`training.engine.device_data`."""
    name = "dsprites_subgrid"
    source = {"kind": "procedural", "generator": "dsprites sub-grid (benchmark only)"}
    deterministic_render = True

    def __init__(self, stride: int = 4):
        self.stride = int(stride)
        self._init_state_space([3, 6, 40, 32 // self.stride, 32 // self.stride], range(5),
                               ["shape", "scale", "orientation", "posX", "posY"])

    def _render(self, all_factors, random_state):
        f = np.asarray(all_factors)
        images = render_dsprites(f[:, 0], f[:, 1], f[:, 2], f[:, 3] * self.stride, f[:, 4] * self.stride)
        return images[..., None].astype(np.float32)

    def device_table(self):
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in self.factor_sizes], indexing="ij"), -1).reshape(-1, 5)
        return render_dsprites(grid[:, 0], grid[:, 1], grid[:, 2], grid[:, 3] * self.stride,
                               grid[:, 4] * self.stride), 1.0
