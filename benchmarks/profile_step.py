"""Per-op profile of one inRAC training or inference step (the profile behind issue 11).

Traces one step with ``tf.profiler`` and prints where the thread time goes, by op type
and by part of the network (main convolutions, CBAM, batch norm, executor idle), from
xprof's ``framework_op_stats`` tool. Needs the optional ``xprof`` package
(``pip install xprof``); without it the trace is still written to ``--logdir`` for
TensorBoard.

Usage::

    .venv/bin/python benchmarks/profile_step.py [--size 1024x256] [--batch 8]
        [--precision float32|bfloat16] [--mode train|infer] [--logdir DIR] [--top 20]

Thread time is summed over TensorFlow's inter-op threads, so on a 2-core machine it is
about twice the wall time; "IDLE" is time those threads waited. Compare profiles taken on
a quiet machine only: another job on the cores stretches every op.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _part(op: str, op_type: str) -> str:
    """Coarse part of the network an op belongs to (by scintilab's layer names)."""
    if op_type == "IDLE":
        return "executor idle"
    if "Conv2D" in op_type:
        for key, name in (
            ("cbam", "CBAM convolution"),
            ("stem", "stem convolution"),
            ("proj", "projection convolution"),
        ):
            if key in op:
                return name
        return "3x3 convolutions"
    if "cbam" in op:
        return "CBAM element-wise"
    if "_bn" in op or "BatchNorm" in op_type:
        return "batch norm"
    return "other"


def main(argv: list[str] | None = None) -> int:
    """Profile one step and print the tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1024x256", help="rows x cols")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="bfloat16")
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--logdir", default=None, help="where the trace goes (default: a temporary folder)")
    parser.add_argument("--top", type=int, default=20, help="op types shown")
    args = parser.parse_args(argv)
    rows_, cols_ = (int(v) for v in args.size.lower().split("x"))

    import keras
    import numpy as np
    import tensorflow as tf

    from scintilab.models import build_model
    from scintilab.performance import fold_batchnorm

    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if args.precision == "bfloat16" else "float32"
    model = build_model("inrac", input_shape=(rows_, cols_, 1), num_classes=3, dtype_policy=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, rows_, cols_, 1), dtype=np.float32)
    y = rng.integers(0, 3, args.batch)
    if args.mode == "infer":
        folded = fold_batchnorm(model)
        step = lambda: folded.predict_on_batch(x)  # noqa: E731
    else:
        step = lambda: model.train_on_batch(x, y)  # noqa: E731
    step()
    step()  # tracing and oneDNN primitive creation stay out of the profile
    logdir = args.logdir or tempfile.mkdtemp(prefix="scintilab_profile_")
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    step()
    wall = time.perf_counter() - t0
    tf.profiler.experimental.stop()
    print(
        f"inrac {args.mode} {args.precision} {rows_}x{cols_} batch {args.batch}: {wall:.2f} s "
        f"({args.batch / wall:.2f} img/s) in the profiled step; trace in {logdir}"
    )
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        print("xprof is not installed (pip install xprof): open the trace with TensorBoard's profile plugin")
        return 0
    planes = glob.glob(str(Path(logdir) / "plugins" / "profile" / "*" / "*.xplane.pb"))
    data, _ = raw_to_tool_data.xspace_to_tool_data(planes, "framework_op_stats", {})
    table = json.loads(data.decode() if isinstance(data, bytes) else data)
    table = table[0] if isinstance(table, list) else table
    ids = [c["id"] for c in table["cols"]]
    ops = [dict(zip(ids, [c.get("v") if c else None for c in r["c"]])) for r in table["rows"]]
    by_type: collections.Counter[str] = collections.Counter()
    by_part: collections.Counter[str] = collections.Counter()
    for r in ops:
        by_type[r["type"]] += r["total_self_time"]
        by_part[_part(r["operation"], r["type"])] += r["total_self_time"]
    total = sum(by_type.values()) or 1.0
    print(f"\nthread time {total / 1e3:.0f} ms (summed over executor threads)\n")
    print("| part | ms | share |\n|---|---:|---:|")
    for name, us in by_part.most_common():
        print(f"| {name} | {us / 1e3:.0f} | {100 * us / total:.1f}% |")
    print("\n| op type | ms | share |\n|---|---:|---:|")
    for name, us in by_type.most_common(args.top):
        print(f"| {name} | {us / 1e3:.0f} | {100 * us / total:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
