"""Quantification of a cohort: hot spots, Bone Scan Index, follow-up, per-study reports.

``scintilab quantify MANIFEST --out DIR [--hotspot-model PATH] [--skeleton-model DIR] [--classifier RUN_DIR]``
(and :func:`quantify_cohort`) writes, keyed by the manifest's own study key:

* ``DIR/studies.csv``: ``study_key, patient_key, label, study_date, views, bsi,
  hotspots_total, hotspots_metastatic`` (``views`` ``ANT+POST``, or the one view a study holds), then ``bsi_<bone>``, ``hotspots_<bone>`` and ``metastatic_<bone>``
  per bone group, and ``p_<class>`` when a classifier run is given;
* ``DIR/hotspots.csv``: ``study_key, view, row, col, region, area_px, peak_counts,
  normalized_uptake, p_metastatic`` (+ ``id, mean_counts, ap_ratio, kind, metastatic``);
  ``row``/``col`` are pixels of the study's stored anterior image (posterior hot spots
  mapped into it); ``metastatic`` is 1 where ``p_metastatic`` reaches the operating
  threshold of the classifier that scored it;
* ``DIR/followup.csv``: ``patient_key, baseline_study_key, study_key, days, new_lesions,
  resolved_lesions, bsi_change, pcwg3`` (+ grown lesions, registration shift);
* ``DIR/reports/<study_key>.html``: one self-contained page per study;
* ``DIR/failed.csv``: studies that could not be quantified, with the reason.

The thresholds belong to the active hot-spot classifier, unless ``threshold`` overrides
both. A hot spot is *called* metastatic (hotspots.csv ``metastatic``, the metastatic
counts of studies.csv, the reports' marks) at its calling threshold; BSI involvement and
the new / resolved lesions behind PCWG3 use its endpoint cut. The default rules call at
``rules.metastatic_p`` and keep the endpoints at
``rules.endpoint_p`` (why: there); a learned model uses its one
threshold (:attr:`scintilab.hotspots.HotspotModel.threshold`) for both.

Studies are processed patient by patient (date order), so a follow-up is compared with
its baseline while both are in memory and the cohort never is. A study that fails is
named (by its pseudonymous key) with the reason, and the rest go on.

Nothing rendered carries patient identity: reports show pseudonymous keys, dates as days
since baseline, and no source paths.

This module holds the pipeline and the command line; the per-study page is
:mod:`scintilab.quant_report`, the cohort's tables and figures :mod:`scintilab.quant_summaries`,
the parameters :mod:`scintilab.quant_params` (all named here too).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab import quant_params as qp
from scintilab.bsi import BSIResult, compute_bsi
from scintilab.dicom_results import CohortExporter
from scintilab.errors import EXIT_FAILED, EXIT_USAGE, InputError, partial_exit
from scintilab.followup import PatientFollowup, follow_patient
from scintilab.hotspots import Detection, HotspotModel, annotation_labels, detect_hotspots, train_hotspot_model
from scintilab.ingest import load_cohort
from scintilab.outputs import OutputFolder, write_csv
from scintilab.prepared import prepare_study

# the reports and summaries of a quantification, named here with the pipeline
from scintilab.quant_report import draw_one_view, draw_views, report_html, write_report
from scintilab.quant_summaries import (
    bsi_by_class,
    bsi_over_time,
    hotspots_by_region,
    mass_shares,
    params_table,
    plot_bland_altman,
    plot_bsi_by_class,
    plot_bsi_over_time,
    plot_froc,
)
from scintilab.scoring import Classifier
from scintilab.study import Study

#: Columns of hotspots.csv, in order.
HOTSPOT_COLUMNS: tuple[str, ...] = (
    "study_key",
    "view",
    "row",
    "col",
    "region",
    "area_px",
    "peak_counts",
    "normalized_uptake",
    "p_metastatic",
    "id",
    "mean_counts",
    "ap_ratio",
    "kind",
    "metastatic",
)
#: Columns of followup.csv, in order.
FOLLOWUP_COLUMNS: tuple[str, ...] = (
    "patient_key",
    "baseline_study_key",
    "study_key",
    "days",
    "new_lesions",
    "resolved_lesions",
    "bsi_change",
    "pcwg3",
    "grown_lesions",
    "new_vs_first_followup",
    "shift_rows",
    "shift_cols",
)


@dataclass
class StudyQuant:
    """Quantification of one study.

    Attributes:
        study: the study record (pixels included).
        detection: its hot spots.
        bsi: its Bone Scan Index.
        probabilities: class -> probability from a classifier run (None without one).
        gradcam: Grad-CAM heat map on the classifier's input (None without one).
        classifier_input: the image the classifier saw (for the Grad-CAM overlay).
    """

    study: Study
    detection: Detection
    bsi: BSIResult
    probabilities: dict[str, float] | None = None
    gradcam: np.ndarray | None = None
    classifier_input: np.ndarray | None = None

    def row(self) -> dict[str, Any]:
        """The study's row of ``studies.csv``."""
        st = self.study
        out: dict[str, Any] = {
            "study_key": st.study_key,
            "patient_key": st.patient_key,
            "label": st.label or "",
            "study_date": st.study_date.isoformat() if st.study_date else "",
            "views": "+".join(st.views),
        }
        out.update(self.bsi.row())
        for k, v in (self.probabilities or {}).items():
            out[f"p_{k}"] = round(float(v), 4)
        return out


@dataclass
class QuantifyResult:
    """What :func:`quantify_cohort` produced.

    Attributes:
        studies / hotspots / followup: the three tables.
        failed: (study_key, reason) of studies that could not be quantified.
        out_dir: where the tables and reports were written (None when not written).
        reports: the report pages written.
    """

    studies: pd.DataFrame
    hotspots: pd.DataFrame
    followup: pd.DataFrame
    failed: list[tuple[str, str]] = field(default_factory=list)
    out_dir: Path | None = None
    reports: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------- per patient


def quantify_study(
    study: Study,
    *,
    model: HotspotModel | None = None,
    threshold: float | None = None,
    classifier: Classifier | None = None,
    skeleton: Any = None,
) -> StudyQuant:
    """Hot spots, BSI and (optionally) class probabilities of one study.

    Args:
        study: the study.
        model: a trained hot-spot model; None applies the default rules.
        skeleton: a learned skeleton (:class:`scintilab.skeleton_model.SkeletonModel`)
            for the bone groups; None: the atlas template (:func:`prepare_study`).
        threshold: one probability cut for calls, BSI and follow-up; None: the active
            classifier's own (the rules' calling and endpoint cuts, or the model's). A
            given value becomes the detection's, so follow-up and reports use it too.
        classifier: a training run for class probabilities and Grad-CAM.

    Raises:
        InputError: the study cannot be quantified (named by its pseudonymous key).
    """
    prepared = prepare_study(study, skeleton=skeleton) if skeleton is not None else None
    det = detect_hotspots(study, model=model, prepared=prepared)
    if threshold is not None:
        det.set_threshold(threshold)
    res = compute_bsi(det)
    sq = StudyQuant(study=study, detection=det, bsi=res)
    if classifier is not None:
        sq.probabilities, sq.gradcam, sq.classifier_input = classifier(study)
    return sq


def quantify_patient(
    studies: Sequence[Study],
    *,
    model: HotspotModel | None = None,
    threshold: float | None = None,
    classifier: Classifier | None = None,
    skeleton: Any = None,
) -> tuple[list[StudyQuant], PatientFollowup | None, list[tuple[str, str]]]:
    """Quantify one patient's studies and compare the later ones with the baseline.

    Args:
        studies: the patient's studies (any order; sorted by date here, undated last).
        model / threshold / classifier / skeleton: see :func:`quantify_study`.

    Returns:
        (quantified studies in date order, follow-up or None for a single study,
        failures as (study_key, reason)).
    """
    order = sorted(studies, key=lambda s: (s.study_date is None, s.study_date or 0, s.study_key))
    done: list[StudyQuant] = []
    failed: list[tuple[str, str]] = []
    for st in order:
        try:
            done.append(quantify_study(st, model=model, threshold=threshold, classifier=classifier, skeleton=skeleton))
        except (InputError, ValueError) as err:
            failed.append((st.study_key, getattr(err, "problem", str(err))))
    fu = None
    if len(done) >= 2:
        fu = follow_patient([d.detection for d in done], [d.study.study_date for d in done], [d.bsi.bsi for d in done])
    return done, fu, failed


#: What ``scintilab quantify`` writes into its folder (and ``overwrite`` clears).
QUANTIFY_OUTPUTS = ("studies.csv", "hotspots.csv", "followup.csv", "failed.csv", qp.PARAMS_FILE, "reports", "dicom")


def _iter_patients(manifest: pd.DataFrame) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(manifest["patient_key"].astype(str)):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def quantify_cohort(
    manifest: str | Path | pd.DataFrame,
    out_dir: str | Path | None = None,
    *,
    hotspot_model: str | Path | HotspotModel | None = None,
    classifier: str | Path | Classifier | None = None,
    threshold: float | None = None,
    skeleton_model: Any = None,
    reports: bool = True,
    progress: bool = True,
    limit: int | None = None,
    hook: Callable[[list[StudyQuant], PatientFollowup | None], None] | None = None,
    dicom: bool = False,
    link_to_source: bool = False,
    overwrite: bool = False,
    params: qp.QuantParams | None = None,
) -> QuantifyResult:
    """Quantify every study of a manifest (see the module docstring).

    Args:
        manifest: manifest CSV (or its DataFrame) written by :func:`scintilab.ingest.ingest`.
        out_dir: folder for the tables and reports; None writes nothing.
        hotspot_model: a trained hot-spot model (JSON path or object); None = default rules.
        classifier: a training run directory (or :class:`Classifier`) for class
            probabilities and Grad-CAM on the reports.
        threshold: one probability cut for calls, BSI and follow-up; None (the
            default): the active classifier's own thresholds.
        skeleton_model: a learned skeleton (folder written by
            :func:`scintilab.skeleton_model.save_skeleton_model`, or the loaded model) as
            the source of bone groups; None: the atlas template.
        reports: write one HTML report per study (needs ``out_dir``).
        progress: a progress bar over studies.
        limit: quantify only the first ``limit`` patients (a quick look).
        hook: called after each patient with its quantified studies and follow-up (used by
            the validation to compare with ground truth while the pixels are in memory).
        dicom: also write a DICOM SEG, SR and Encapsulated PDF per study under
            ``out_dir/dicom/`` (:mod:`scintilab.dicom_results`; needs ``out_dir``).
        link_to_source: the DICOM objects keep the source study's UIDs and patient module
            (default: de-identified, new UIDs).
        overwrite: ``out_dir`` may hold an earlier quantification: its tables, reports and
            DICOM objects are removed first (else it is refused), so no report of a study
            that is gone survives (:class:`scintilab.outputs.OutputFolder`).
        params: the quantification's parameters (:mod:`scintilab.quant_params`); None uses
            the active ones (the defaults unless :func:`scintilab.quant_params.using` set
            others). They are written to ``out_dir/quant_params.json``.

    Returns:
        A :class:`QuantifyResult`.

    Raises:
        InputError: ``out_dir`` is a file, unwritable, being written by another run, or
            holds an earlier run's outputs and ``overwrite`` is False.
    """
    cohort = load_cohort(manifest)
    model = HotspotModel.load(hotspot_model) if isinstance(hotspot_model, (str, Path)) else hotspot_model
    clf = Classifier(classifier) if isinstance(classifier, (str, Path)) else classifier
    skeleton = skeleton_model
    if isinstance(skeleton_model, (str, Path)):
        from scintilab.skeleton_model import load_skeleton_model  # Keras: only when asked for

        skeleton = load_skeleton_model(skeleton_model)
    out = Path(out_dir) if out_dir is not None else None
    folder = (
        OutputFolder(
            out,
            "quantify",
            QUANTIFY_OUTPUTS,
            overwrite=overwrite,
            inputs={"manifest": manifest if isinstance(manifest, (str, Path)) else None},
        )
        if out is not None
        else contextlib.nullcontext()
    )
    with folder, qp.using(params) as used:
        if out is not None:
            (out / "reports").mkdir(parents=True, exist_ok=True)
            qp.write_params(used, out)
        groups = _iter_patients(cohort.manifest)
        if limit is not None:
            groups = groups[:limit]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(g) for g in groups), desc="quantify", unit="study", file=sys.stderr)
        study_rows: list[dict[str, Any]] = []
        hot_rows: list[dict[str, Any]] = []
        fu_rows: list[dict[str, Any]] = []
        failed: list[tuple[str, str]] = []
        pages: list[Path] = []
        exporter = CohortExporter(cohort, out / "dicom", model, link_to_source) if out is not None and dicom else None
        for idx in groups:
            studies: list[Study] = []
            for i in idx:
                key = str(cohort.manifest.iloc[i]["study_key"])
                try:
                    studies.append(cohort[i])
                except (InputError, ValueError, OSError) as err:
                    # the file's name, never its folder (folders of exports can carry names)
                    where = Path(err.path).name if isinstance(err, InputError) and err.path is not None else ""
                    what = getattr(err, "problem", None) or f"cannot read: {type(err).__name__}"
                    failed.append((key, f"{where}: {what}" if where else what))
                    if bar:
                        bar.update(1)
            done, fu, bad = quantify_patient(
                studies, model=model, threshold=threshold, classifier=clf, skeleton=skeleton
            )
            failed += bad
            for sq in done:
                study_rows.append(sq.row())
                hot_rows += sq.detection.table()
            if fu is not None:
                fu_rows += fu.rows
            if out is not None and reports:
                base = done[0] if done else None
                for sq in done:
                    comp = fu.comparisons.get(sq.study.study_key) if fu is not None else None
                    row = next((r for r in (fu.rows if fu else []) if r["study_key"] == sq.study.study_key), None)
                    try:
                        pages.append(
                            write_report(
                                sq,
                                out / "reports" / f"{sq.study.study_key}.html",
                                baseline=base if comp is not None else None,
                                comparison=comp,
                                followup_row=row,
                            )
                        )
                    except (ValueError, RuntimeError) as err:  # a figure that cannot be drawn
                        failed.append((sq.study.study_key, f"report not written: {err}"))
            if exporter is not None:
                failed += exporter(done, out / "reports" if reports else None)
            if hook is not None:
                hook(done, fu)
            if bar:
                bar.update(len(done) + len(bad))
            del done, studies
        if bar:
            bar.close()
        studies_df = pd.DataFrame(study_rows)
        hot_df = (
            pd.DataFrame(hot_rows, columns=list(HOTSPOT_COLUMNS))
            if hot_rows
            else pd.DataFrame(columns=list(HOTSPOT_COLUMNS))
        )
        if hot_rows:
            hot_df = pd.DataFrame(hot_rows)[list(HOTSPOT_COLUMNS)]
        fu_df = (
            pd.DataFrame(fu_rows, columns=list(FOLLOWUP_COLUMNS))
            if fu_rows
            else pd.DataFrame(columns=list(FOLLOWUP_COLUMNS))
        )
        if out is not None:
            write_csv(studies_df, out / "studies.csv")
            write_csv(hot_df, out / "hotspots.csv")
            write_csv(fu_df, out / "followup.csv")
            write_csv(pd.DataFrame(failed, columns=["study_key", "reason"]), out / "failed.csv")
        if exporter is not None:
            exporter.finish()
    return QuantifyResult(
        studies=studies_df, hotspots=hot_df, followup=fu_df, failed=failed, out_dir=out, reports=pages
    )


# --------------------------------------------------------------------------------- CLI


def hotspot_training_examples(
    manifest: str | Path, *, limit: int | None = None, progress: bool = True
) -> list[tuple[Detection, list[int]]]:
    """Each readable study's detection (pixels dropped) with its hot spots' 0/1 labels from
    the manifest's LabelMe lesion annotations, for :func:`train_hotspot_model`.

    Detection is the expensive part; callers that fit several models on subsets of one
    cohort (leave one family out) detect once here and pick their subsets.
    """
    cohort = load_cohort(manifest)
    n = len(cohort) if limit is None else min(limit, len(cohort))
    out: list[tuple[Detection, list[int]]] = []
    it = range(n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="hotspot model", unit="study", file=sys.stderr)
    for i in it:
        try:
            st = cohort[i]
            det = detect_hotspots(st)
        except (InputError, ValueError):
            continue
        labels = annotation_labels(det, st)
        det.images, det.smoothed = {}, {}  # keep the hot spots, drop the pixels
        out.append((det, labels))
    return out


def train_from_manifest(
    manifest: str | Path, out_path: str | Path, *, limit: int | None = None, progress: bool = True
) -> HotspotModel:
    """Train a :class:`HotspotModel` from a manifest's LabelMe lesion annotations and save it.

    Each detected hot spot overlapping an annotated ``lesion`` shape is a positive; every
    other hot spot a negative (benign findings, normal bright anatomy). The operating
    threshold is chosen on this manifest only, out of fold by patient
    (:func:`scintilab.hotspots.train_hotspot_model`), and folded into the model so that
    p >= 0.5 applies it.
    """
    examples = hotspot_training_examples(manifest, limit=limit, progress=progress)
    model = train_hotspot_model([d for d, _ in examples], [lab for _, lab in examples])
    model.save(out_path)
    return model


def cli_main(argv: list[str]) -> int:
    """``scintilab quantify MANIFEST --out DIR [--hotspot-model PATH] [--classifier RUN_DIR]``."""
    parser = argparse.ArgumentParser(
        prog="scintilab quantify",
        description="Hot spots, Bone Scan Index and follow-up (PCWG3) per study, with one HTML report per "
        "study. Writes studies.csv, hotspots.csv, followup.csv, failed.csv and reports/.",
    )
    parser.add_argument("manifest", type=Path, help="manifest CSV written by 'scintilab ingest', or a cohort folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--hotspot-model",
        type=Path,
        default=None,
        help="trained hot-spot classifier (JSON); default: the documented rules",
    )
    parser.add_argument(
        "--skeleton-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="a learned skeleton's folder (benchmarks/train_skeleton.py) as the source of bone groups; "
        "default: the atlas template",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="training run directory: adds class probabilities and Grad-CAM to the reports",
    )
    parser.add_argument(
        "--train-hotspot-model",
        type=Path,
        default=None,
        metavar="OUT_JSON",
        help="first train a hot-spot classifier on this manifest's LabelMe lesions, save it here and use it",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="one probability cut for metastatic calls, BSI and follow-up (default: the "
        f"active classifier's own: the default rules call at {qp.active().rules.metastatic_p} and "
        f"take BSI / new lesions from {qp.active().rules.endpoint_p}; a learned model uses the cut "
        "it chose on its training cohort)",
    )
    parser.add_argument("--no-reports", action="store_true", help="tables only")
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write per study a DICOM SEG, a TID 1500 SR and the report as Encapsulated PDF "
        "under OUT/dicom/<study_key>/ (de-identified: new UIDs, pseudonymous patient)",
    )
    parser.add_argument(
        "--link-to-source",
        action="store_true",
        help="with --dicom: keep the source study's UIDs and patient module (to send the objects "
        "back into the PACS the study came from)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N patients")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--params-preset",
        default="default",
        choices=sorted(qp.QUANT_PRESETS),
        help="named quantification parameters (default: default); written to OUT/quant_params.json",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.NAME=VALUE",
        help="set one parameter, e.g. --set rules.facial_min_ap=1.8 (repeatable; 'scintilab quantify "
        "--list-params' names them)",
    )
    parser.add_argument("--list-params", action="store_true", help="list the parameters, their values and sources")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier quantification in --out (its tables, reports/ and dicom/)",
    )
    if argv and "--list-params" in argv:  # needs neither a manifest nor --out
        print(params_table().to_string(index=False))
        return 0
    args = parser.parse_args(argv)
    try:
        from scintilab.ingest import resolve_manifest

        params = qp.params_from_preset(args.params_preset, args.set)
        args.manifest = resolve_manifest(args.manifest, progress=not args.quiet)
        model: Any = args.hotspot_model
        if args.train_hotspot_model is not None:
            model = train_from_manifest(args.manifest, args.train_hotspot_model, progress=not args.quiet)
            i = model.info
            print(
                f"hot-spot model trained on {i['hotspots']} hot spots ({i['positives']} annotated lesions, "
                f"{i.get('scans', '?')} scans); operating threshold {i.get('raw_threshold', 0.5):.2f} chosen "
                f"out of fold ({i.get('cv_fp_per_scan')} FP/scan) -> {args.train_hotspot_model}"
            )
        res = quantify_cohort(
            args.manifest,
            args.out,
            hotspot_model=model,
            classifier=args.classifier,
            threshold=args.threshold,
            skeleton_model=args.skeleton_model,
            reports=not args.no_reports,
            progress=not args.quiet,
            limit=args.limit,
            dicom=args.dicom,
            link_to_source=args.link_to_source,
            overwrite=args.overwrite,
            params=params,
        )
    except (InputError, ValueError) as err:
        print(f"scintilab quantify: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"quantified {len(res.studies)} studies, {len(res.hotspots)} hot spots, "
        f"{len(res.followup)} follow-up comparisons -> {res.out_dir}"
    )
    if len(res.studies):
        print(f"BSI median {res.studies['bsi'].median():.2f} % (max {res.studies['bsi'].max():.2f} %)")
    for key, reason in res.failed:
        print(f"  failed: {key}: {reason}", file=sys.stderr)
    if res.failed and not len(res.studies):
        print(f"scintilab quantify: every study failed: see {res.out_dir / 'failed.csv'}", file=sys.stderr)
        return EXIT_FAILED
    return partial_exit("quantify", len(res.failed), "studies failed", res.out_dir / "failed.csv")


__all__ = [
    "Classifier",
    "QuantifyResult",
    "StudyQuant",
    "bsi_by_class",
    "bsi_over_time",
    "cli_main",
    "draw_one_view",
    "draw_views",
    "hotspots_by_region",
    "mass_shares",
    "params_table",
    "plot_bland_altman",
    "plot_bsi_by_class",
    "plot_bsi_over_time",
    "plot_froc",
    "quantify_cohort",
    "quantify_patient",
    "quantify_study",
    "report_html",
    "hotspot_training_examples",
    "train_from_manifest",
    "write_report",
]
