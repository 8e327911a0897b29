"""More than one device: data-parallel training, built on the framework's own machinery.

* **Data-parallel training** selected by a name (``TrainConfig.distribution`` or
  ``train(..., distribution=...)``):

  ==================  ======================================================================
  ``None``/"none"     one device (the default)
  ``"mirrored"``      synchronous data parallelism over the local devices: on TensorFlow
                      ``tf.distribute.MirroredStrategy`` (all GPUs, or the logical CPU
                      devices of :func:`split_cpu`); on JAX Keras 3's
                      ``keras.distribution.DataParallel`` over ``jax.devices()``
  ``"multiworker"``   TensorFlow's ``MultiWorkerMirroredStrategy`` (the cluster comes from
                      the ``TF_CONFIG`` environment variable, as TensorFlow documents)
  ==================  ======================================================================

  The batch size stays the *global* batch (split across replicas), so a config trains
  the same number of images per step whatever the device count. Batch norm statistics
  are per replica (Keras' default), as in most published multi-GPU ResNet training.

Batch grids of papermill runs on Dask distributed live in :mod:`scintilab.dask_executor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: Accepted distribution names.
DISTRIBUTIONS = ("none", "mirrored", "multiworker")

_STRATEGIES: dict[str, Any] = {}


def split_cpu(n: int = 2) -> list[Any]:
    """Split the host CPU into ``n`` logical TensorFlow devices (to test data parallelism).

    Must be called before TensorFlow runs anything (it fixes the device list at start-up).

    Returns:
        The logical CPU devices.

    Raises:
        RuntimeError: TensorFlow was already initialised.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    return tf.config.list_logical_devices("CPU")


def _normalise(name: str | None) -> str:
    name = "none" if name in (None, "", False) else str(name).lower()
    if name not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS} (or None), got {name!r}")
    return name


def tf_strategy(name: str | None) -> Any:
    """The ``tf.distribute`` strategy for a distribution name (TensorFlow backend).

    ``"mirrored"`` uses every GPU when there are any, else every logical CPU device (a
    single CPU device gives a one-replica strategy, harmless but pointless).
    """
    import tensorflow as tf

    name = _normalise(name)
    if name == "none":
        return tf.distribute.get_strategy()  # the default (no-op) strategy
    # One strategy object per name: a model built under a strategy must be trained under
    # the same object (TensorFlow refuses to mix two), and train() enters it twice.
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    if name == "multiworker":
        _STRATEGIES[name] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES[name]
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    # On CPUs there is no NCCL; the reduction of the per-replica gradients is a plain
    # all-reduce on the host.
    cross = None if gpus else tf.distribute.ReductionToOneDevice()
    _STRATEGIES[name] = tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross)
    return _STRATEGIES[name]


def jax_distribution(name: str | None) -> Any:
    """The Keras 3 distribution (JAX backend) for a name: ``DataParallel`` or None."""
    import keras

    name = _normalise(name)
    if name == "none":
        return None
    if name == "multiworker":
        # Keras' JAX distribution spans every process that jax.distributed.initialize()
        # joined; the devices list below is then global.
        keras.distribution.initialize()
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def replicas(name: str | None) -> int:
    """How many replicas a distribution name gives on this machine and backend."""
    import keras

    if _normalise(name) == "none":
        return 1
    if keras.backend.backend() == "tensorflow":
        return int(tf_strategy(name).num_replicas_in_sync)
    if keras.backend.backend() == "jax":
        return len(keras.distribution.list_devices())
    return 1


@contextlib.contextmanager
def distribution_scope(name: str | None) -> Iterator[Any]:
    """Build and compile models inside this context to train them data-parallel.

    Args:
        name: a name from :data:`DISTRIBUTIONS` (None: nothing changes).

    Yields:
        The TF strategy, the Keras distribution (JAX), or None.

    Raises:
        ValueError: an unknown name, or a distribution the backend cannot do (the
            PyTorch backend has no Keras distribution API).
    """
    import keras

    name = _normalise(name)
    if name == "none":
        yield None
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = tf_strategy(name)
        with strategy.scope():
            yield strategy
    elif backend == "jax":
        previous = keras.distribution.distribution()
        dist = jax_distribution(name)
        keras.distribution.set_distribution(dist)
        try:
            yield dist
        finally:
            keras.distribution.set_distribution(previous)
    else:
        raise ValueError(f"distribution {name!r} is not available on the {backend} backend (use tensorflow or jax)")
