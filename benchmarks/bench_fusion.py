"""Benchmark: studies fused per second over a 506-patient cohort (the paper's size).

Usage::

    .venv/bin/python benchmarks/bench_fusion.py                 # 506 in-memory phantoms, 1024x256
    .venv/bin/python benchmarks/bench_fusion.py --studies 100 --matrix 512 128
    .venv/bin/python benchmarks/bench_fusion.py --manifest data/synthetic_small/manifest.csv

Prints figures (single process, wall clock). The in-memory run times fusion alone (flip,
smoothing, sweep, alignment, aggregation); ``--manifest`` also times reading the DICOM
files through :func:`scintilab.ingest.load_cohort`. Augmentation (one copy at r_T = 3,
t_T = 3) is timed too, since D2/D3 building is fusion plus augmentation.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from scintilab.augment import random_augment
from scintilab.fusion import METHODS, fuse, fuse_study
from scintilab.synth.pairs import synthetic_pair


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} /s  ({1000 * seconds / n:6.2f} ms each)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=506, help="number of simulated studies (one per patient)")
    ap.add_argument("--matrix", type=int, nargs=2, default=[1024, 256], metavar=("ROWS", "COLS"))
    ap.add_argument("--manifest", default=None, help="time a real cohort from its manifest instead")
    args = ap.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, single process")

    if args.manifest:
        from scintilab.ingest import load_cohort

        cohort = load_cohort(args.manifest)
        t0 = time.perf_counter()
        n = 0
        for s in cohort:
            if s.anterior is None or s.posterior is None:
                continue
            fuse_study(s)
            n += 1
        dt = time.perf_counter() - t0
        print(f"read + fuse (add), {n} studies from {args.manifest}: {_rate(n, dt)}")
        return 0

    shape = tuple(args.matrix)
    gen = np.random.default_rng(0)
    # a small pool of distinct phantoms reused round-robin: generating 506 would time the generator
    pool = [synthetic_pair(shape, (int(gen.integers(-8, 9)), int(gen.integers(-5, 6))), rng=i) for i in range(16)]
    n = args.studies
    print(f"{n} studies of {shape[0]}x{shape[1]} (uint16), in memory")
    fuse(*pool[0])  # warm-up (imports, caches)
    for method in METHODS:
        t0 = time.perf_counter()
        for i in range(n):
            fuse(*pool[i % len(pool)], method=method)
        dt = time.perf_counter() - t0
        print(f"fuse ({method:9s}): {_rate(n, dt)}   total {dt:5.2f} s")
    t0 = time.perf_counter()
    for i in range(n):
        fuse(*pool[i % len(pool)], scale=True)
    dt = time.perf_counter() - t0
    print(f"fuse (add, scale):  {_rate(n, dt)}")
    t0 = time.perf_counter()
    for i in range(n):
        random_augment(pool[i % len(pool)][0], 3.0, 3, gen)
    dt = time.perf_counter() - t0
    print(f"augment one copy (r_T 3, t_T 3): {_rate(n, dt)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
