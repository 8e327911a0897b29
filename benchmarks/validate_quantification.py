"""Validate hot spots, BSI and follow-up against the synthetic generator's ground truth.

Prints (and writes as JSON with ``--json``) the figures issue 13 asks for:

* lesion-level sensitivity over every visible lesion and over the bright ones (at least
  twice as bright as the bone under them; the definition is printed), with the false
  positives per scan beside both, at the operating point and at <= 1.0 false-positive hot
  spot per scan (FROC). The
  operating point is the one the product uses, printed with every figure: the active
  classifier's own calling threshold (the rules' ``rules.metastatic_p``, a learned
  model's cut chosen on its training cohort), unless ``--threshold`` overrides it; BSI,
  new-lesion counts and PCWG3 are measured at the classifier's endpoint cut (the rules'
  ``rules.endpoint_p``; a learned model's same cut), also printed;
* BSI against the true BSI on the studies of metastatic patients (label != NoMet):
  Pearson r, Spearman rho, Bland-Altman bias and limits of agreement; NoMet studies apart
  (mean and max measured BSI, share measured at 0);
* repeatability: SD of the BSI (points) when one study is re-simulated with fresh
  Poisson noise (same patient, same visit, same everything else);
* follow-up: new-lesion count exact on what share of pairs, and of the pairs with true new
  lesions, each beside the trivial answer "always 0 new"; PCWG3 status right on what share,
  beside "always no progression";
* the same figures per family where the truth names families (``--variety clinic``), a
  figure on fewer than 5 cases left out (its n printed);
* what the hot-spot classifier misses (missed lesions by bone and shape; false positives by kind);
* each figure against the bar of issue 13 (meets / misses).

Two classifiers can be validated:

* the default rules (no model). Their constants were tuned on development cohorts
  (seed 1, 100 patients; seeds 7, 23, 41, 53, 61 and 101, 40 patients each; the demo
  cohort, seed 0 with ``--patients 120 --visits 1``), so figures on those seeds are tuning
  figures; a fresh cohort (another ``--seed`` and ``--cohort``) measures them;
* a learned hot-spot model: ``--hotspot-model MODEL.json``, or ``--train-cohort DIR`` to
  train one first on that cohort's LabelMe annotations (lesion vs everything else; never
  the generator's truth files) with its operating threshold chosen on that cohort only,
  then validate it on ``--cohort``. With a model, the rules are validated on the same
  cohort too and both are printed side by side (``--no-rules`` skips them).

Before any work the seeds are checked against the validation protocol
(``validation/cohorts.yaml``, :mod:`scintilab.protocol`): the training cohort's seed must be
registered for training or tuning, the validated cohort's for reporting. A cohort folder's
seed is the one its ``cohort.json`` records (``--seed`` only writes a missing cohort). To
measure on a tuning or training seed anyway pass ``--tuning-figure``: the output says
"tuning figure". The JSON records the check under ``"protocol"``.

Usage::

    .venv/bin/python benchmarks/validate_quantification.py [--cohort DIR] [--patients 40]
        [--visits 3] [--seed 1] [--matrix 1024x256] [--json OUT.json]
        [--hotspot-model MODEL.json | --train-cohort TRAIN_DIR [--save-model OUT.json]] [--no-rules]
        [--threshold P] [--tuning-figure]

e.g. train on the tuning cohort (seed 1), validate on a reporting one (seed 67)::

    .venv/bin/python benchmarks/validate_quantification.py --train-cohort data/vq_seed1 \\
        --cohort data/vq_seed67 --seed 67 --save-model data/hotspot_model.json

A cohort is written (``scintilab synth``) and ingested when its folder holds none (the
training cohort with seed 1). CPU timings depend on the machine; the figures do not
(same seed, same numbers).
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

from scintilab.hotspots import HotspotModel  # noqa: E402
from scintilab.protocol import TUNING_FIGURE, ProtocolError, cohort_seed, require  # noqa: E402
from scintilab.quantify import train_from_manifest  # noqa: E402
from scintilab.synth.validate import validate_against_truth  # noqa: E402
from scintilab.synth.validation_figures import (  # noqa: E402
    VALIDATION_BARS,
    bar_met,
    bar_value,
    fmt,
    validation_verdict,
)


def _ensure_cohort(
    root: Path, patients: int, visits: int, seed: int, matrix: tuple[int, int] | None, variety: str = "narrow"
) -> Path:
    """Write and ingest a synthetic cohort in ``root`` unless it is there; its manifest."""
    from scintilab.ingest import ingest
    from scintilab.synth.cohort import write_cohort

    if not (root / "cohort.json").exists():
        write_cohort(root, n_patients=patients, seed=seed, visits=visits, matrix=matrix, progress=True, variety=variety)
    manifest = root / "manifest.csv"
    if not manifest.exists():
        ingest(root / "dicom", root / "labels.csv", root / "annotations", manifest, progress=True)
    return manifest


#: The seed ``--train-cohort`` writes a missing training cohort with (a tuning seed).
TRAIN_SEED = 1


def check_protocol(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(record of the validated cohort, of the training cohort or None): the protocol's word.

    Raises:
        ProtocolError: a seed used against ``validation/cohorts.yaml``.
    """
    trained_on = None
    if args.train_cohort is not None:
        seed, variety = cohort_seed(args.train_cohort, args.train_seed)
        if not (args.train_cohort / "cohort.json").exists():
            variety = args.variety  # a cohort still to be written takes --variety
        trained_on = require(seed, "training", variety, what="the learned hot-spot model of --train-cohort")
    # Training into the validated folder writes it with the training seed first.
    default = args.train_seed if trained_on and args.train_cohort.resolve() == args.cohort.resolve() else args.seed
    seed, variety = cohort_seed(args.cohort, default)
    if not (args.cohort / "cohort.json").exists():
        variety = args.variety
    record = require(seed, "reporting", variety, what="the figures of --cohort", allow_tuning_figure=args.tuning_figure)
    return record, trained_on


#: Short names of the bars for the side-by-side table.
_SHORT = {
    "sensitivity_bright_at_op": "sensitivity (>=2x bone) at the operating point",
    "best_sensitivity_bright_at_1fp": "best sensitivity at <=1 FP/scan (FROC)",
    "bsi_pearson_r": "BSI vs true BSI (metastatic), Pearson r",
    "new_count_exact": "new-lesion count exact (share of pairs)",
    "pcwg3_right": "PCWG3 status right (share of pairs)",
}


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Each bar of issue 13, one column per classifier (meets / misses)."""
    names = list(results)
    w = 50
    lines = [f"{'figure (bar)':<{w}}" + "".join(f"{n:>18}" for n in names)]
    for key, (bar, _what) in VALIDATION_BARS.items():
        cells = []
        for n in names:
            met = bar_met(results[n], key)
            verdict = "n/a" if met is None else ("meets" if met else "MISSES")
            cells.append(f"{fmt(bar_value(results[n], key))} {verdict}")
        lines.append(f"{_SHORT[key] + f' (>={bar:.2f})':<{w}}" + "".join(f"{c:>18}" for c in cells))
    extra = {
        "operating threshold (p >=)": lambda r: f"{r['operating_threshold']:.2f}",
        "BSI / follow-up cut (p >=)": lambda r: f"{r['endpoint_threshold']:.2f}",
        "false positives per scan at the operating point": lambda r: fmt(r["fp_per_scan_at_op"], ".2f"),
        "sensitivity, every visible lesion, at the op. point": lambda r: fmt(r.get("sensitivity_all_at_op")),
        "FP/scan at the best <=1 FP/scan threshold": lambda r: fmt(r["fp_per_scan_at_that_threshold"], ".2f"),
        "BSI (metastatic) Spearman rho": lambda r: fmt(r["bsi"].get("spearman_rho")),
        "BSI Bland-Altman bias (points)": lambda r: fmt(r["bsi"].get("bias"), "+.3f"),
        "BSI Bland-Altman 95% limits (points)": lambda r: (
            f"{fmt(r['bsi'].get('loa_low'), '+.2f')}..{fmt(r['bsi'].get('loa_high'), '+.2f')}"
        ),
        "BSI on NoMet studies, mean / max": lambda r: (
            f"{fmt(r['bsi_nomet'].get('mean'))} / {fmt(r['bsi_nomet'].get('max'))}"
        ),
        "new-lesion count exact, always 0 new": lambda r: fmt(r.get("new_count_exact_always_0")),
        "new-lesion count exact, pairs with new lesions": lambda r: fmt(r.get("new_count_exact_changed")),
        "PCWG3 right, always no progression": lambda r: fmt(r.get("pcwg3_right_always_none")),
        "repeatability SD (BSI points)": lambda r: fmt((r.get("repeatability") or {}).get("sd")),
    }
    for what, fn in extra.items():
        lines.append(f"{what:<{w}}" + "".join(f"{fn(results[n]):>18}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the validation and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cohort", type=Path, default=Path("data/validation_quantify"))
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--visits", type=int, default=3)
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of a cohort written into --cohort; the default 1 is a tuning seed (--tuning-figure), "
        "a result takes a reporting seed of validation/cohorts.yaml",
    )
    p.add_argument(
        "--matrix",
        default=None,
        help="ROWSxCOLS of a cohort still to be written (default: 1024x256 for narrow, drawn per patient for clinic)",
    )
    p.add_argument(
        "--variety",
        choices=("narrow", "clinic"),
        default="narrow",
        help="variety of a cohort still to be written (a written cohort's own is read from its cohort.json)",
    )
    p.add_argument(
        "--train-seed",
        type=int,
        default=TRAIN_SEED,
        help="seed of a --train-cohort still to be written (a training seed of validation/cohorts.yaml)",
    )
    p.add_argument("--repeats", type=int, default=6, help="re-simulations for repeatability")
    p.add_argument("--hotspot-model", type=Path, default=None, help="validate this trained hot-spot model (JSON)")
    p.add_argument(
        "--train-cohort",
        type=Path,
        default=None,
        help="train a hot-spot model on this cohort's LabelMe annotations first (written with seed 1 "
        "when absent), then validate it on --cohort",
    )
    p.add_argument("--save-model", type=Path, default=None, help="where --train-cohort saves the model")
    p.add_argument(
        "--skeleton-model",
        type=Path,
        default=None,
        help="a learned skeleton's folder (benchmarks/train_skeleton.py) as the source of bone groups, "
        "in place of the atlas template, for every classifier validated",
    )
    p.add_argument("--no-rules", action="store_true", help="with a model: do not validate the default rules too")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="override the operating threshold (default: each classifier's own)",
    )
    p.add_argument(
        "--tuning-figure",
        action="store_true",
        help="measure on a seed the protocol registers for tuning or training (labelled a tuning figure)",
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    # The protocol first: a refused seed stops the run before any cohort is written or read.
    try:
        record, trained_on = check_protocol(args)
    except ProtocolError as exc:
        p.error(str(exc))
    label = ""
    if record["purpose"] == TUNING_FIGURE:
        label = f" [{TUNING_FIGURE}: seed {record['seed']} is registered for {' and '.join(record['registered_as'])}]"
    matrix: tuple[int, int] | None = None
    if args.matrix is not None:
        rows, cols = (int(v) for v in args.matrix.lower().split("x"))
        matrix = (rows, cols)
    elif args.variety == "narrow":
        matrix = (1024, 256)
    t0 = time.perf_counter()
    model: HotspotModel | None = None
    if args.train_cohort is not None:
        if args.train_cohort.resolve() == args.cohort.resolve():
            print("note: training and validation cohort are the same: these are training figures", file=sys.stderr)
        manifest = _ensure_cohort(args.train_cohort, args.patients, args.visits, args.train_seed, matrix, args.variety)
        out = args.save_model or (args.train_cohort / "hotspot_model.json")
        model = train_from_manifest(manifest, out, progress=True)
        i = model.info
        print(
            f"hot-spot model trained on {i['scans']} scans of {i['patients']} patients ({args.train_cohort}): "
            f"{i['hotspots']} hot spots, {i['positives']} annotated lesions; operating threshold "
            f"{i['raw_threshold']:.2f} chosen out of fold on that cohort ({i['cv_fp_per_scan']} FP/scan, "
            f"{i['cv_share_called']} of its lesion hot spots) -> {out}"
        )
    elif args.hotspot_model is not None:
        model = HotspotModel.load(args.hotspot_model)
    skeleton = None
    if args.skeleton_model is not None:
        from scintilab.skeleton_model import load_skeleton_model

        skeleton = load_skeleton_model(args.skeleton_model)
        print(f"bone groups from the learned skeleton {args.skeleton_model} ({skeleton.info})", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    runs = [("rules", None)] if model is None else ([] if args.no_rules else [("rules", None)]) + [("learned", model)]
    for name, m in runs:
        res = validate_against_truth(
            args.cohort,
            n_patients=args.patients,
            visits=args.visits,
            seed=args.seed,
            matrix=matrix,
            repeats=args.repeats,
            progress=True,
            hotspot_model=m,
            threshold=args.threshold,
            variety=args.variety,
            skeleton_model=skeleton,
        )
        results[name] = res
        kind = "default rules" if m is None else "learned hot-spot model"
        print(f"\n=== {name} ({kind}) on {args.cohort}{label} ===")
        print(res["text"])
        print("\nagainst the bars of issue 13:")
        print(validation_verdict(res).replace("**", ""))
    if len(results) > 1:
        print(f"\n=== side by side on {args.cohort}{label} ===")
        print(comparison_table(results))
    print(f"\n(wall time {time.perf_counter() - t0:.0f} s on this machine)")
    if args.json:
        out_json = {n: {k: v for k, v in r.items() if k != "frames"} for n, r in results.items()}
        if model is not None:
            out_json["model_info"] = model.info
        doc = out_json if len(results) > 1 or model is not None else out_json["rules"]
        doc["protocol"] = {**record, **({"trained_on": trained_on} if trained_on else {})}
        if skeleton is not None:
            doc["skeleton_model"] = {"folder": str(args.skeleton_model), "info": skeleton.info}
        args.json.write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
