"""A tiny seeded ground-truth dataset for the metric tests: factors drawn factor by factor, observations =
the factor indices (the reference oracle's protocol dataset)."""
from __future__ import annotations

import numpy as np


class GridData:
    """The oracle's tiny ground-truth dataset: factors drawn factor by factor, observations = factor indices."""

    def __init__(self, factor_sizes):
        self.factors_num_values = list(factor_sizes)
        self.num_factors = len(self.factors_num_values)

    def sample_factors(self, num, random_state):
        out = np.zeros((num, self.num_factors), dtype=np.int64)
        for i, size in enumerate(self.factors_num_values):
            out[:, i] = random_state.randint(size, size=num)
        return out

    def sample_observations_from_factors(self, factors, random_state):
        return factors.astype(np.float64)

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]
