"""A trained classifier on a cohort it never saw, per variety family, beside the trivial answer.

Issue 23, items 4-5 for classification: the README's classification figures come from the
demo's own patient split of one seed (a training cohort in ``validation/cohorts.yaml``).
This script scores a trained run (``scintilab train``) on a reporting cohort, study by
study as the quantification reports do (:class:`scintilab.scoring.Classifier`: the run's
own preparation, fused for D3), and prints per family:

* 3-class accuracy, macro F-1 and macro AUC (one-vs-rest), beside "always NoMet" (the
  commonest class; its AUC is 0.5 by construction);
* metastatic vs not (P(ADMet) + P(nADMet) > 0.5): accuracy and AUC, beside "always NoMet".

The cohort's seed must be a reporting seed of the protocol (checked before any work);
a missing cohort is written first (single visit).

Usage::

    .venv/bin/python benchmarks/classify_cohort.py --run RUN_DIR --cohort data/cls_5005 \\
        [--seed 5005] [--patients 60] [--variety clinic] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scintilab.lesion_agreement import truth_files  # noqa: E402
from scintilab.metrics import classification_metrics, two_class  # noqa: E402
from scintilab.protocol import ProtocolError, require_cohort  # noqa: E402
from scintilab.study import CLASSES  # noqa: E402

#: Fewer studies than this behind a family: its figures are not given.
MIN_STUDIES = 10


def family_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """3-class and two-class figures of one group of studies, beside "always NoMet"."""
    if len(y) < MIN_STUDIES:
        return {"studies": int(len(y))}
    m3 = classification_metrics(y, proba)
    y2, p2, pred2 = two_class(y, proba, "sum")
    m2 = classification_metrics(y2, p2, y_pred=pred2, classes=("NoMet", "Met"))
    nomet = np.zeros_like(y)
    return {
        "studies": int(len(y)),
        "accuracy": m3["accuracy"],
        "macro_f1": m3["f1"],
        "macro_auc": m3["auc"],
        "met_accuracy": m2["accuracy"],
        "met_auc": m2["auc"],
        "always_nomet_accuracy": float(np.mean(y == nomet)),
        "always_nomet_met_accuracy": float(np.mean(y2 == 0)),
        "share_per_class": {c: float(np.mean(y == i)) for i, c in enumerate(CLASSES)},
    }


def main(argv: list[str] | None = None) -> int:
    """Score the run on the cohort and print the per-family table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a run directory written by scintilab train")
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--seed", type=int, default=5005)
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--variety", choices=("clinic", "narrow"), default="clinic")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:
        record, variety = require_cohort(
            args.cohort, args.seed, "reporting", args.variety, what="the classifier's figures on --cohort"
        )
    except ProtocolError as exc:
        p.error(str(exc))
    seed = int(record["seed"])
    t0 = time.perf_counter()
    from scintilab.ingest import ingest, load_cohort
    from scintilab.scoring import Classifier
    from scintilab.synth.cohort import write_cohort

    if not (args.cohort / "cohort.json").exists():
        write_cohort(args.cohort, n_patients=args.patients, seed=seed, variety=variety, progress=True)
    manifest = args.cohort / "manifest.csv"
    if not manifest.exists():
        ingest(args.cohort / "dicom", args.cohort / "labels.csv", args.cohort / "annotations", manifest, progress=False)
    clf = Classifier(args.run)
    fams = {key: list(rec.get("families", [])) for key, (rec, _) in truth_files(args.cohort / "truth").items()}
    cohort = load_cohort(manifest, with_shapes=False)
    keys, ys, probas = [], [], []
    for i in range(len(cohort)):
        st = cohort[i]
        if st.label not in CLASSES:
            continue
        keys.append(st.study_key)
        ys.append(CLASSES.index(st.label))
        probas.append(clf.proba(st))
    y, proba = np.array(ys), np.array(probas)
    names = ["all", *sorted({f for k in keys for f in fams.get(k, [])})]
    rows = {}
    for fam in names:
        sel = np.array([fam == "all" or fam in fams.get(k, []) for k in keys])
        rows[fam] = family_metrics(y[sel], proba[sel])
    head = f"{'family':<18}{'studies':>8}{'acc':>7}{'(NoMet)':>9}{'F1':>7}{'AUC':>7}{'met acc':>9}{'(NoMet)':>9}{'met AUC':>9}"
    print(f"{clf.run.config.model} ({clf.run.config.dataset}, {tuple(clf.image_size)}) on {args.cohort}")
    print(head)
    for fam, r in rows.items():
        if "accuracy" not in r:
            print(f"{fam:<18}{r['studies']:>8}   (fewer than {MIN_STUDIES} studies)")
            continue
        print(
            f"{fam:<18}{r['studies']:>8}{r['accuracy']:>7.3f}{r['always_nomet_accuracy']:>9.3f}{r['macro_f1']:>7.3f}"
            f"{r['macro_auc']:>7.3f}{r['met_accuracy']:>9.3f}{r['always_nomet_met_accuracy']:>9.3f}{r['met_auc']:>9.3f}"
        )
    print(f"(wall time {time.perf_counter() - t0:.0f} s)")
    if args.json:
        cfg = clf.run.config
        doc = {
            "protocol": record,
            "model": cfg.model,
            "dataset": cfg.dataset,
            "image_size": list(clf.image_size),
            "run": args.run.name,
            "families": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
