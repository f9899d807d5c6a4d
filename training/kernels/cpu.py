"""CPU fast paths of the study's network, equal to the reference layers of :mod:`training.models.architecture`.

* :func:`fused_conv_relu`: ReLU(convolution) as ONE oneDNN primitive (the ReLU applied as a post-op while the output
  is in cache), with the backward pass autograd runs for the unfused pair except the bias gradient, summed apart.
  Forward and input / weight gradients are bit-identical to ``relu(layer(x))`` in the same memory format; the bias
  gradient equal up to the order of its sum (tests/test_models_architecture.py).
* :func:`phase_output`: the decoder's output layer (transposed convolution k4 s2 p1) as one stride-1 convolution
  over its four output phases (:func:`conv_transpose_by_phases`): the same sums of products in another order.

:func:`use_fast_cpu_layers` opts a network into them; they apply only where they can (a plain float32 CPU tensor in
eager mode, outside torch.func transforms and CPU autocast, on a PyTorch built with oneDNN) and otherwise compute the
reference layers. The training engines opt in, so every stored number comes from these paths on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.models.architecture import GaussianVAE, conv_relu


def use_fast_cpu_layers(vae: GaussianVAE, output_by_phases: bool = True) -> GaussianVAE:
    """Make ``vae`` compute its convolution + ReLU pairs with :func:`fused_conv_relu` and, with
    ``output_by_phases``, its output layer with :func:`phase_output`; returns ``vae`` (changed in place)."""
    vae.encoder.conv_relu = fused_conv_relu
    vae.decoder.conv_relu = fused_conv_relu
    vae.decoder.output = phase_output if output_by_phases else None
    return vae


def use_reference_layers(vae: GaussianVAE) -> GaussianVAE:
    """Undo :func:`use_fast_cpu_layers`: the reference layers everywhere; returns ``vae``."""
    vae.encoder.conv_relu = vae.decoder.conv_relu = conv_relu
    vae.decoder.output = None
    return vae


def cpu_eager(x: torch.Tensor) -> bool:
    """True where the CPU fast paths apply (:func:`fused_conv_relu`, :func:`phase_output`): a plain float32 CPU tensor (not one wrapped by torch.func's vmap / grad, which have no rule for
    the custom autograd functions), eager mode (under torch.compile the plain layers are traced, and Inductor fuses
    them itself), no CPU autocast (the plain layers then run in bf16) and a PyTorch built with oneDNN."""
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and not torch._C._functorch.is_functorch_wrapped_tensor(x))


class _ConvReLU(torch.autograd.Function):
    """ReLU(convolution) as ONE oneDNN primitive (the ReLU as a post-op). Forward: the same computation as the
    layer in the same memory format (bit-identical). Backward: ``threshold_backward`` on the saved output, then
    ``convolution_backward`` for the input and weight gradients (bit-identical to the unfused pair) and the bias
    gradient as the masked gradient summed over (N, H, W) by ``torch.sum`` (equal up to the order of the sum)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, transposed):
        if transposed:
            out = torch.ops.mkldnn._convolution_transpose_pointwise(
                x, weight, bias, padding, [0, 0], stride, [1, 1], 1, "relu", [], "")
        else:
            out = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, stride, [1, 1], 1, "relu", [], "")
        ctx.save_for_backward(x, weight, out)
        ctx.geometry = (stride, padding, transposed)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, out = ctx.saved_tensors
        stride, padding, transposed = ctx.geometry
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, stride, padding, [1, 1], transposed, [0, 0], 1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        gb = grad.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None, None


def fused_conv_relu(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(layer(x))`` for a stride-s, symmetric-padding, ungrouped (transposed) convolution; one oneDNN
    primitive where :func:`cpu_eager` holds, else the reference pair."""
    if not cpu_eager(x):
        return conv_relu(layer, x)
    return _ConvReLU.apply(x, layer.weight, layer.bias, list(layer.stride), list(layer.padding),
                           isinstance(layer, nn.ConvTranspose2d))


#: for the output phase (a, b) of a k4 s2 p1 transposed convolution and tap u of the 2x2 stride-1 window over the
#: once-padded input, the kernel row (column) it uses: ``3 - a - 2u``
PHASE_TAPS = ((3, 1), (2, 0))


def conv_transpose_by_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for 4x4 kernels, as one stride-1 convolution.

    ``x`` (N, Cin, H, W), ``weight`` (Cin, Cout, 4, 4), ``bias`` (Cout,) or None -> (N, Cout, 2H, 2W), stored NHWC.

    Output pixel (2i + a, 2j + b) of this transposed convolution only sees the input pixels i - 1 + a .. i + a (rows;
    likewise columns) through kernel rows 3 - a and 1 - a. So all four output phases (a, b) are one ordinary 2x2
    stride-1 convolution of ``x`` padded by one pixel, with 4 * Cout output channels (the phase kernels are
    re-indexed slices of ``weight``), followed by interleaving the phases: the same sums of products in another
    order, equal to ``conv_transpose2d`` up to float rounding.
    """
    n, cin, height, width = x.shape
    cout = weight.shape[1]
    taps = torch.tensor(PHASE_TAPS, device=weight.device)
    # (Cin, Cout, a, u, b, v) -> (a, b, Cout, Cin, u, v)
    phase_weight = weight[:, :, taps[:, :, None, None], taps[None, None, :, :]].permute(2, 4, 1, 0, 3, 5)
    phase_weight = phase_weight.reshape(4 * cout, cin, 2, 2)
    if x.is_contiguous(memory_format=torch.channels_last):
        phase_weight = phase_weight.contiguous(memory_format=torch.channels_last)
    phases = F.conv2d(x, phase_weight, None, 1, 1).view(n, 2, 2, cout, height + 1, width + 1)
    out = torch.empty((n, height, 2, width, 2, cout), dtype=x.dtype, device=x.device)
    for a in (0, 1):
        for b in (0, 1):
            out[:, :, a, :, b, :] = phases[:, a, b, :, a:a + height, b:b + width].permute(0, 2, 3, 1)
    if bias is not None:
        out += bias
    return out.view(n, 2 * height, 2 * width, cout).permute(0, 3, 1, 2)


class _PhaseForwardConvTranspose(torch.autograd.Function):
    """The decoder's output layer (transposed conv k4 s2 p1) with :func:`conv_transpose_by_phases` as forward pass.

    The backward pass is the default one (``aten.convolution_backward``, oneDNN), which is fast for this layer.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return conv_transpose_by_phases(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[1]], [2, 2], [1, 1], [1, 1], True, [0, 0], 1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return gx, gw, gb




def phase_output(layer: nn.ConvTranspose2d, h: torch.Tensor) -> torch.Tensor:
    """The decoder's output layer ``layer(h)`` with :func:`conv_transpose_by_phases` as its forward pass where
    :func:`cpu_eager` holds (the backward pass is oneDNN's, fast for this layer), else ``layer(h)``."""
    if not cpu_eager(h):
        return layer(h)
    return _PhaseForwardConvTranspose.apply(h, layer.weight, layer.bias)
