"""The shared network of the study (the paper's Appendix B, Table 1 architecture, as disentanglement_lib builds it):
Gaussian conv encoder, deconv decoder, FactorVAE discriminator.

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
        # how a convolution + ReLU is computed; an engine may swap in an equal fast path (training.kernels.cpu)
        self.conv_relu = conv_relu

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, 64, 64) -> ``(mean, logvar)``, each (N, L)."""
        h = self.conv_relu(self.conv1, x)
        h = self.conv_relu(self.conv2, h)
        h = self.conv_relu(self.conv3, h)
        h = self.conv_relu(self.conv4, h)
        h = torch.relu(self.dense(h.flatten(1)))
        return self.mean(h), self.logvar(h)


def conv_relu(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(layer(x))``: a (transposed) convolution followed by ReLU, as the architecture table lists them."""
    return torch.relu(layer(x))


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
        # how a transposed convolution + ReLU, and the output layer (``output(layer, h)``; None: ``layer(h)``), are
        # computed; an engine may swap in equal fast paths (training.kernels.cpu)
        self.conv_relu = conv_relu
        self.output = None
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
        h = self.conv_relu(self.deconv1, h)
        h = self.conv_relu(self.deconv2, h)
        h = self.conv_relu(self.deconv3, h)
        return self.deconv4(h) if self.output is None else self.output(self.deconv4, h)


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
