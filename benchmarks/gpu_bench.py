"""The GPU path, ready to measure: inRAC training speed and the paper preset's epoch time.

Prepared for a lent GPU machine (the project's device tool), where PyTorch and JAX are
installed but TensorFlow is not: Keras runs on the **JAX backend** there. One command
runs everything inside one short lease (see ``benchmarks/gpu_run.sh``, which installs the
carried wheels of keras and pydicom first)::

    KERAS_BACKEND=jax python3 benchmarks/gpu_bench.py --out $OUT/gpu_bench.json

What it measures, each as the median of ``--rounds`` interleaved rounds with the lowest
and highest round beside it (as ``scintilab bench`` does on CPUs):

* the bfloat16 matrix-product ceiling of the device (``--ceiling-n`` square matmul in JAX);
* inRAC training and inference images/s at the paper's input (1024x256) and batch (32),
  float32 and mixed bfloat16, with XLA compilation (``jit_compile=True``), and each as a
  fraction of the ceiling (training counted as 3x the forward FLOPs);
* the paper preset's epoch time: its training images per epoch (D3: 945 fused images,
  70 % of patients for training, about 661) divided by the median training rate.

It also runs on a CPU (slowly) so that it is tested before a lease: ``--size 64x16
--batch 4 --rounds 2 --steps 1 --ceiling-n 256`` takes seconds there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

#: D3 of the paper (945 fused images), 7:3 by patient: the training images of one paper-preset epoch.
PAPER_TRAIN_IMAGES = round(945 * 0.7)


def _size(text: str) -> tuple[int, int]:
    rows, cols = (int(v) for v in text.lower().split("x"))
    return rows, cols


def jax_ceiling(n: int, dtype: str, repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` matmul in JAX on the default device (the fastest of ``repeats``)."""
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    a = jax.random.uniform(key, (n, n), dtype=jnp.float32).astype(dtype)
    b = jax.random.uniform(jax.random.PRNGKey(1), (n, n), dtype=jnp.float32).astype(dtype)
    mm = jax.jit(lambda x, y: x @ y)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def contenders(size: tuple[int, int], batch: int, precision: str) -> dict[str, Callable[[], Any]]:
    """Training and inference steps of inRAC on one preloaded batch, compiled by XLA."""
    import keras

    from scintilab.models import build_model

    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    model = build_model("inrac", input_shape=(*size, 1), num_classes=3, dtype_policy=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", jit_compile=True)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *size, 1), dtype=np.float32)
    y = rng.integers(0, 3, batch)

    def train() -> Any:
        return model.train_on_batch(x, y)

    def infer() -> Any:
        return np.asarray(model.predict_on_batch(x))

    return {"train": train, "infer": infer}


def measure(
    size: tuple[int, int], batch: int, steps: int, rounds: int, precisions: list[str], ceiling_n: int
) -> dict[str, Any]:
    """Everything the module docstring lists, as one dict (also printed as lines)."""
    import jax
    import keras

    from scintilab.models import build_model, forward_macs

    fwd = 2.0 * forward_macs(build_model("inrac", input_shape=(*size, 1), num_classes=3))
    keras.backend.clear_session()
    ceilings = {p: jax_ceiling(ceiling_n, p) for p in precisions}
    steps_by_name: dict[str, Callable[[], Any]] = {}
    for p in precisions:
        for mode, fn in contenders(size, batch, p).items():
            fn()  # compile and warm up outside the rounds
            steps_by_name[f"{mode}/{p}"] = fn
    rates: dict[str, list[float]] = {k: [] for k in steps_by_name}
    for r in range(rounds):
        for name, fn in steps_by_name.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            rates[name].append(batch * steps / (time.perf_counter() - t0))
            print(f"round {r + 1}/{rounds} {name:16s} {rates[name][-1]:9.2f} img/s", flush=True)
    results = []
    for name, values in rates.items():
        mode, p = name.split("/")
        median = statistics.median(values)
        per_image = 3.0 * fwd if mode == "train" else fwd
        results.append(
            {
                "mode": mode,
                "precision": p,
                "median": median,
                "low": min(values),
                "high": max(values),
                "rounds": values,
                "fraction_of_ceiling": per_image * median / 1e9 / ceilings[p],
            }
        )
    train_rates = {r["precision"]: r["median"] for r in results if r["mode"] == "train"}
    return {
        "device": str(jax.devices()[0]),
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "keras": keras.__version__,
        "size": list(size),
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "forward_gflops": fwd / 1e9,
        "ceiling_gflops": ceilings,
        "ceiling_n": ceiling_n,
        "results": results,
        "paper_epoch_s": {p: PAPER_TRAIN_IMAGES / v for p, v in train_rates.items()},
        "paper_train_images_per_epoch": PAPER_TRAIN_IMAGES,
    }


def markdown(raw: dict[str, Any]) -> str:
    """A BENCHMARKS.md table of :func:`measure`'s figures."""
    lines = [
        f"Device {raw['device']} (Keras {raw['keras']} on {raw['backend']} {raw['jax']}, XLA). "
        f"inRAC {raw['size'][0]}x{raw['size'][1]}, batch {raw['batch']}, {raw['steps']} steps per round, "
        f"{raw['rounds']} interleaved rounds, median and lowest-highest. Matmul ceiling "
        + ", ".join(f"{p} {v:,.0f} GFLOP/s" for p, v in raw["ceiling_gflops"].items())
        + f" ({raw['ceiling_n']}^2).",
        "",
        "| step | precision | median img/s | rounds low-high | of ceiling |",
        "|---|---|---:|---|---:|",
    ]
    for r in raw["results"]:
        lines.append(
            f"| {r['mode']} | {r['precision']} | {r['median']:.1f} | {r['low']:.1f}-{r['high']:.1f} | "
            f"{100 * r['fraction_of_ceiling']:.1f}% |"
        )
    lines += [
        "",
        "Paper preset epoch ("
        + f"{raw['paper_train_images_per_epoch']} training images): "
        + ", ".join(f"{p} {s:.1f} s" for p, s in raw["paper_epoch_s"].items())
        + ".",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=_size, default=(1024, 256))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--ceiling-n", type=int, default=8192)
    parser.add_argument("--out", default=None, help="write the raw figures as JSON here (and a .md beside it)")
    args = parser.parse_args(argv)
    raw = measure(args.size, args.batch, args.steps, args.rounds, args.precision, args.ceiling_n)
    md = markdown(raw)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(raw, indent=2), encoding="utf-8")
        out.with_suffix(".md").write_text(md + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
