"""Theorem 1 of the paper (Section 3), made concrete: rotate a trained model's latent space.

For the isotropic Gaussian prior p(z) = N(0, I), any rotation R (orthogonal, det +1) leaves the prior invariant:
p(R z) = p(z). The model with decoder ``g'(z') = g(R^T z')`` and encoder ``q'(z' | x) = N(R mu(x), R Sigma(x) R^T)``
therefore has exactly the same marginal likelihood p(x) as the original, and the same ELBO, yet its code z' = R z
mixes every latent of the original: a model that was disentangled is now entangled, and nothing an unsupervised
objective can see tells the two apart.

* :func:`haar_rotation`: a rotation drawn uniformly (Haar measure on SO(d)): the QR decomposition of a standard
  Gaussian matrix, with the columns' signs fixed so that R's diagonal is positive (Mezzadri, "How to generate random
  matrices from the classical compact groups", 2007: without the fix QR's output is not Haar-distributed), then the
  first column negated when the determinant is -1 (a fixed reflection maps the Haar measure of O(d)'s other coset
  onto SO(d)'s).
* :data:`ROTATION_SEED`: the study draws ONE rotation, ``haar_rotation(10, np.random.RandomState(ROTATION_SEED))``,
  and applies it to every model (a rotation fixed in advance, independent of the model: the point is that *any*
  rotation keeps the likelihood).
* :class:`RotatedModel`: the representation functions of the rotated model (``x -> R mu(x)`` for ``mean``; for
  ``sampled`` the rotated encoder's sample ``R mu + R Sigma^{1/2} eps = R z``), usable wherever a
  :class:`~training.engine.train.TrainedModel` is evaluated.
* :class:`RotatedVAE`: the rotated encoder as a full-covariance Gaussian and the rotated decoder, for the likelihood
  (:mod:`training.evaluation.likelihood`), which evaluates the rotated model through them without using the
  invariance it is meant to show.

Importing this module does not import torch (the analysis side draws the same rotation).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from training.randomness import check_random_state

if TYPE_CHECKING:
    import torch

#: Seed of the ``np.random.RandomState`` that draws the study's one rotation.
ROTATION_SEED = 0


def haar_rotation(dim: int, random_state) -> np.ndarray:
    """A (dim, dim) float64 rotation (R^T R = I, det R = +1) drawn from the Haar measure on SO(dim).

    ``random_state``: a ``np.random.RandomState`` or an int seed (its stream is consumed: one standard normal
    (dim, dim) draw)."""
    dim = int(dim)
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    rs = check_random_state(random_state)
    q, r = np.linalg.qr(rs.standard_normal((dim, dim)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]      # Q diag(sign(diag R)): Haar on O(dim)
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]                                     # the fixed reflection onto SO(dim)
    return q


def study_rotation(dim: int = 10) -> np.ndarray:
    """The rotation every model of the study is rotated with: ``haar_rotation(dim, RandomState(ROTATION_SEED))``."""
    return haar_rotation(dim, np.random.RandomState(ROTATION_SEED))


def check_rotation(rotation, dim: int) -> np.ndarray:
    """``rotation`` as a float64 (dim, dim) array; ValueError unless it is orthogonal with determinant +1."""
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape != (dim, dim):
        raise ValueError(f"rotation must be ({dim}, {dim}), got {r.shape}")
    if not np.allclose(r.T @ r, np.eye(dim), atol=1e-10) or np.linalg.det(r) < 0:
        raise ValueError("rotation must be orthogonal with determinant +1")
    return r


def rotate_codes(codes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``R z`` for every code: (n, d) codes in (any float dtype), (n, d) float32 out (computed in float64)."""
    codes = np.asarray(codes)
    return (codes.astype(np.float64) @ np.asarray(rotation, dtype=np.float64).T).astype(np.float32)


class RotatedModel:
    """The representation functions of a model whose latent space is rotated by ``rotation``.

    ``model``: anything with ``representation_fn(kind, seed=..., batch_size=...)`` and ``num_latent`` (a
    :class:`~training.engine.train.TrainedModel`). ``representation_fn(kind, seed)`` returns ``x -> R f(x)`` for the
    model's own ``f``: for ``mean`` the rotated encoder mean, for ``sampled`` the rotated encoder's sample.
    """

    def __init__(self, model, rotation: np.ndarray):
        self.model = model
        self.rotation = check_rotation(rotation, int(model.num_latent))

    @property
    def num_latent(self) -> int:
        return int(self.model.num_latent)

    def representation_fn(self, kind: str, seed: int = 0, batch_size: int = 256):
        inner = self.model.representation_fn(kind, seed=seed, batch_size=batch_size)

        def representation(observations) -> np.ndarray:
            return rotate_codes(inner(observations), self.rotation)

        representation.kind = kind  # type: ignore[attr-defined]
        representation.seed = int(seed)  # type: ignore[attr-defined]
        return representation


class RotatedVAE:
    """The rotated model of Theorem 1 as a Gaussian encoder with a full covariance and a decoder.

    ``vae``: a :class:`~training.models.architecture.GaussianVAE` (encoder -> (mean, logvar), decoder -> Bernoulli
    logits). :meth:`encode` returns the rotated posterior ``N(R mu, R Sigma R^T)`` as its mean (n, d) and a square
    root ``S = R Sigma^{1/2}`` of its covariance (n, d, d) in float64 (a sample is ``mean + S eps``); :meth:`decode`
    maps z' (n, d) to the logits of ``g(R^T z')``. The latent arithmetic is float64; the networks run in float32.
    """

    def __init__(self, vae, rotation: np.ndarray):
        import torch

        self.vae = vae
        self.rotation = torch.as_tensor(check_rotation(rotation, int(vae.num_latent)), dtype=torch.float64)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        mean, logvar = self.vae.encoder(images)
        r = self.rotation.to(mean.device)
        scale = r[None] * torch.exp(0.5 * logvar.double())[:, None, :]        # R diag(sigma)
        return mean.double() @ r.T, scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        r = self.rotation.to(z.device)
        return self.vae.decoder((z.double() @ r).float())                       # R^T z' for each row z'
