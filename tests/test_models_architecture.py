"""The CPU fast paths (training.kernels.cpu) equal the reference network's layers: the decoder's output layer
computed phase-wise equals nn.ConvTranspose2d; the fused convolution + ReLU equals the unfused pair bit for bit,
gradients included; the reference network uses neither unless an engine opts in."""
import pytest
import torch
import torch.nn.functional as F

from training.kernels import cpu
from training.kernels.cpu import _PhaseForwardConvTranspose, conv_transpose_by_phases, fused_conv_relu
from training.models.architecture import Encoder, GaussianVAE


@pytest.mark.parametrize("channels", [1, 3])
def test_phase_forward_output_layer_matches_conv_transpose_in_value_and_gradients(channels):
    torch.manual_seed(0)
    x = torch.randn(4, 32, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(32, channels, 4, 4, requires_grad=True)
    b = torch.randn(channels, requires_grad=True)
    g = torch.randn(4, channels, 64, 64)
    expected = F.conv_transpose2d(x, w, b, stride=2, padding=1)
    expected.backward(g)
    grads = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    got = _PhaseForwardConvTranspose.apply(x, w, b)
    got.backward(g)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    for a, e in zip((x.grad, w.grad, b.grad), grads):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cin, cout, size", [(32, 1, 32), (32, 3, 32), (64, 32, 8), (5, 2, 1)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_conv_transpose_by_phases_equals_conv_transpose2d(cin, cout, size, memory_format):
    torch.manual_seed(1)
    x = torch.randn(3, cin, size, size).contiguous(memory_format=memory_format)
    w, b = torch.randn(cin, cout, 4, 4), torch.randn(cout)
    torch.testing.assert_close(conv_transpose_by_phases(x, w, b), F.conv_transpose2d(x, w, b, stride=2, padding=1),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(conv_transpose_by_phases(x, w, None), F.conv_transpose2d(x, w, None, 2, 1),
                               rtol=1e-5, atol=1e-4)


def test_the_reference_network_uses_the_fast_paths_only_when_an_engine_opts_in():
    torch.manual_seed(0)
    vae = GaussianVAE(1)
    z, x = torch.randn(3, 10), torch.rand(3, 1, 64, 64)
    default, (mean, _) = vae.decoder(z), vae.encoder(x)
    assert not default.grad_fn.name().startswith("_PhaseForwardConvTranspose")
    cpu.use_fast_cpu_layers(vae)
    phased, (fused_mean, _) = vae.decoder(z), vae.encoder(x)
    assert phased.grad_fn.name().startswith("_PhaseForwardConvTranspose")
    torch.testing.assert_close(phased, default, rtol=1e-5, atol=1e-4)
    assert torch.equal(fused_mean, mean)             # the fused forward pass is the same computation
    cpu.use_reference_layers(vae)
    assert not vae.decoder(z).grad_fn.name().startswith("_PhaseForwardConvTranspose")


LAYERS = {"conv k4 s2": (lambda: torch.nn.Conv2d(32, 32, 4, 2, 1), (5, 32, 32, 32)),
          "conv k2 s2": (lambda: torch.nn.Conv2d(32, 64, 2, 2, 0), (5, 32, 16, 16)),
          "conv 1 channel": (lambda: torch.nn.Conv2d(1, 32, 4, 2, 1), (5, 1, 64, 64)),
          "transposed 64->32": (lambda: torch.nn.ConvTranspose2d(64, 32, 4, 2, 1), (5, 64, 8, 8))}


@pytest.mark.parametrize("layer_name", list(LAYERS))
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fused_conv_relu_equals_relu_of_the_layer(layer_name, memory_format):
    torch.manual_seed(0)
    make_layer, shape = LAYERS[layer_name]
    layer = make_layer().to(memory_format=memory_format)
    x = torch.randn(shape).contiguous(memory_format=memory_format).requires_grad_()
    expected = torch.relu(layer(x))
    g = torch.randn(expected.shape)
    expected.backward(g)
    grads = [t.grad.clone() for t in (x, layer.weight, layer.bias)]
    for t in (x, layer.weight, layer.bias):
        t.grad = None
    got = fused_conv_relu(layer, x)
    assert got.grad_fn.name().startswith("_ConvReLU")
    got.backward(g)
    assert torch.equal(got, expected) and (got > 0).any() and (got == 0).any()
    # the input and weight gradients are oneDNN's, bit for bit; the bias gradient is the masked gradient's sum
    for a, e in zip((x.grad, layer.weight.grad), grads):
        assert torch.equal(a, e)
    exact = (g.double() * (expected > 0)).sum((0, 2, 3))   # float64: the sum without rounding to speak of
    scale = float(exact.abs().max())
    for bias_grad in (layer.bias.grad, grads[2]):   # ours, oneDNN's: both within fp32 summation error
        assert float((bias_grad.double() - exact).abs().max()) <= 1e-5 * scale   # measured: <= 1.4e-6


def test_conv_relu_falls_back_to_the_unfused_pair_under_vmap_and_off_float32():
    torch.manual_seed(0)
    encoder = Encoder(1)
    encoder.conv_relu = fused_conv_relu
    x = torch.rand(3, 2, 1, 64, 64)
    batched = torch.func.vmap(encoder)(x)[0]
    for i in range(3):
        torch.testing.assert_close(batched[i], encoder(x[i])[0], rtol=1e-5, atol=1e-6)
    assert not cpu.cpu_eager(x.double()) and cpu.cpu_eager(x)
