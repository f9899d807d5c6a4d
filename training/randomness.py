"""The one random-state check of the package (scikit-learn's ``check_random_state`` rule, stricter where a stream
must continue)."""
from __future__ import annotations

from typing import Any

import numpy as np


def check_random_state(random_state: Any, allow_seed: bool = True) -> np.random.RandomState:
    """``random_state`` as a ``np.random.RandomState``: a RandomState is used as it is (its stream continues); an
    integer seed (>= 0) makes a new one when ``allow_seed``. Anything else raises ValueError with one line. Dataset
    draws pass ``allow_seed=False``: they must continue the caller's stream, never start a new one."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if allow_seed and isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return np.random.RandomState(int(random_state))
    accepted = "a numpy.random.RandomState or an integer seed >= 0" if allow_seed else "a numpy.random.RandomState"
    raise ValueError(f"random_state must be {accepted}, got {type(random_state).__name__}")
