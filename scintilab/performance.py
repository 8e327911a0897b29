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
  it would be emulated and slower, so it is only chosen when those flags are present. On
  a GPU, ``mixed_float16`` (with loss scaling, which Keras adds) or ``mixed_bfloat16`` on
  cards that support it (compute capability >= 8).
* **Threads**: TensorFlow's defaults (inter-op = intra-op = cores) oversubscribe a small
  machine; one inter-op thread and ``cores`` intra-op threads keep a single step's
  convolutions on every core without two ops fighting over them.
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
