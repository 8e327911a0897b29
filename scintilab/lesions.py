"""Per-lesion features, shape class, body region and ADMet-vs-nADMet statistics.

Every annotated lesion (a LabelMe polygon over the DICOM pixels of one view) becomes one
row of a tidy table:

* geometry from the rasterised polygon (``skimage.measure.regionprops``): area in pixels
  and mm^2, equivalent diameter, eccentricity, solidity, orientation, axis lengths;
* counts (max / mean / total) in the view it was drawn on, in the other view (the polygon
  carried over through the fusion alignment, mirrored for POST) and in the fused image;
  the anterior/posterior ratio (a depth cue: bone near the front is brighter in ANT) and a
  background-corrected contrast against a ring around the lesion; the uptake (peak above
  the ring in the conjugate-view mean, per 2.3 mm pixel) binned as in the paper;
* a lesion outlined on both views (the synthetic cohort and many readers do) is one row;
* the shape class: the annotated label when there is one, else a geometric rule
  (:func:`classify_shape`), with the rule's agreement against annotations measurable
  (:func:`shape_agreement`);
* the body region from the landmark atlas fitted once to the study's frame
  (:mod:`scintilab.prepared`, :mod:`scintilab.atlas`).

Then per-class distributions (the paper's Fig. 12: shape, body region, uptake intensity
with :data:`~scintilab.anatomy.UPTAKE_BINS`) and tests of difference between ADMet and
nADMet: chi-square with Cramer's V for categories, Mann-Whitney U with the rank-biserial
correlation for continuous values.

This module never imports Keras. It holds the per-study table and the command line, and names
the public API of the parts: :mod:`scintilab.lesion_features` (masks and features),
:mod:`scintilab.lesion_agreement` (agreement with a truth), :mod:`scintilab.lesion_stats`
(statistics) and :mod:`scintilab.lesion_figures` (figures).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from scintilab.anatomy import region_of
from scintilab.errors import InputError, partial_exit
from scintilab.ingest import load_cohort

# the lesion table's public API, whichever module holds each part (figures: scintilab.lesion_figures)
from scintilab.lesion_agreement import (
    attach_truth,
    fit_shape_classifier,
    load_truth,
    region_agreement,
    shape_agreement,
    uptake_agreement,
)
from scintilab.lesion_features import (
    CONTINUOUS_FEATURES,
    MET_CLASSES,
    REFERENCE_PIXEL_MM,
    UPTAKE_BIN_LABELS,
    classify_shape,
    geometry_features,
    intensity_features,
    parse_label,
    ring_mask,
    shape_mask,
    texture_features,
)
from scintilab.lesion_stats import (
    class_distributions,
    compare_classes,
    cramers_v,
    describe_differences,
    mann_whitney,
    study_counts,
    uptake_bins,
)
from scintilab.outputs import OutputFile, write_csv
from scintilab.pairing import greedy_pairs
from scintilab.prepared import PreparedStudy, prepare_study
from scintilab.study import Study
from scintilab.view_frame import ViewFrame


# ---------------------------------------------------------------------------------------
# One study -> lesion rows
# ---------------------------------------------------------------------------------------
def _prepared(study: Study, skipped: list[tuple[str, str]]) -> PreparedStudy | None:
    """The study prepared (frame and atlas), or None with the reason in ``skipped``."""
    if study.anterior is None and study.posterior is None:
        return None
    try:
        return prepare_study(study)
    except InputError as err:
        skipped.append((study.study_key, f"no frame or atlas: {err.problem}"))
        return None


#: How far apart (mm) the centroids of one lesion's two outlines may lie beyond the larger
#: equivalent radius: a few millimetres of alignment and outlining error (3 pixels at 2.3 mm).
PAIR_TOL_MM: float = 7.0


def _pair_views(items: list[dict[str, Any]], tol_px: float) -> list[list[dict[str, Any]]]:
    """Group annotations of the same lesion drawn on both views.

    Each item holds ``view``, ``label`` and ``ant_mask`` (its mask in the anterior frame).
    A POST shape and an ANT shape with the same label are candidates when they overlap
    (IoU >= 0.2) or, without overlap (small outlines, an alignment off by a pixel or two),
    when their centroids lie within the larger equivalent radius plus ``tol_px``; the
    candidates are taken most overlapping, then nearest, first
    (:func:`scintilab.pairing.greedy_pairs`), each shape at most once.
    """
    ants = [it for it in items if it["view"] == "ANT"]
    posts = [it for it in items if it["view"] == "POST"]
    cent = [np.argwhere(a["ant_mask"]).mean(axis=0) if a["ant_mask"].any() else None for a in ants]
    cands: list[tuple[tuple[float, float], int, int]] = []
    for i, p in enumerate(posts):
        best: dict[int, tuple[float, float]] = {}
        # The frame's alignment and the plain mirror: a sweep thrown off by a hot spot
        # must not split one lesion into two rows.
        for pm in (p["ant_mask"], p.get("ant_mask_mirror")):
            if pm is None or not pm.any():
                continue
            pc = np.argwhere(pm).mean(axis=0)
            for j, a in enumerate(ants):
                am = a["ant_mask"]
                if a["label"] != p["label"] or cent[j] is None:
                    continue
                iou = float(np.logical_and(am, pm).sum()) / float(np.logical_or(am, pm).sum())
                d = float(np.hypot(*(cent[j] - pc)))
                reach = max(np.sqrt(am.sum() / np.pi), np.sqrt(pm.sum() / np.pi)) + tol_px
                if iou >= 0.2 or d <= reach:
                    best[j] = min(best.get(j, (np.inf, np.inf)), (-iou, d))
        cands += [(cost, i, j) for j, cost in best.items()]
    groups = [[a] for a in ants]
    paired: set[int] = set()
    for i, j in greedy_pairs(cands):
        groups[j].append(posts[i])
        paired.add(i)
    groups += [[p] for i, p in enumerate(posts) if i not in paired]
    return groups


def _box(mask: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    """Bounding box of a mask grown by ``margin`` pixels (ring and smoothing fit inside),
    so per-lesion work touches a few hundred pixels rather than the whole view."""
    rr, cc = np.nonzero(mask)
    h, w = mask.shape
    return (
        slice(max(int(rr.min()) - margin, 0), min(int(rr.max()) + margin + 1, h)),
        slice(max(int(cc.min()) - margin, 0), min(int(cc.max()) + margin + 1, w)),
    )


def _nan_intensity(suffix: str) -> dict[str, float]:
    return {f"{k}{suffix}": np.nan for k in ("max", "mean", "total", "background", "contrast")}


def study_lesions(
    study: Study,
    *,
    fusion_method: str = "add",
    kinds: Iterable[str] = ("lesion",),
    prepared: PreparedStudy | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Feature rows for every lesion annotated on one study.

    A lesion outlined on both views (the same label, overlapping once the POST outline is
    carried into the anterior frame) is one row, each view counted inside its own
    outline; a lesion outlined on one view is counted in the other view inside the
    outline carried over through the fusion alignment (mirrored for POST).

    Args:
        study: the study (both views when available; one view works, with NaN for the
            other view's columns).
        fusion_method: aggregation for the fused-image counts (``add`` = the paper).
        kinds: label kinds to keep (``lesion``; add ``benign`` to study benign findings).
        prepared: the study already prepared (:func:`scintilab.prepared.prepare_study`):
            its frame, images and atlas are reused (prepared here when None).

    Returns:
        ``(rows, skipped)``: one dict per lesion, and ``(study_key:shape_index, reason)``
        for shapes that could not be used. Row keys: ``study_key, patient_key, label,
        lesion_index, kind, view`` (``ANT``, ``POST`` or ``ANT+POST``: where it was
        outlined), ``shape_annotated, region_annotated, shape_indices`` (positions in
        ``study.shapes``); geometry (:func:`geometry_features`); ``max/mean/total/
        background/contrast`` with suffixes ``_ant``, ``_post``, ``_fused`` (and the
        drawn view's as ``max_drawn, mean_drawn, contrast``); texture
        (:func:`texture_features`); ``uptake_raw`` (net peak in the conjugate-view mean,
        image counts), ``uptake`` (the same per 2.3 mm pixel), ``ap_ratio``;
        ``shape_rule, shape`` (annotated, else rule); ``bone_atlas, region_atlas,
        region`` (annotated, else atlas); ``ant_row, ant_col`` (centroid in the anterior
        frame); ``shift_rows, shift_cols`` (the frame's alignment,
        :class:`~scintilab.view_frame.ViewFrame`).
    """
    kinds = {k.lower() for k in kinds}
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    spacing = tuple(float(s) for s in (study.pixel_spacing or (2.3, 2.3)))
    prepared = _prepared(study, skipped) if prepared is None else prepared
    if prepared is not None:
        frame = prepared.frame
    else:
        # Views that cannot be aligned (or no atlas): a frame without a shift, the plain
        # mirror, so that a lesion is still counted in the other view; no fused columns.
        name = "ANT" if study.anterior is not None else "POST"
        frame = ViewFrame(shape=np.shape(study.view(name)), name=name, views=(name,))  # type: ignore[arg-type]
    aligned = len(frame.views) == 2
    mirror = ViewFrame(shape=frame.shape)  # the plain mirror, no shift
    shift = frame.shift
    fused = geo = None
    if aligned and prepared is not None:
        fused = prepared.fused(fusion_method)
        # The conjugate-view (geometric) mean cancels depth: the uptake of a lesion wherever
        # it sits, read as its peak above the ring background after a light smoothing (a
        # single noisy pixel would bias a raw maximum upwards by ~2 sqrt(counts)).
        geo = ndi.gaussian_filter(prepared.fused("geometric"), 0.7)

    items: list[dict[str, Any]] = []
    for i, shp in enumerate(study.shapes):
        kind, ann_shape, ann_region = parse_label(shp.label, shp.attributes)
        if kind not in kinds:
            continue
        view = (shp.view or "ANT").upper()
        img = study.view(view)
        key = f"{study.study_key}:{i}"
        if img is None:
            skipped.append((key, f"drawn on {view}, which the study lacks"))
            continue
        try:
            mask = shape_mask(shp, img.shape)
        except InputError as err:
            skipped.append((key, err.problem))
            continue
        items.append(
            {
                "index": i,
                "kind": kind,
                "view": view,
                "shape": ann_shape,
                "region": ann_region,
                "label": shp.label.strip().lower(),
                "mask": mask,
                "ant_mask": frame.mask_to_frame(mask, view),
                "ant_mask_mirror": mirror.mask_to_frame(mask, view) if view == "POST" else None,
            }
        )

    for n_lesion, group in enumerate(_pair_views(items, PAIR_TOL_MM / (0.5 * (spacing[0] + spacing[1])))):
        first = group[0]
        by_view = {it["view"]: it for it in group}
        ann_shape = next((it["shape"] for it in group if it["shape"]), None)
        ann_region = next((it["region"] for it in group if it["region"]), None)
        view = first["view"]
        row: dict[str, Any] = {
            "study_key": study.study_key,
            "patient_key": study.patient_key,
            "label": study.label,
            "lesion_index": n_lesion,
            "kind": first["kind"],
            "view": "+".join(sorted(by_view, key=lambda v: v != "ANT")),
            "shape_annotated": ann_shape,
            "region_annotated": ann_region,
            # positions in study.shapes, so a figure can outline the lesion again
            "shape_indices": ";".join(str(it["index"]) for it in group),
        }
        row.update(geometry_features(first["mask"], spacing))
        masks = {v: it["mask"] for v, it in by_view.items()}
        other = "POST" if view == "ANT" else "ANT"
        if other not in masks and study.view(other) is not None:
            masks[other] = (frame if aligned else mirror).map_mask(first["mask"], view, other)
        ant_mask = first["ant_mask"]
        for v in ("ANT", "POST"):
            suf = "_" + v.lower()
            im = study.view(v)
            if im is None or v not in masks or not masks[v].any():
                row.update(_nan_intensity(suf))
            else:
                b = _box(masks[v])
                row.update(intensity_features(np.asarray(im)[b], masks[v][b], prefix=suf))
        if fused is not None and geo is not None and ant_mask.any():
            b = _box(ant_mask)
            row.update(intensity_features(fused[b], ant_mask[b], prefix="_fused"))
            g = intensity_features(geo[b], ant_mask[b], prefix="_geo")
            row["uptake_raw"] = max(
                g["max_geo"] - (g["background_geo"] if np.isfinite(g["background_geo"]) else 0.0), 0.0
            )
        else:
            row.update(_nan_intensity("_fused"))
            row["uptake_raw"] = np.nan
        drawn = "_" + view.lower()
        row["max_drawn"] = row[f"max{drawn}"]
        row["mean_drawn"] = row[f"mean{drawn}"]
        row["contrast"] = row[f"contrast{drawn}"]
        if not np.isfinite(row["uptake_raw"]):
            # One view only: the drawn view's peak above its ring stands in for the uptake.
            bg = row[f"background{drawn}"]
            row["uptake_raw"] = max(row["max_drawn"] - (bg if np.isfinite(bg) else 0.0), 0.0)
        # Counts per pixel grow with the pixel's area: quote the uptake per reference
        # pixel (the paper's 2.3 mm) so that its bins mean the same at every matrix.
        row["uptake"] = row["uptake_raw"] * REFERENCE_PIXEL_MM**2 / (spacing[0] * spacing[1])
        img = np.asarray(study.view(view), float)
        bg = row[f"background{drawn}"]
        b = _box(first["mask"])
        row.update(texture_features(img[b], first["mask"][b], bg))
        row["ap_ratio"] = _ap_ratio(row)
        row["shape_rule"] = classify_shape(row)
        row["shape"] = ann_shape or row["shape_rule"]
        # the atlas of the frame, in the drawn view's overlap order, under the outline
        # carried into the frame
        bone = prepared.atlas[view].assign_bone(ant_mask, row["ap_ratio"]) if prepared is not None else None
        row["bone_atlas"] = bone
        row["region_atlas"] = None if bone is None else region_of(bone)
        row["region"] = ann_region or row["region_atlas"]
        ac = np.nonzero(ant_mask)
        row["ant_row"] = float(ac[0].mean()) if ac[0].size else row["centroid_row"]
        row["ant_col"] = float(ac[1].mean()) if ac[1].size else row["centroid_col"]
        row["shift_rows"], row["shift_cols"] = float(shift[0]), float(shift[1])
        rows.append(row)
    return rows, skipped


def _ap_ratio(row: dict[str, Any]) -> float:
    """Anterior over posterior lesion counts: the depth cue (> 1: nearer the front).

    The lesion's own counts above its ring background in each view when both are
    positive (the bone beneath, e.g. the spine behind the sternum, would otherwise
    dilute the ratio); the plain mean ratio otherwise.
    """
    ma, mp = row.get("mean_ant", np.nan), row.get("mean_post", np.nan)
    ba, bp = row.get("background_ant", np.nan), row.get("background_post", np.nan)
    if not (np.isfinite(ma) and np.isfinite(mp)):
        return float("nan")
    if np.isfinite(ba) and np.isfinite(bp) and ma - ba > 0 and mp - bp > 0:
        return float((ma - ba) / (mp - bp))
    return float(ma / mp) if mp > 0 else float("nan")


def lesion_table(
    cohort: Sequence[Study] | Iterable[Study],
    *,
    fusion_method: str = "add",
    kinds: Iterable[str] = ("lesion",),
    progress: bool = False,
) -> pd.DataFrame:
    """Tidy per-lesion table for a cohort (one row per annotated lesion).

    Studies that fail are skipped and listed in ``table.attrs["skipped"]`` as
    ``(key, reason)``; ``table.attrs["studies"]`` holds one record per study (key,
    patient, label, lesion count; :func:`study_counts` makes it a table), so that lesion
    counts per patient include studies without any.

    Args:
        cohort: studies, e.g. ``scintilab.ingest.load_cohort(manifest)``.
        fusion_method: aggregation for the fused-image counts.
        kinds: label kinds kept (``lesion``; add ``benign`` for benign findings).
        progress: show a tqdm bar.

    Returns:
        The table (columns in :func:`study_lesions`); empty with the same attrs when no
        lesion was found.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    studies: list[dict[str, Any]] = []
    # A lazy cohort reads pixels on access, so a bad file raises there: index a sequence
    # item by item (an exception inside a generator would end the whole iteration).
    if hasattr(cohort, "__len__") and hasattr(cohort, "__getitem__"):
        n_items = len(cohort)  # type: ignore[arg-type]

        def get(i: int) -> Study:
            return cohort[i]  # type: ignore[index]
    else:
        items = list(cohort)
        n_items = len(items)
        get = items.__getitem__
    indices: Iterable[int] = range(n_items)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="lesions", unit="study")
    for index in indices:
        try:
            study = get(index)
        except InputError as err:
            skipped.append((err.path.name if err.path else f"item {index}", err.problem))
            continue
        try:
            r, s = study_lesions(study, fusion_method=fusion_method, kinds=kinds)
        except InputError as err:
            skipped.append((study.study_key, err.problem))
            continue
        rows.extend(r)
        skipped.extend(s)
        studies.append(
            {"study_key": study.study_key, "patient_key": study.patient_key, "label": study.label, "n_lesions": len(r)}
        )
    df = pd.DataFrame(rows)
    df.attrs["skipped"] = skipped
    # Plain records, not a DataFrame: pandas compares attrs when it combines frames
    # (groupby, concat), and a DataFrame there makes that comparison raise.
    df.attrs["studies"] = studies
    return df


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------
def cli_main(argv: list[str]) -> int:
    """``scintilab lesions MANIFEST --out lesions.csv``: write the per-lesion table."""
    ap = argparse.ArgumentParser(prog="scintilab lesions", description=__doc__.splitlines()[0])
    ap.add_argument("manifest", help="manifest CSV written by 'scintilab ingest', or a cohort folder")
    ap.add_argument("--out", default="lesions.csv", help="CSV to write (default lesions.csv)")
    ap.add_argument("--fusion", default="add", help="aggregation for fused counts (add, mean, max, geometric)")
    ap.add_argument("--truth", default=None, help="synthetic truth folder: adds truth columns and agreement")
    ap.add_argument("--benign", action="store_true", help="also tabulate benign findings")
    ap.add_argument("--stats", default=None, help="also write ADMet vs nADMet tests to this CSV")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out (and --stats) file")
    args = ap.parse_args(argv)

    try:
        cohort = load_cohort(args.manifest)
    except InputError as err:
        print(f"scintilab lesions: {err}", file=sys.stderr)
        return 2
    kinds = ("lesion", "benign") if args.benign else ("lesion",)
    out = Path(args.out)
    stats = Path(args.stats) if args.stats else None
    # refuse an existing table (or a folder, or an unwritable place) before any pixel is read
    with (
        OutputFile(out, "lesions", overwrite=args.overwrite, inputs={"manifest": args.manifest}),
        OutputFile(stats, "lesions", overwrite=args.overwrite) if stats else contextlib.nullcontext(),
    ):
        table = lesion_table(cohort, fusion_method=args.fusion, kinds=kinds, progress=True)
        if args.truth:
            table = attach_truth(table, load_truth(args.truth))
            agree, n, _ = region_agreement(table)
            print(f"region agreement with truth: {agree:.1%} of {n} lesions")
        write_csv(table, out)
        print(f"{len(table)} lesions from {len(study_counts(table))} studies -> {out}")
        if not table.empty and table["shape_annotated"].notna().any():
            _, acc = shape_agreement(table)
            print(f"shape rule agreement with annotations: {acc:.1%}")
        if stats is not None:
            write_csv(compare_classes(table), stats)
            print(f"class tests -> {stats}")
    skipped = table.attrs.get("skipped", [])
    for key, reason in skipped:
        print(f"skipped {key}: {reason}", file=sys.stderr)
    return partial_exit("lesions", len(skipped), "studies skipped (listed above)", None)


__all__ = [
    "CONTINUOUS_FEATURES",
    "MET_CLASSES",
    "REFERENCE_PIXEL_MM",
    "UPTAKE_BIN_LABELS",
    "attach_truth",
    "class_distributions",
    "classify_shape",
    "cli_main",
    "compare_classes",
    "cramers_v",
    "describe_differences",
    "fit_shape_classifier",
    "geometry_features",
    "intensity_features",
    "lesion_table",
    "load_truth",
    "mann_whitney",
    "parse_label",
    "region_agreement",
    "ring_mask",
    "shape_agreement",
    "shape_mask",
    "study_counts",
    "study_lesions",
    "texture_features",
    "uptake_agreement",
    "uptake_bins",
]
