"""The ceiling of a synthetic cohort: the best 3-class accuracy its generator's truth allows.

Issue 25, item 1. A gradient-boosting classifier reads the truth of what each study's image
shows (visible lesions' number, size, area, shape, region, uptake, lytic rims, cold
lesions; benign skeletal findings; superscan; true BSI; :mod:`scintilab.synth.ceiling`),
cross-validated with folds grouped by patient. Its accuracy, macro F-1 and metastatic-vs-not
accuracy, with patient-bootstrap intervals, are printed beside the majority-class rate.
Given ``--classify`` (a JSON of ``benchmarks/classify_cohort.py``), the image model's
figures are also written as fractions of the ceiling, and the JSON says whether both were
measured on the same cohort (seed and variety).

The cohort's seed must be a reporting seed of the protocol (checked before any work;
``--tuning-figure`` measures on a tuning or training seed and says so); a missing cohort
is written first (single visit). Only the truth is read: no ingest.

Usage::

    .venv/bin/python benchmarks/ceiling.py --cohort /work/runs/ceiling/narrow163 --seed 163 \\
        --variety narrow --classify validation/results/classify_narrow.json \\
        --json validation/results/ceiling_narrow.json
    .venv/bin/python benchmarks/ceiling.py --cohort /work/runs/ceiling/clinic5005 --seed 5005 \\
        --variety clinic --classify validation/results/classify_clinic.json \\
        --json validation/results/ceiling_clinic.json
    .venv/bin/python benchmarks/ceiling.py --cohort /work/runs/ceiling/clinic5007 --seed 5007 \\
        --variety clinic --patients 506 --classify validation/results/classify_clinic.json \\
        --json validation/results/ceiling_clinic_506.json
    # the demo cohort (seed 0 trained the network and tuned the rules): a tuning figure
    .venv/bin/python benchmarks/ceiling.py --cohort data/synthetic_small --seed 0 --tuning-figure
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

from scintilab.protocol import ProtocolError, display_path, require_cohort  # noqa: E402


def image_model_figures(path: Path) -> dict[str, Any]:
    """The image model's all-studies figures from a ``classify_cohort.py`` JSON.

    Raises:
        ValueError: the file is unreadable or holds no ``families["all"]`` accuracy.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        every = doc["families"]["all"]
        proto = doc["protocol"]
        return {
            "file": display_path(path),
            "seed": int(proto["seed"]),
            "variety": str(proto.get("variety", "narrow")),
            "model": doc.get("model"),
            "dataset": doc.get("dataset"),
            "image_size": doc.get("image_size"),
            "studies": int(every["studies"]),
            "accuracy": float(every["accuracy"]),
            "macro_f1": float(every["macro_f1"]),
            "met_accuracy": float(every["met_accuracy"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a classify_cohort.py result ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    """Measure the ceiling of the cohort, print it and write ``--json``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", type=Path, required=True, help="a generated cohort folder (written when absent)")
    p.add_argument("--seed", type=int, default=163, help="generator seed of a cohort still to write")
    p.add_argument("--patients", type=int, default=120)
    p.add_argument("--variety", choices=("narrow", "clinic"), default="narrow")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--cv-seed", type=int, default=0, help="folds, model and bootstrap randomness")
    p.add_argument("--bootstrap", type=int, default=1000, help="patient-bootstrap replicates")
    p.add_argument("--classify", type=Path, default=None, help="an image model's classify_cohort.py JSON")
    p.add_argument("--tuning-figure", action="store_true", help="measure on a tuning or training seed anyway")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        record, variety = require_cohort(
            args.cohort,
            args.seed,
            "reporting",
            args.variety,
            what="the truth-only ceiling on --cohort",
            allow_tuning_figure=args.tuning_figure,
        )
        model = image_model_figures(args.classify) if args.classify else None
    except (ProtocolError, ValueError) as exc:
        p.error(str(exc))
    seed = int(record["seed"])
    t0 = time.perf_counter()
    from scintilab.synth.ceiling import ceiling, fraction_of_ceiling
    from scintilab.synth.cohort import write_cohort

    if not (args.cohort / "cohort.json").exists():
        write_cohort(args.cohort, n_patients=args.patients, seed=seed, visits=1, variety=variety, progress=True)
    result = ceiling(args.cohort, folds=args.folds, seed=args.cv_seed, n_boot=args.bootstrap)
    acc, f1, met = result["accuracy"], result["macro_f1"], result["met_accuracy"]
    print(f"ceiling of {args.cohort} (seed {seed}, {variety}, {record['purpose']}):")
    print(f"  studies {result['studies']}, patients {result['patients']}, {result['folds']} folds by patient")
    for name, fig in (("3-class accuracy", acc), ("macro F-1", f1), ("metastatic vs not accuracy", met)):
        print(f"  {name:<28}{fig['estimate']:.3f} (95 % CI {fig['low']:.3f}-{fig['high']:.3f})")
    print(f"  {'always ' + result['majority_class']:<28}{result['majority_rate']:.3f}")
    print(f"  logistic regression check   {result['logistic_accuracy']:.3f}")
    print("  most important: " + ", ".join(f"{k} {v:.3f}" for k, v in list(result["importances"].items())[:5]))
    doc: dict[str, Any] = {"protocol": record, **result}
    if model is not None:
        same = (model["seed"], model["variety"]) == (seed, variety)
        frac = fraction_of_ceiling(model, result)
        doc["image_model"] = {**model, "same_cohort": same}
        doc["fraction_of_ceiling"] = frac
        where = "this cohort" if same else f"seed {model['seed']} ({model['variety']}), another cohort of this kind"
        print(
            f"  image model on {where}: accuracy {model['accuracy']:.3f} = {frac['accuracy']:.3f} of the ceiling "
            f"({frac['accuracy_ceiling_range'][0]:.3f}-{frac['accuracy_ceiling_range'][1]:.3f} over its interval); "
            f"{frac['gain_over_majority']:.3f} of the ceiling's gain over always {result['majority_class']}"
        )
    print(result["text"])
    print(f"(wall time {time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
