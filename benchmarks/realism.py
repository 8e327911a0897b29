"""Realism against real-scan statistics (issue 23, item 2): a cohort's anterior views against real ranges.

Measures the twelve figures of :mod:`scintilab.realism` on every anterior view of a cohort
and prints, per figure, the real typical value and range (``validation/real_ranges.json``),
the synthetic 5 %, 50 % and 95 %, and whether the real typical value lies inside the
synthetic 5-95 % range. The cohort is read through the package's own reader
(:func:`scintilab.ingest.load_cohort`; a cohort folder without a manifest is ingested on the
spot). When ``--cohort`` does not exist, a synthetic cohort is written there first with
``--patients``, ``--seed`` and ``--variety``.

Usage::

    .venv/bin/python benchmarks/realism.py --cohort /tmp/realism_clinic --patients 12 \\
        --seed 6050 --variety clinic [--json OUT.json]

The exit status is 0 whatever the figures say (tests/test_realism.py decides pass or fail);
2 when the input is bad (a cohort that cannot be read, or no anterior view measured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scintilab.errors import EXIT_OK, EXIT_USAGE, InputError  # noqa: E402
from scintilab.realism import PER_PIXEL_FIGURES, REFERENCE_SPACING_MM, cohort_realism, load_real_ranges  # noqa: E402

#: The real ranges' pixel size (mm): per-pixel figures compare only near it.
REAL_SPACING_MM = REFERENCE_SPACING_MM


def main(argv: list[str] | None = None) -> int:
    """Measure the cohort (writing it first when absent) and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, required=True, help="cohort folder (with dicom/) or manifest CSV")
    ap.add_argument("--patients", type=int, default=40, help="patients, when the cohort is written")
    ap.add_argument(
        "--seed", type=int, default=6050, help="seed, when the cohort is written (the generator is tuned on it)"
    )
    ap.add_argument(
        "--variety", choices=("clinic", "narrow"), default="clinic", help="the variety of a cohort written here"
    )
    ap.add_argument("--ranges", type=Path, default=None, help="real ranges JSON (default validation/real_ranges.json)")
    ap.add_argument("--json", type=Path, default=None, help="write the table and per-study figures here")
    ap.add_argument("--full", action="store_true", help="--json also holds every study's figures")
    args = ap.parse_args(argv)

    if not args.cohort.exists():
        from scintilab.synth.cohort import write_cohort

        print(f"writing a synthetic cohort: {args.patients} patients, seed {args.seed}, variety {args.variety}")
        write_cohort(args.cohort, n_patients=args.patients, seed=args.seed, progress=False, variety=args.variety)
    try:
        summary = cohort_realism(args.cohort, load_real_ranges(args.ranges))
    except InputError as err:
        print(f"realism: {err}", file=sys.stderr)
        return EXIT_USAGE
    for key, reason in summary.skipped:
        print(f"skipped {key}: {reason}", file=sys.stderr)
    if not summary.per_study:
        print(f"realism: {args.cohort}: no anterior view could be measured", file=sys.stderr)
        return EXIT_USAGE
    print(summary.table())
    off = sorted({round(s, 2) for sp in summary.spacings for s in sp if abs(s / REAL_SPACING_MM - 1) > 0.1})
    if off:
        print(
            f"note: views at pixel spacing {off} mm are left out of the per-pixel figures "
            f"({', '.join(sorted(PER_PIXEL_FIGURES))}): counts per pixel scale with the pixel's area"
        )
    if summary.uncovered:
        print(f"real typical value outside the synthetic 5-95 % range: {', '.join(summary.uncovered)}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = summary.as_dict()
        doc["protocol"] = protocol_record(args.cohort)
        if not args.full:  # the committable form: the table, not every study's figures
            doc.pop("per_study", None)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return EXIT_OK


def protocol_record(cohort: Path) -> dict[str, object]:
    """What the protocol says of a generated cohort's seed (``validation/cohorts.yaml``):
    a realism table from a reporting seed may be quoted; one from the seed the generator's
    variety was tuned on is a tuning figure."""
    from scintilab.protocol import cohort_seed, purpose_of

    root = cohort if cohort.is_dir() else cohort.parent
    if not (root / "cohort.json").exists():
        return {"purpose": "not a generated cohort", "file": "validation/cohorts.yaml"}
    seed, variety = cohort_seed(root)
    purpose = purpose_of(int(seed), variety) if seed is not None else None
    return {"seed": seed, "variety": variety, "purpose": purpose or "unregistered", "file": "validation/cohorts.yaml"}


if __name__ == "__main__":
    sys.exit(main())
