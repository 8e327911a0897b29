"""Issue 30: no global Keras state leaks from one test into the next (conftest's reset).

The two tests run in file order: the first leaves the global dtype policy at bfloat16 and
the global seed state advanced, the second must find neither."""

from __future__ import annotations

import numpy as np

_FIRST_DRAW: list[np.ndarray] = []


def test_a_test_that_leaves_global_state_behind() -> None:
    import keras

    keras.utils.set_random_seed(7)
    _FIRST_DRAW.append(np.asarray(keras.random.normal((4,))))
    keras.config.set_dtype_policy("mixed_bfloat16")
    assert keras.layers.Dense(2).dtype_policy.name == "mixed_bfloat16"


def test_the_next_test_starts_from_a_clean_state() -> None:
    import keras

    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(2).dtype_policy.name == "float32"
    keras.utils.set_random_seed(7)  # the same seed gives the same draw: no hidden state carried over
    np.testing.assert_array_equal(np.asarray(keras.random.normal((4,))), _FIRST_DRAW[0])
