"""Device-resident training data: batches drawn on the accelerator from pre-rendered images held in its memory.

On a GPU, drawing training batches with numpy on the host (one ``sample_observations(1, rs)`` per example, as the
reference did) and copying them over costs more than a training step of the small VAE. Here the whole image table
of a dataset lives on the device as uint8 (or bit-packed for the binary dSprites images: 377 MB instead of 3 GB),
and a batch is an index draw, a gather and, for the dSprites variants, the variant transform, all with a
``torch.Generator`` on the device:

* indices: ``randint(num_rows, (B, num))`` for a block of ``B`` = :data:`BLOCK_STEPS` steps at a time. The table
  holds every combination of *all* factors in C order, so a uniform row is exactly a uniform draw of the latent
  factors together with uniform nuisance factors, the distribution ``sample_observations`` draws from;
* ``color_dsprites``: colour ``0.5 + 0.5 * rand(B, num, 1, 1, 3)``, image = sprite * colour (:mod:`training.data.dsprites`
  section 2);
* ``noisy_dsprites``: noise ``rand(num, 64, 64, 3)``, drawn step by step (a block of it would be 150 MB per run),
  image = min(sprite + noise, 1);
* ``scream_dsprites``: ``randint(H - 64, (B, num))`` rows, ``randint(W - 64, (B, num))`` columns,
  ``rand(B, num, 3)`` colour shifts; background = (crop + shift) / 2, inverted (1 - v) where the sprite is on.

A run's generator thus draws, at the first step of each block, the block's draws in the order above, then (noisy
only) each step's noise. Drawing a block at once keeps the host's cost per step of a pack of K runs at K / B generator
calls instead of K (measured at K = 512 on an H200's host: 25 ms of host time per step drawn step by step,
0.3 ms in blocks).

The transforms are the reference's; the random *stream* is torch's, not numpy's, so a device-drawn batch is not the
batch ``RandomState(seed)`` would give: a run trained on device data is the same model family under another data
order, seeded and reproducible (same seed, same device -> same batches). The CPU path (``training.engine.train``) and the
evaluation protocol's numpy draws are untouched by this module.

Entry points: :func:`device_sampler` (a :class:`DeviceSampler` for a dataset, or None when the dataset has no image
table), :class:`DeviceBatches` (one generator per run of a pack) and the pure transforms :func:`unpack_bits`,
:func:`color_transform`, :func:`noisy_transform`, :func:`scream_transform`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

VARIANTS = ("none", "color", "noisy", "scream")
_DSPRITES_VARIANTS = {"dsprites_full": "none", "color_dsprites": "color", "noisy_dsprites": "noisy",
                      "scream_dsprites": "scream"}
_BIT_SHIFTS = (7, 6, 5, 4, 3, 2, 1, 0)   # np.packbits' default big-endian bit order
BLOCK_STEPS = 50   # steps whose draws a run's generator makes at once (part of the stream's definition)


def device_data_seed(seed: int) -> int:
    """The device data stream's seed for a run's ``seed``: a fifth child of ``SeedSequence(seed)``.

    ``training.engine.train.derive_seeds`` uses children 0-3 (init, latent noise, permutation noise, evaluation data), so
    this stream is independent of those.
    """
    child = np.random.SeedSequence(int(seed)).spawn(5)[4]
    return int(child.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


# ----------------------------------------------------------------------------------------------------------------
# pure transforms (tensors in, tensors out; any device)


def unpack_bits(rows: torch.Tensor, height: int = 64, width: int = 64) -> torch.Tensor:
    """Bit-packed images uint8 (n, height*width/8) (``np.packbits`` of each flattened image) -> uint8 (n, H, W)."""
    shifts = torch.tensor(_BIT_SHIFTS, dtype=torch.uint8, device=rows.device)
    bits = (rows.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(rows.shape[0], height, width)


def color_transform(sprites: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """``color_dsprites``: sprites (n, 64, 64) in {0, 1}, uniform (n, 1, 1, 3) in [0, 1) -> (n, 64, 64, 3).

    The colour is ``0.5 + 0.5 * uniform`` (U[0.5, 1) per channel), the image sprite * colour on black.
    """
    return sprites.to(torch.float32).unsqueeze(-1) * (0.5 + 0.5 * uniform)


def noisy_transform(sprites: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``noisy_dsprites``: min(sprite + noise, 1) with sprites (n, 64, 64) in {0, 1}, noise (n, 64, 64, 3)."""
    return torch.clamp(sprites.to(torch.float32).unsqueeze(-1) + noise, max=1.0)


def scream_transform(sprites: torch.Tensor, background: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     shifts: torch.Tensor) -> torch.Tensor:
    """``scream_dsprites``: crop, colour-shift and invert.

    sprites (n, 64, 64) in {0, 1}; background (H, W, 3) float in [0, 1]; rows, cols (n,) int crop offsets;
    shifts (n, 3) in [0, 1). Returns (n, 64, 64, 3): v = (crop + shift) / 2, and 1 - v where the sprite is on.
    """
    offsets = torch.arange(64, device=background.device)
    r = (rows.long().unsqueeze(1) + offsets).unsqueeze(2)   # (n, 64, 1)
    c = (cols.long().unsqueeze(1) + offsets).unsqueeze(1)   # (n, 1, 64)
    patches = background[r, c]                              # (n, 64, 64, 3)
    shifted = (patches + shifts.to(patches.dtype)[:, None, None, :]) / 2.0
    on = sprites.to(torch.bool).unsqueeze(-1)
    return torch.where(on, 1.0 - shifted, shifted).to(torch.float32)


# ----------------------------------------------------------------------------------------------------------------
# the sampler


class DeviceSampler:
    """Draws training batches of one dataset on the device.

    Parameters
    ----------
    table: uint8 tensor on the device holding every image of the dataset's full factor grid in C order:
        (rows, 64, 64) or (rows, 64, 64, C) of pixel values, or (rows, 512) bit-packed binary 64x64 images
        (``bits=True``).
    variant: ``"none"`` (images as stored), or the dSprites variant ``"color"``, ``"noisy"``, ``"scream"`` (the
        table then holds binary sprites).
    scale: multiplies the stored values (1 for 0/1 sprites, 1/255 for 8-bit photographs).
    background: (H, W, 3) float tensor on the device, the Scream background (variant ``"scream"`` only).
    """

    def __init__(self, table: torch.Tensor, variant: str = "none", scale: float = 1.0, bits: bool = False,
                 background: torch.Tensor | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if table.dtype != torch.uint8:
            raise ValueError(f"the image table must be uint8, got {table.dtype}")
        if bits and (table.dim() != 2 or table.shape[1] != 64 * 64 // 8):
            raise ValueError(f"a bit-packed table must have shape (rows, 512), got {tuple(table.shape)}")
        if not bits and (table.dim() not in (3, 4) or tuple(table.shape[1:3]) != (64, 64)):
            raise ValueError(f"an image table must have shape (rows, 64, 64[, C]), got {tuple(table.shape)}")
        if variant != "none" and not bits and table.dim() == 4 and table.shape[3] != 1:
            raise ValueError("the dSprites variants need a table of single-channel sprites")
        if variant == "scream":
            if background is None or background.dim() != 3 or background.shape[2] != 3 \
                    or background.shape[0] <= 64 or background.shape[1] <= 64:
                raise ValueError("variant 'scream' needs a background of shape (H > 64, W > 64, 3)")
            background = background.to(device=table.device, dtype=torch.float32)
        self.table = table
        self.variant = variant
        self.scale = float(scale)
        self.bits = bool(bits)
        self.background = background
        self.num_rows = int(table.shape[0])
        self.device = table.device
        if variant == "none":
            self.channels = 1 if bits or table.dim() == 3 else int(table.shape[3])
        else:
            self.channels = 3

    @property
    def memory_bytes(self) -> int:
        """Device bytes held by the table (and background)."""
        extra = 0 if self.background is None else self.background.numel() * 4
        return int(self.table.numel() * self.table.element_size()) + extra

    def draw(self, num: int, generator: torch.Generator, steps: int | None = None) -> dict[str, torch.Tensor]:
        """The random draws of one batch from ``generator`` (a generator on this sampler's device), in order:
        ``index`` (num,), then the variant's (``uniform`` (num,1,1,3); ``noise`` (num,64,64,3); ``rows``, ``cols``
        (num,), ``shifts`` (num, 3)).

        With ``steps``, the draws of a block of that many batches, each with the leading shape (steps, num), except
        the per-step ``noise`` of the noisy variant, which is left out (draw it with :meth:`draw_noise`)."""
        dev = self.device
        lead = (num,) if steps is None else (steps, num)
        draws = {"index": torch.randint(self.num_rows, lead, generator=generator, device=dev)}
        if self.variant == "color":
            draws["uniform"] = torch.rand(lead + (1, 1, 3), generator=generator, device=dev)
        elif self.variant == "noisy" and steps is None:
            draws["noise"] = self.draw_noise(num, generator)
        elif self.variant == "scream":
            height, width = self.background.shape[:2]
            draws["rows"] = torch.randint(height - 64, lead, generator=generator, device=dev)
            draws["cols"] = torch.randint(width - 64, lead, generator=generator, device=dev)
            draws["shifts"] = torch.rand(lead + (3,), generator=generator, device=dev)
        return draws

    def draw_noise(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """The noisy variant's pixel noise of one batch: (num, 64, 64, 3) uniform in [0, 1)."""
        return torch.rand((num, 64, 64, 3), generator=generator, device=self.device)

    def render(self, draws: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Images for ``draws`` (any leading shape ``S`` of the index): float32 ``S + (64, 64, C)``."""
        index = draws["index"]
        lead = tuple(index.shape)
        flat = index.reshape(-1)
        rows = self.table.index_select(0, flat)
        images = unpack_bits(rows) if self.bits else rows
        if self.variant == "none":
            out = images.to(torch.float32)
            if out.dim() == 3:
                out = out.unsqueeze(-1)
            if self.scale != 1.0:
                out = out * self.scale
        else:
            sprites = images.reshape(-1, 64, 64)
            if self.variant == "color":
                out = color_transform(sprites, draws["uniform"].reshape(-1, 1, 1, 3))
            elif self.variant == "noisy":
                out = noisy_transform(sprites, draws["noise"].reshape(-1, 64, 64, 3))
            else:
                out = scream_transform(sprites, self.background, draws["rows"].reshape(-1),
                                       draws["cols"].reshape(-1), draws["shifts"].reshape(-1, 3))
        return out.reshape(lead + tuple(out.shape[1:]))

    def sample(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """One batch: float32 (num, 64, 64, C) on the device, values in [0, 1]."""
        return self.render(self.draw(int(num), generator))


class DeviceBatches:
    """One device data stream per run of a pack: ``next(runs)`` -> float32 (len(runs), N, 64, 64, C).

    ``seeds`` maps a run's key to its seed; each run gets a ``torch.Generator`` on the sampler's device seeded with
    :func:`device_data_seed`, and draws ``block`` steps' batches at a time (module docstring). A run's batches depend
    only on its own seed and its step, never on the other runs of the pack: every call of ``next`` is one step of
    every run, and a run left out of ``runs`` (it diverged) is never asked for again.
    """

    def __init__(self, sampler: DeviceSampler, batch_size: int, seeds: Mapping[int, int], block: int = BLOCK_STEPS):
        if int(block) < 1:
            raise ValueError(f"block must be at least 1, got {block}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.block = int(block)
        self.generators = {}
        for key, seed in seeds.items():
            g = torch.Generator(device=sampler.device)
            g.manual_seed(device_data_seed(seed))
            self.generators[key] = g
        self.alive = list(self.generators)
        self._step = 0
        self._rows: dict = {}   # run -> its row in the current block's stacked draws
        self._draws: dict[str, torch.Tensor] = {}   # name -> (runs of the block, B, N, ...)

    def make(self) -> tuple[list, torch.Tensor]:
        """``(runs, next(runs))`` for the runs in :attr:`alive` (all, until the caller narrows it), as
        ``training.engine.packed.HostBatches.make``: what a background ``Prefetcher`` draws."""
        runs = list(self.alive)
        return runs, self.next(runs)

    def next(self, runs) -> torch.Tensor:
        runs = list(runs)
        t = self._step % self.block
        if t == 0:
            blocks = [self.sampler.draw(self.batch_size, self.generators[k], steps=self.block) for k in runs]
            self._draws = {name: torch.stack([b[name] for b in blocks]) for name in blocks[0]}
            self._rows = {k: j for j, k in enumerate(runs)}
        self._step += 1
        if list(self._rows) == runs:
            step = {name: d[:, t] for name, d in self._draws.items()}
        else:   # runs left the pack within this block
            index = torch.tensor([self._rows[k] for k in runs], device=self.sampler.device)
            step = {name: d[index, t] for name, d in self._draws.items()}
        if self.sampler.variant == "noisy":
            step["noise"] = torch.stack([self.sampler.draw_noise(self.batch_size, self.generators[k]) for k in runs])
        return self.sampler.render(step)


# ----------------------------------------------------------------------------------------------------------------
# datasets -> samplers


_SAMPLERS: dict[tuple, DeviceSampler] = {}   # (dataset name, source, device) -> sampler, kept for the process


def device_sampler(dataset, device, cache: bool = True) -> DeviceSampler | None:
    """A :class:`DeviceSampler` holding ``dataset``'s whole image table on ``device``, or None when it has none.

    Supported: the four dSprites datasets (their base images: the user's npz as uint8, else the procedural base
    array bit-packed, rendered once and cached on disk by ``training.data.dsprites_base_images``) and any dataset
    object exposing ``device_table() -> (uint8 array (rows, 64, 64[, C]) over the full factor grid in C order,
    scale)``. Other datasets return None (the caller then uses the numpy streams).

    With ``cache`` (default) the sampler of a dSprites dataset is kept per (name, data source, device) for the
    process, so consecutive packs do not upload the table again.
    """
    device = torch.device(device)
    name = getattr(dataset, "name", None)
    key = None
    if cache and name in _DSPRITES_VARIANTS and hasattr(dataset, "base"):
        import json

        key = (name, json.dumps(getattr(dataset, "source", {}), sort_keys=True, default=str), str(device))
        if key in _SAMPLERS:
            return _SAMPLERS[key]
        sampler = device_sampler(dataset, device, cache=False)
        if sampler is not None:
            _SAMPLERS[key] = sampler
        return sampler
    if name in _DSPRITES_VARIANTS and hasattr(dataset, "base"):
        base = dataset.base
        rows = int(np.prod(base.factor_sizes))
        if getattr(base, "array", None) is not None:
            array = np.ascontiguousarray(base.array, dtype=np.uint8)
            if array.shape != (rows, 64, 64):
                return None
            table, bits = torch.from_numpy(array).to(device), False
        else:
            from training.data.dsprites_render import dsprites_base_images

            packed = dsprites_base_images(packed=True)
            if packed.shape[0] != rows:
                return None
            table, bits = torch.from_numpy(np.ascontiguousarray(packed)).to(device), True
        variant = _DSPRITES_VARIANTS[name]
        background = None
        if variant == "scream":
            background = torch.as_tensor(np.asarray(dataset.scream, dtype=np.float32), device=device)
        return DeviceSampler(table, variant=variant, bits=bits, background=background)
    if hasattr(dataset, "device_table"):
        array, scale = dataset.device_table()
        array = np.ascontiguousarray(array, dtype=np.uint8)
        sizes = getattr(dataset, "factor_sizes", None)
        if sizes is not None and array.shape[0] != int(np.prod(sizes)):
            raise ValueError(f"device_table of {name!r} has {array.shape[0]} rows, the factor grid "
                             f"{list(sizes)} needs {int(np.prod(sizes))}")
        return DeviceSampler(torch.from_numpy(array).to(device), variant="none", scale=float(scale))
    return None
