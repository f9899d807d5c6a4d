"""The analytic FLOP count of the network (training.models.flops) against torch's own counter on meta tensors."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from training.models import flops
from training.models.architecture import Discriminator, GaussianVAE


def _counted_step(num_channels: int, batch_size: int) -> tuple[int, dict]:
    """torch.utils.flop_counter's count of a forward + backward pass (meta tensors: no arithmetic is done; the CPU's
    fused oneDNN paths, which the counter cannot see, are off on meta) and its per-module forward counts."""
    vae = GaussianVAE(num_channels).to("meta")
    x = torch.empty(batch_size, num_channels, 64, 64, device="meta")
    with FlopCounterMode(display=False) as forward:
        mean, logvar = vae.encoder(x)
        logits = vae.decoder(mean + logvar)
    per_module = {name.rsplit(".", 1)[-1]: sum(c.values()) for name, c in forward.get_flop_counts().items()
                  if name.count(".") == 1}
    vae.zero_grad()
    with FlopCounterMode(display=False) as step:
        mean, logvar = vae.encoder(x)
        logits = vae.decoder(mean + logvar)
        logits.sum().backward()
    return step.get_total_flops(), per_module


@pytest.mark.parametrize("num_channels,batch_size", [(1, 64), (3, 64), (1, 2)])
def test_vae_step_flops_equal_torchs_counter(num_channels, batch_size):
    total, per_module = _counted_step(num_channels, batch_size)
    assert flops.vae_step_flops(num_channels, batch_size) == total
    expected = {layer.name: 2 * batch_size * layer.macs for layer in flops.vae_layers(num_channels)}
    assert per_module == expected


def test_known_totals():
    # 3 x forward - conv1 (no input gradient for the images), 2 FLOPs per multiply-accumulate
    assert sum(layer.macs for layer in flops.vae_layers(1)) == 13_901_312
    assert flops.vae_step_flops(1, 64) == 5_270_994_944
    assert flops.tflops(1000.0) == pytest.approx(5.270994944)
    assert flops.vae_step_flops(3, 64) - flops.vae_step_flops(1, 64) == 2 * 64 * (3 * 2 - 1) * 524_288 * 2


def test_discriminator_forward_flops_equal_torchs_counter():
    disc = Discriminator().to("meta")
    with FlopCounterMode(display=False) as counter:
        disc(torch.empty(64, 10, device="meta"))
    assert flops.discriminator_forward_flops(64) == counter.get_total_flops() == 2 * 64 * 5_012_000
