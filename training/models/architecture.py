"""The shared network of the study (spec/models.md): Gaussian conv encoder, deconv decoder, FactorVAE discriminator.

Shapes (N = batch, C = image channels, L = ``num_latent`` = 10):

* :class:`Encoder`: images ``(N, C, 64, 64)`` float in [0, 1] -> ``(mean, logvar)``, each ``(N, L)``.
* :class:`Decoder`: latent ``(N, L)`` -> Bernoulli logits ``(N, C, 64, 64)``.
* :class:`Discriminator`: latent ``(N, L)`` -> logits ``(N, 2)``; column 0 = "from q(z)", column 1 = "from the product
  of the marginals" (a dimension-wise permuted batch).

Tensors are NCHW inside the network (the dataset interface hands out NHWC numpy arrays; :func:`to_nchw` converts).
The reference's TensorFlow "same" padding is symmetric for every layer here (64->32->16 with 4x4/2 kernels pads one
pixel per side, the 2x2/2 kernels pad nothing), so plain ``padding=1`` / ``padding=0`` reproduce its output sizes and
alignment; the transposed convolutions with ``padding=1`` are exactly the adjoints of those convolutions.
The flatten order of the 4x4x64 feature map is PyTorch's CHW rather than TensorFlow's HWC: a fixed permutation of the
dense layer's inputs, i.e. the same function class.

Weight initialisation follows the reference's framework default (TF1 ``tf.layers``): Glorot-uniform weights and zero
biases, for every layer of all three networks. Randomness comes only from the ``generator`` given to
:func:`init_weights` (or the global torch RNG when none is given).

The modules hold no state besides their parameters (no batch norm, no dropout), so
``torch.func.functional_call`` with stacked parameters (``torch.func.stack_module_state``) and ``torch.func.vmap``
evaluate many models at once.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NUM_LATENT = 10
IMAGE_SIZE = 64
DISCRIMINATOR_UNITS = 1000
DISCRIMINATOR_LAYERS = 6
LEAKY_SLOPE = 0.2


class Encoder(nn.Module):
    """Gaussian encoder: 4 strided convolutions, a 256-unit dense layer, two linear heads (mean, log-variance).

    Layers (output sizes for 64x64 input): conv 32 k4 s2 (32x32), conv 32 k4 s2 (16x16), conv 64 k2 s2 (8x8),
    conv 64 k2 s2 (4x4), all ReLU; flatten (1024), dense 256 ReLU; dense L (mean), dense L (log-variance).
    """

    def __init__(self, num_channels: int = 1, num_latent: int = NUM_LATENT):
        super().__init__()
        self.num_channels = int(num_channels)
        self.num_latent = int(num_latent)
        self.conv1 = nn.Conv2d(self.num_channels, 32, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=2, stride=2, padding=0)
        self.conv4 = nn.Conv2d(64, 64, kernel_size=2, stride=2, padding=0)
        self.dense = nn.Linear(1024, 256)
        self.mean = nn.Linear(256, self.num_latent)
        self.logvar = nn.Linear(256, self.num_latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, 64, 64) -> ``(mean, logvar)``, each (N, L)."""
        h = conv_relu(self.conv1, x)
        h = conv_relu(self.conv2, h)
        h = conv_relu(self.conv3, h)
        h = conv_relu(self.conv4, h)
        h = torch.relu(self.dense(h.flatten(1)))
        return self.mean(h), self.logvar(h)


def _cpu_eager(x: torch.Tensor) -> bool:
    """True where the CPU kernel choices apply (:func:`conv_relu`'s fused oneDNN kernel, the decoder's phase-wise
    output layer): a plain float32 CPU tensor (not one wrapped by torch.func's vmap / grad, which have no rule for
    the custom autograd functions), eager mode (under torch.compile the plain layers are traced, and Inductor fuses
    them itself), no CPU autocast (the plain layers then run in bf16) and a PyTorch built with oneDNN."""
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return False
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and not torch._C._functorch.is_functorch_wrapped_tensor(x))


class _ConvReLU(torch.autograd.Function):
    """ReLU(convolution) as ONE oneDNN primitive on CPU (the ReLU applied as a post-op while the output is in cache).

    Unfused, the ReLU is a separate pass over the output, the largest activation of the network (64x32x32x32 floats
    = 8 MiB at batch 64 for conv1 and deconv3). Measured on 2 CPU cores: encoding dSprites images in batches of 64
    (the code table's build) takes 144 instead of 157 us per image; a beta_vae training step is unchanged within
    noise. The result is the same computation as ``nn.Conv2d`` / ``nn.ConvTranspose2d`` in the same memory format
    (bit-identical), and the backward pass is what autograd runs for the unfused pair: ``threshold_backward`` on
    the saved output, then ``convolution_backward`` for the input and weight gradients (bit-identical), except the
    bias gradient, which is the masked gradient summed over (N, H, W) by ``torch.sum`` (equal up to the order of the
    sum; tests/test_models_architecture.py). oneDNN's bias reduction inside ``convolution_backward`` is slow for
    the transposed layers and the one-channel input layer (1-3 ms more per layer and step on one core); summing it
    apart made a beta_vae step 0.92x as long on one thread (median of ten paired ``train_model`` runs, 0.85-1.05 on
    this noisy VM) and 0.96x on two (five pairs).
    """

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


def conv_relu(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(layer(x))`` for a stride-s, symmetric-padding, ungrouped (transposed) convolution; fused on CPU."""
    if not _cpu_eager(x):
        return torch.relu(layer(x))
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
    re-indexed slices of ``weight``), followed by interleaving the phases. It is the same sum of products, in another
    order: equal to ``conv_transpose2d`` up to float rounding. Used for the decoder's output layer (32 -> C channels,
    64x64) on the CPU, where oneDNN's transposed-convolution kernel runs at a few percent of the GEMM rate: a forward
    pass over a batch of 64 takes ~4 ms this way, ~5 ms with ATen's native ``slow_conv_transpose2d`` and 10-12 ms
    with oneDNN (2 cores).
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


class Decoder(nn.Module):
    """Deconvolutional decoder: dense 256, dense 1024 (-> 64x4x4), three ReLU transposed convs, a linear one.

    Layers: dense 256 ReLU, dense 1024 ReLU, reshape (64, 4, 4); deconv 64 k4 s2 (8x8), deconv 32 k4 s2 (16x16),
    deconv 32 k4 s2 (32x32), all ReLU; deconv C k4 s2 (64x64) -> Bernoulli logits.
    """

    def __init__(self, num_channels: int = 1, num_latent: int = NUM_LATENT):
        super().__init__()
        self.num_channels = int(num_channels)
        self.num_latent = int(num_latent)
        # memory format of the 64x4x4 feature map entering the transposed convolutions: channels_last keeps the
        # whole decoder in oneDNN's preferred NHWC layout on CPU (set by the trainer; a speed choice only)
        self.memory_format = torch.contiguous_format
        # CPU eager mode only (set by the CPU trainers; a speed choice only): the output layer's forward pass as
        # one stride-1 convolution over its four output phases (:func:`conv_transpose_by_phases`)
        self.phase_output_forward = False
        self.dense1 = nn.Linear(self.num_latent, 256)
        self.dense2 = nn.Linear(256, 1024)
        self.deconv1 = nn.ConvTranspose2d(64, 64, kernel_size=4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 32, kernel_size=4, stride=2, padding=1)
        self.deconv4 = nn.ConvTranspose2d(32, self.num_channels, kernel_size=4, stride=2, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (N, L) -> logits (N, C, 64, 64)."""
        h = torch.relu(self.dense1(z))
        h = torch.relu(self.dense2(h))
        h = h.reshape(h.shape[0], 64, 4, 4)
        if self.memory_format is not torch.contiguous_format:
            h = h.contiguous(memory_format=self.memory_format)
        h = conv_relu(self.deconv1, h)
        h = conv_relu(self.deconv2, h)
        h = conv_relu(self.deconv3, h)
        if self.phase_output_forward and _cpu_eager(h):
            return _PhaseForwardConvTranspose.apply(h, self.deconv4.weight, self.deconv4.bias)
        return self.deconv4(h)


class Discriminator(nn.Module):
    """FactorVAE discriminator: 6 dense layers of 1000 units with leaky ReLU (slope 0.2), then dense 2 (logits)."""

    def __init__(self, num_latent: int = NUM_LATENT, units: int = DISCRIMINATOR_UNITS,
                 num_layers: int = DISCRIMINATOR_LAYERS):
        super().__init__()
        sizes = [int(num_latent)] + [int(units)] * int(num_layers)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.logits = nn.Linear(sizes[-1], 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` (N, L) -> logits (N, 2): column 0 "from q(z)", column 1 "from the product of marginals"."""
        h = z
        for layer in self.hidden:
            h = nn.functional.leaky_relu(layer(h), LEAKY_SLOPE)
        return self.logits(h)


class GaussianVAE(nn.Module):
    """Encoder and decoder together; ``forward`` is not defined on purpose (the objectives need the pieces)."""

    def __init__(self, num_channels: int = 1, num_latent: int = NUM_LATENT):
        super().__init__()
        self.num_channels = int(num_channels)
        self.num_latent = int(num_latent)
        self.encoder = Encoder(num_channels, num_latent)
        self.decoder = Decoder(num_channels, num_latent)


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Glorot-uniform weights and zero biases for every Linear / Conv / ConvTranspose layer of ``module``, in place.

    Fan-in / fan-out as TensorFlow computes them for the kernel (receptive field x in / out channels); for a
    transposed convolution the two are swapped, which the symmetric Glorot bound does not notice. Returns ``module``.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                weight = layer.weight
                receptive = weight[0][0].numel() if weight.dim() > 2 else 1
                fan_a, fan_b = weight.shape[0] * receptive, weight.shape[1] * receptive
                bound = (6.0 / (fan_a + fan_b)) ** 0.5
                weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.zero_()
    return module


def to_nchw(observations) -> torch.Tensor:
    """NHWC images (numpy array or tensor, (N, 64, 64, C)) -> float32 NCHW tensor (N, C, 64, 64), a view if
    possible."""
    x = torch.as_tensor(observations)
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (N, 64, 64, C), got shape {tuple(x.shape)}")
    return x.to(torch.float32).permute(0, 3, 1, 2)


def sample_latent(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Reparameterised Gaussian sample ``mean + exp(logvar / 2) * noise``; all (N, L), ``noise`` standard normal."""
    return mean + torch.exp(0.5 * logvar) * noise


def permute_dims(z: torch.Tensor, uniform_noise: torch.Tensor) -> torch.Tensor:
    """Permute every latent dimension of ``z`` (N, L) independently across the batch.

    The permutation of column j is ``argsort(uniform_noise[:, j])``, so the caller's noise (any (N, L) tensor of
    distinct values, e.g. ``torch.rand`` with a seeded generator) fixes it; pure and vmap-friendly.
    """
    order = torch.argsort(uniform_noise, dim=0)
    return torch.gather(z, 0, order)
