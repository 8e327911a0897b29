"""Benchmark the model zoo: parameters, forward FLOPs and CPU images/s.

Prints, per model: parameters, depth (weight layers), forward GFLOPs (2 x MACs, counted
analytically by :func:`scintilab.models.forward_macs`) at 1024x256, and images/s for a
training step (forward + backward + Adam update) and for inference, at each requested
size, batch 8 by default. Timing excludes a warm-up step (graph tracing).

Usage::

    .venv/bin/python benchmarks/bench_models.py                       # all models, both sizes
    .venv/bin/python benchmarks/bench_models.py --models inrac --sizes 512x128 --steps 2
    .venv/bin/python benchmarks/bench_models.py --no-speed            # table only, fast

Figures depend on the machine and on whatever else runs on it; quote them with both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """'1024x256' -> (1024, 256) as (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 1024x256, got {text!r}") from exc
    return h, w


def time_model(
    name: str, size: tuple[int, int], batch: int, steps: int, num_classes: int, seed: int
) -> tuple[float, float]:
    """Images/s for training steps and for inference of ``name`` at ``size``."""
    import keras

    from scintilab.models import build_model

    rng = np.random.default_rng(seed)
    x = rng.random((batch, *size, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, num_classes, batch), num_classes)
    model = build_model(name, input_shape=(*size, 1), num_classes=num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    model.train_on_batch(x, y)  # warm-up: trace and build the optimizer
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train = batch * steps / (time.perf_counter() - start)
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    infer = batch * steps / (time.perf_counter() - start)
    del model
    keras.backend.clear_session()
    return train, infer


def main(argv: list[str] | None = None) -> int:
    """Print the parameter/FLOP table and the speed table; returns the exit status."""
    from scintilab.models import count_params_table, list_models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help="model names (default: all)")
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        default=[(1024, 256), (512, 128)],
        help="input sizes HxW for timing (default: 1024x256 512x128)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--classes", type=int, default=3, help="number of classes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-speed", action="store_true", help="only the parameter/FLOP table")
    args = parser.parse_args(argv)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list_models()}")

    import keras

    print(
        f"# Model zoo benchmark\n\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Keras {keras.__version__} ({keras.backend.backend()})\n"
    )
    table = count_params_table(input_shape=(1024, 256, 1), num_classes=args.classes, models=names)
    print("| model | params | trainable | depth | CBAM | features | GFLOPs @1024x256 |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, row in table.iterrows():
        print(
            f"| {name} | {row.params:,} | {row.trainable:,} | {row.depth} | {row.cbam} | "
            f"{row.features} | {row.gflops:.1f} |"
        )
    if args.no_speed:
        return 0
    print(f"\nCPU images/s, batch {args.batch}, {args.steps} timed steps after 1 warm-up step\n")
    print("| model | size | train img/s | inference img/s |")
    print("|---|---|---:|---:|")
    for name in names:
        for size in args.sizes:
            train, infer = time_model(name, size, args.batch, args.steps, args.classes, args.seed)
            print(f"| {name} | {size[0]}x{size[1]} | {train:.2f} | {infer:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
