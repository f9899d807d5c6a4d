"""UDR, the Unsupervised Disentanglement Ranking of Duan et al., "Unsupervised Model Selection for Variational
Disentangled Representation Learning" (ICLR 2020), with the Spearman similarity (their UDR_S), as a pure NumPy core.

The idea: a disentangled model's informative latents are each a monotone function of one generative factor, so two
disentangled models trained with different seeds agree latent for latent (up to a permutation and signs), while
entangled models agree only up to mixtures. For models a and b encoded on the SAME N inputs:

* **similarity** ``R[i, j] = |Spearman(z_a[:, i], z_b[:, j])|`` for every pair of latents (a (d_a, d_b) matrix);
* **informative latents**: latent i of a model is kept when its KL to the prior, averaged over the inputs,
  ``KL_i = mean_n 0.5 (mu_ni^2 + sigma_ni^2 - log sigma_ni^2 - 1)``, exceeds :data:`KL_THRESHOLD` = 0.01 nats; the
  similarity matrix is restricted to the informative rows (of a) and columns (of b) - a collapsed latent (KL ~ 0)
  carries no signal and would only add noise;
* **pairwise score** (relative strength): with R restricted,
  ``UDR_ab = 1/2 [ mean_j max_i R_ij^2 / sum_i R_ij + mean_i max_j R_ij^2 / sum_j R_ij ]`` (a column or row that sums
  to 0 contributes 0). It is 1 when R is a permutation matrix (one-to-one latents) and falls towards 1/d as every
  latent of one model correlates equally with every latent of the other. A pair in which one model has no
  informative latent scores 0 (nothing is shared);
* **per-model score**: ``UDR_a = median over its partners b of UDR_ab``.

Partners: the other seeds of the same configuration (dataset, method, hyperparameter value), as in Duan et al.'s
UDR (their UDR_A2A compares against every model instead): ``groups`` says which models are partners. A model
without a partner gets NaN.

This follows disentanglement_lib's ``evaluation/udr`` (``correlation_matrix="spearman"``, ``filter_low_kl=True``,
``kl_filter_threshold=0.01``), written anew: the Spearman matrix of all model pairs at once from standardised ranks
(average ranks for ties; a constant latent correlates 0 with everything instead of NaN), and the empty-mask case
defined (the reference raises there). Inputs are the encoder MEANS (the ``mean`` representation) on
:data:`NUM_POINTS` observations drawn once with ``np.random.RandomState(`` :data:`UDR_SEED` ``)``, the same for every
model of a dataset (:func:`training.evaluation.model_analyses.udr_inputs`).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

#: Latents whose KL to the prior, averaged over the inputs, is at most this many nats are left out (the reference's
#: ``kl_filter_threshold``).
KL_THRESHOLD = 0.01
#: Observations every model of a dataset is encoded on (not scaled with the protocol: a few thousand encodings per
#: model are cheap; Spearman estimates from 1,000 points have a standard error of ~0.03).
NUM_POINTS = 1000
#: Seed of the ``np.random.RandomState`` that draws those observations.
UDR_SEED = 0


def gaussian_kl_per_latent(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, 1)) of every latent, averaged over the inputs: (N, d) means and log-variances in,
    (d,) nats out."""
    mean = np.asarray(mean, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    return (0.5 * (mean ** 2 + np.exp(logvar) - logvar - 1.0)).mean(axis=0)


def informative_latents(kl: np.ndarray, threshold: float = KL_THRESHOLD) -> np.ndarray:
    """Boolean mask of the latents whose mean KL exceeds ``threshold`` (any leading shape)."""
    return np.asarray(kl, dtype=np.float64) > threshold


def standardized_ranks(codes: np.ndarray) -> np.ndarray:
    """Ranks of every latent over the inputs (axis -2; average ranks for ties), centred and scaled to unit norm, so
    that ``Z_a.T @ Z_b`` is the Spearman matrix. ``codes``: (..., N, d). A constant latent gives a zero column."""
    ranks = stats.rankdata(np.asarray(codes, dtype=np.float64), axis=-2)
    ranks -= ranks.mean(axis=-2, keepdims=True)
    norm = np.sqrt((ranks ** 2).sum(axis=-2, keepdims=True))
    return np.divide(ranks, norm, out=np.zeros_like(ranks), where=norm > 0)


def spearman_similarity(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """``|Spearman(codes_a[:, i], codes_b[:, j])|`` as a (d_a, d_b) matrix; codes (N, d_a) and (N, d_b) of the same
    N inputs."""
    a, b = np.asarray(codes_a), np.asarray(codes_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"codes must be (N, d) arrays of the same N inputs, got {a.shape} and {b.shape}")
    return np.abs(standardized_ranks(a).T @ standardized_ranks(b))


def relative_strength(similarity: np.ndarray) -> float:
    """The pairwise score of a similarity matrix (already restricted to informative latents): the mean over the
    average of columns and rows of ``max^2 / sum`` (0 for a zero column or row); 0 for an empty matrix."""
    r = np.asarray(similarity, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"similarity must be a 2-d matrix, got shape {r.shape}")
    if r.size == 0:
        return 0.0

    def side(axis: int) -> float:
        total = r.sum(axis=axis)
        peak = r.max(axis=axis)
        return float(np.mean(np.divide(peak ** 2, total, out=np.zeros_like(total), where=total > 0)))

    return 0.5 * (side(0) + side(1))


def pairwise_udr(codes_a: np.ndarray, codes_b: np.ndarray, kl_a: np.ndarray, kl_b: np.ndarray,
                 threshold: float = KL_THRESHOLD) -> float:
    """UDR_ab of two models from their codes (N, d) on the same inputs and their per-latent KL (d,)."""
    similarity = spearman_similarity(codes_a, codes_b)
    keep_a, keep_b = informative_latents(kl_a, threshold), informative_latents(kl_b, threshold)
    return relative_strength(similarity[keep_a][:, keep_b])


def udr_scores(codes: np.ndarray, kl: np.ndarray, groups=None, threshold: float = KL_THRESHOLD) -> dict:
    """UDR of every model.

    ``codes``: (M, N, d) means of M models on the same N inputs; ``kl``: (M, d) per-latent KL; ``groups``: (M,)
    labels, partners are the other models with the same label (None: every other model). Returns a dict with
    ``udr`` (M,) (NaN for a model without partners), ``pairwise`` (M, M) (NaN off the partner pairs and on the
    diagonal), ``num_informative`` (M,) ints and ``num_partners`` (M,) ints.
    """
    codes = np.asarray(codes, dtype=np.float64)
    kl = np.asarray(kl, dtype=np.float64)
    if codes.ndim != 3 or kl.shape != (codes.shape[0], codes.shape[2]):
        raise ValueError(f"codes must be (M, N, d) and kl (M, d); got {codes.shape} and {kl.shape}")
    m = codes.shape[0]
    labels = np.zeros(m, dtype=int) if groups is None else np.asarray(groups, dtype=object)
    if labels.shape != (m,):
        raise ValueError(f"groups must hold one label per model ({m}), got shape {labels.shape}")
    partners = (labels[:, None] == labels[None, :]) & ~np.eye(m, dtype=bool)
    keep = informative_latents(kl, threshold)
    z = standardized_ranks(codes)
    pairwise = np.full((m, m), np.nan)
    for a, b in zip(*np.nonzero(np.triu(partners))):
        similarity = np.abs(z[a].T @ z[b])
        # the score is symmetric: swapping the models transposes the matrix, which swaps the two averaged sides
        pairwise[a, b] = pairwise[b, a] = relative_strength(similarity[keep[a]][:, keep[b]])
    udr = np.array([np.median(pairwise[a, partners[a]]) if partners[a].any() else np.nan for a in range(m)])
    return {"udr": udr, "pairwise": pairwise, "num_informative": keep.sum(axis=1).astype(int),
            "num_partners": partners.sum(axis=1).astype(int)}
