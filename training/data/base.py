"""The dataset interface shared by all seven ground-truth datasets (disentanglement_lib's split state space).

A dataset is a two-step generative model: draw a factor vector, then an image for it. Only *latent* factors are
exposed to models and metrics; the remaining *observation* (nuisance) factors are redrawn uniformly for every call.
The random-draw order equals the reference implementation (disentanglement_lib's ``GroundTruthData``):

1. ``sample_factors``: for each latent factor in order, ``random_state.randint(size, size=num)``;
2. ``sample_observations_from_factors``: for each observation factor in order, the same kind of draw (a factor of
   size 1 consumes no random numbers), then the dataset-specific draws of :meth:`GroundTruthDataset._render`.

Observations are float32 arrays in [0, 1] of shape (num, 64, 64, C), converted per batch from uint8 storage.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from training.randomness import check_random_state


def _check_num(num: Any) -> int:
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or int(num) < 0:
        raise ValueError(f"num must be a non-negative integer, got {num!r}")
    return int(num)


class GroundTruthDataset:
    """Base class: factor bookkeeping and the reference's sampling order; subclasses implement :meth:`_render`.

    Attributes set by subclasses (through :meth:`_init_state_space`):
        name: vocabulary name of the dataset.
        source: JSON-serialisable description of where the data comes from (generator + version, or file + sha256).
        factor_sizes: sizes of *all* factors (latent and observation), in storage order.
        latent_factor_indices: positions of the latent factors within ``factor_sizes``.
        all_factor_names: names of all factors.
        observation_shape: (64, 64, C).
    """

    name: str = ""
    source: dict = {}
    observation_shape: tuple[int, int, int] = (64, 64, 1)
    #: True when an image is a fixed function of its FULL factor vector (latent + observation factors) and
    #: :meth:`_render` draws nothing from the random state: dsprites_full, shapes3d, cars3d, smallnorb. False for the
    #: colour / noise / Scream variants, which draw per image. Enables :meth:`render_all_factors` and a code table
    #: (:mod:`training.evaluation.code_table`).
    deterministic_render: bool = False

    def _init_state_space(self, factor_sizes, latent_factor_indices, all_factor_names) -> None:
        self.factor_sizes = [int(s) for s in factor_sizes]
        self.latent_factor_indices = [int(i) for i in latent_factor_indices]
        self.all_factor_names = [str(n) for n in all_factor_names]
        if len(self.all_factor_names) != len(self.factor_sizes):
            raise ValueError("one factor name per factor size is required")
        if any(s < 1 for s in self.factor_sizes):
            raise ValueError(f"factor sizes must be positive, got {self.factor_sizes}")
        self.observation_factor_indices = [
            i for i in range(len(self.factor_sizes)) if i not in self.latent_factor_indices]
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        self._latent_sizes = [self.factor_sizes[i] for i in self.latent_factor_indices]
        self._latent_sizes_array = sizes[self.latent_factor_indices]
        # C-order bases: prod(sizes) / cumprod(sizes); the last factor varies fastest.
        self.factor_bases = (np.prod(sizes) // np.cumprod(sizes)).astype(np.int64)

    # -- the public interface (what every dataset offers) ----------------------------------------------------
    @property
    def num_factors(self) -> int:
        """Number of latent factors."""
        return len(self.latent_factor_indices)

    @property
    def factors_num_values(self) -> list[int]:
        """Number of values of each latent factor."""
        return list(self._latent_sizes)

    @property
    def factor_names(self) -> list[str]:
        """Names of the latent factors."""
        return [self.all_factor_names[i] for i in self.latent_factor_indices]

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """Draw ``num`` latent factor vectors: int64 (num, num_factors), one ``randint(size)`` per factor in order."""
        num = _check_num(num)
        random_state = check_random_state(random_state, allow_seed=False)
        factors = np.empty((num, len(self._latent_sizes)), dtype=np.int64)
        for pos, size in enumerate(self._latent_sizes):
            factors[:, pos] = random_state.randint(size, size=num)
        return factors

    def sample_all_factors(self, latent_factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """Latent factors (num, num_factors) plus freshly drawn observation factors: (num, len(factor_sizes))."""
        latent_factors = self._check_factors(latent_factors)
        num = latent_factors.shape[0]
        if not self.observation_factor_indices:
            return latent_factors
        all_factors = np.zeros((num, len(self.factor_sizes)), dtype=np.int64)
        all_factors[:, self.latent_factor_indices] = latent_factors
        for i in self.observation_factor_indices:
            all_factors[:, i] = random_state.randint(self.factor_sizes[i], size=num)
        return all_factors

    def sample_observations_from_factors(self, factors: np.ndarray,
                                         random_state: np.random.RandomState) -> np.ndarray:
        """Images for latent ``factors`` (num, num_factors): float32 (num, 64, 64, C) in [0, 1]."""
        random_state = check_random_state(random_state, allow_seed=False)
        all_factors = self.sample_all_factors(factors, random_state)
        return self._render(all_factors, random_state)

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``num`` factor vectors and their images: (int64 (num, num_factors), float32 (num, 64, 64, C))."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """Draw ``num`` images: float32 (num, 64, 64, C) in [0, 1]."""
        return self.sample(num, random_state)[1]

    # -- deterministic datasets ----------------------------------------------------------------------------------
    @property
    def num_configurations(self) -> int:
        """Number of full factor vectors (the product of all factor sizes, observation factors included)."""
        return int(np.prod(np.asarray(self.factor_sizes, dtype=np.int64)))

    def all_factors_of(self, index: np.ndarray) -> np.ndarray:
        """Full factor vectors (num, len(factor_sizes)) of C-order indices (num,): the inverse of :meth:`index_of`."""
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or (index.size and (index.min() < 0 or index.max() >= self.num_configurations)):
            raise ValueError(f"{self.name}: indices must be a 1-d array in [0, {self.num_configurations})")
        return np.stack(np.unravel_index(index, self.factor_sizes), axis=1).astype(np.int64)

    def render_configurations(self, start: int, stop: int) -> np.ndarray:
        """Images float32 (stop - start, 64, 64, C) of the configurations with C-order indices ``start..stop-1``
        (what a code table encodes, :mod:`training.evaluation.code_table`); equal to ``render_all_factors(all_factors_of(
        arange(start, stop)))``, which is what this default does. Datasets with a cheaper source (a cached array)
        override it."""
        return self.render_all_factors(self.all_factors_of(np.arange(int(start), int(stop))))

    def render_all_factors(self, all_factors: np.ndarray) -> np.ndarray:
        """Images float32 (num, 64, 64, C) of full factor vectors (num, len(factor_sizes)), drawing no random numbers;
        only for a dataset with :attr:`deterministic_render` (ValueError otherwise)."""
        if not self.deterministic_render:
            raise ValueError(f"{self.name or type(self).__name__}: images are not a deterministic function of the "
                             "factors (the dataset draws random numbers per image)")
        all_factors = np.asarray(all_factors, dtype=np.int64)
        if all_factors.ndim != 2 or all_factors.shape[1] != len(self.factor_sizes):
            raise ValueError(f"{self.name}: full factor vectors must have shape (num, {len(self.factor_sizes)}), "
                             f"got {all_factors.shape}")
        return self._render(all_factors, None)

    # -- helpers -------------------------------------------------------------------------------------------------
    def index_of(self, all_factors: np.ndarray) -> np.ndarray:
        """C-order row index (int64) of full factor vectors (num, len(factor_sizes))."""
        return np.asarray(all_factors, dtype=np.int64) @ self.factor_bases

    def _check_factors(self, factors: Any) -> np.ndarray:
        array = np.asarray(factors)
        if array.ndim != 2 or array.shape[1] != len(self._latent_sizes):
            raise ValueError(
                f"{self.name}: factors must have shape (num, {self.num_factors}), got {array.shape}")
        if array.dtype != np.int64:
            if array.size and not np.issubdtype(array.dtype, np.integer):
                if not np.all(np.equal(np.mod(array, 1), 0)):
                    raise ValueError(f"{self.name}: factors must be integer class indices")
            array = array.astype(np.int64)
        if array.size and ((array < 0).any() or (array >= self._latent_sizes_array).any()):
            raise ValueError(f"{self.name}: factor values out of range; sizes are {self.factors_num_values}")
        return array

    def _render(self, all_factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        """Images for full factor vectors; draws any dataset-specific randomness from ``random_state``."""
        raise NotImplementedError

    def memory_bytes(self) -> int:
        """Bytes held in memory by this dataset's image storage (0 for a purely on-demand renderer)."""
        return 0

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} factors={dict(zip(self.factor_names, self.factors_num_values))}"
                f" source={self.source.get('kind', '?')}>")


class ImageTableDataset(GroundTruthDataset):
    """A dataset read from files into one uint8 image table: ``images`` (rows, 64, 64) or (rows, 64, 64, C), and
    ``_lookup`` mapping the C-order index of a full factor vector to its row (the reference's StateSpaceAtomIndex).
    Images stay uint8 in memory and are converted per batch."""

    images: np.ndarray
    _lookup: np.ndarray
    deterministic_render = True

    def device_table(self) -> tuple[np.ndarray, float]:
        """The whole image table for device-resident sampling: (uint8 array (rows, 64, 64[, C]) with row i the
        image of the full factor vector of C-order index i, scale 1/255 to [0, 1])."""
        if np.array_equal(self._lookup, np.arange(self._lookup.shape[0])):
            return self.images, 1.0 / 255.0
        return self.images[self._lookup], 1.0 / 255.0

    def memory_bytes(self) -> int:
        return int(self.images.nbytes)

    def _render(self, all_factors, random_state):
        images = self.images[self._lookup[self.index_of(all_factors)]]
        if images.ndim == 3:  # greyscale table: add the channel axis
            images = images[..., None]
        return images.astype(np.float32) * np.float32(1.0 / 255.0)
