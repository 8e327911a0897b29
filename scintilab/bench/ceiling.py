"""The machine's matrix-product ceiling: GFLOP/s of a large float32 and bfloat16 matmul.

Model speed means little without the machine's own peak beside it. A large square matrix
product is the fastest thing a CPU (or GPU) does with the libraries at hand, so
``model FLOPs x images/s / matmul GFLOP/s`` says what fraction of the reachable peak a
training or inference step uses. Both frameworks are measured (TensorFlow's oneDNN/Eigen
and, when installed, PyTorch's oneDNN/MKL) and the higher figure is the ceiling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Ceiling:
    """A measured matmul rate.

    Attributes:
        dtype: ``"float32"`` or ``"bfloat16"``.
        gflops: best GFLOP/s over the frameworks measured.
        by_framework: GFLOP/s per framework (``tensorflow``, ``torch``).
        n: matrix side.
    """

    dtype: str
    gflops: float
    by_framework: dict[str, float]
    n: int


def _best_rate(run: Any, flops: float, repeats: int) -> float:
    """GFLOP/s of the fastest of ``repeats`` timed calls (after one warm-up call)."""
    run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def tf_matmul_gflops(n: int = 2048, dtype: str = "float32", repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` by ``n x n`` matmul in TensorFlow (2 n^3 FLOPs).

    Args:
        n: matrix side.
        dtype: ``"float32"`` or ``"bfloat16"``.
        repeats: timed repetitions; the fastest counts (the least disturbed by others).
    """
    import tensorflow as tf

    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)
    if dtype == "bfloat16":
        a, b = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)

    @tf.function
    def mm(x: Any, y: Any) -> Any:
        return tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32))

    return _best_rate(lambda: mm(a, b).numpy(), 2.0 * n**3, repeats)


def torch_matmul_gflops(n: int = 2048, dtype: str = "float32", repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` matmul in PyTorch (raises ImportError without torch)."""
    import torch

    tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    a = torch.rand(n, n).to(tdt)
    b = torch.rand(n, n).to(tdt)
    return _best_rate(lambda: torch.mm(a, b), 2.0 * n**3, repeats)


def measure_ceiling(
    dtype: str = "float32", n: int = 2048, repeats: int = 5, frameworks: tuple[str, ...] = ("tensorflow", "torch")
) -> Ceiling:
    """The best matmul rate over the installed frameworks.

    Args:
        dtype: ``"float32"`` or ``"bfloat16"``.
        n: matrix side (2048: 17 GFLOP per product, a fraction of a second per call).
        repeats: timed repetitions per framework.
        frameworks: which to try; a framework that is not installed is skipped.

    Returns:
        A :class:`Ceiling`.

    Raises:
        ValueError: unknown dtype, or no framework could be measured.
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    rates: dict[str, float] = {}
    for fw in frameworks:
        try:
            fn = tf_matmul_gflops if fw == "tensorflow" else torch_matmul_gflops
            rates[fw] = fn(n, dtype, repeats)
        except ImportError:
            continue
    if not rates:
        raise ValueError(f"none of {frameworks} is installed")
    return Ceiling(dtype, max(rates.values()), rates, n)
