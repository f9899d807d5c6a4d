"""The six objectives of the study as pure tensor functions (the paper's Section 3 and the methods it cites: Higgins et al. 2017, Burgess et al. 2018, Kim & Mnih 2018, Chen et al. 2018, Kumar et al. 2018).

Interface (shared with the packed multi-model trainer, which vmaps these functions over stacked parameters):

* Every function takes tensors (and plain numbers or 0-d tensors for hyperparameters and the global step) and returns
  tensors; scalar losses are 0-d tensors. No ``.item()``, no data-dependent Python control flow, no randomness:
  sampling noise and permutation noise are inputs. So they run unchanged under ``torch.func.vmap`` / ``grad`` and
  ``torch.compile``. Branching happens only on the *method name* (a Python string).
* Shapes: images / logits ``(N, C, H, W)`` (any ``(N, ...)`` works), latent statistics ``mean``, ``logvar`` and
  samples ``z`` ``(N, L)``, discriminator logits ``(N, 2)``.
* Units: every loss is a per-example sum (over pixels or latent dimensions) averaged over the batch, in nats.

Entry points:

* :func:`resolve_hparams` (method, user dict) -> the complete hyperparameter dict the objective uses (validates names;
  fills annealed_vae's ``gamma=1000`` / ``iteration_threshold=100000`` and DIP-VAE's ``lambda_d``).
* :func:`vae_losses` (method, targets, logits, mean, logvar, z, step, hparams, discriminator_logits) -> dict with
  ``reconstruction_loss``, ``kl_loss``, ``regularizer``, ``loss`` (= reconstruction + regularizer, what the VAE
  optimiser minimises) and ``elbo`` (= -(reconstruction + kl), positive-is-better as the reference stored it).
* :func:`discriminator_loss` (logits on real samples, logits on dimension-wise permuted samples) -> the FactorVAE
  discriminator's loss to minimise (the negated objective ``0.5 E log p0(z) + 0.5 E log p1(z_perm)``).
* The building blocks: :func:`reconstruction_loss`, :func:`kl_loss`, :func:`gaussian_log_density`,
  :func:`total_correlation_mws`, :func:`covariance_of_mean`, :func:`dip_covariance`, :func:`dip_regularizer`,
  :func:`annealed_capacity`, :func:`factor_total_correlation`, :func:`regularizer`.

For ``factor_vae`` the caller evaluates the discriminator on ``z`` and passes its logits; the VAE loss must not update
the discriminator (optimise it with the VAE parameters only) and the discriminator loss must not update the VAE
(detach ``z`` or restrict the optimiser), as the reference did with separate ``var_list`` s.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from training.vocabulary import METHODS

ANNEALED_GAMMA = 1000.0
ANNEALED_ITERATION_THRESHOLD = 100_000.0
DIP_LAMBDA_D_FACTOR = {"dip_vae_i": 10.0, "dip_vae_ii": 1.0}
DISCRIMINATOR_PROB_CLIP = 1e-6  # the reference clips the discriminator's softmax to [1e-6, 1 - 1e-6] before log

# method -> optional extra hyperparameters a user may set, with their defaults
_OPTIONAL = {"annealed_vae": {"gamma": ANNEALED_GAMMA, "iteration_threshold": ANNEALED_ITERATION_THRESHOLD}}


def resolve_hparams(method: str, hparams: dict) -> dict:
    """Validate ``hparams`` for ``method`` and return the full set the objective uses.

    ``hparams`` must hold the method's vocabulary hyperparameter (``beta``, ``gamma``, ``lambda_od`` or ``c_max``);
    ``annealed_vae`` also accepts ``gamma`` (default 1000) and ``iteration_threshold`` (default 100000). DIP-VAE
    gets ``lambda_d`` = 10 * lambda_od (type I) or lambda_od (type II). Values may be numbers or tensors (for packed
    training). Raises ValueError for an unknown method, a missing or unknown name, or a non-finite / negative value.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not isinstance(hparams, dict):
        raise ValueError(f"hparams must be a dict like {{{METHODS[method][0]!r}: value}}, got {type(hparams).__name__}")
    main = METHODS[method][0]
    optional = _OPTIONAL.get(method, {})
    allowed = {main, *optional}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for {method}; "
                         f"expected {', '.join(map(repr, sorted(allowed)))}")
    if main not in hparams:
        raise ValueError(f"{method} needs the hyperparameter {main!r}")
    full = dict(optional)
    full.update(hparams)
    for name, value in full.items():
        if not isinstance(value, torch.Tensor):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"hyperparameter {name!r} of {method} must be a number, got {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"hyperparameter {name!r} of {method} must be finite and >= 0, got {value}")
            full[name] = value
    if method == "annealed_vae" and not isinstance(full["iteration_threshold"], torch.Tensor) \
            and full["iteration_threshold"] <= 0:
        raise ValueError("iteration_threshold of annealed_vae must be > 0")
    if method in DIP_LAMBDA_D_FACTOR:
        full["lambda_d"] = DIP_LAMBDA_D_FACTOR[method] * full["lambda_od"]
    return full


def reconstruction_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Bernoulli reconstruction loss: per-example sum of sigmoid cross-entropy(logits, targets), batch mean.

    ``targets`` are the [0, 1] pixel values (not binarised); no entropy of the targets is subtracted.
    """
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) = 0.5 * sum_j (mu_j^2 + exp(logvar_j) - logvar_j - 1), batch mean."""
    return (0.5 * (mean.square() + logvar.exp() - logvar - 1.0).sum(1)).mean()


def gaussian_log_density(samples: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(samples; mean, exp(logvar)), broadcasting: -0.5 * ((s - m)^2 / v + logvar + log 2pi)."""
    diff = samples - mean
    return -0.5 * (diff * diff * torch.exp(-logvar) + logvar + math.log(2.0 * math.pi))


def total_correlation_mws(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch-weighted total-correlation estimate of beta-TCVAE on one batch.

    ``mean_j [ log sum_i q(z_j | x_i) - sum_l log sum_i q(z_jl | x_i) ]`` with q Gaussian, z (N, L) one sample per
    example, as the reference computed it. The reference drops the log(N * dataset size) normalisers; that shifts the
    estimate by the constant (L - 1) * log(N * dataset size) and leaves its gradient unchanged.
    """
    log_q = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))  # (j, i, l)
    log_q_product = torch.logsumexp(log_q, dim=1).sum(1)   # sum_l log sum_i q(z_jl | x_i)
    log_q_joint = torch.logsumexp(log_q.sum(2), dim=1)    # log sum_i prod_l q(z_jl | x_i)
    return (log_q_joint - log_q_product).mean()


def covariance_of_mean(mean: torch.Tensor) -> torch.Tensor:
    """Population covariance over the batch of the encoder means: E[mu mu^T] - E[mu] E[mu]^T, (L, L)."""
    second = (mean.unsqueeze(2) * mean.unsqueeze(1)).mean(0)
    first = mean.mean(0)
    return second - first.unsqueeze(1) * first.unsqueeze(0)


def dip_covariance(mean: torch.Tensor, logvar: torch.Tensor, method: str) -> torch.Tensor:
    """The covariance DIP-VAE regularises, (L, L).

    ``dip_vae_i``: Cov_batch[mu]. ``dip_vae_ii``: Cov_batch[mu] + mean_batch(diag(exp(logvar))).
    """
    cov = covariance_of_mean(mean)
    if method == "dip_vae_i":
        return cov
    if method == "dip_vae_ii":
        return cov + torch.diag_embed(logvar.exp().mean(0))
    raise ValueError(f"dip_covariance: method must be dip_vae_i or dip_vae_ii, got {method!r}")


def dip_regularizer(covariance: torch.Tensor, lambda_od, lambda_d) -> torch.Tensor:
    """lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2."""
    diagonal = torch.diagonal(covariance, dim1=-2, dim2=-1)
    off_diagonal = covariance - torch.diag_embed(diagonal)
    return lambda_od * off_diagonal.square().sum((-2, -1)) + lambda_d * (diagonal - 1.0).square().sum(-1)


def annealed_capacity(step, c_max, iteration_threshold=ANNEALED_ITERATION_THRESHOLD):
    """AnnealedVAE capacity C(t) = min(c_max, c_max * t / iteration_threshold) for c_max >= 0 (t = global step).

    ``step`` is a number or a tensor (a tensor gives a tensor, so the schedule is traceable).
    """
    fraction = step / iteration_threshold
    if isinstance(fraction, torch.Tensor):
        fraction = torch.clamp(fraction, max=1.0)
    else:
        fraction = min(float(fraction), 1.0)
    return c_max * fraction


def factor_total_correlation(discriminator_logits: torch.Tensor) -> torch.Tensor:
    """FactorVAE's TC estimate: batch mean of logit_0 - logit_1 of the discriminator on q(z) samples."""
    return (discriminator_logits[:, 0] - discriminator_logits[:, 1]).mean()


def discriminator_loss(logits_real: torch.Tensor, logits_permuted: torch.Tensor) -> torch.Tensor:
    """FactorVAE discriminator loss (minimised): -(0.5 * mean log p0(z) + 0.5 * mean log p1(z_perm)).

    p = softmax(logits) clipped to [1e-6, 1 - 1e-6] before the log, as in the reference.
    """
    p_real = torch.softmax(logits_real, dim=1).clamp(DISCRIMINATOR_PROB_CLIP, 1.0 - DISCRIMINATOR_PROB_CLIP)
    p_perm = torch.softmax(logits_permuted, dim=1).clamp(DISCRIMINATOR_PROB_CLIP, 1.0 - DISCRIMINATOR_PROB_CLIP)
    return -(0.5 * torch.log(p_real[:, 0]).mean() + 0.5 * torch.log(p_perm[:, 1]).mean())


def regularizer(method: str, *, kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                step, hparams: dict, discriminator_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The method's regularizer (the loss is reconstruction + this); ``hparams`` as :func:`resolve_hparams` returns.

    * beta_vae: beta * kl
    * annealed_vae: gamma * |kl - C(step)|
    * factor_vae: kl + gamma * TC(discriminator_logits)
    * beta_tc_vae: kl + (beta - 1) * TC_mws(z, mean, logvar)
    * dip_vae_i / dip_vae_ii: kl + dip_regularizer(dip_covariance, lambda_od, lambda_d)
    """
    if method == "beta_vae":
        return hparams["beta"] * kl
    if method == "annealed_vae":
        capacity = annealed_capacity(step, hparams["c_max"], hparams["iteration_threshold"])
        return hparams["gamma"] * torch.abs(kl - capacity)
    if method == "factor_vae":
        if discriminator_logits is None:
            raise ValueError("factor_vae needs the discriminator's logits on z")
        return kl + hparams["gamma"] * factor_total_correlation(discriminator_logits)
    if method == "beta_tc_vae":
        return kl + (hparams["beta"] - 1.0) * total_correlation_mws(z, mean, logvar)
    if method in ("dip_vae_i", "dip_vae_ii"):
        cov = dip_covariance(mean, logvar, method)
        return kl + dip_regularizer(cov, hparams["lambda_od"], hparams["lambda_d"])
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def vae_losses(method: str, *, targets: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor,
               logvar: torch.Tensor, z: torch.Tensor, step, hparams: dict,
               discriminator_logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All of a method's losses on one batch (0-d tensors).

    Returns ``reconstruction_loss``, ``kl_loss``, ``regularizer``, ``loss`` = reconstruction + regularizer (what the
    VAE optimiser minimises) and ``elbo`` = -(reconstruction + kl).
    """
    rec = reconstruction_loss(logits, targets)
    kl = kl_loss(mean, logvar)
    reg = regularizer(method, kl=kl, mean=mean, logvar=logvar, z=z, step=step, hparams=hparams,
                      discriminator_logits=discriminator_logits)
    return {"reconstruction_loss": rec, "kl_loss": kl, "regularizer": reg, "loss": rec + reg, "elbo": -(rec + kl)}
