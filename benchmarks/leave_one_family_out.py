"""Leave one variety family out: train the hot-spot model without a family, report on it.

Issue 23, item 3: tune on every family but one ("arms raised"), report on that one; the same
for each family the protocol names (``validation/cohorts.yaml``,
``leave_one_family_out``). The default rules, which were tuned on the narrow generator only,
are measured beside it: they have seen none of the clinic families.

For each family F the script fits the learned hot-spot model
(:func:`scintilab.hotspots.train_hotspot_model`, lesion vs everything else from the
training cohort's LabelMe annotations, its operating cut chosen out of fold there) on the
training cohort's studies that are not in F, and one model on all of them; then each
model is validated (:func:`scintilab.synth.validate.validate_against_truth`) on the
reporting cohort, and F's own figures are read off. Detection on the training cohort runs
once; the models differ only in the studies they are fitted on.

Each classifier's operating point is its own (the rules' fixed cut, each model's cut chosen
out of fold on its training studies), so the table also reads every classifier's FROC at
the same false positives per scan (0.5, 1 and 2, every visible lesion): that comparison
does not depend on where each one put its cut.

Both cohorts are clinic variety: the training cohort takes a tuning/training seed of the
protocol (default 6001), the reporting cohort a reporting seed (default 5001); the
protocol is checked before any work.

Usage::

    .venv/bin/python benchmarks/leave_one_family_out.py --train-cohort data/lofo_train \\
        --cohort data/lofo_report [--train-seed 6001] [--seed 5001] [--patients 40] \\
        [--visits 3] [--families arms_raised obese ...] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scintilab.hotspots import train_hotspot_model  # noqa: E402
from scintilab.lesion_agreement import truth_files  # noqa: E402
from scintilab.protocol import ProtocolError, load_protocol, require_cohort  # noqa: E402
from scintilab.quantify import hotspot_training_examples  # noqa: E402

#: Figures of one family compared across the classifiers.
FIGURES = (
    ("sensitivity_all_at_op", "sensitivity, every lesion"),
    ("fp_per_scan_at_op", "false positives per scan"),
    ("sensitivity_at_0.5fp", "sensitivity at 0.5 FP per scan (FROC)"),
    ("sensitivity_at_1fp", "sensitivity at 1 FP per scan (FROC)"),
    ("sensitivity_at_2fp", "sensitivity at 2 FP per scan (FROC)"),
    ("bsi_r", "BSI Pearson r (metastatic)"),
    ("new_count_exact_changed", "new-lesion count exact, pairs with new lesions"),
    ("pcwg3_right", "PCWG3 status right"),
)


def _ensure(root: Path, seed: int, patients: int, visits: int) -> Path:
    from scintilab.ingest import ingest
    from scintilab.synth.cohort import write_cohort

    if not (root / "cohort.json").exists():
        write_cohort(root, n_patients=patients, seed=seed, visits=visits, variety="clinic", progress=True)
    manifest = root / "manifest.csv"
    if not manifest.exists():
        ingest(root / "dicom", root / "labels.csv", root / "annotations", manifest, progress=True)
    return manifest


def family_figures(figures: dict[str, Any], family: str) -> dict[str, Any]:
    """One family's row of the validation figures (``all`` is the top level)."""
    fam = figures if family == "all" else (figures.get("families") or {}).get(family, {})
    bsi = fam.get("bsi") or {}
    froc = fam.get("sensitivity_all_at_fp") or {}
    return {
        "scans": fam.get("scans"),
        "lesions": fam.get("lesions"),
        "sensitivity_all_at_op": fam.get("sensitivity_all_at_op"),
        "fp_per_scan_at_op": fam.get("fp_per_scan_at_op"),
        # matched false positives: every classifier read off its FROC at the same levels
        "sensitivity_at_0.5fp": froc.get("0.5"),
        "sensitivity_at_1fp": froc.get("1"),
        "sensitivity_at_2fp": froc.get("2"),
        "bsi_r": bsi.get("pearson_r"),
        "new_count_exact_changed": fam.get("new_count_exact_changed"),
        "pcwg3_right": fam.get("pcwg3_right"),
    }


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def main(argv: list[str] | None = None) -> int:
    """Fit, validate and print the leave-one-family-out table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-cohort", type=Path, required=True)
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--train-seed", type=int, default=6001)
    p.add_argument("--seed", type=int, default=5001)
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--visits", type=int, default=3)
    p.add_argument("--families", nargs="*", default=None, help="default: the protocol's leave_one_family_out")
    p.add_argument("--repeats", type=int, default=2, help="repeatability re-simulations per validation")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    proto = load_protocol()
    families = args.families or list(proto.varieties["clinic"].get("leave_one_family_out", []))
    try:  # the protocol first: a refused seed stops the run before any cohort is written
        trained_on, tvar = require_cohort(
            args.train_cohort, args.train_seed, "training", "clinic", what="the left-one-out hot-spot models"
        )
        record, rvar = require_cohort(args.cohort, args.seed, "reporting", "clinic", what="the left-one-out figures")
    except ProtocolError as exc:
        p.error(str(exc))
    if "clinic" not in (tvar, rvar) or tvar != rvar:
        p.error("both cohorts must be clinic variety (families live only there)")
    t0 = time.perf_counter()
    manifest = _ensure(args.train_cohort, args.train_seed, args.patients, args.visits)
    _ensure(args.cohort, args.seed, args.patients, args.visits)
    fams_of = {key: set(rec.get("families", [])) for key, (rec, _) in truth_files(args.train_cohort / "truth").items()}
    examples = hotspot_training_examples(manifest, progress=True)
    print(f"detected {len(examples)} training studies in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    from scintilab.synth.validate import validate_against_truth

    def validate(model: Any) -> dict[str, Any]:
        return validate_against_truth(
            args.cohort, repeats=args.repeats, progress=False, hotspot_model=model, variety="clinic"
        )

    rules = validate(None)
    models: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    subsets = {"all": examples} | {
        f: [(d, lab) for d, lab in examples if f not in fams_of.get(d.study_key, set())] for f in families
    }
    for name, subset in subsets.items():
        sizes[name] = len(subset)
        models[name] = train_hotspot_model([d for d, _ in subset], [lab for _, lab in subset])
    results = {name: validate(m) for name, m in models.items()}
    rows = []
    for fam in ["all", *families]:
        rows.append(
            {
                "family": fam,
                "train_studies_without": sizes.get(fam) if fam != "all" else None,
                "rules": family_figures(rules, fam),
                "learned_with": family_figures(results["all"], fam),
                "learned_without": family_figures(results[fam], fam) if fam != "all" else None,
            }
        )
    w = 48
    for row in rows:
        fam = row["family"]
        n = row["rules"]["scans"]
        left = f", model fitted on {row['train_studies_without']} studies without it" if fam != "all" else ""
        print(f"\n== {fam} ({n} reporting scans, {row['rules']['lesions']} lesions{left})")
        print(f"{'':<{w}}{'rules':>10}{'learned':>10}{'left out':>10}")
        for key, label in FIGURES:
            vals = [row["rules"][key], row["learned_with"][key], (row["learned_without"] or {}).get(key)]
            print(f"{label:<{w}}" + "".join(f"{_fmt(v):>10}" for v in vals))
    print(f"\n(wall time {time.perf_counter() - t0:.0f} s on this machine)")
    if args.json:
        doc = {
            "rows": rows,
            "protocol": {**record, "trained_on": trained_on},
            "train_studies": len(examples),
            "families": families,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
