"""The shared architecture's layers for K stacked models at once: pure functions, tensors in, tensors out.

Each function computes, for every run r of a pack, exactly the single-model layer with run r's weights (the
``nn.Conv2d`` / ``nn.ConvTranspose2d`` / ``nn.Linear`` layouts, stacked on a leading run axis K), up to the order of
floating-point sums. Three families, chosen by ``training.packed`` (``impl``):

* ``im2col`` / ``col2im`` around batched matrix products (:func:`packed_conv2d`, :func:`packed_conv_transpose2d`;
  activations (K, N, C, H, W));
* **shifted GEMMs** (:func:`conv4x4_s2`, :func:`conv2x2_s2`, :func:`conv_transpose4x4_s2`; activations channels-last
  (K, N, H, W, C)): every layer becomes ONE batched matrix product per run at the input's resolution, with no im2col
  copy, followed by an elementwise shifted sum. A 4x4 stride-2 convolution is a 2x2 stride-1 convolution of the
  space-to-depth input (2x2 pixel blocks as 4C channels); a 2x2 stride-1 convolution is the product of every pixel
  with all four kernel taps at once, ``P = x @ [W_00 | W_01 | W_10 | W_11]``, then ``out[y, x] = sum_ab P[y+a, x+b,
  ab]`` (:func:`shift_sum_2x2`). A 4x4 stride-2 transposed convolution is a 2x2 stride-1 convolution of the input
  padded by one pixel with 4 x Cout "phase" channels, whose phases are then interleaved (:func:`interleave_phases`).
  The matrix products have the pack as their batch axis and N*H*W rows: large, regular tensor-core work;
* grouped convolutions (:func:`grouped_conv2d`, :func:`grouped_conv_transpose2d`; activations (N, K*C, H, W)).

:func:`packed_linear` is the dense layer of all families.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

# transposed conv k4 s2 p1: output pixel 2i + a sees padded-input pixels i + a + u (u = 0, 1) through kernel tap
# PHASE_TAPS[a][u] (the same taps as ``architecture.conv_transpose_by_phases``)
PHASE_TAPS = ((3, 1), (2, 0))


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K dense layers: x (K, N, I), weight (K, O, I), bias (K, O) -> (K, N, O)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


# ----------------------------------------------------------------------------------------------------------------
# im2col / col2im (activations (K, N, C, H, W))


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


# ----------------------------------------------------------------------------------------------------------------
# shifted GEMMs (activations channels-last (K, N, H, W, C))


class _ShiftSum2x2(torch.autograd.Function):
    """out[:, y, x] = sum_ab p[:, y + a, x + b, a, b]; backward: each tap's slice of the gradient written once."""

    @staticmethod
    def forward(ctx, p):
        ctx.shape = p.shape
        h, w = p.shape[1] - 1, p.shape[2] - 1
        out = p[:, :h, :w, 0, 0] + p[:, :h, 1:, 0, 1]
        out += p[:, 1:, :w, 1, 0]
        out += p[:, 1:, 1:, 1, 1]
        return out

    @staticmethod
    def backward(ctx, grad):
        h, w = grad.shape[1], grad.shape[2]
        gp = grad.new_zeros(ctx.shape)
        for a in (0, 1):
            for b in (0, 1):
                gp[:, a:a + h, b:b + w, a, b] = grad
        return gp


class _Unfold2x2(torch.autograd.Function):
    """out[:, y, x, a, b] = x[:, y + a, x + b]; backward: the four slices of the gradient added back in place."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        h, w = x.shape[1] - 1, x.shape[2] - 1
        out = x.new_empty((x.shape[0], h, w, 2, 2) + tuple(x.shape[3:]))
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, :, a, b] = x[:, a:a + h, b:b + w]
        return out

    @staticmethod
    def backward(ctx, grad):
        h, w = grad.shape[1], grad.shape[2]
        gx = grad.new_zeros(ctx.shape)
        for a in (0, 1):
            for b in (0, 1):
                gx[:, a:a + h, b:b + w] += grad[:, :, :, a, b]
        return gx


def shift_sum_2x2(p: torch.Tensor) -> torch.Tensor:
    """p (M, H, W, 2, 2, ...) holds each pixel's product with the four taps (a, b) of a 2x2 kernel; returns the
    'valid' stride-1 convolution (M, H - 1, W - 1, ...): ``out[:, y, x] = sum_ab p[:, y + a, x + b, a, b]``."""
    return _ShiftSum2x2.apply(p)


def unfold_2x2(x: torch.Tensor) -> torch.Tensor:
    """The 2x2 windows of x (M, H, W, ...): (M, H - 1, W - 1, 2, 2, ...) with ``out[:, y, x, a, b] = x[:, y + a,
    x + b]`` (im2col for a 2x2 stride-1 kernel)."""
    return _Unfold2x2.apply(x)


class _InterleavePhases(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c):
        ctx.shape = c.shape
        m, h, w = c.shape[0], c.shape[1] - 1, c.shape[2] - 1
        out = c.new_empty((m, h, 2, w, 2) + tuple(c.shape[5:]))
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, a, :, b] = c[:, a:a + h, b:b + w, a, b]
        return out.view((m, 2 * h, 2 * w) + tuple(c.shape[5:]))

    @staticmethod
    def backward(ctx, grad):
        m, h, w = ctx.shape[0], ctx.shape[1] - 1, ctx.shape[2] - 1
        g = grad.reshape((m, h, 2, w, 2) + tuple(ctx.shape[5:]))
        gc = grad.new_zeros(ctx.shape)
        for a in (0, 1):
            for b in (0, 1):
                gc[:, a:a + h, b:b + w, a, b] = g[:, :, a, :, b]
        return gc


def interleave_phases(c: torch.Tensor) -> torch.Tensor:
    """c (M, H + 1, W + 1, 2, 2, ...) holds the four output phases (a, b) of a stride-2 transposed convolution,
    phase (a, b) of output pixel (2i + a, 2j + b) at c[:, i + a, j + b, a, b]; returns (M, 2H, 2W, ...)."""
    return _InterleavePhases.apply(c)


def conv2x2_valid(x: torch.Tensor, taps: torch.Tensor, form: str = "auto") -> torch.Tensor:
    """K 2x2 stride-1 'valid' convolutions (no bias): x (K, N, H, W, C), taps (K, 2, 2, C, O) with
    ``out[r, n, y, x] = sum_ab x[r, n, y + a, x + b] @ taps[r, a, b]`` -> (K, N, H - 1, W - 1, O).

    Two forms, one batched matrix product each, chosen by the smaller intermediate tensor (``form="auto"``):
    ``"unfold"`` gathers the 2x2 windows (4C values per output pixel) and multiplies by taps (4C, O); ``"shift"``
    multiplies every input pixel by all four taps at once, (C, 4O), and adds the four shifted products
    (:func:`shift_sum_2x2`). Few input channels favour the first (the 1-channel image layer), few output channels the
    second.
    """
    k, n, h, w, c = x.shape
    o = taps.shape[-1]
    if form == "auto":
        form = "unfold" if c <= o else "shift"
    if form == "unfold":
        cols = unfold_2x2(x.reshape(k * n, h, w, c)).reshape(k, n * (h - 1) * (w - 1), 4 * c)
        return torch.bmm(cols, taps.reshape(k, 4 * c, o)).view(k, n, h - 1, w - 1, o)
    if form != "shift":
        raise ValueError(f"form must be 'auto', 'unfold' or 'shift', got {form!r}")
    p = torch.bmm(x.reshape(k, n * h * w, c), taps.permute(0, 3, 1, 2, 4).reshape(k, c, 4 * o))
    return shift_sum_2x2(p.view(k * n, h, w, 2, 2, o)).view(k, n, h - 1, w - 1, o)


def _space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(K, N, H, W, C) with even H, W -> (K, N, H/2, W/2, 4C), channel order (dy, dx, c)."""
    k, n, h, w, c = x.shape
    return x.reshape(k, n, h // 2, 2, w // 2, 2, c).transpose(3, 4).reshape(k, n, h // 2, w // 2, 4 * c)


def _pad1(x: torch.Tensor) -> torch.Tensor:
    """(K, N, H, W, C) -> (K, N, H + 2, W + 2, C), one zero pixel on each side."""
    return F.pad(x, (0, 0, 1, 1, 1, 1))


def conv4x4_s2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, form: str = "auto") -> torch.Tensor:
    """K convolutions with 4x4 kernels, stride 2, padding 1: x (K, N, H, W, C) with even H, W; weight
    (K, O, C, 4, 4) (``nn.Conv2d`` layout per run); bias (K, O) -> (K, N, H/2, W/2, O).

    A 2x2 stride-1 convolution (:func:`conv2x2_valid`) of the padded input's space-to-depth form: kernel tap
    (ky, kx) = (2a + dy, 2b + dx) is tap block (a, b), input channel (dy, dx, c).
    """
    k, o, c = weight.shape[:3]
    # (K, O, C, a, dy, b, dx) -> (K, a, b, dy, dx, C, O)
    taps = weight.reshape(k, o, c, 2, 2, 2, 2).permute(0, 3, 5, 4, 6, 2, 1).reshape(k, 2, 2, 4 * c, o)
    out = conv2x2_valid(_space_to_depth(_pad1(x)), taps, form)
    return out + bias.view(k, 1, 1, 1, o).to(out.dtype)


def conv2x2_s2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K convolutions with 2x2 kernels, stride 2, no padding: the blocks do not overlap, so this is space-to-depth
    and one batched matrix product. x (K, N, H, W, C), weight (K, O, C, 2, 2), bias (K, O) -> (K, N, H/2, W/2, O)."""
    k, n, h, w, c = x.shape
    o = weight.shape[1]
    s2d = _space_to_depth(x).reshape(k, n * (h // 2) * (w // 2), 4 * c)
    taps = weight.permute(0, 3, 4, 2, 1).reshape(k, 4 * c, o)               # (K, dy, dx, C, O)
    return torch.baddbmm(bias.unsqueeze(1), s2d, taps).view(k, n, h // 2, w // 2, o)


_TAP_INDEX: dict[str, torch.Tensor] = {}


def conv_transpose4x4_s2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         form: str = "auto") -> torch.Tensor:
    """K transposed convolutions with 4x4 kernels, stride 2, padding 1: x (K, N, H, W, Cin); weight
    (K, Cin, O, 4, 4) (``nn.ConvTranspose2d`` layout per run); bias (K, O) -> (K, N, 2H, 2W, O).

    Output pixel (2i + a, 2j + b) sums padded-input pixels (i + a + u, j + b + v), u, v in {0, 1}, through kernel
    taps (PHASE_TAPS[a][u], PHASE_TAPS[b][v]): a 2x2 stride-1 convolution (:func:`conv2x2_valid`) of the padded
    input with output channels (a, b, o), whose phases are then interleaved (:func:`interleave_phases`).
    """
    k, n, h, w, c = x.shape
    o = weight.shape[2]
    key = str(weight.device)
    if key not in _TAP_INDEX:
        _TAP_INDEX[key] = torch.tensor(PHASE_TAPS, device=weight.device).T      # [u, a]
    t = _TAP_INDEX[key]
    # weight[..., t[u, a], t[v, b]] -> (K, Cin, O, u, a, v, b) -> (K, u, v, Cin, a, b, O)
    taps = weight[:, :, :, t[:, :, None, None], t[None, None, :, :]].permute(0, 3, 5, 1, 4, 6, 2)
    phases = conv2x2_valid(_pad1(x), taps.reshape(k, 2, 2, c, 4 * o), form)   # (K, N, H + 1, W + 1, 4O)
    out = interleave_phases(phases.view(k * n, h + 1, w + 1, 2, 2, o)).view(k, n, 2 * h, 2 * w, o)
    return out + bias.view(k, 1, 1, 1, o).to(out.dtype)


# ----------------------------------------------------------------------------------------------------------------
# grouped convolutions (activations (N, K*C, H, W), channels-last in memory)


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
