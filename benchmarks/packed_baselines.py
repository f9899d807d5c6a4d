"""The packed engine's comparison baselines: three more ways to run a pack's K networks, kept out of the engine.

``training.engine.packed`` trains with impls "loop" (the CPU default), "gemm" (the CUDA default) and "triton". The
baselines below were measured against them (``train_many.py``, ``gpu_pack.py``, ``precision.py``); each is a
subclass of ``PackedModels`` that ``train_packed`` takes as ``models``:

* "vmap" (:class:`VmapPackedModels`): ``torch.func.vmap`` over a ``functional_call`` of the shared architecture
  (convolutions become grouped convolutions, dense layers batched matrix products);
* "bmm" (:class:`BmmPackedModels`): im2col / col2im around batched matrix products, activations (K, N, C, H, W);
* "grouped" (:class:`GroupedPackedModels`): grouped convolutions without vmap, activations (N, K*C, H, W),
  channels-last in memory.

Like the engine's own impls, each trains every run of a pack as ``train_model`` trains it alone, up to the order of
floating-point sums (``tests/test_packed_equivalence.py``). Use::

    from benchmarks.packed_baselines import train_packed_any
    models = train_packed_any(dataset, "beta_vae", runs, steps, impl="vmap")   # or any engine impl
"""
from __future__ import annotations

import torch
from torch.func import vmap
from torch.nn import functional as F

from training.engine.packed import DECODER_CONVS, ENCODER_CONVS, PackedModels, train_packed

BASELINE_IMPLS = ("vmap", "bmm", "grouped")
#: every impl a benchmark may name: the engine's, then the baselines
ALL_IMPLS = PackedModels.IMPLS + BASELINE_IMPLS
ENCODER_PADDING = dict(zip(ENCODER_CONVS, (1, 1, 0, 0)))   # stride 2; the decoder's: stride 2, padding 1


class _Baseline(PackedModels):
    """A PackedModels class that runs one baseline impl, its default."""

    @classmethod
    def default_impl(cls, device: torch.device) -> str:
        return cls.IMPLS[0]


class VmapPackedModels(_Baseline):
    """impl "vmap": every run's :meth:`run_networks` at once under ``torch.func.vmap``."""

    IMPLS = ("vmap",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._vmapped_networks = vmap(self.run_networks, randomness="error")

    def networks(self, x, eps, perm):
        return self._vmapped_networks(self.vae_params, self.disc_params, x, eps, perm)


class BmmPackedModels(_Baseline):
    """impl "bmm": the engine's stacked forward pass with im2col / col2im convolutions (:func:`packed_conv2d`,
    :func:`packed_conv_transpose2d`) on (K, N, C, H, W) activations."""

    IMPLS = ("bmm",)

    def conv_encoder(self, x):
        k, n = x.shape[:2]
        h = x
        for name in ENCODER_CONVS:
            h = torch.relu(packed_conv2d(h, *self.conv_params(f"encoder.{name}"), 2, ENCODER_PADDING[name]))
        return h.reshape(k, n, -1)

    def conv_decoder(self, h):
        for name in DECODER_CONVS:
            h = packed_conv_transpose2d(h, *self.conv_params(f"decoder.{name}"), 2, 1)
            h = h if name == DECODER_CONVS[-1] else torch.relu(h)
        return h


class GroupedPackedModels(_Baseline):
    """impl "grouped": the engine's stacked forward pass with grouped convolutions (:func:`grouped_conv2d`,
    :func:`grouped_conv_transpose2d`) on (N, K*C, H, W) activations, channels-last in memory."""

    IMPLS = ("grouped",)

    def conv_encoder(self, x):
        k, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, -1, 64, 64).contiguous(memory_format=torch.channels_last)
        for name in ENCODER_CONVS:
            h = torch.relu(grouped_conv2d(h, *self.conv_params(f"encoder.{name}"), 2, ENCODER_PADDING[name]))
        return h.reshape(n, k, -1).transpose(0, 1)

    def conv_decoder(self, h):
        k, n = h.shape[:2]
        h = h.transpose(0, 1).reshape(n, k * 64, 4, 4).contiguous(memory_format=torch.channels_last)
        for name in DECODER_CONVS:
            h = grouped_conv_transpose2d(h, *self.conv_params(f"decoder.{name}"), 2, 1)
            h = h if name == DECODER_CONVS[-1] else torch.relu(h)
        return h.reshape(n, k, -1, 64, 64).transpose(0, 1)


BASELINES = {"vmap": VmapPackedModels, "bmm": BmmPackedModels, "grouped": GroupedPackedModels}


def models_for(impl: str | None) -> type[PackedModels]:
    """The class that runs ``impl``: a baseline's, else the engine's ``PackedModels`` (which checks the name)."""
    return BASELINES.get(impl, PackedModels)


def train_packed_any(dataset, method: str, runs, steps: int, batch_size: int = 64, device=None, options=None, *,
                     impl: str | None = None, **kwargs):
    """``train_packed`` with any impl of :data:`ALL_IMPLS` (None: the engine's device default)."""
    if impl in BASELINES:
        return train_packed(dataset, method, runs, steps, batch_size, device, options, models=BASELINES[impl],
                            **kwargs)
    return train_packed(dataset, method, runs, steps, batch_size, device, options, impl=impl, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# the baselines' layers, for K stacked models at once (the ``nn.Conv2d`` / ``nn.ConvTranspose2d`` weight layouts
# stacked on a leading run axis K)


def packed_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """K convolutions at once as im2col + batched matrix product.

    x (K, N, C, H, W), weight (K, O, C, kh, kw) (``nn.Conv2d`` layout per run), bias (K, O) -> (K, N, O, Ho, Wo).
    """
    k, n, c, h, w = x.shape
    out_c, kh, kw = weight.shape[1], weight.shape[3], weight.shape[4]
    cols = F.unfold(x.reshape(k * n, c, h, w), (kh, kw), stride=stride, padding=padding)   # (K*N, C*kh*kw, L)
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = cols.view(k, n, c * kh * kw, ho * wo)
    out = torch.matmul(weight.reshape(k, 1, out_c, c * kh * kw), cols) + bias.view(k, 1, out_c, 1)
    return out.view(k, n, out_c, ho, wo)


def packed_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                            padding: int) -> torch.Tensor:
    """K transposed convolutions at once as a batched matrix product + col2im.

    x (K, N, Cin, H, W), weight (K, Cin, Cout, kh, kw) (``nn.ConvTranspose2d`` layout per run), bias (K, Cout)
    -> (K, N, Cout, Ho, Wo) with Ho = (H - 1) * stride - 2 * padding + kh.
    """
    k, n, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[2], weight.shape[3], weight.shape[4]
    w_t = weight.reshape(k, 1, c_in, c_out * kh * kw).transpose(2, 3)                      # (K, 1, Cout*kh*kw, Cin)
    cols = torch.matmul(w_t, x.reshape(k, n, c_in, h * w))                                # (K, N, Cout*kh*kw, H*W)
    ho, wo = (h - 1) * stride - 2 * padding + kh, (w - 1) * stride - 2 * padding + kw
    out = F.fold(cols.reshape(k * n, c_out * kh * kw, h * w), (ho, wo), (kh, kw), stride=stride, padding=padding)
    return out.view(k, n, c_out, ho, wo) + bias.view(k, 1, c_out, 1, 1)


def grouped_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                   padding: int) -> torch.Tensor:
    """x (N, K*C, H, W), weight (K, O, C, kh, kw), bias (K, O) -> (N, K*O, Ho, Wo): one convolution with K groups."""
    k, o = weight.shape[:2]
    return F.conv2d(x, weight.reshape((k * o,) + tuple(weight.shape[2:])), bias.reshape(k * o), stride, padding,
                    groups=k)


def grouped_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                             padding: int) -> torch.Tensor:
    """x (N, K*Cin, H, W), weight (K, Cin, O, kh, kw), bias (K, O) -> (N, K*O, Ho, Wo): K groups."""
    k, c_in, o = weight.shape[:3]
    return F.conv_transpose2d(x, weight.reshape((k * c_in, o) + tuple(weight.shape[3:])), bias.reshape(k * o),
                              stride, padding, groups=k)
