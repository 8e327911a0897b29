"""Speed settings for training and inference on CPU and GPU, chosen from measurements.

What the profile of Classifier-inRAC on a 2-core AVX-512 CPU showed (BENCHMARKS.md has
the figures), and what this module therefore does:

* **XLA (`jit_compile`) is slower on CPU** for this convolutional network: XLA's CPU
  backend runs the convolutions with its own (Eigen) kernels instead of TensorFlow's
  oneDNN ones, about halving training and inference speed. ``jit_compile="auto"`` is
  therefore resolved to ``False`` when no GPU is visible and to ``True`` on a GPU, where
  XLA fuses the batch-norm/ReLU/CBAM element-wise work into the convolutions.
* **bfloat16 mixed precision** (``mixed_bfloat16``: bfloat16 compute, float32 weights and
  a float32 softmax) speeds up oneDNN's convolutions where the CPU has bfloat16
  instructions (AVX512_BF16 or AMX-BF16, read from ``/proc/cpuinfo``); elsewhere on CPU
  it would be emulated and slower, so it is only chosen when those flags are present.
  With oneDNN on, bfloat16 trains inRAC 1.7x faster than float32 at 1024x256 and infers
  1.8x faster (BENCHMARKS.md); on the small ``quick`` network it is no faster, and over
  three seeds of ``quick`` its accuracy was indistinguishable from float32. So the
  ``paper`` preset uses ``"auto"`` and ``quick`` stays float32. On
  a GPU, ``mixed_float16`` (with loss scaling, which Keras adds) or ``mixed_bfloat16`` on
  cards that support it (compute capability >= 8).
* **Threads**: setting one inter-op and ``cores`` intra-op threads
  (:func:`configure_threads`) made no reliable difference on the 2-core machine (within
  the noise of a shared CPU), so training leaves TensorFlow's defaults; the function is
  here for larger machines where inter-op oversubscription shows.
* **Batch-norm folding for inference** (:func:`fold_batchnorm`): Keras computes each
  batch norm as separate passes over the feature map; folded into the convolution it
  costs nothing (float32 inference 1.03-1.18x faster at 1024x256 between runs).
* **Channels-last** is Keras' default layout and oneDNN's preferred one on CPU, so
  nothing is converted; the models are written channels-last throughout.

Everything here is backend-aware: on JAX or PyTorch the TensorFlow-only settings are
skipped.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: CPU flags that mean native bfloat16 arithmetic (dot products) in hardware.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")

#: Accepted values for a precision setting, beside True/False.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU listed in ``/proc/cpuinfo``.

    Args:
        cpuinfo: the file to read (Linux); a missing file gives an empty set.

    Returns:
        Lower-case flags, e.g. ``{"avx2", "avx512f", "avx512_bf16", ...}``.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / arm64
            return frozenset(value.lower().split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU computes bfloat16 dot products natively (AVX512_BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def gpus() -> list[Any]:
    """The GPUs the current Keras backend sees (empty list on CPU-only machines)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return list(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return [d for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def _gpu_supports_bf16() -> bool:
    """Whether the first GPU is Ampere or newer (compute capability >= 8)."""
    try:
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return tuple(details.get("compute_capability", (0, 0))) >= (8, 0)
        if keras.backend.backend() == "torch":
            import torch

            return bool(torch.cuda.is_bf16_supported())
        return True  # JAX: XLA handles bf16 on any recent card
    except Exception:  # noqa: BLE001 - no GPU or no details: be conservative
        return False


def resolve_precision(value: bool | str | None, *, on_gpu: bool | None = None) -> str:
    """The Keras dtype policy name for a config's ``mixed_precision`` value.

    Args:
        value: False/None/"float32" -> ``"float32"``; True or ``"auto"`` -> the fastest
            mixed policy this machine supports natively (``"mixed_bfloat16"`` on a CPU
            with bfloat16 instructions or an Ampere+ GPU, ``"mixed_float16"`` on older
            GPUs, else ``"float32"``); an explicit policy name is returned as given.
        on_gpu: whether training runs on a GPU (None: ask the backend).

    Returns:
        ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``.

    Raises:
        ValueError: an unknown string.
    """
    if value is None or value is False or value == "float32":
        return "float32"
    if isinstance(value, str) and value not in PRECISIONS:
        raise ValueError(f"mixed_precision must be a bool or one of {PRECISIONS}, got {value!r}")
    if isinstance(value, str) and value != "auto":
        return value
    on_gpu = bool(gpus()) if on_gpu is None else on_gpu
    if on_gpu:
        return "mixed_bfloat16" if _gpu_supports_bf16() else "mixed_float16"
    # float16 on CPU is emulated in TF/oneDNN (slower than float32); bfloat16 only pays
    # where the instructions exist.
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def resolve_jit_compile(value: bool | str, *, on_gpu: bool | None = None) -> bool:
    """Keras ``jit_compile`` for a config value: ``"auto"`` -> XLA on GPU only.

    On CPU, XLA compiled inRAC measured at about half the speed of TensorFlow's oneDNN
    graph (training and inference, float32 and bfloat16; see BENCHMARKS.md), so "auto"
    means off there. An explicit True/False is kept.
    """
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise ValueError(f"jit_compile must be True, False or 'auto', got {value!r}")
    return bool(gpus()) if on_gpu is None else on_gpu


def configure_threads(inter_op: int | None = 1, intra_op: int | None = None) -> bool:
    """Set TensorFlow's thread pools (inter-op, intra-op); must run before TF executes ops.

    Args:
        inter_op: ops run concurrently (1: one op at a time uses every core).
        intra_op: threads inside one op (None: the number of usable cores).

    Returns:
        True when applied, False when TensorFlow was already initialised (the setting is
        then left as it is) or the backend is not TensorFlow.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    intra = intra_op or cores
    try:
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
        tf.config.threading.set_intra_op_parallelism_threads(int(intra))
    except RuntimeError:  # "cannot be modified after initialization"
        return False
    return True


@dataclass(frozen=True)
class SpeedSettings:
    """The settings :func:`speed_settings` chose, for a run's record and for printing.

    Attributes:
        device: ``"gpu"`` or ``"cpu"``.
        backend: the Keras backend.
        dtype_policy: Keras dtype policy for the model.
        jit_compile: Keras ``jit_compile``.
        cpu_bf16: whether the CPU has native bfloat16.
        cpu: the CPU model name.
    """

    device: str
    backend: str
    dtype_policy: str
    jit_compile: bool
    cpu_bf16: bool
    cpu: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for ``config.json``'s info)."""
        return asdict(self)


def speed_settings(mixed_precision: bool | str | None = "auto", jit_compile: bool | str = "auto") -> SpeedSettings:
    """Resolve precision and XLA for this machine (see the module docstring for why).

    Args:
        mixed_precision: a :func:`resolve_precision` value.
        jit_compile: a :func:`resolve_jit_compile` value.

    Returns:
        The chosen :class:`SpeedSettings`.
    """
    import keras

    on_gpu = bool(gpus())
    return SpeedSettings(
        device="gpu" if on_gpu else "cpu",
        backend=keras.backend.backend(),
        dtype_policy=resolve_precision(mixed_precision, on_gpu=on_gpu),
        jit_compile=resolve_jit_compile(jit_compile, on_gpu=on_gpu),
        cpu_bf16=cpu_has_bf16(),
        cpu=cpu_model(),
    )


def _single_parent(layer: Any) -> Any:
    """The layer whose output feeds ``layer`` (None when it has several inputs)."""
    inp = layer.input
    if isinstance(inp, (list, tuple)):
        return None
    return inp._keras_history.operation


_FOLDED_BN: Any = None


def _folded_bn_class() -> type:
    """The pass-through layer that replaces a folded batch norm (built on first use)."""
    global _FOLDED_BN
    if _FOLDED_BN is None:
        import keras

        @keras.saving.register_keras_serializable(package="scintilab")
        class FoldedBatchNorm(keras.layers.Identity):
            """Identity left where a batch norm was folded into its convolution.

            Accepts the ``mask``/``training`` arguments a BatchNormalization call site
            passes, so the cloned graph calls it as it called the batch norm.
            """

            def call(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:  # noqa: ARG002
                return inputs

            def compute_output_shape(self, input_shape: Any) -> Any:
                return input_shape

            def get_config(self) -> dict[str, Any]:
                # Keras' automatic config capture does not see through the lazy class
                # definition; the layer has no arguments beyond the base ones.
                return {
                    "name": self.name,
                    "trainable": self.trainable,
                    "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
                }

            def compute_output_spec(self, inputs: Any, mask: Any = None, training: Any = None) -> Any:  # noqa: ARG002
                return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

        _FOLDED_BN = FoldedBatchNorm
    return _FOLDED_BN


def fold_batchnorm(model: Any) -> Any:
    """An inference copy of ``model`` with every Conv2D -> BatchNormalization pair folded.

    At inference a batch norm is a per-channel affine map, so it can be folded into the
    preceding convolution's kernel and bias (``W' = W * s``, ``b' = (b - mean) * s + beta``
    with ``s = gamma / sqrt(var + eps)``). Keras computes batch norm as separate
    element-wise passes over each feature map (in float32 even under a bfloat16 policy,
    so with two casts around it); folded, the network does one pass less per
    convolution. The result predicts the same probabilities up to float rounding and is
    for inference only (it has no batch norm left to train).

    Args:
        model: a functional Keras model (e.g. a trained inRAC).

    Returns:
        A new functional model with the same input/output names; BN layers become
        pass-through ``FoldedBatchNorm`` layers of the same name, so layer lookups by name keep working.
    """
    import keras

    pairs: dict[str, Any] = {}  # conv name -> its BN
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, [-1], 3, [3]):
            parent = _single_parent(layer)
            if isinstance(parent, keras.layers.Conv2D) and len(parent._outbound_nodes) == 1:
                pairs[parent.name] = layer
    folded_bn = {bn.name for bn in pairs.values()}

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in folded_bn:
            return _folded_bn_class()(name=layer.name, dtype=layer.dtype_policy)
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for src in model.layers:
        dst = folded.get_layer(src.name)
        if src.name in folded_bn or not src.weights:
            continue
        if src.name not in pairs:
            dst.set_weights(src.get_weights())
            continue
        bn = pairs[src.name]
        kernel = keras.ops.convert_to_numpy(src.kernel).astype(np.float64)
        bias = keras.ops.convert_to_numpy(src.bias).astype(np.float64) if src.use_bias else 0.0
        mean = keras.ops.convert_to_numpy(bn.moving_mean).astype(np.float64)
        var = keras.ops.convert_to_numpy(bn.moving_variance).astype(np.float64)
        gamma = keras.ops.convert_to_numpy(bn.gamma).astype(np.float64) if bn.scale else 1.0
        beta = keras.ops.convert_to_numpy(bn.beta).astype(np.float64) if bn.center else 0.0
        scale = gamma / np.sqrt(var + bn.epsilon)
        dst.set_weights([(kernel * scale).astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)])
    return folded
