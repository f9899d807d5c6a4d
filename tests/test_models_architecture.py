"""The decoder's output layer computed with ATen's native forward kernel equals nn.ConvTranspose2d."""
import pytest
import torch
import torch.nn.functional as F

from training.models.architecture import Decoder, _NativeForwardConvTranspose


@pytest.mark.parametrize("channels", [1, 3])
def test_native_forward_output_layer_matches_conv_transpose_in_value_and_gradients(channels):
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
    got = _NativeForwardConvTranspose.apply(x, w, b)
    got.backward(g)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    for a, e in zip((x.grad, w.grad, b.grad), grads):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_decoder_uses_the_native_output_layer_only_when_asked():
    torch.manual_seed(0)
    decoder = Decoder(1)
    z = torch.randn(3, 10)
    default = decoder(z)
    decoder.native_output_forward = True
    native = decoder(z)
    assert native.grad_fn.name().startswith("_NativeForwardConvTranspose")
    assert not default.grad_fn.name().startswith("_NativeForwardConvTranspose")
    torch.testing.assert_close(native, default, rtol=1e-5, atol=1e-4)
