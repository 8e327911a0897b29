"""Lesion masks from LabelMe shapes, and the features of one lesion: geometry, counts, texture,
the shape class by rule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from scintilab.anatomy import REGIONS, UPTAKE_BINS
from scintilab.errors import InputError
from scintilab.study import SHAPE_CLASSES, Shape

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


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
