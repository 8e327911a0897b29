"""Small shared helpers: randomness and seeding."""
from __future__ import annotations

import os
import random

import numpy as np

RngLike = "np.random.Generator | int | None"


def as_rng(rng: np.random.Generator | int | None = None) -> np.random.Generator:
    """Return a NumPy Generator from a Generator, a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and Keras (and its backend) so the same seed gives the same numbers."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras  # lazy: seeding the backend needs it, nothing else here does

    keras.utils.set_random_seed(seed)
