"""Representation functions of a trained encoder: ``mean`` (the encoder mean) and ``sampled`` (one Gaussian sample).

A representation function maps observations ``(n, 64, 64, C)`` float32 in [0, 1] (NHWC, as the dataset interface
returns them) to codes ``(n, num_latent)`` float32 numpy, batched internally, in inference mode.

``sampled`` draws its noise from a ``torch.Generator`` seeded with ``seed`` when the function is *created*; the
stream then advances over successive calls, so the same sequence of calls gives the same codes (the reference drew
unseeded noise here: a deliberate, documented difference) while two calls never reuse the same noise. The noise is
drawn on the CPU, so CPU and CUDA give the same samples up to floating point.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from training.models.architecture import Encoder, sample_latent
from training.vocabulary import REPRESENTATIONS

RepresentationFn = Callable[[np.ndarray], np.ndarray]


def check_observations(observations, num_channels: int) -> np.ndarray:
    """Return ``observations`` as a float32 (n, 64, 64, C) array; ValueError on a wrong shape or channel count."""
    obs = np.asarray(observations)
    if obs.ndim != 4 or obs.shape[1:3] != (64, 64):
        raise ValueError(f"observations must have shape (n, 64, 64, {num_channels}), got {obs.shape}")
    if obs.shape[3] != num_channels:
        raise ValueError(f"observations have {obs.shape[3]} channel(s) but the model was built for {num_channels}")
    return np.ascontiguousarray(obs, dtype=np.float32)


def chunked_codes(num: int, num_latent: int, batch_size: int, generator: torch.Generator | None,
                  mean_logvar: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """The codes (num, num_latent) float32 of ONE call of a representation function.

    ``mean_logvar(start, stop)`` gives the encoder's (mean, logvar) tensors of points ``start:stop``; it is called
    for consecutive chunks of ``batch_size`` points. With a ``generator`` (the ``sampled`` representation) the noise
    of the whole call is drawn first, at once, as one (num, num_latent) standard normal tensor, so the codes do not
    depend on ``batch_size``; each chunk's code is ``mean + exp(logvar / 2) * noise``. Shared by the encoder path
    and the code table (:mod:`training.evaluation.code_table`), which therefore draw the same noise and do the same arithmetic.
    """
    out = np.empty((num, num_latent), dtype=np.float32)
    noise = None if generator is None else torch.randn((num, num_latent), generator=generator)
    for start in range(0, num, batch_size):
        stop = min(num, start + batch_size)
        mean, logvar = mean_logvar(start, stop)
        if noise is not None:
            mean = sample_latent(mean, logvar, noise[start:stop].to(mean.device))
        out[start:stop] = mean.float().cpu().numpy()
    return out


def make_representation_fn(encoder: Encoder, kind: str, seed: int = 0, batch_size: int = 256,
                           device: str | torch.device | None = None) -> RepresentationFn:
    """A callable observations (n, 64, 64, C) -> codes (n, L) float32 for ``kind`` ``mean`` or ``sampled``.

    ``batch_size`` bounds how many observations go through the encoder at once; ``device`` defaults to the
    encoder's. The encoder is used as it is (not copied); do not train it while the function is in use.
    """
    if kind not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {kind!r}; expected one of {', '.join(REPRESENTATIONS)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    if device is None:
        device = next(encoder.parameters()).device
    device = torch.device(device)
    generator = torch.Generator().manual_seed(int(seed)) if kind == "sampled" else None
    num_channels = encoder.num_channels

    def representation(observations) -> np.ndarray:
        obs = check_observations(observations, num_channels)

        def mean_logvar(start: int, stop: int):
            chunk = torch.from_numpy(obs[start:stop]).to(device).permute(0, 3, 1, 2)
            return encoder(chunk)

        was_training = encoder.training
        encoder.eval()
        try:
            with torch.inference_mode():
                return chunked_codes(obs.shape[0], encoder.num_latent, batch_size, generator, mean_logvar)
        finally:
            encoder.train(was_training)

    representation.kind = kind  # type: ignore[attr-defined]
    representation.seed = int(seed)  # type: ignore[attr-defined]
    return representation
