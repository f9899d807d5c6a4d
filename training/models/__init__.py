"""The study's network and objectives.

* :mod:`training.models.architecture`: the shared network as the paper's architecture table gives it (Gaussian conv
  encoder ``(N, C, 64, 64) -> (mean, logvar)`` of ``(N, 10)``, deconv decoder to Bernoulli logits, FactorVAE
  discriminator), Glorot-uniform initialisation.
* :mod:`training.models.objectives`: the six objectives (beta-VAE, AnnealedVAE, FactorVAE, beta-TCVAE, DIP-VAE-I,
  DIP-VAE-II) as pure tensor functions.
* :mod:`training.models.flops`: the network's multiply-accumulates per layer and per training step.

Training lives in :mod:`training.engine`; its fast paths in :mod:`training.kernels`.
"""
