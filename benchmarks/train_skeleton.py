"""Train the learned skeleton model on a clinic training seed and measure it on a reporting seed.

Issue 24, item 1. The training cohort (clinic variety, a training seed of
``validation/cohorts.yaml``, default 6003) and the reporting cohort (a reporting seed,
default 5006) are written and ingested when absent; the protocol is checked before any
of that. The model (weights + JSON config) and a model card go to ``--out``. On the
reporting cohort the script measures, per bone group, the Dice of the model's map against
the generator's label map, overall and per variety family; beside it the hand-drawn atlas
(:meth:`scintilab.atlas.Atlas.bone_map` of :func:`scintilab.prepared.prepare_study`, the
map quantification uses today) and the ceiling the 4.5 mm grid leaves (the truth map sent
to the grid and back). Both are also compared at the coarse region level
(:func:`scintilab.anatomy.region_of`).

Usage::

    .venv/bin/python benchmarks/train_skeleton.py --train-cohort /work/runs/skel/train_6003 \\
        --cohort /work/runs/skel/report_5006 --out /work/runs/skel/model [--epochs 40] \\
        [--train-patients 50] [--patients 40] [--json OUT.json]
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

from scintilab.anatomy import BONES, REGIONS, region_of  # noqa: E402
from scintilab.errors import InputError  # noqa: E402
from scintilab.protocol import ProtocolError, load_protocol, require_cohort  # noqa: E402

#: Region id per bone id (0 stays background), for the region-level comparison.
REGION_LUT = np.array([0] + [REGIONS.index(region_of(b)) + 1 for b in BONES], dtype=np.uint8)


def ensure_cohort(root: Path, seed: int, patients: int) -> Path:
    """Write (clinic, one visit) and ingest the cohort when absent; its manifest."""
    from scintilab.ingest import ingest
    from scintilab.synth.cohort import write_cohort

    if not (root / "cohort.json").exists():
        write_cohort(root, n_patients=patients, seed=seed, visits=1, variety="clinic", progress=True)
    manifest = root / "manifest.csv"
    if not manifest.exists():
        ingest(root / "dicom", root / "labels.csv", root / "annotations", manifest, progress=True)
    return manifest


def summarise(rows: list[dict[str, Any]], key: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Mean Dice per group over studies (NaN skipped) and the mean over groups."""
    per = {n: [r[key][n] for r in rows if np.isfinite(r[key][n])] for n in names}
    groups = {n: (float(np.mean(v)) if v else None) for n, v in per.items()}
    vals = [v for v in groups.values() if v is not None]
    return {"mean": float(np.mean(vals)) if vals else None, "groups": groups, "studies": len(rows)}


def evaluate(model: Any, manifest: Path, *, atlas: bool = True, progress: bool = True) -> list[dict[str, Any]]:
    """Per study: Dice per bone group and per region of the model, the atlas and the grid ceiling."""
    from scintilab.ingest import load_cohort
    from scintilab.lesion_agreement import truth_files
    from scintilab.prepared import prepare_study
    from scintilab.skeleton_model import (
        dice_per_group,
        labels_from_grid,
        labels_to_grid,
        predict_bone_map,
        truth_bone_map,
    )
    from scintilab.view_frame import ViewFrame

    cohort = load_cohort(manifest, with_shapes=False)
    truth = truth_files(manifest.parent / "truth")
    rows = []
    for i, study in enumerate(cohort):
        rec, maps = truth[study.study_key]
        bone = truth_bone_map(maps, study.shape_hw)
        frame = ViewFrame.of_study(study)
        if frame.name != "ANT":
            continue  # the truth is in anterior orientation; the generator never leaves the anterior out
        t0 = time.perf_counter()
        pred = predict_bone_map(model, study, frame)
        secs = time.perf_counter() - t0
        ceil = labels_from_grid(
            labels_to_grid(bone, study.pixel_spacing, model.config), bone.shape, study.pixel_spacing, model.config
        )
        row = {
            "study_key": study.study_key,
            "families": list(rec.get("families", [])),
            "matrix": list(bone.shape),
            "predict_s": round(secs, 3),
            "model": dice_per_group(pred, bone),
            "model_region": dice_per_group(REGION_LUT[pred], REGION_LUT[bone], REGIONS),
            "ceiling": dice_per_group(ceil, bone),
        }
        if atlas:
            try:
                amap = prepare_study(study).atlas[frame.name].bone_map().astype(np.uint8)
                row["atlas"] = dice_per_group(amap, bone)
                row["atlas_region"] = dice_per_group(REGION_LUT[amap], REGION_LUT[bone], REGIONS)
            except InputError as err:
                row["atlas_error"] = err.problem
        rows.append(row)
        if progress:
            print(f"evaluated {i + 1}/{len(cohort)}", file=sys.stderr, end="\r", flush=True)
    if progress:
        print(file=sys.stderr)
    return rows


def tables(rows: list[dict[str, Any]], families: list[str]) -> dict[str, Any]:
    """Summaries per method and family (``all`` first)."""
    out: dict[str, Any] = {}
    for fam in ["all", *families]:
        sub = [r for r in rows if fam == "all" or fam in r["families"]]
        out[fam] = {"studies": len(sub)}
        for key, names in (
            ("model", BONES),
            ("atlas", BONES),
            ("ceiling", BONES),
            ("model_region", REGIONS),
            ("atlas_region", REGIONS),
        ):
            have = [r for r in sub if key in r]
            out[fam][key] = summarise(have, key, names) if have else None
    return out


def _f(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:5.3f}"


def print_tables(summary: dict[str, Any]) -> str:
    """The group table (model / atlas, all studies) and the family table, as printed text."""
    lines = [f"{'bone group':<16}{'model':>7}{'atlas':>7}{'ceiling':>9}"]
    allf = summary["all"]
    for b in BONES:
        vals = [(allf[k] or {}).get("groups", {}).get(b) for k in ("model", "atlas", "ceiling")]
        lines.append(f"{b:<16}{_f(vals[0]):>7}{_f(vals[1]):>7}{_f(vals[2]):>9}")
    lines.append("")
    lines.append(
        f"{'family':<14}{'studies':>8}{'model':>7}{'atlas':>7}{'ceiling':>9}{'model reg':>11}{'atlas reg':>11}"
    )
    for fam, s in summary.items():
        vals = [(s[k] or {}).get("mean") for k in ("model", "atlas", "ceiling", "model_region", "atlas_region")]
        lines.append(
            f"{fam:<14}{s['studies']:>8}{_f(vals[0]):>7}{_f(vals[1]):>7}{_f(vals[2]):>9}{_f(vals[3]):>11}{_f(vals[4]):>11}"
        )
    text = "\n".join(lines)
    print(text)
    return text


def model_card(args: argparse.Namespace, hist: dict[str, Any], text: str, record: dict, trained_on: dict) -> str:
    """The Markdown model card written beside the weights."""
    return f"""# Skeleton model card (scintilab.skeleton_model)

**Trained on synthetic scans; not for clinical use.**

- What: a U-Net (base width {args.base_width}, {args.levels} levels) labelling each pixel with
  background or one of the 17 BSI bone groups of `scintilab.anatomy.BONES`; input both views
  in the anterior frame (posterior mirrored and aligned by `ViewFrame`), on a 4.5 mm grid
  (512 x 128), intensities divided by each view's 99th percentile and square-rooted.
- Data: the project's own generator, variety `clinic`, seed {args.train_seed}
  ({args.train_patients} patients, 1 visit; {hist["train_studies"]} studies trained on,
  {hist["val_studies"]} held out for the per-epoch validation line, nothing chosen on them);
  protocol record {json.dumps(trained_on)}.
- Training: {args.epochs} epochs, batch {args.batch_size}, Adam, cross-entropy + soft Dice,
  augmentation (left-right flip, shift, gamma, posterior dropped 10 %); final loss
  {hist["loss"][-1]:.4f}{f", validation Dice {hist['val_dice'][-1]:.3f}" if hist["val_dice"] else ""};
  {hist["seconds"][-1]:.0f} s on this machine's CPU.
- Validation: reporting seed {args.seed} (clinic, {args.patients} patients, 1 visit), protocol
  record {json.dumps(record)}. Dice per group, mean over studies (a group absent from both maps
  skipped); `atlas` is the hand-drawn atlas (`prepare_study(...).atlas`), `ceiling` the truth
  map sent to the 4.5 mm grid and back (the best this grid allows); `reg` the same at the coarse
  region level.

```
{text}
```

Limits: one generator drew both the training and the reporting scans, so these figures do
not show how the model does on anatomy drawn by anyone else or on real scans. It is not the
default source of regions or of the BSI denominator.
"""


def main(argv: list[str] | None = None) -> int:
    """Train, save, evaluate, print."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-cohort", type=Path, required=True)
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for the weights, config and model card")
    p.add_argument("--train-seed", type=int, default=6003)
    p.add_argument("--seed", type=int, default=5006)
    p.add_argument("--train-patients", type=int, default=50)
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--base-width", type=int, default=12)
    p.add_argument("--levels", type=int, default=5)
    p.add_argument("--no-atlas", action="store_true", help="skip the atlas baseline")
    p.add_argument(
        "--evaluate-only", action="store_true", help="measure the model already saved in --out; train nothing"
    )
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    proto = load_protocol()
    families = list(proto.varieties["clinic"].get("per_family_reporting", []))
    try:  # the protocol first: a refused seed stops the run before any cohort is written
        trained_on, tvar = require_cohort(
            args.train_cohort, args.train_seed, "training", "clinic", what="the skeleton model"
        )
        record, rvar = require_cohort(args.cohort, args.seed, "reporting", "clinic", what="the skeleton model's Dice")
    except ProtocolError as exc:
        p.error(str(exc))
    tseed, rseed = int(trained_on["seed"]), int(record["seed"])
    if tvar != "clinic" or rvar != "clinic":
        p.error("both cohorts must be clinic variety (families live only there)")

    from scintilab.skeleton_model import (
        SkeletonConfig,
        load_skeleton_model,
        save_skeleton_model,
        train_skeleton_model,
    )

    t0 = time.perf_counter()
    hist: dict[str, Any] = {}
    if args.evaluate_only:
        model = load_skeleton_model(args.out)
        if model.info.get("train_seed") != tseed:
            p.error(f"the model in {args.out} was trained on seed {model.info.get('train_seed')}, not {tseed}")
        report_manifest = ensure_cohort(args.cohort, rseed, args.patients)
    else:
        train_manifest = ensure_cohort(args.train_cohort, tseed, args.train_patients)
        report_manifest = ensure_cohort(args.cohort, rseed, args.patients)
        cfg = SkeletonConfig(base_width=args.base_width, levels=args.levels)
        model, hist = train_skeleton_model(
            train_manifest, config=cfg, epochs=args.epochs, batch_size=args.batch_size, rng=tseed
        )
        model.info.update(trained_on=trained_on, train_seed=tseed)
        save_skeleton_model(model, args.out)
    t_train = time.perf_counter() - t0
    rows = evaluate(model, report_manifest, atlas=not args.no_atlas)
    summary = tables(rows, families)
    text = print_tables(summary)
    secs = [r["predict_s"] for r in rows]
    what = "cohort writing" if args.evaluate_only else "training (cohorts included)"
    print(f"\n{what} {t_train:.0f} s, predict {np.median(secs):.2f} s per study (median)")
    if not args.evaluate_only:
        (args.out / "MODEL_CARD.md").write_text(model_card(args, hist, text, record, trained_on), encoding="utf-8")
    if args.json:
        doc = {
            "protocol": {**record, "trained_on": trained_on},
            "config": vars(args) | {"train_cohort": str(args.train_cohort), "cohort": str(args.cohort)},
            "history": hist,
            "train_seconds": round(t_train, 1),
            "predict_seconds_median": float(np.median(secs)),
            "summary": summary,
            "studies": rows,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
