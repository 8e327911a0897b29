"""Measure the bone area per atlas-template pixel on a synthetic cohort with truth maps.

The BSI's size of each bone group is its own template pixels (the bone map that draws it
in front) times :data:`scintilab.bsi.TEMPLATE_AREA_SCALE`. This script fits the atlas to
every study of a cohort the generator wrote (``truth/*_maps.npz`` beside the manifest),
divides each group's true projected pixels by its own template pixels, and prints per
group the median, the coefficient of variation between studies, and the constant in use,
so the constants can be re-measured after a template change, or checked on a fresh cohort.

The cohort's seed (its ``cohort.json``) is checked against the validation protocol
(``validation/cohorts.yaml``) before any work: measuring the constants is tuning, so the seed
must be registered for tuning; ``--check`` only compares the constants in use with a cohort,
a reporting figure, so the seed must be registered for reporting.

Usage::

    .venv/bin/python benchmarks/measure_template_scale.py --cohort DIR [--check] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scintilab.anatomy import BONES  # noqa: E402
from scintilab.bsi import TEMPLATE_AREA_SCALE, front_view  # noqa: E402
from scintilab.protocol import ProtocolError, cohort_seed, require  # noqa: E402


def measure(cohort: Path) -> dict[str, dict[str, float]]:
    """Per bone group: median and CV of true pixels over own template pixels, and n."""
    from scintilab.atlas import fit_study_atlas
    from scintilab.hotspots import view_atlas
    from scintilab.ingest import load_cohort
    from scintilab.pseudonym import study_key

    loaded = load_cohort(cohort / "manifest.csv")
    keys = set(loaded.manifest["study_key"])
    ratios: dict[str, list[float]] = {b: [] for b in BONES}
    for f in sorted((cohort / "truth").glob("*.json")):
        rec = json.loads(f.read_text())
        key = study_key(rec["study_uid"])
        if key not in keys:
            continue
        study = loaded.by_key(key)
        view = "ANT" if study.anterior is not None else "POST"
        base = fit_study_atlas(study, view)
        maps = {v: (base if v == view else view_atlas(base, v)).bone_map() for v in ("ANT", "POST")}
        truth = np.load(f.with_name(f.stem + "_maps.npz"))["bone"]
        for i, b in enumerate(BONES, start=1):
            own = int((maps[front_view(b)] == i).sum())
            true_px = int((truth == i).sum())
            if own and true_px:
                ratios[b].append(true_px / own)
    out = {}
    for b, r in ratios.items():
        a = np.asarray(r, float)
        out[b] = {
            "n": int(a.size),
            "median": float(np.median(a)) if a.size else float("nan"),
            "cv": float(a.std() / a.mean()) if a.size > 1 else float("nan"),
            "in_use": TEMPLATE_AREA_SCALE[b],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cohort", type=Path, required=True, help="a cohort the generator wrote, ingested")
    p.add_argument(
        "--check",
        action="store_true",
        help="check the constants in use on a reporting cohort (default: measure them, which is tuning)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    if not (args.cohort / "manifest.csv").exists() or not (args.cohort / "truth").is_dir():
        print(
            f"error: {args.cohort} holds no manifest.csv and truth/ (write one with `scintilab synth`, then ingest it)",
            file=sys.stderr,
        )
        return 2
    purpose = "reporting" if args.check else "tuning"
    try:
        seed, variety = cohort_seed(args.cohort)
        if seed is None:
            raise ProtocolError(
                f"{args.cohort} holds no cohort.json, so its seed and its purpose in validation/cohorts.yaml are unknown"
            )
        require(seed, purpose, variety, what="the bone area per template pixel")
    except ProtocolError as exc:
        p.error(str(exc))
    t0 = time.perf_counter()
    table = measure(args.cohort)
    print(f"{'bone group':16s} {'n':>5s} {'median':>7s} {'cv':>6s} {'in use':>7s} {'median/in use':>14s}")
    for b, row in table.items():
        print(
            f"{b:16s} {row['n']:5d} {row['median']:7.3f} {row['cv']:6.3f} {row['in_use']:7.3f} "
            f"{row['median'] / row['in_use']:14.3f}"
        )
    print(f"{time.perf_counter() - t0:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
