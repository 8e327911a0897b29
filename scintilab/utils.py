"""Small shared helpers: randomness and seeding."""

from __future__ import annotations

import os
import random
from typing import Any

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


def reseed_generators(obj: Any, *key: int) -> int:
    """Set every Keras random seed generator inside ``obj`` to a state derived from ``key``.

    Dropout and the random augmentation layers draw from ``keras.random.SeedGenerator``
    states that advance with each call and are not saved with a model's weights. Setting
    them from (seed, epoch[, batch]) before each epoch (or batch) makes the draws a function
    of where training is, not of how many calls came before: a resumed run then draws what
    an uninterrupted one would.

    Args:
        obj: a Keras layer or model (its ``variables`` hold the generators' states).
        key: integers (e.g. seed, epoch, batch); generators are told apart by their order.

    Returns:
        How many generators were set.
    """
    import keras

    states = [v for v in obj.variables if v.name == "seed_generator_state"]
    for n, state in enumerate(states):
        word = int(np.random.SeedSequence([abs(int(k)) for k in key] + [n]).generate_state(1)[0]) >> 1
        state.assign(keras.ops.cast(keras.ops.convert_to_tensor([word, 0]), state.dtype))
    return len(states)
