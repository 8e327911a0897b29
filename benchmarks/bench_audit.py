"""Benchmark the cohort audit: wall time for 1,000 and 10,000 studies.

Studies are simulated in memory, not read from DICOM (say so when quoting): a few dozen
bodies are drawn once with the synthetic generator's phantom (``scintilab.synth.phantom``),
then every study is a distinct body made from one of them (random stretch of rows and
columns, bed shift, count level) with fresh Poisson noise. A lazy sequence regenerates
study ``i`` from its seed whenever the audit reads it, so 10,000 studies never sit in
memory. 1 % of the studies are then exact or near copies of another (new ids), which the
audit must find.

Printed per cohort size and matrix: total audit time, studies/s, the time spent
generating pixels (subtract it: a DICOM read costs about the same order, see
``benchmarks/bench_ingest.py``), findings, and how many planted copies were found.

Usage::

    .venv/bin/python benchmarks/bench_audit.py                      # 1,000 @ 1024x256, 10,000 @ 256x64
    .venv/bin/python benchmarks/bench_audit.py --sizes 1000:512x128 --bodies 20

Figures depend on the machine and on whatever else runs on it; quote them with both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from scipy import ndimage as ndi

from scintilab.faults import _shift_image
from scintilab.pseudonym import patient_key, study_key
from scintilab.study import Study


class SimulatedCohort(Sequence):
    """``n`` distinct studies generated on demand from ``bodies`` phantoms (deterministic).

    The last ``n_copies`` indices are copies of earlier studies (exact, shifted, rescaled
    or half-matrix), listed in :attr:`copies` as (copy index, original index, kind).
    """

    def __init__(
        self, n: int, matrix: tuple[int, int], bodies: int = 24, seed: int = 0, copy_share: float = 0.01
    ) -> None:
        from scintilab.synth.phantom import random_anatomy, render_phantom, spacing_for

        rng = np.random.default_rng(seed)
        self.n, self.matrix, self.seed = n, matrix, seed
        self.spacing = spacing_for(matrix)
        self.lam: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in range(bodies):
            an = random_anatomy(rng, sex="M" if rng.random() < 0.5 else "F", age=int(rng.integers(40, 85)))
            ph = render_phantom(an, matrix)
            a = ph.act_ant / ph.act_ant.sum()
            p = ph.act_post / ph.act_post.sum()
            # A bladder and an injection site: the phantom leaves them to the scan module.
            r, c = int(matrix[0] * 0.5), int(matrix[1] * 0.5)
            a[r - 2 : r + 3, c - 3 : c + 4] += 0.02 / 35
            p[r - 2 : r + 3, c - 3 : c + 4] += 0.005 / 35
            ir, ic = int(matrix[0] * 0.33), int(matrix[1] * (0.12 if rng.random() < 0.5 else 0.88))
            a[ir - 1 : ir + 2, ic - 1 : ic + 2] += 0.01 / 9
            p[ir - 1 : ir + 2, ic - 1 : ic + 2] += 0.01 / 9
            self.lam.append((a.astype(np.float32), p.astype(np.float32)))
        n_copies = int(round(n * copy_share))
        self.n_orig = n - n_copies
        kinds = ("exact", "shifted", "rescaled", "half_matrix")
        self.copies = [(self.n_orig + j, int(rng.integers(0, self.n_orig)), kinds[j % 4]) for j in range(n_copies)]
        self.gen_seconds = 0.0

    def __len__(self) -> int:
        return self.n

    def _original(self, i: int) -> Study:
        rng = np.random.default_rng((self.seed, i))
        a, p = self.lam[i % len(self.lam)]
        # A distinct body: stretch rows and columns (height, build), move it on the bed.
        zr, zc = rng.uniform(0.9, 1.02), rng.uniform(0.88, 1.1)
        rows, cols = self.matrix
        out = []
        counts = rng.uniform(1.0e6, 4.0e6)
        shift = (rng.uniform(-0.01, 0.015) * rows, rng.uniform(-0.03, 0.03) * cols)
        for lam in (a, p):
            z = ndi.affine_transform(
                lam,
                (1 / zr, 1 / zc),
                offset=(-shift[0], (cols / 2) * (1 - 1 / zc) - shift[1]),
                output_shape=(rows, cols),
                order=1,
            )
            out.append(rng.poisson(np.clip(z, 0, None) / max(z.sum(), 1e-12) * counts).astype(np.uint16))
        return Study(
            study_key(f"bench-{self.seed}-{i}"),
            patient_key(f"bench-{self.seed}-{i}"),
            out[0],
            out[1][:, ::-1].copy(),
            self.spacing,
            "NoMet",
        )

    def __getitem__(self, i: int) -> Study:  # type: ignore[override]
        if not 0 <= i < self.n:
            raise IndexError(i)
        t = time.perf_counter()
        try:
            if i < self.n_orig:
                return self._original(i)
            _, orig, kind = self.copies[i - self.n_orig]
            s = self._original(orig)
            views = [s.anterior, s.posterior]
            spacing = s.pixel_spacing
            if kind == "shifted":
                views = [_shift_image(v, 5, 2) for v in views]  # zero fill, as a bed offset
            elif kind == "rescaled":
                views = [np.round(v * 2.5).astype(np.uint16) for v in views]
            elif kind == "half_matrix":
                r, c = views[0].shape
                views = [v.reshape(r // 2, 2, c // 2, 2).sum(axis=(1, 3)).astype(np.uint16) for v in views]
                spacing = (spacing[0] * 2, spacing[1] * 2)
            return Study(
                study_key(f"bench-copy-{self.seed}-{i}"),
                patient_key(f"bench-copy-{self.seed}-{i}"),
                views[0],
                views[1],
                spacing,
                "NoMet",
            )
        finally:
            self.gen_seconds += time.perf_counter() - t


def run(n: int, matrix: tuple[int, int], bodies: int, neighbours: int) -> dict:
    """Audit one simulated cohort; returns the figures."""
    from scintilab.audit import audit

    cohort = SimulatedCohort(n, matrix, bodies=bodies)
    t = time.perf_counter()
    res = audit(cohort, neighbours=neighbours)  # a Sequence[Study]: no DICOM
    wall = time.perf_counter() - t
    keys = {i: cohort[i].study_key for pair in cohort.copies for i in pair[:2]}
    dup = res.flags[res.flags["kind"].isin(["exact_duplicate", "near_duplicate"])]
    found_pairs = {frozenset(x) for x in zip(dup["study_a"], dup["study_b"])}
    found = sum(frozenset((keys[c], keys[o])) in found_pairs for c, o, _ in cohort.copies)
    return {
        "n": n,
        "matrix": f"{matrix[0]}x{matrix[1]}",
        "wall_s": wall,
        "gen_s": cohort.gen_seconds,
        "findings": len(res.flags),
        "kinds": res.kinds().to_dict(),
        "copies": len(cohort.copies),
        "copies_found": found,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes", nargs="+", default=["1000:1024x256", "10000:256x64"], help="N:ROWSxCOLS cohorts to audit"
    )
    ap.add_argument("--bodies", type=int, default=24, help="phantom bodies drawn once per cohort")
    ap.add_argument("--neighbours", type=int, default=5, help="nearest neighbours compared in full")
    args = ap.parse_args(argv)
    print(
        f"# audit benchmark  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}; simulated studies from arrays, no DICOM read)"
    )
    print(
        f"{'studies':>8} {'matrix':>9} {'audit s':>8} {'of which gen s':>15} {'studies/s':>10} "
        f"{'findings':>9} {'copies found':>13}"
    )
    for spec in args.sizes:
        n_text, m_text = spec.split(":")
        rows, cols = (int(v) for v in m_text.lower().split("x"))
        r = run(int(n_text), (rows, cols), args.bodies, args.neighbours)
        net = r["wall_s"] - r["gen_s"]
        print(
            f"{r['n']:>8} {r['matrix']:>9} {r['wall_s']:>8.1f} {r['gen_s']:>15.1f} {r['n'] / max(net, 1e-9):>10.1f} "
            f"{r['findings']:>9} {r['copies_found']:>6}/{r['copies']:<6}  {r['kinds']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
