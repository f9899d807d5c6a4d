"""The shared architecture's layers for K stacked models at once: pure functions, tensors in, tensors out.

Each function computes, for every run r of a pack, exactly the single-model layer with run r's weights (the
``nn.Conv2d`` / ``nn.ConvTranspose2d`` / ``nn.Linear`` layouts, stacked on a leading run axis K), up to the order of
floating-point sums. They are the layers of ``training.engine.packed``'s impl "gemm" (and of impl "triton" where a
layer runs gemm's kernels):

* **shifted GEMMs** (:func:`conv4x4_s2`, :func:`conv2x2_s2`, :func:`conv_transpose4x4_s2`; activations channels-last
  (K, N, H, W, C); weights as the matrices the products consume, :func:`gemm_matrix`): every layer is ONE batched
  matrix product per run, the pack as its batch axis and N*H*W rows, with a gather before it or an elementwise
  shifted sum after it. A 4x4 stride-2 convolution is a 2x2 stride-1 convolution of the space-to-depth input (2x2
  pixel blocks as 4C channels). A 2x2 stride-1 convolution is either the product of its gathered 2x2 windows
  (:func:`unfold_2x2`, 4C values per pixel) or the product of every pixel with all four kernel taps at once,
  ``P = x @ [W_00 | W_01 | W_10 | W_11]``, then ``out[y, x] = sum_ab P[y+a, x+b, ab]`` (:func:`shift_sum_2x2`),
  whichever intermediate tensor is smaller (:func:`gemm_form`). A 4x4 stride-2 transposed convolution is a 2x2
  stride-1 convolution of the input padded by one pixel with 4 x Cout "phase" channels, whose phases are then
  interleaved (:func:`interleave_phases`). Padding is folded into the gathers and sums;
* :func:`packed_linear`, the dense layer.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

# transposed conv k4 s2 p1: output pixel 2i + a sees padded-input pixels i + a + u (u = 0, 1) through kernel tap
# PHASE_TAPS[a][u] = 3 - a - 2u (``training.kernels.cpu.PHASE_TAPS``, which conv_transpose_by_phases uses too)


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K dense layers: x (K, N, I), weight (K, O, I), bias (K, O) -> (K, N, O)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


# ----------------------------------------------------------------------------------------------------------------
# shifted GEMMs (activations channels-last (K, N, H, W, C))


def _taps(h: int, w: int, pad: bool):
    """Each tap (a, b) of a 2x2 stride-1 convolution of an h x w input, with the input region and the output region
    it connects, as index tuples for (M, H, W, ...) tensors: without padding (output (h - 1) x (w - 1)) input pixel
    (y + a, x + b) feeds output (y, x); with one pixel of zero padding (output (h + 1) x (w + 1)) input pixel (y, x)
    feeds output (y + 1 - a, x + 1 - b)."""
    every = slice(None)
    for a in (0, 1):
        for b in (0, 1):
            if pad:
                yield a, b, (every,) * 3, (every, slice(1 - a, 1 - a + h), slice(1 - b, 1 - b + w))
            else:
                yield a, b, (every, slice(a, a + h - 1), slice(b, b + w - 1)), (every,) * 3


def _out_shape(shape, pad: bool) -> tuple:
    """The output-side (M, Ho, Wo, ...) of a 2x2 stride-1 convolution of an input of ``shape`` (M, H, W, ...)."""
    d = 1 if pad else -1
    return (shape[0], shape[1] + d, shape[2] + d) + tuple(shape[3:])


class _ShiftSum2x2(torch.autograd.Function):
    """out[output region of tap (a, b)] += p[input region, a, b]: p (M, H, W, 2, 2, ...) -> (M, Ho, Wo, ...)."""

    @staticmethod
    def forward(ctx, p, pad):
        ctx.shape, ctx.pad = p.shape, pad
        out = p.new_zeros(_out_shape(p.shape[:3] + p.shape[5:], pad))
        for a, b, i, o in _taps(p.shape[1], p.shape[2], pad):
            out[o] += p[i + (a, b)]
        return out

    @staticmethod
    def backward(ctx, grad):
        # with padding every element of p feeds one output element: no zeros needed
        gp = grad.new_empty(ctx.shape) if ctx.pad else grad.new_zeros(ctx.shape)
        for a, b, i, o in _taps(ctx.shape[1], ctx.shape[2], ctx.pad):
            gp[i + (a, b)] = grad[o]
        return gp, None


class _Unfold2x2(torch.autograd.Function):
    """out[output region of tap (a, b), a, b] = x[input region]: x (M, H, W, ...) -> (M, Ho, Wo, 2, 2, ...)."""

    @staticmethod
    def forward(ctx, x, pad):
        ctx.shape, ctx.pad = x.shape, pad
        shape = _out_shape(x.shape[:3], pad) + (2, 2) + tuple(x.shape[3:])
        out = x.new_zeros(shape) if pad else x.new_empty(shape)   # padded windows hold zeros at the border
        for a, b, i, o in _taps(x.shape[1], x.shape[2], pad):
            out[o + (a, b)] = x[i]
        return out

    @staticmethod
    def backward(ctx, grad):
        gx = grad.new_zeros(ctx.shape)
        for a, b, i, o in _taps(ctx.shape[1], ctx.shape[2], ctx.pad):
            gx[i] += grad[o + (a, b)]
        return gx, None


def shift_sum_2x2(p: torch.Tensor, pad: bool = False) -> torch.Tensor:
    """The second half of a 2x2 stride-1 convolution: p (M, H, W, 2, 2, ...) holds each pixel's product with the
    four taps (a, b). Returns ``out[:, y, x] = sum_ab p[:, y + a, x + b, a, b]``, (M, H - 1, W - 1, ...); with
    ``pad``, the convolution of the image padded by one zero pixel, (M, H + 1, W + 1, ...), without a padded copy.
    Its own backward pass (each tap's slice of the gradient written once)."""
    return _ShiftSum2x2.apply(p, pad)


def unfold_2x2(x: torch.Tensor, pad: bool = False) -> torch.Tensor:
    """The 2x2 windows of x (M, H, W, ...) (im2col for a 2x2 stride-1 kernel): ``out[:, y, x, a, b] = x[:, y + a,
    x + b]``, (M, H - 1, W - 1, 2, 2, ...); with ``pad``, the windows of x padded by one zero pixel,
    (M, H + 1, W + 1, 2, 2, ...), without a padded copy."""
    return _Unfold2x2.apply(x, pad)


class _PadSpaceToDepth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        m, h, w, c = x.shape
        out = x.new_zeros((m, h // 2 + 1, w // 2 + 1, 2, 2, c))
        for dy in (0, 1):
            for dx in (0, 1):
                out[:, 1 - dy:1 - dy + h // 2, 1 - dx:1 - dx + w // 2, dy, dx] = x[:, 1 - dy::2, 1 - dx::2]
        return out.view(m, h // 2 + 1, w // 2 + 1, 4 * c)

    @staticmethod
    def backward(ctx, grad):
        m, h, w, c = ctx.shape
        g = grad.view(m, h // 2 + 1, w // 2 + 1, 2, 2, c)
        gx = grad.new_empty(ctx.shape)   # every pixel lies in exactly one (dy, dx) block
        for dy in (0, 1):
            for dx in (0, 1):
                gx[:, 1 - dy::2, 1 - dx::2] = g[:, 1 - dy:1 - dy + h // 2, 1 - dx:1 - dx + w // 2, dy, dx]
        return gx


def pad_space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """x (M, H, W, C), H and W even, padded by one zero pixel and cut into 2x2 blocks, in one copy:
    (M, H/2 + 1, W/2 + 1, 4C), ``out[:, i, j, (dy, dx, c)] = x_padded[:, 2i + dy, 2j + dx, c]``."""
    return _PadSpaceToDepth.apply(x)


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


def conv2x2_valid(x: torch.Tensor, matrix: torch.Tensor, form: str, pad: bool = False,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """K 2x2 stride-1 convolutions as one batched matrix product: x (K, N, H, W, C) -> (K, N, H - 1, W - 1, O),
    ``out[r, n, y, x] = sum_ab x[r, n, y + a, x + b] @ W_ab[r]``; with ``pad``, of x padded by one zero pixel
    (K, N, H + 1, W + 1, O), without a padded copy.

    ``form="unfold"``: gather the 2x2 windows (4C values per output pixel, :func:`unfold_2x2`) and multiply by
    ``matrix`` (K, 4C, O), rows (a, b, c). ``form="shift"``: multiply every input pixel by all four taps at once,
    ``matrix`` (K, C, 4O), columns (a, b, o), and add the four shifted products (:func:`shift_sum_2x2`). Few input
    channels favour the first, few output channels the second (the smaller intermediate tensor). ``bias`` (K, O),
    optional, is added inside the product (form "unfold" only).
    """
    k, n, h, w, c = x.shape
    ho, wo = (h + 1, w + 1) if pad else (h - 1, w - 1)
    if form == "unfold":
        o = matrix.shape[2]
        cols = unfold_2x2(x.reshape(k * n, h, w, c), pad).reshape(k, n * ho * wo, 4 * c)
        out = torch.bmm(cols, matrix) if bias is None else torch.baddbmm(bias.unsqueeze(1), cols, matrix)
        return out.view(k, n, ho, wo, o)
    if form != "shift" or bias is not None:
        raise ValueError(f"form must be 'unfold' or 'shift' (without bias), got {form!r}")
    o = matrix.shape[2] // 4
    p = torch.bmm(x.reshape(k, n * h * w, c), matrix)
    return shift_sum_2x2(p.view(k * n, h, w, 2, 2, o), pad).view(k, n, ho, wo, o)


def _space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(K, N, H, W, C) with even H, W -> (K, N, H/2, W/2, 4C), channel order (dy, dx, c)."""
    k, n, h, w, c = x.shape
    return x.reshape(k, n, h // 2, 2, w // 2, 2, c).transpose(3, 4).reshape(k, n, h // 2, w // 2, 4 * c)


def _pad1(x: torch.Tensor) -> torch.Tensor:
    """(K, N, H, W, C) -> (K, N, H + 2, W + 2, C), one zero pixel on each side."""
    return F.pad(x, (0, 0, 1, 1, 1, 1))


# ---- the weights as the matrices the products consume ------------------------------------------------------------
# Packed training keeps its stacked parameters in these layouts (``gemm_matrix`` once at the start,
# ``gemm_weight`` when writing a run back), so that a step never re-arranges weights. Adam is elementwise, so the
# updates are the same numbers in any layout.

GEMM_KINDS = ("conv4x4_s2", "conv2x2_s2", "conv_transpose4x4_s2")
# the forms whose matrices the fused kernels of training.kernels.triton_layers consume
TRITON_FORMS = {"conv4x4_s2": "im2col", "conv2x2_s2": "s2d", "conv_transpose4x4_s2": "phases"}


def weight_shape(kind: str, c_in: int, c_out: int) -> tuple[int, ...]:
    """One run's weight shape of a layer of ``kind``: ``nn.Conv2d`` (O, C, kh, kw) or ``nn.ConvTranspose2d``
    (Cin, O, 4, 4)."""
    return {"conv4x4_s2": (c_out, c_in, 4, 4), "conv2x2_s2": (c_out, c_in, 2, 2),
            "conv_transpose4x4_s2": (c_in, c_out, 4, 4)}[kind]


def gemm_form(kind: str, c_in: int, c_out: int) -> str:
    """The form of a layer's product: ``conv4x4_s2``: "im2col" (4x4 windows, 16 C values per output pixel) when
    4 C <= O, else "shift" (space-to-depth, then :func:`conv2x2_valid`'s shift form); ``conv_transpose4x4_s2``:
    "unfold" when Cin <= 4 O, else "shift"; ``conv2x2_s2``: "s2d". (The fused kernels use :data:`TRITON_FORMS`;
    the transposed convolution's "phases" form: rows (phase a, phase b, u', v', cin), columns o.)"""
    if kind == "conv4x4_s2":
        return "im2col" if 4 * c_in <= c_out else "shift"
    if kind == "conv_transpose4x4_s2":
        return "unfold" if c_in <= 4 * c_out else "shift"
    if kind == "conv2x2_s2":
        return "s2d"
    raise ValueError(f"kind must be one of {', '.join(GEMM_KINDS)}, got {kind!r}")


def gemm_matrix(kind: str, weight: torch.Tensor, form: str) -> torch.Tensor:
    """Stacked weights in the ``nn.Conv2d`` (K, O, C, kh, kw) or ``nn.ConvTranspose2d`` (K, Cin, O, 4, 4) layout
    -> the (K, rows, columns) matrix of ``kind`` in ``form`` (see :func:`gemm_form`)."""
    k = weight.shape[0]
    if kind == "conv2x2_s2":                                    # rows (dy, dx, c)
        o, c = weight.shape[1:3]
        return weight.permute(0, 3, 4, 2, 1).reshape(k, 4 * c, o)
    if kind == "conv4x4_s2":
        o, c = weight.shape[1:3]
        if form == "im2col":                                    # rows (ky, kx, c)
            return weight.permute(0, 3, 4, 2, 1).reshape(k, 16 * c, o)
        # ky = 2a + dy, kx = 2b + dx: (K, O, C, a, dy, b, dx) -> rows (dy, dx, c), columns (a, b, o)
        return weight.reshape(k, o, c, 2, 2, 2, 2).permute(0, 4, 6, 2, 3, 5, 1).reshape(k, 4 * c, 4 * o)
    c, o = weight.shape[1:3]
    # tap PHASE_TAPS[a][u] = 3 - (2u + a): flipped, kernel index 2u + a -> (K, Cin, O, u, a, v, b)
    taps = weight.flip(3, 4).reshape(k, c, o, 2, 2, 2, 2)
    if form == "unfold":                                        # rows (u, v, cin), columns (a, b, o)
        return taps.permute(0, 3, 5, 1, 4, 6, 2).reshape(k, 4 * c, 4 * o)
    if form == "phases":   # one (u', v', cin) x o block per phase (a, b), u' = 1 - u (training.kernels.triton_layers)
        return taps.permute(0, 4, 6, 3, 5, 1, 2).flip(3, 4).reshape(k, 16 * c, o)
    return taps.permute(0, 1, 3, 5, 4, 6, 2).reshape(k, c, 16 * o)   # rows cin, columns (u, v, a, b, o)


def gemm_weight(kind: str, matrix: torch.Tensor, shape: tuple, form: str) -> torch.Tensor:
    """The inverse of :func:`gemm_matrix`: the (K, rows, columns) matrix -> weights of ``shape`` (K, ...)."""
    k = shape[0]
    if kind == "conv2x2_s2":
        o, c = shape[1:3]
        return matrix.reshape(k, 2, 2, c, o).permute(0, 4, 3, 1, 2).reshape(shape)
    if kind == "conv4x4_s2":
        o, c = shape[1:3]
        if form == "im2col":
            return matrix.reshape(k, 4, 4, c, o).permute(0, 4, 3, 1, 2).reshape(shape)
        return matrix.reshape(k, 2, 2, c, 2, 2, o).permute(0, 6, 3, 4, 1, 5, 2).reshape(shape)
    c, o = shape[1:3]
    if form == "phases":
        taps = matrix.reshape(k, 2, 2, 2, 2, c, o).flip(3, 4).permute(0, 5, 6, 3, 1, 4, 2)
    elif form == "unfold":
        taps = matrix.reshape(k, 2, 2, c, 2, 2, o).permute(0, 3, 6, 1, 4, 2, 5)
    else:
        taps = matrix.reshape(k, c, 2, 2, 2, 2, o).permute(0, 1, 6, 2, 4, 3, 5)
    return taps.reshape(shape).flip(3, 4)


# ---- the layers (activations channels-last (K, N, H, W, C); weights as gemm matrices) ----------------------------


def conv4x4_s2(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, form: str) -> torch.Tensor:
    """K convolutions with 4x4 kernels, stride 2, padding 1: x (K, N, H, W, C) with even H, W; ``matrix`` =
    ``gemm_matrix("conv4x4_s2", weight, form)``; bias (K, O) -> (K, N, H/2, W/2, O).

    ``form="im2col"``: the 4x4 windows of the padded input gathered in one copy (a strided view), one product.
    ``form="shift"``: a 2x2 stride-1 convolution (:func:`conv2x2_valid`) of the padded input's space-to-depth form:
    kernel tap (ky, kx) = (2a + dy, 2b + dx) is tap block (a, b), input channel (dy, dx, c).
    """
    k, n, h, w, c = x.shape
    o = bias.shape[1]
    if form == "im2col":
        # (K*N, H/2, W/2, C, ky, kx) windows of the padded input -> rows (ky, kx, c), one copy
        windows = _pad1(x).reshape(k * n, h + 2, w + 2, c).unfold(1, 4, 2).unfold(2, 4, 2)
        cols = windows.permute(0, 1, 2, 4, 5, 3).reshape(k, n * (h // 2) * (w // 2), 16 * c)
        return torch.baddbmm(bias.unsqueeze(1), cols, matrix).view(k, n, h // 2, w // 2, o)
    if form != "shift":
        raise ValueError(f"form must be 'im2col' or 'shift', got {form!r}")
    s2d = pad_space_to_depth(x.reshape(k * n, h, w, c)).view(k, n, h // 2 + 1, w // 2 + 1, 4 * c)
    out = conv2x2_valid(s2d, matrix, "shift")
    return out + bias.view(k, 1, 1, 1, o).to(out.dtype)


def conv2x2_s2(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K convolutions with 2x2 kernels, stride 2, no padding: the blocks do not overlap, so this is space-to-depth
    and one batched matrix product. x (K, N, H, W, C), ``matrix`` = ``gemm_matrix("conv2x2_s2", weight, "s2d")``
    (K, 4C, O), bias (K, O) -> (K, N, H/2, W/2, O)."""
    k, n, h, w, c = x.shape
    s2d = _space_to_depth(x).reshape(k, n * (h // 2) * (w // 2), 4 * c)
    return torch.baddbmm(bias.unsqueeze(1), s2d, matrix).view(k, n, h // 2, w // 2, bias.shape[1])


def conv_transpose4x4_s2(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, form: str) -> torch.Tensor:
    """K transposed convolutions with 4x4 kernels, stride 2, padding 1: x (K, N, H, W, Cin); ``matrix`` =
    ``gemm_matrix("conv_transpose4x4_s2", weight, form)``; bias (K, O) -> (K, N, 2H, 2W, O).

    Output pixel (2i + a, 2j + b) sums padded-input pixels (i + a + u, j + b + v), u, v in {0, 1}, through kernel
    taps (PHASE_TAPS[a][u], PHASE_TAPS[b][v]): a 2x2 stride-1 convolution (:func:`conv2x2_valid`) of the padded
    input with output channels (a, b, o), whose phases are then interleaved (:func:`interleave_phases`).
    """
    k, n, h, w, c = x.shape
    o = bias.shape[1]
    if form == "unfold":   # the bias inside the product, once per phase column (a, b, o)
        phases = conv2x2_valid(x, matrix, form, pad=True, bias=bias.repeat(1, 4))
        return interleave_phases(phases.view(k * n, h + 1, w + 1, 2, 2, o)).view(k, n, 2 * h, 2 * w, o)
    phases = conv2x2_valid(x, matrix, form, pad=True)                          # (K, N, H + 1, W + 1, 4O)
    out = interleave_phases(phases.view(k * n, h + 1, w + 1, 2, 2, o)).view(k, n, 2 * h, 2 * w, o)
    return out + bias.view(k, 1, 1, 1, o).to(out.dtype)

