"""The arithmetic of the study's network: floating-point operations of its matrix products, per training step.

The count is the matrix work only, at 2 FLOPs per multiply-accumulate (the convention of
``torch.utils.flop_counter``, against which the tests hold it): every convolution, transposed convolution and dense
layer, forward and backward. Bias additions, activations, the losses and the optimiser's update are elementwise
(O(parameters + activations), under 1 % of the total here) and are not counted.

Per example, for C image channels (``architecture.Encoder`` / ``Decoder``), forward multiply-accumulates:

==========  ==============================  ===================
layer       shape                           MACs per example
==========  ==============================  ===================
conv1       C -> 32, k4 s2, 32x32 out       524,288 * C
conv2       32 -> 32, k4 s2, 16x16 out      4,194,304
conv3       32 -> 64, k2 s2, 8x8 out        524,288
conv4       64 -> 64, k2 s2, 4x4 out        262,144
dense       1024 -> 256                     262,144
mean, lvar  256 -> 10, twice                5,120
dense1      10 -> 256                       2,560
dense2      256 -> 1024                     262,144
deconv1     64 -> 64, k4 s2, 4x4 in         1,048,576
deconv2     64 -> 32, k4 s2, 8x8 in         2,097,152
deconv3     32 -> 32, k4 s2, 16x16 in       4,194,304
deconv4     32 -> C, k4 s2, 32x32 in        524,288 * C
==========  ==============================  ===================

A training step does the forward pass once and, backward, each layer's weight gradient (the same MACs) and input
gradient (the same MACs), except the first layer's input gradient (the images need none): 3 x forward - conv1.
For C = 1 at batch 64 that is 5.27 GFLOP per model-step (C = 3: 5.94), so 1,000 model-steps/s is 5.27 TFLOP/s.

``benchmarks/train_step.py`` counts a whole step of each method at run time with torch's counter (the FactorVAE
discriminator included); this module is the closed form of the VAE's part, which the packed-training benchmarks
(``train_many.py``, ``gpu_pack.py``) use to report achieved FLOP rates.
"""
from __future__ import annotations

from typing import NamedTuple

from training.models.architecture import DISCRIMINATOR_LAYERS, DISCRIMINATOR_UNITS, IMAGE_SIZE, NUM_LATENT


class Layer(NamedTuple):
    """One matrix layer: its name and its forward multiply-accumulates per example."""
    name: str
    macs: int


def _conv(name: str, cin: int, cout: int, kernel: int, pixels: int) -> Layer:
    """A convolution over ``pixels`` output positions, or a transposed one over ``pixels`` *input* positions (each
    input pixel meets every kernel tap once either way)."""
    return Layer(name, pixels * cin * cout * kernel * kernel)


def vae_layers(num_channels: int = 1, num_latent: int = NUM_LATENT) -> list[Layer]:
    """The encoder's and decoder's matrix layers in forward order (see the module's table)."""
    s = IMAGE_SIZE
    c = int(num_channels)
    return [
        _conv("conv1", c, 32, 4, (s // 2) ** 2),
        _conv("conv2", 32, 32, 4, (s // 4) ** 2),
        _conv("conv3", 32, 64, 2, (s // 8) ** 2),
        _conv("conv4", 64, 64, 2, (s // 16) ** 2),
        Layer("dense", 1024 * 256),
        Layer("mean", 256 * num_latent),
        Layer("logvar", 256 * num_latent),
        Layer("dense1", num_latent * 256),
        Layer("dense2", 256 * 1024),
        _conv("deconv1", 64, 64, 4, (s // 16) ** 2),
        _conv("deconv2", 64, 32, 4, (s // 8) ** 2),
        _conv("deconv3", 32, 32, 4, (s // 4) ** 2),
        _conv("deconv4", 32, c, 4, (s // 2) ** 2),
    ]


def vae_step_flops(num_channels: int = 1, batch_size: int = 64, num_latent: int = NUM_LATENT) -> int:
    """FLOPs of one VAE training step (forward, input and weight gradients) at ``batch_size`` examples."""
    layers = vae_layers(num_channels, num_latent)
    forward = sum(layer.macs for layer in layers)
    return 2 * batch_size * (3 * forward - layers[0].macs)


def discriminator_forward_flops(batch_size: int = 64, num_latent: int = NUM_LATENT,
                                units: int = DISCRIMINATOR_UNITS, num_layers: int = DISCRIMINATOR_LAYERS) -> int:
    """FLOPs of one forward pass of FactorVAE's discriminator over ``batch_size`` codes (10.0 MFLOP per example:
    about 0.36 of the VAE's forward pass at C = 1; a FactorVAE step runs it and its gradients several times)."""
    sizes = [num_latent] + [units] * num_layers + [2]
    return 2 * batch_size * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def tflops(model_steps_per_s: float, num_channels: int = 1, batch_size: int = 64) -> float:
    """Achieved TFLOP/s of the VAE's matrix work at a training speed of ``model_steps_per_s``."""
    return model_steps_per_s * vae_step_flops(num_channels, batch_size) / 1e12
