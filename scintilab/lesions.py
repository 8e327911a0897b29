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
* the body region from a landmark atlas fitted to the study (:mod:`scintilab.atlas`).

Then per-class distributions (the paper's Fig. 12: shape, body region, uptake intensity
with :data:`~scintilab.anatomy.UPTAKE_BINS`) and tests of difference between ADMet and
nADMet: chi-square with Cramer's V for categories, Mann-Whitney U with the rank-biserial
correlation for continuous values.

This module never imports Keras.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats

from scintilab.anatomy import REGIONS, UPTAKE_BINS, region_of
from scintilab.errors import InputError
from scintilab.study import SHAPE_CLASSES, Shape, Study

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure


#: Classes compared by the statistics (the paper's two metastatic subclasses).
MET_CLASSES: tuple[str, str] = ("ADMet", "nADMet")

#: Continuous lesion features compared between classes by Mann-Whitney U.
CONTINUOUS_FEATURES: tuple[str, ...] = (
    "area_mm2",
    "equiv_diameter_mm",
    "eccentricity",
    "solidity",
    "uptake",
    "mean_drawn",
    "contrast",
    "ap_ratio",
)

#: Pixel size (mm) the uptake is quoted for: the paper's 256 x 1024 matrix at 2.3 mm.
REFERENCE_PIXEL_MM: float = 2.3

#: Label strings of the uptake bins, e.g. ``"[50, 100)"``.
UPTAKE_BIN_LABELS: tuple[str, ...] = tuple(
    f"[{a:g}, {'inf' if math.isinf(b) else f'{b:g}'})" for a, b in zip(UPTAKE_BINS[:-1], UPTAKE_BINS[1:])
)


# ---------------------------------------------------------------------------------------
# Labels and masks
# ---------------------------------------------------------------------------------------
def parse_label(label: str, attributes: dict[str, Any] | None = None) -> tuple[str, str | None, str | None]:
    """Split a LabelMe label ``kind:shape:region`` (e.g. ``lesion:patchy:ribs``).

    Shape and region may also come from the shape's ``attributes``/``flags``.

    Args:
        label: the label string.
        attributes: the shape's extra LabelMe fields.

    Returns:
        ``(kind, shape, region)``; shape/region are None when not given or unknown.
    """
    parts = [p.strip() for p in str(label).split(":")]
    kind = parts[0].lower() if parts else ""
    shape = parts[1].lower() if len(parts) > 1 and parts[1] else None
    region = parts[2].lower() if len(parts) > 2 and parts[2] else None
    attrs = dict(attributes or {})
    for src in (attrs, attrs.get("flags") or {}, attrs.get("attributes") or {}):
        if isinstance(src, dict):
            if shape is None and isinstance(src.get("shape"), str):
                shape = src["shape"].lower()
            if region is None and isinstance(src.get("region"), str):
                region = src["region"].lower()
            for k, v in src.items():  # LabelMe flags: {"patchy": true, ...}
                if v is True and shape is None and k in SHAPE_CLASSES:
                    shape = k
                if v is True and region is None and k in REGIONS:
                    region = k
    if shape not in SHAPE_CLASSES:
        shape = None
    if region not in REGIONS:
        region = None
    return kind, shape, region


def shape_mask(shape: Shape, image_shape: tuple[int, int]) -> np.ndarray:
    """Rasterise one LabelMe shape onto the image grid.

    Args:
        shape: a polygon, rectangle, circle or point (points as (x=col, y=row)).
        image_shape: (rows, columns) of the view.

    Returns:
        Boolean mask; pixels whose centre lies inside the shape (a point gives one pixel).

    Raises:
        InputError: the shape has too few points or falls outside the image.
    """
    from skimage.draw import disk, polygon

    pts = np.asarray(shape.points, dtype=float).reshape(-1, 2)
    h, w = image_shape
    mask = np.zeros((h, w), dtype=bool)
    kind = (shape.shape_type or "polygon").lower()
    if kind == "polygon" or kind == "linestrip":
        if len(pts) < 3:
            raise InputError(None, f"polygon {shape.label!r} has {len(pts)} points (needs 3)")
        rr, cc = polygon(pts[:, 1], pts[:, 0], shape=(h, w))
        mask[rr, cc] = True
    elif kind == "rectangle":
        if len(pts) < 2:
            raise InputError(None, f"rectangle {shape.label!r} needs 2 points")
        (x0, y0), (x1, y1) = pts[0], pts[1]
        r0, r1 = sorted((y0, y1))
        c0, c1 = sorted((x0, x1))
        mask[
            max(int(math.ceil(r0)), 0) : min(int(math.floor(r1)) + 1, h),
            max(int(math.ceil(c0)), 0) : min(int(math.floor(c1)) + 1, w),
        ] = True
    elif kind == "circle":
        if len(pts) < 2:
            raise InputError(None, f"circle {shape.label!r} needs centre and rim points")
        (xc, yc), (xr, yr) = pts[0], pts[1]
        rr, cc = disk((yc, xc), float(np.hypot(xr - xc, yr - yc)), shape=(h, w))
        mask[rr, cc] = True
    elif kind == "point":
        r, c = int(round(pts[0, 1])), int(round(pts[0, 0]))
        if 0 <= r < h and 0 <= c < w:
            mask[r, c] = True
    else:
        raise InputError(None, f"unsupported LabelMe shape_type {shape.shape_type!r}")
    if not mask.any():
        # Tiny polygons can miss every pixel centre: keep the pixel under their centroid.
        r, c = int(round(pts[:, 1].mean())), int(round(pts[:, 0].mean()))
        if 0 <= r < h and 0 <= c < w:
            mask[r, c] = True
        else:
            raise InputError(None, f"shape {shape.label!r} lies outside the {h}x{w} image")
    return mask


# ---------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------
def geometry_features(mask: np.ndarray, spacing: tuple[float, float] = (2.3, 2.3)) -> dict[str, float]:
    """Shape descriptors of a lesion mask (largest connected part).

    Args:
        mask: boolean lesion mask.
        spacing: (row, column) pixel size in mm.

    Returns:
        ``area_px``, ``area_mm2``, ``equiv_diameter_mm`` (diameter of the disk of equal
        area), ``eccentricity`` (0 disk .. 1 line), ``solidity`` (area / convex area),
        ``orientation_deg`` (angle of the major axis from the image's row axis, -90..90,
        skimage's convention), ``major_axis_mm``, ``minor_axis_mm``, ``centroid_row``,
        ``centroid_col``.
    """
    from skimage.measure import label, regionprops

    mask = np.asarray(mask, bool)
    px_area = float(spacing[0] * spacing[1])
    if not mask.any():
        raise ValueError("empty lesion mask")
    props = regionprops(label(mask, connectivity=2))
    # The whole polygon is the lesion; several parts (a mottled outline drawn as one
    # polygon stays one part) are summarised by area and the biggest part's shape.
    area_px = float(mask.sum())
    big = max(props, key=lambda p: p.area)
    # Moments in pixel units assume square pixels; scale axes by the mean spacing.
    s = float(np.sqrt(px_area))
    return {
        "area_px": area_px,
        "area_mm2": area_px * px_area,
        "equiv_diameter_mm": float(2.0 * np.sqrt(area_px * px_area / np.pi)),
        "eccentricity": float(big.eccentricity),
        "solidity": float(area_px / sum(p.area_convex for p in props)) if len(props) > 1 else float(big.solidity),
        "orientation_deg": float(np.degrees(big.orientation)),
        "major_axis_mm": float(big.axis_major_length * s),
        "minor_axis_mm": float(big.axis_minor_length * s),
        "centroid_row": float(np.mean(np.nonzero(mask)[0])),
        "centroid_col": float(np.mean(np.nonzero(mask)[1])),
    }


def ring_mask(mask: np.ndarray, *, gap: int = 1, width: int = 3) -> np.ndarray:
    """Background ring around a mask: ``width`` pixels, ``gap`` pixels away from it."""
    mask = np.asarray(mask, bool)
    inner = ndi.binary_dilation(mask, iterations=gap) if gap > 0 else mask
    outer = ndi.binary_dilation(mask, iterations=gap + width)
    return outer & ~inner


def intensity_features(
    image: np.ndarray, mask: np.ndarray, *, prefix: str = "", gap: int = 1, width: int = 3
) -> dict[str, float]:
    """Counts inside a mask and its background-corrected contrast.

    Args:
        image: counts.
        mask: boolean lesion mask, same shape.
        prefix: appended to each key (e.g. ``"_ant"``).
        gap: pixels between the lesion and its background ring.
        width: ring width in pixels.

    Returns:
        ``max``, ``mean``, ``total``, ``background`` (median of the ring: robust to a
        neighbouring hot bone) and ``contrast`` = (mean - background) / background
        (NaN when the background is zero), each key followed by ``prefix``.
    """
    img = np.asarray(image, dtype=float)
    mask = np.asarray(mask, bool)
    vals = img[mask]
    ring = ring_mask(mask, gap=gap, width=width)
    bg = float(np.median(img[ring])) if ring.any() else float("nan")
    mean = float(vals.mean()) if vals.size else float("nan")
    contrast = (mean - bg) / bg if bg and np.isfinite(bg) and bg > 0 else float("nan")
    return {
        f"max{prefix}": float(vals.max()) if vals.size else float("nan"),
        f"mean{prefix}": mean,
        f"total{prefix}": float(vals.sum()),
        f"background{prefix}": bg,
        f"contrast{prefix}": float(contrast),
    }


def texture_features(image: np.ndarray, mask: np.ndarray, background: float = 0.0) -> dict[str, float]:
    """How the counts are spread inside a lesion (cues for its shape class).

    Args:
        image: counts of the view the lesion was drawn on.
        mask: boolean lesion mask.
        background: ring background to subtract (NaN is treated as 0).

    Returns:
        ``cv_drawn``: coefficient of variation of the net counts (speckle);
        ``flatness``: share of pixels with at least half the net peak (a flat sheet
        is near 1, a blurred dot well below);
        ``n_peaks``: separate hot cores (connected parts above 60 % of the net peak,
        after a light smoothing; a mottled lesion holds several).
    """
    bg = background if np.isfinite(background) else 0.0
    img = np.asarray(image, float)
    mask = np.asarray(mask, bool)
    net = img[mask] - bg
    if net.size < 2 or net.max() <= 0:
        return {"cv_drawn": 0.0, "flatness": 1.0, "n_peaks": float(net.size > 0)}
    sm = ndi.gaussian_filter(img, 1.0) - bg
    peak = float(sm[mask].max())
    # Hot cores = connected parts above 60 % of the net peak (a plateau is one core,
    # where counting local maxima would count every pixel of it).
    _, n_cores = ndi.label(mask & (sm >= 0.6 * peak))
    return {
        "cv_drawn": float(np.std(net) / np.mean(net)) if np.mean(net) > 0 else 0.0,
        "flatness": float(np.mean(sm[mask] >= 0.5 * peak)),
        "n_peaks": float(max(n_cores, 1)),
    }


def map_mask(mask: np.ndarray, from_view: str, shift: tuple[float, float]) -> np.ndarray:
    """Carry a mask from one view to the other through the fusion alignment.

    :mod:`scintilab.fusion` aligns the flipped posterior to the anterior with
    ``aligned[r, c] = flipped[r - dr, c - dc]`` (``shift = (dr, dc)``). So an ANT pixel
    (r, c) sits at (r - dr, c - dc) of the flipped posterior, i.e. at column
    ``W - 1 - (c - dc)`` of the stored posterior; the inverse holds for POST -> ANT.

    Args:
        mask: boolean mask in the stored frame of ``from_view``.
        from_view: ``ANT`` or ``POST``.
        shift: the fusion shift (rows, cols).

    Returns:
        Boolean mask in the stored frame of the other view.
    """
    from scintilab.fusion import shift_image

    m = np.asarray(mask, dtype=np.float32)
    dr, dc = float(shift[0]), float(shift[1])
    if from_view.upper() == "ANT":
        flipped = shift_image(m, -dr, -dc)  # ANT frame -> flipped-posterior frame
        return flipped[:, ::-1] >= 0.5
    aligned = shift_image(m[:, ::-1], dr, dc)  # stored POST -> flipped -> ANT frame
    return aligned >= 0.5


def to_ant_frame(mask: np.ndarray, view: str, shift: tuple[float, float]) -> np.ndarray:
    """The mask in the anterior (and fused image's) frame."""
    return np.asarray(mask, bool) if view.upper() == "ANT" else map_mask(mask, "POST", shift)


#: Thresholds of :func:`classify_shape` (mm, dimensionless). Chosen on the synthetic
#: cohort (seed 0) and checked on a second one; adjust them to a reader's own annotations
#: with :func:`fit_shape_classifier` as a guide.
SHAPE_RULE: dict[str, float] = {
    "punctate_max_diameter_mm": 17.5,
    "strip_min_eccentricity": 0.92,
    "strip_min_diameter_mm": 22.0,
    "flake_min_contrast": 4.0,
    "flake_min_diameter_mm": 25.0,
    "mottled_max_diameter_mm": 35.0,
    "mottled_max_contrast": 3.3,
}


def classify_shape(features: dict[str, float] | pd.Series, rule: dict[str, float] | None = None) -> str:
    """Shape class from geometry and contrast (used when a lesion has no annotated shape).

    The rule, in order (thresholds in :data:`SHAPE_RULE`):

    * ``punctate``: small, equivalent diameter under 17.5 mm;
    * ``strip``: elongated, eccentricity >= 0.92 (axis ratio ~2.5) and at least 22 mm;
    * ``flake``: a flat, uniformly hot sheet: contrast >= 4 over its ring, >= 25 mm;
    * ``mottled``: medium and faint for its size (contrast under 3.3, under 35 mm):
      scattered foci average out against the background;
    * ``patchy``: everything else (a large, moderately hot patch).

    Args:
        features: a lesion's features (dict or table row) with ``equiv_diameter_mm``,
            ``eccentricity`` and ``contrast`` (a missing contrast counts as 0).
        rule: thresholds overriding :data:`SHAPE_RULE`.

    Returns:
        One of :data:`~scintilab.study.SHAPE_CLASSES`.
    """
    p = {**SHAPE_RULE, **(rule or {})}
    d = float(features.get("equiv_diameter_mm", np.nan))
    ecc = float(features.get("eccentricity", 0.0))
    c = float(features.get("contrast", 0.0))
    c = c if np.isfinite(c) else 0.0
    if not d < np.inf or d < p["punctate_max_diameter_mm"]:
        return "punctate"
    if ecc >= p["strip_min_eccentricity"] and d >= p["strip_min_diameter_mm"]:
        return "strip"
    if c >= p["flake_min_contrast"] and d >= p["flake_min_diameter_mm"]:
        return "flake"
    if d < p["mottled_max_diameter_mm"] and c < p["mottled_max_contrast"]:
        return "mottled"
    return "patchy"


# ---------------------------------------------------------------------------------------
# One study -> lesion rows
# ---------------------------------------------------------------------------------------
def _fusion_of(study: Study, method: str) -> Any:
    if study.anterior is None or study.posterior is None:
        return None
    from scintilab.fusion import fuse_study

    return fuse_study(study, method=method)


def _pair_views(items: list[dict[str, Any]], tol_px: float = 3.0) -> list[list[dict[str, Any]]]:
    """Group annotations of the same lesion drawn on both views (greedy).

    Each item holds ``view``, ``label`` and ``ant_mask`` (its mask in the anterior frame).
    A POST shape joins the ANT shape with the same label that it overlaps most; without
    overlap (small outlines, an alignment off by a pixel or two), the nearest one whose
    centroid lies within its equivalent radius plus ``tol_px``. Each ANT shape takes at
    most one partner.
    """
    ants = [it for it in items if it["view"] == "ANT"]
    posts = [it for it in items if it["view"] == "POST"]
    groups = [[a] for a in ants]
    free = set(range(len(ants)))
    cent = [np.argwhere(a["ant_mask"]).mean(axis=0) if a["ant_mask"].any() else None for a in ants]
    for p in posts:
        best, best_key = None, None
        # Try the fusion alignment first, then the plain mirror: a sweep thrown off by a
        # hot spot must not split one lesion into two rows.
        for pm in (p["ant_mask"], p.get("ant_mask_mirror")):
            if pm is None or not pm.any():
                continue
            pc = np.argwhere(pm).mean(axis=0)
            for j in free:
                am = ants[j]["ant_mask"]
                if ants[j]["label"] != p["label"] or cent[j] is None:
                    continue
                iou = float(np.logical_and(am, pm).sum()) / float(np.logical_or(am, pm).sum())
                d = float(np.hypot(*(cent[j] - pc)))
                reach = max(np.sqrt(am.sum() / np.pi), np.sqrt(pm.sum() / np.pi)) + tol_px
                if iou >= 0.2 or d <= reach:
                    key = (iou, -d)
                    if best_key is None or key > best_key:
                        best, best_key = j, key
        if best is None:
            groups.append([p])
        else:
            groups[best].append(p)
            free.discard(best)
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
    study: Study, *, fusion_method: str = "add", kinds: Iterable[str] = ("lesion",)
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
        frame); ``shift_rows, shift_cols`` (the fusion alignment used).
    """
    from scintilab.atlas import fit_atlas, other_view_in_frame
    from scintilab.fusion import aggregate

    kinds = {k.lower() for k in kinds}
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    spacing = tuple(float(s) for s in (study.pixel_spacing or (2.3, 2.3)))
    fusion = None
    try:
        fusion = _fusion_of(study, fusion_method)
    except InputError as err:
        skipped.append((study.study_key, f"fusion failed: {err.problem}"))
    shift = tuple(fusion.shift) if fusion is not None else (0.0, 0.0)
    if fusion is not None and abs(float(getattr(fusion, "scale", 1.0)) - 1.0) > 1e-6:
        skipped.append((study.study_key, "fusion rescaled the posterior; counts mapped by shift only"))
    # The conjugate-view (geometric) mean cancels depth: the uptake of a lesion wherever it
    # sits, read as its peak above the ring background after a light smoothing (a single
    # noisy pixel would bias a raw maximum upwards by ~2 sqrt(counts)).
    geo = None
    if fusion is not None:
        geo = ndi.gaussian_filter(aggregate(fusion.anterior, fusion.posterior_flipped_aligned, "geometric"), 0.7)

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
                "ant_mask": to_ant_frame(mask, view, shift),
                "ant_mask_mirror": to_ant_frame(mask, view, (0.0, 0.0)) if view == "POST" else None,
            }
        )

    atlases: dict[str, Any] = {}

    def atlas_for(view: str) -> Any:
        if view not in atlases:
            img = study.view(view)
            atlases[view] = None
            if img is not None:
                try:
                    atlases[view] = fit_atlas(
                        img,
                        view=view,
                        spacing=spacing,  # type: ignore[arg-type]
                        other=other_view_in_frame(fusion, view),
                    )
                except ValueError as err:
                    skipped.append((study.study_key, f"atlas on {view} failed: {err}"))
        return atlases[view]

    for n_lesion, group in enumerate(_pair_views(items)):
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
            masks[other] = map_mask(first["mask"], view, shift)
        ant_mask = first["ant_mask"]
        for v in ("ANT", "POST"):
            suf = "_" + v.lower()
            im = study.view(v)
            if im is None or v not in masks or not masks[v].any():
                row.update(_nan_intensity(suf))
            else:
                b = _box(masks[v])
                row.update(intensity_features(np.asarray(im)[b], masks[v][b], prefix=suf))
        if fusion is not None and ant_mask.any():
            b = _box(ant_mask)
            row.update(intensity_features(fusion.image[b], ant_mask[b], prefix="_fused"))
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
        atl = atlas_for(view)
        bone = atl.assign_bone(first["mask"], row["ap_ratio"]) if atl is not None else None
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
# Agreement
# ---------------------------------------------------------------------------------------
def shape_agreement(
    table: pd.DataFrame, predicted: str = "shape_rule", reference: str = "shape_annotated"
) -> tuple[pd.DataFrame, float]:
    """Confusion matrix and accuracy of a shape prediction against annotations.

    Args:
        table: the lesion table.
        predicted: column with predicted classes.
        reference: column with annotated classes (rows without one are ignored).

    Returns:
        ``(confusion, accuracy)``: rows = reference, columns = predicted, over
        :data:`SHAPE_CLASSES`; accuracy NaN when nothing is annotated.
    """
    sel = table[reference].notna() & table[predicted].notna() if len(table) else []
    sub = table[sel] if len(table) else table
    cm = pd.crosstab(
        pd.Categorical(sub[reference] if len(sub) else [], categories=SHAPE_CLASSES),
        pd.Categorical(sub[predicted] if len(sub) else [], categories=SHAPE_CLASSES),
        rownames=["annotated"],
        colnames=["predicted"],
        dropna=False,
    )
    acc = float((sub[reference] == sub[predicted]).mean()) if len(sub) else float("nan")
    return cm, acc


def fit_shape_classifier(
    table: pd.DataFrame,
    *,
    features: Sequence[str] = ("equiv_diameter_mm", "eccentricity", "solidity", "cv_drawn", "contrast"),
    max_depth: int = 4,
    folds: int = 5,
    rng: int = 0,
) -> tuple[Any, pd.Series, float]:
    """A small decision tree for shape from geometry, scored by patient-grouped CV.

    Args:
        table: lesion table with ``shape_annotated``.
        features: columns used.
        max_depth: tree depth (kept small so a clinician can read it).
        folds: cross-validation folds (grouped by patient so one patient's lesions never
            straddle train and test).
        rng: random state.

    Returns:
        ``(tree fitted on all annotated lesions, out-of-fold predictions, CV accuracy)``.
    """
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier

    sub = table[table["shape_annotated"].notna()]
    if sub.empty:
        raise ValueError("no annotated shapes to learn from")
    X = sub[list(features)].astype(float).fillna(0.0).to_numpy()
    y = sub["shape_annotated"].to_numpy()
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=rng, min_samples_leaf=3)
    n_groups = sub["patient_key"].nunique()
    k = min(folds, n_groups)
    if k >= 2:
        pred = cross_val_predict(tree, X, y, groups=sub["patient_key"], cv=GroupKFold(n_splits=k))
    else:
        pred = tree.fit(X, y).predict(X)
    tree.fit(X, y)
    oof = pd.Series(pred, index=sub.index, name="shape_tree")
    return tree, oof, float(np.mean(pred == y))


def load_truth(truth_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Synthetic ground truth, keyed by pseudonymous study key.

    Args:
        truth_dir: the cohort's ``truth/`` folder (``<study_id>.json`` files).

    Returns:
        study_key -> the truth record (with ``lesions``).
    """
    from scintilab.pseudonym import study_key as make_study_key

    out: dict[str, dict[str, Any]] = {}
    for p in sorted(Path(truth_dir).glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(p, f"unreadable truth file ({err})") from None
        uid = rec.get("study_uid") or rec.get("StudyInstanceUID")
        if uid:
            out[make_study_key(str(uid))] = rec
    return out


def attach_truth(table: pd.DataFrame, truth: dict[str, dict[str, Any]], *, max_dist_px: float = 12.0) -> pd.DataFrame:
    """Add ``region_truth``/``bone_truth``/``shape_truth``/``uptake_truth`` by nearest centre.

    Truth centres (``center_rc``) are in the anterior frame; each lesion's anterior-frame
    centroid is matched to the nearest unused truth lesion of its study.

    Args:
        table: lesion table.
        truth: from :func:`load_truth`.
        max_dist_px: beyond this distance a lesion stays unmatched (NaN truth).

    Returns:
        A copy of the table with the truth columns.
    """
    df = table.copy()
    for col in ("region_truth", "bone_truth", "shape_truth"):
        df[col] = None
    df["uptake_truth"] = np.nan
    df["truth_dist_px"] = np.nan
    if df.empty:
        return df
    for skey, idx in df.groupby("study_key").groups.items():
        rec = truth.get(skey)
        if not rec:
            continue
        les = rec.get("lesions") or []
        if not les:
            continue
        centres = np.array([one.get("center_rc", [np.nan, np.nan]) for one in les], float)
        used: set[int] = set()
        for i in idx:
            p = np.array([df.at[i, "ant_row"], df.at[i, "ant_col"]], float)
            d = np.hypot(*(centres - p).T)
            for j in np.argsort(d):
                if int(j) not in used and d[j] <= max_dist_px:
                    used.add(int(j))
                    t = les[int(j)]
                    bone = t.get("bone")
                    df.at[i, "bone_truth"] = bone
                    df.at[i, "region_truth"] = t.get("region") or (region_of(bone) if bone else None)
                    df.at[i, "shape_truth"] = t.get("shape")
                    if t.get("uptake") is not None:
                        # truth is in the image's own counts: quote it per reference pixel too
                        px_area = df.at[i, "area_mm2"] / df.at[i, "area_px"] if "area_px" in df else 1.0
                        df.at[i, "uptake_truth"] = float(t["uptake"]) * REFERENCE_PIXEL_MM**2 / px_area
                    df.at[i, "truth_dist_px"] = float(d[j])
                    break
    return df


def uptake_agreement(table: pd.DataFrame) -> dict[str, float]:
    """How the measured uptake follows the generator's true uptake.

    Returns:
        ``n``, ``spearman`` (rank correlation), ``median_ratio`` (measured / true) over
        lesions with both values; NaNs when there are fewer than 3.
    """
    if table.empty or "uptake_truth" not in table:
        return {"n": 0, "spearman": float("nan"), "median_ratio": float("nan")}
    sub = table[["uptake", "uptake_truth"]].astype(float).dropna()
    sub = sub[sub["uptake_truth"] > 0]
    if len(sub) < 3:
        return {"n": int(len(sub)), "spearman": float("nan"), "median_ratio": float("nan")}
    rho = stats.spearmanr(sub["uptake"], sub["uptake_truth"]).statistic
    return {
        "n": int(len(sub)),
        "spearman": float(rho),
        "median_ratio": float(np.median(sub["uptake"] / sub["uptake_truth"])),
    }


def region_agreement(
    table: pd.DataFrame, predicted: str = "region_atlas", reference: str = "region_truth"
) -> tuple[float, int, pd.DataFrame]:
    """Share of lesions whose predicted region equals the reference region.

    Returns:
        ``(agreement, n, confusion)`` over lesions that have a reference region.
    """
    if table.empty or reference not in table:
        return float("nan"), 0, pd.DataFrame()
    sub = table[table[reference].notna()]
    cm = pd.crosstab(
        pd.Categorical(sub[reference], categories=REGIONS),
        pd.Categorical(sub[predicted].fillna("none"), categories=REGIONS + ("none",)),
        rownames=["truth"],
        colnames=["atlas"],
        dropna=False,
    )
    if sub.empty:
        return float("nan"), 0, cm
    return float((sub[predicted] == sub[reference]).mean()), int(len(sub)), cm


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------
def uptake_bins(values: Sequence[float] | pd.Series) -> pd.Categorical:
    """Bin uptake values with the paper's bins (:data:`~scintilab.anatomy.UPTAKE_BINS`)."""
    return pd.cut(pd.Series(values, dtype=float), bins=list(UPTAKE_BINS), right=False, labels=list(UPTAKE_BIN_LABELS))


def study_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Lesions per study (zero-lesion studies included when the table knows them)."""
    studies = table.attrs.get("studies")
    if studies:
        return pd.DataFrame(list(studies), columns=["study_key", "patient_key", "label", "n_lesions"])
    if table.empty:
        return pd.DataFrame(columns=["study_key", "patient_key", "label", "n_lesions"])
    g = table.groupby(["study_key", "patient_key", "label"], dropna=False).size()
    return g.rename("n_lesions").reset_index()


def class_distributions(
    table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake"
) -> dict[str, pd.DataFrame]:
    """Per-class distributions: the data behind the paper's Fig. 12 and lesion counts.

    Args:
        table: lesion table.
        classes: classes to describe.
        uptake: column binned for the uptake histogram.

    Returns:
        ``{"shape", "region", "uptake"}``: long tables (``label``, category, ``n``,
        ``percent`` within class), and ``"per_study"``: lesion-count summary per class.
    """
    out: dict[str, pd.DataFrame] = {}
    sub = table[table["label"].isin(classes)] if not table.empty else table
    cats = {"shape": SHAPE_CLASSES, "region": REGIONS, "uptake": UPTAKE_BIN_LABELS}
    for name, levels in cats.items():
        recs = []
        for cls in classes:
            part = sub[sub["label"] == cls] if not sub.empty else sub
            col = (
                uptake_bins(part[uptake])
                if (name == "uptake" and not part.empty)
                else (part[name] if not part.empty else pd.Series([], dtype=object))
            )
            counts = pd.Series(col).value_counts()
            total = int(counts.sum())
            for lev in levels:
                n = int(counts.get(lev, 0))
                recs.append({"label": cls, name: lev, "n": n, "percent": 100.0 * n / total if total else 0.0})
        out[name] = pd.DataFrame(recs)
    sc = study_counts(table)
    sc = sc[sc["label"].isin(classes)]
    out["per_study"] = (
        sc.groupby("label")["n_lesions"]
        .agg(studies="count", mean="mean", median="median", min="min", max="max")
        .reindex(list(classes))
        .reset_index()
    )
    return out


def cramers_v(table: np.ndarray | pd.DataFrame) -> tuple[float, float, float, int]:
    """Chi-square test of independence with Cramer's V.

    Empty rows/columns are dropped first (they carry no information and make expected
    frequencies zero).

    Args:
        table: contingency table (groups x categories).

    Returns:
        ``(chi2, p, V, dof)``; NaNs when the table has fewer than 2 non-empty rows or
        columns.
    """
    t = np.asarray(table, dtype=float)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0] if t.size else t
    if t.ndim != 2 or min(t.shape) < 2:
        return float("nan"), float("nan"), float("nan"), 0
    chi2, p, dof, _ = stats.chi2_contingency(t, correction=False)
    n = t.sum()
    v = math.sqrt(chi2 / (n * (min(t.shape) - 1)))
    return float(chi2), float(p), float(v), int(dof)


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Two-sided Mann-Whitney U test with the rank-biserial correlation.

    Args:
        a: values of the first group (NaNs dropped).
        b: values of the second group.

    Returns:
        ``(U of a, p, r)`` with ``r = 2 U / (n_a n_b) - 1``: +1 when every ``a`` exceeds
        every ``b``, -1 the other way round, 0 for no shift.
    """
    x = np.asarray(a, float)
    y = np.asarray(b, float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan"), float("nan")
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    r = 2.0 * float(res.statistic) / (x.size * y.size) - 1.0
    return float(res.statistic), float(res.pvalue), r


def compare_classes(
    table: pd.DataFrame,
    *,
    classes: tuple[str, str] = MET_CLASSES,
    continuous: Sequence[str] = CONTINUOUS_FEATURES,
    uptake: str = "uptake",
) -> pd.DataFrame:
    """Tests of difference between two classes (ADMet vs nADMet by default).

    Categories (shape, region, uptake bin) by chi-square with Cramer's V; continuous
    lesion features and lesions per study by Mann-Whitney U with the rank-biserial
    correlation (positive: larger in the first class). Lesions of one patient are not
    independent, so read p-values as descriptive.

    Args:
        table: lesion table.
        classes: the two classes compared.
        continuous: continuous columns tested.
        uptake: column binned for the uptake-bin test.

    Returns:
        One row per variable: ``variable, test, statistic, p, effect, effect_size,
        n_<class a>, n_<class b>, median_<a>, median_<b>``.
    """
    a, b = classes
    rows: list[dict[str, Any]] = []
    sub = table[table["label"].isin(classes)] if not table.empty else table
    for var in ("shape", "region", "uptake_bin"):
        if sub.empty:
            break
        col = uptake_bins(sub[uptake]).astype(object) if var == "uptake_bin" else sub[var]
        ct = pd.crosstab(sub["label"], pd.Series(col.to_numpy(), index=sub.index))
        ct = ct.reindex(list(classes), fill_value=0)
        chi2, p, v, dof = cramers_v(ct.to_numpy())
        rows.append(
            {
                "variable": var,
                "test": f"chi-square (dof {dof})",
                "statistic": chi2,
                "p": p,
                "effect": "Cramer's V",
                "effect_size": v,
                f"n_{a}": int(ct.loc[a].sum()),
                f"n_{b}": int(ct.loc[b].sum()),
                f"median_{a}": np.nan,
                f"median_{b}": np.nan,
            }
        )
    sc = study_counts(table)
    pairs = [("lesions_per_study", sc[sc["label"] == a]["n_lesions"], sc[sc["label"] == b]["n_lesions"])]
    for var in continuous:
        if not sub.empty and var in sub:
            pairs.append((var, sub[sub["label"] == a][var], sub[sub["label"] == b][var]))
    for var, xa, xb in pairs:
        u, p, r = mann_whitney(xa, xb)
        xa_f = pd.to_numeric(xa, errors="coerce").dropna()
        xb_f = pd.to_numeric(xb, errors="coerce").dropna()
        rows.append(
            {
                "variable": var,
                "test": "Mann-Whitney U",
                "statistic": u,
                "p": p,
                "effect": "rank-biserial r",
                "effect_size": r,
                f"n_{a}": int(xa_f.size),
                f"n_{b}": int(xb_f.size),
                f"median_{a}": float(xa_f.median()) if xa_f.size else np.nan,
                f"median_{b}": float(xb_f.median()) if xb_f.size else np.nan,
            }
        )
    return pd.DataFrame(rows)


def describe_differences(
    tests: pd.DataFrame,
    table: pd.DataFrame,
    *,
    classes: tuple[str, str] = MET_CLASSES,
    top: int = 3,
    alpha: float = 0.05,
    uptake: str = "uptake",
) -> list[str]:
    """Plain-words lines for the strongest class differences (smallest p first).

    Args:
        tests: :func:`compare_classes` output.
        table: the lesion table it came from.
        classes: the two classes compared.
        top: how many variables to describe.
        alpha: significance level quoted.
        uptake: column binned for the uptake-bin variable.

    Returns:
        One sentence per variable, e.g. ``"shape: punctate is 34% of ADMet lesions vs 16%
        of nADMet (chi-square p = 0.01, Cramer's V = 0.31; significant at 0.05)"``.
    """
    a, b = classes
    out: list[str] = []
    if tests.empty:
        return out
    sub = table[table["label"].isin(classes)] if not table.empty else table
    for _, t in tests.dropna(subset=["p"]).sort_values("p").head(top).iterrows():
        verdict = f"significant at {alpha:g}" if t["p"] < alpha else f"not significant at {alpha:g}"
        var = t["variable"]
        if t["test"].startswith("chi-square"):
            col = uptake_bins(sub[uptake]).astype(object) if var == "uptake_bin" else sub[var]
            share = pd.crosstab(pd.Series(col.to_numpy(), index=sub.index), sub["label"], normalize="columns")
            share = share.reindex(columns=list(classes), fill_value=0.0)
            diff = (share[a] - share[b]).abs()
            cat = diff.idxmax()
            out.append(
                f"{var}: {cat} is {100 * share.loc[cat, a]:.0f}% of {a} lesions vs "
                f"{100 * share.loc[cat, b]:.0f}% of {b} (chi-square p = {t['p']:.2g}, "
                f"Cramer's V = {t['effect_size']:.2f}; {verdict})"
            )
        else:
            out.append(
                f"{var}: median {t[f'median_{a}']:.3g} ({a}, n={int(t[f'n_{a}'])}) vs "
                f"{t[f'median_{b}']:.3g} ({b}, n={int(t[f'n_{b}'])}) (Mann-Whitney p = {t['p']:.2g}, "
                f"rank-biserial r = {t['effect_size']:+.2f}; {verdict})"
            )
    return out


# ---------------------------------------------------------------------------------------
# Figures (the paper's Fig. 12)
# ---------------------------------------------------------------------------------------
_PANELS = (("shape", "a  shape"), ("region", "b  body region"), ("uptake", "c  uptake intensity (counts)"))
_CLASS_COLOURS = {"NoMet": "#7f7f7f", "ADMet": "#d62728", "nADMet": "#1f77b4"}


def fig12_static(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake") -> Figure:
    """Seaborn version of the paper's Fig. 12: shape, region and uptake per class.

    Bars give the percentage of each class's lesions (classes differ in size).

    Args:
        table: lesion table.
        classes: classes drawn side by side.
        uptake: column binned for panel c.

    Returns:
        A matplotlib Figure with three panels.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    dist = class_distributions(table, classes=classes, uptake=uptake)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [5, 10, 7]})
    palette = {c: _CLASS_COLOURS.get(c, "#333333") for c in classes}
    for ax, (name, title) in zip(axes, _PANELS):
        d = dist[name]
        sns.barplot(data=d, x=name, y="percent", hue="label", hue_order=list(classes), palette=palette, ax=ax)
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel("% of the class's lesions" if name == "shape" else "")
        ax.tick_params(axis="x", rotation=40, labelsize=8)
        for lab in ax.get_xticklabels():
            lab.set_ha("right")
        if ax.get_legend() is not None and name != "shape":
            ax.get_legend().remove()
    n = {c: int((table["label"] == c).sum()) if not table.empty else 0 for c in classes}
    fig.suptitle("Metastatic lesions by class: " + ", ".join(f"{c} n={n[c]}" for c in classes), fontsize=11)
    fig.tight_layout()
    return fig


def fig12_plotly(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES, uptake: str = "uptake") -> Any:
    """Interactive plotly version of :func:`fig12_static` (hover shows counts)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    dist = class_distributions(table, classes=classes, uptake=uptake)
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in _PANELS], column_widths=[0.22, 0.45, 0.33])
    for col, (name, _) in enumerate(_PANELS, start=1):
        d = dist[name]
        for cls in classes:
            part = d[d["label"] == cls]
            fig.add_trace(
                go.Bar(
                    x=part[name],
                    y=part["percent"],
                    name=cls,
                    legendgroup=cls,
                    showlegend=(col == 1),
                    marker_color=_CLASS_COLOURS.get(cls),
                    customdata=part["n"],
                    hovertemplate="%{x}<br>%{y:.1f}% (n=%{customdata})<extra>" + cls + "</extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        barmode="group", height=420, width=1200, title="Metastatic lesions by class (percent of each class's lesions)"
    )
    fig.update_yaxes(title_text="%", row=1, col=1)
    return fig


def per_study_figure(table: pd.DataFrame, *, classes: Sequence[str] = MET_CLASSES) -> Figure:
    """Lesions per study, one box+strip per class."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sc = study_counts(table)
    sc = sc[sc["label"].isin(classes)]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    if not sc.empty:
        palette = {c: _CLASS_COLOURS.get(c, "#333333") for c in classes}
        sns.boxplot(
            data=sc,
            x="label",
            y="n_lesions",
            hue="label",
            order=list(classes),
            palette=palette,
            ax=ax,
            fliersize=0,
            legend=False,
        )
        sns.stripplot(data=sc, x="label", y="n_lesions", order=list(classes), color="k", size=3, ax=ax, jitter=0.2)
    ax.set_xlabel("")
    ax.set_ylabel("lesions per study")
    fig.tight_layout()
    return fig


def lesion_figure(
    study: Study,
    rows: pd.DataFrame | None = None,
    *,
    view: str = "ANT",
    show_atlas: bool = True,
    columns: Sequence[str] = ("shape", "region", "area_mm2", "uptake", "ap_ratio", "contrast"),
) -> Figure:
    """One study's lesions outlined on a view, numbered, with their features beside.

    Args:
        study: the study.
        rows: its rows of the lesion table (computed with :func:`study_lesions` if None).
        view: ``ANT`` or ``POST`` (as stored; POST is not flipped).
        show_atlas: tint the body regions of the fitted atlas underneath.
        columns: features listed in the side table.

    Returns:
        A matplotlib Figure titled with the pseudonymous study key and class only.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from skimage.measure import find_contours

    from scintilab.atlas import BONE_COLOURS, fit_study_atlas

    view = view.upper()
    img = study.view(view)
    if img is None:
        raise ValueError(f"study {study.study_key} has no {view} view")
    if rows is None:
        rows = pd.DataFrame(study_lesions(study)[0])
    rows = rows[rows["study_key"] == study.study_key] if len(rows) and "study_key" in rows else rows.iloc[0:0]
    h, w = img.shape
    fig, (ax, axt) = plt.subplots(1, 2, figsize=(10, 8.5), gridspec_kw={"width_ratios": [1.0, 1.5]})
    vmax = float(np.percentile(img, 99.7)) or 1.0
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
    try:
        atl = fit_study_atlas(study, view)
    except ValueError:
        atl = None  # no body found: show the image alone, uncropped
    if atl is not None:
        body_rows = np.flatnonzero(atl.body.any(axis=1))
        pad = max(2, int(0.02 * h))
        ax.set_ylim(min(body_rows[-1] + pad, h - 0.5), max(body_rows[0] - pad, -0.5))  # crop to the body
        if show_atlas:
            ax.imshow(
                np.ma.masked_equal(atl.region_map(), 0) - 1,
                cmap=ListedColormap(BONE_COLOURS[: len(REGIONS)]),
                vmin=0,
                vmax=len(REGIONS) - 1,
                alpha=0.22,
                interpolation="nearest",
            )
    cells = []
    for _, r in rows.iterrows():
        # "3;7" from a fresh table, 3 or 3.0 once a CSV round trip has parsed it
        idx = [int(float(i)) for i in str(r.get("shape_indices", "")).split(";") if i not in ("", "nan")]
        mine = [study.shapes[i] for i in idx if i < len(study.shapes) and study.shapes[i].view == view]
        if mine:
            mask = shape_mask(mine[0], img.shape)
            style = "-"
        elif idx and idx[0] < len(study.shapes):
            src = study.shapes[idx[0]]
            mask = map_mask(shape_mask(src, img.shape), src.view, (r.get("shift_rows", 0.0), r.get("shift_cols", 0.0)))
            style = "--"  # carried over from the other view
        else:
            continue
        for cont in find_contours(np.pad(mask, 1).astype(float), 0.5):
            ax.plot(cont[:, 1] - 1, cont[:, 0] - 1, style, color="#d62728", lw=0.9)
        rr, cc = np.nonzero(mask)
        if rr.size:
            ax.text(
                cc.max() + 2,
                rr.min(),
                str(int(r["lesion_index"]) + 1),
                color="#d62728",
                fontsize=7,
                va="top",
                ha="left",
            )
        cells.append([str(int(r["lesion_index"]) + 1)] + [_fmt(r.get(c)) for c in columns])
    ax.set_title(f"{study.study_key} ({study.label or 'unlabelled'}), {view}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    axt.axis("off")
    if cells:
        tab = axt.table(cellText=cells, colLabels=["#"] + list(columns), loc="upper center", cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        tab.scale(1.0, 1.2)
    else:
        axt.text(0.5, 0.9, "no lesions annotated", ha="center", fontsize=9)
    fig.tight_layout()
    return fig


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


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

    from scintilab.errors import partial_exit
    from scintilab.ingest import load_cohort
    from scintilab.outputs import OutputFile, write_csv

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
