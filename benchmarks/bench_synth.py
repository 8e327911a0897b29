"""Benchmark the synthetic cohort generator: the paper-size cohort on one core.

Usage::

    .venv/bin/python benchmarks/bench_synth.py [--patients 506] [--matrix 1024x256] [--keep DIR]

Prints the wall and CPU time of (1) generating and rendering every study in memory and (2) the
full ``write_cohort`` (rendering + DICOM + LabelMe + truth files), both in one process. On a shared machine the CPU time is the fairer figure: the wall time
also counts waiting for the disk and for other processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from scintilab.synth import class_plan, generate_patient, render_study, write_cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=506)
    parser.add_argument("--matrix", default="1024x256")
    parser.add_argument("--keep", type=Path, default=None, help="write the cohort here and keep it")
    args = parser.parse_args()
    matrix = tuple(int(v) for v in args.matrix.split("x"))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"python {platform.python_version()}"
    )

    labels = class_plan(args.patients)
    t0, c0 = time.perf_counter(), time.process_time()
    n_studies = 0
    for i, lab in enumerate(labels):
        pat = generate_patient(np.random.default_rng([0, i + 1]), lab, index=i + 1, matrix=matrix)
        render_study(pat, np.random.default_rng([0, i + 1, 0, 3]))
        n_studies += 1
    t_render, c_render = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"generate + render in memory: {n_studies} studies in {t_render:.1f} s wall, {c_render:.1f} s CPU "
        f"({1000 * c_render / n_studies:.0f} ms CPU per study)"
    )

    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        info = write_cohort(out, n_patients=args.patients, matrix=matrix, progress=False)
        t_write, c_write = time.perf_counter() - t0, time.process_time() - c0
        size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        print(
            f"write_cohort: {info.n_patients} patients, {info.n_images} images, {size_mb:.0f} MB "
            f"in {t_write:.1f} s wall, {c_write:.1f} s CPU ({1000 * c_write / info.n_studies:.0f} ms CPU per study), "
            "one process"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
