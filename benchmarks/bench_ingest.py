"""Ingest speed: write N small whole-body studies with the DICOM writer, time ``ingest``.

Usage::

    .venv/bin/python benchmarks/bench_ingest.py [--n 1000] [--rows 1024 --cols 256]
                                                 [--layout multiframe|pair] [--dir DIR]

Prints studies/s and files/s for the ingest (reading every file, decoding the pixels to
count them, grouping, labels and manifest), plus the time spent writing the cohort.
Figures depend on the machine and on what else runs on it: quote them with the CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scintilab.dicomio import write_study
from scintilab.ingest import ingest


def write_cohort(root: Path, n: int, shape: tuple[int, int], layout: str, seed: int = 0) -> None:
    """Write ``n`` studies (Poisson noise around a body-shaped mean) plus a label sheet."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    body = ((rr - rows / 2) / (rows * 0.48)) ** 2 + ((cc - cols / 2) / (cols * 0.35)) ** 2 <= 1
    mean = np.where(body, 6.0, 0.2)
    labels = []
    for i in range(n):
        ant = rng.poisson(mean).astype(np.uint16)
        post = rng.poisson(mean * 1.1).astype(np.uint16)
        write_study(
            root / "dicom" / f"case_{i:05d}",
            ant,
            post,
            stem=f"s{i:05d}",
            layout=layout,
            patient_id=f"BENCH{i:05d}",
            patient_name=f"Bench^{i}",
            study_id=f"B{i:05d}",
            study_date=dt.date(2020, 1, 1) + dt.timedelta(days=i % 365),
        )
        labels.append((f"BENCH{i:05d}", f"B{i:05d}", ("NoMet", "ADMet", "nADMet")[i % 3]))
    pd.DataFrame(labels, columns=["patient_id", "study_id", "label"]).to_csv(root / "labels.csv", index=False)


def bench_ingest(
    n: int = 1000, shape: tuple[int, int] = (1024, 256), layout: str = "multiframe", workdir: Path | None = None
) -> dict[str, float]:
    """Write the cohort, ingest it once, and return the timings."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_", dir=workdir))
    try:
        t0 = time.perf_counter()
        write_cohort(tmp, n, shape, layout)
        t_write = time.perf_counter() - t0
        n_files = sum(1 for _ in (tmp / "dicom").rglob("*.dcm"))
        size = sum(p.stat().st_size for p in (tmp / "dicom").rglob("*.dcm"))
        t0 = time.perf_counter()
        result = ingest(tmp / "dicom", tmp / "labels.csv", None, tmp / "manifest.csv", progress=False)
        t_ingest = time.perf_counter() - t0
        if len(result.manifest) != n or result.skipped:
            raise RuntimeError(f"ingest kept {len(result.manifest)} of {n}, skipped {result.skipped[:3]}")
        return {
            "studies": n,
            "files": n_files,
            "megabytes": size / 1e6,
            "write_s": t_write,
            "ingest_s": t_ingest,
            "studies_per_s": n / t_ingest,
            "files_per_s": n_files / t_ingest,
            "mb_per_s": size / 1e6 / t_ingest,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="studies to write and ingest")
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--layout", choices=("multiframe", "pair"), default="multiframe")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: system temp)")
    args = parser.parse_args(argv)
    r = bench_ingest(args.n, (args.rows, args.cols), args.layout, args.dir)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(
        f"cohort: {r['studies']} studies, {r['files']} {args.layout} files, {args.rows}x{args.cols}, "
        f"{r['megabytes']:.0f} MB (written in {r['write_s']:.1f} s)"
    )
    print(
        f"ingest: {r['ingest_s']:.1f} s = {r['studies_per_s']:.1f} studies/s, "
        f"{r['files_per_s']:.1f} files/s, {r['mb_per_s']:.0f} MB/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
