"""The importance-weighted estimate of log p(x) (IWAE; Burda, Grosse & Salakhutdinov, "Importance Weighted
Autoencoders", ICLR 2016) of a trained model and of its rotated twin (Theorem 1, :mod:`training.evaluation.rotation`).

For an observation x, K samples z_k ~ q(z | x) and the model's joint p(x, z) = p(x | z) p(z):

    log p^(x) = log (1/K) sum_k exp(w_k),   w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x),

a lower bound of log p(x) in expectation that tightens as K grows (K = 1 is the ELBO). Here:

* p(x | z): the Bernoulli decoder the models train with (:func:`training.models.objectives.reconstruction_loss`):
  ``log p(x | z) = -sum_pixels BCE_with_logits(g(z), x)``, with x the [0, 1] pixel values (binary for dSprites);
* p(z) = N(0, I); q(z | x) = N(mean, S S^T) given by the encoder as a mean and a square root S of the covariance
  (diagonal ``diag(sigma)`` for the trained model, ``R diag(sigma)`` for the rotated one); a sample is
  ``mean + S eps``, and log q is evaluated from the covariance ``S S^T`` through its Cholesky factor - the full-
  covariance density, with no use of the rotation's invariance;
* the noise eps (N, K, d) is drawn once, float64, from ``torch.Generator().manual_seed(seed)``, and the SAME noise
  serves the trained and the rotated model: the rotated sample is then exactly R times the trained one, and the two
  estimates agree up to rounding (Theorem 1). Latent arithmetic is float64, the networks float32.

:func:`iwae_log_likelihoods` returns the per-observation estimates (nats) of both models;
:data:`NUM_OBSERVATIONS` = 500 observations drawn with ``np.random.RandomState(LIKELIHOOD_SEED)`` and
:data:`NUM_SAMPLES` = 100 importance samples are the study's choice (:mod:`training.evaluation.model_analyses`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

NUM_OBSERVATIONS = 500
NUM_SAMPLES = 100
LIKELIHOOD_SEED = 0
#: Decoder passes per batch (observations x samples): bounds the memory of one forward pass.
MAX_DECODES = 500


def iwae_estimate(log_weights) -> np.ndarray:
    """``log (1/K) sum_k exp(w_k)`` of (N, K) log importance weights -> (N,) float64 (stable log-sum-exp)."""
    w = torch.as_tensor(np.asarray(log_weights, dtype=np.float64))
    if w.dim() != 2 or w.shape[1] < 1:
        raise ValueError(f"log_weights must be (N, K) with K >= 1, got shape {tuple(w.shape)}")
    return (torch.logsumexp(w, dim=1) - math.log(w.shape[1])).numpy()


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, scale scale^T) for samples z (n, K, d), means (n, d) and covariance square roots (n, d, d):
    (n, K). The covariance is formed and factorised (Cholesky), so any square root gives the same density."""
    cov = scale @ scale.transpose(1, 2)
    chol = torch.linalg.cholesky(cov)                                           # (n, d, d) lower
    diff = (z - mean[:, None, :]).transpose(1, 2)                               # (n, d, K)
    y = torch.linalg.solve_triangular(chol, diff, upper=False)                  # L y = z - mean
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)      # (n,)
    d = z.shape[-1]
    return -0.5 * ((y ** 2).sum(1) + log_det[:, None] + d * math.log(2.0 * math.pi))


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * ((z ** 2).sum(-1) + z.shape[-1] * math.log(2.0 * math.pi))


def bernoulli_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-sum_pixels BCE_with_logits(logits, targets)`` per example (float64): (B, C, H, W) in, (B,) out."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return -per_pixel.flatten(1).double().sum(1)


class DiagonalVAE:
    """A trained :class:`~training.models.architecture.GaussianVAE` in the interface of
    :class:`training.evaluation.rotation.RotatedVAE`: ``encode`` -> (mean (n, d), ``diag(sigma)`` (n, d, d)) in
    float64, ``decode`` -> logits of ``g(z)``."""

    def __init__(self, vae):
        self.vae = vae

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.vae.encoder(images)
        return mean.double(), torch.diag_embed(torch.exp(0.5 * logvar.double()))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decoder(z.float())


def log_importance_weights(model, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(n, K) log importance weights of ``model`` (``encode`` / ``decode`` as :class:`DiagonalVAE`) for NCHW float32
    ``images`` (n, C, H, W) and standard normal ``noise`` (n, K, d) float64."""
    mean, scale = model.encode(images)
    n, k, d = noise.shape
    z = mean[:, None, :] + noise @ scale.transpose(1, 2)                        # mean + S eps, (n, K, d)
    log_q = gaussian_log_density(z, mean, scale)
    logits = model.decode(z.reshape(n * k, d))
    targets = images[:, None].expand(n, k, *images.shape[1:]).reshape(n * k, *images.shape[1:])
    log_px = bernoulli_log_likelihood(logits, targets).reshape(n, k)
    return log_px + standard_normal_log_density(z) - log_q


def iwae_log_likelihoods(vae, observations: np.ndarray, models: dict, num_samples: int = NUM_SAMPLES,
                         seed: int = LIKELIHOOD_SEED) -> dict[str, np.ndarray]:
    """Per-observation IWAE estimates (N,) float64 in nats, one array per entry of ``models`` (name -> an object
    with ``encode`` / ``decode``, e.g. ``{"trained": DiagonalVAE(vae), "rotated": RotatedVAE(vae, R)}``), all with
    the same noise. ``observations``: (N, 64, 64, C) float32 in [0, 1] (NHWC); ``vae`` gives the device and is put
    in eval mode while this runs."""
    obs = np.ascontiguousarray(observations, dtype=np.float32)
    if obs.ndim != 4:
        raise ValueError(f"observations must be (N, 64, 64, C), got shape {obs.shape}")
    num_samples = int(num_samples)
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    device = next(vae.parameters()).device
    noise = torch.randn((obs.shape[0], num_samples, int(vae.num_latent)), dtype=torch.float64,
                        generator=torch.Generator().manual_seed(int(seed)))
    chunk = max(1, MAX_DECODES // num_samples)
    out = {name: np.empty(obs.shape[0]) for name in models}
    was_training = vae.training
    vae.eval()
    try:
        with torch.inference_mode():
            for start in range(0, obs.shape[0], chunk):
                stop = min(obs.shape[0], start + chunk)
                images = torch.from_numpy(obs[start:stop]).to(device).permute(0, 3, 1, 2)
                eps = noise[start:stop].to(device)
                for name, model in models.items():
                    out[name][start:stop] = iwae_estimate(log_importance_weights(model, images, eps).cpu().numpy())
    finally:
        vae.train(was_training)
    return out
