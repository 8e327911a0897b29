"""Realism against real-scan statistics: twelve simple figures of one stored anterior view.

Issue 23 (item 2) asks whether the synthetic cohort looks like real whole-body scans in the
ways a detector notices: how many counts, how hot, how wide, how noisy, how much contrast.
:func:`measure_view` measures :data:`FIGURES` on one ANTERIOR view (a 2-D count array and
its pixel spacing) with no anatomy truth, so it runs on a real export exactly as on
synthetic data; :func:`cohort_realism` measures a whole cohort and sets each figure's
synthetic 5-95 % range against the real ranges of ``validation/real_ranges.json``
(:func:`load_real_ranges`). ``benchmarks/realism.py`` prints that table and
``tests/test_realism.py`` asserts on it.

How the figures are found (every length in millimetres, from the spacing):

* **Body outline** (:func:`body_outline`): the counts smoothed with a Gaussian of 10 mm
  FWHM, a first split by Otsu's threshold on ``log(1 + smoothed)``, then the final
  threshold a quarter of the way from the background's median level to the body's median
  level, both measured on the image itself. No constant of the generator enters: only
  the image's own two levels (a real export's soft tissue may be several times ours).
  Components under 2 % of the largest are dropped (stray counts), holes are filled.
* **Chest rows** (:func:`chest_rows`): from the outline's vertical extent (vertex to
  sole, length L) and its width profile smoothed over 20 mm: the neck is the narrowest row
  8-25 % of L below the vertex, the shoulder line the first row below it whose width
  reaches 80 % of the widest row above 45 % of L; the chest is the band 4-14 % of L below
  the shoulder line (upper and middle thorax, above the diaphragm in adults). When no
  neck stands out (a partial sweep, a box-shaped image) the shoulder line falls back on
  the human proportion of 17 % of L.
* **Noise** (:func:`noise_ratio`): for Poisson counts on a flat region
  ``var(x[c+1] - x[c]) = 2 * mean``, so ``var / (2 mean)`` is 1 for raw counts, below 1 for
  smoothed or interpolated images (neighbours correlate, and the variance shrinks), above
  1 for scaled counts or where structure adds to the differences. It is measured on
  horizontal neighbours in soft tissue where the image is locally flat: both pixels at
  least 10 mm inside the outline, the pair's smoothed level at most the body's median (no
  bone, no bladder), and the smoothed level changing between them by under a tenth of the
  Poisson SD of their difference (a gradient then adds at most 1 %). Pooling pairs of different levels
  keeps the ratio at 1 for Poisson counts (each pair's difference has variance twice its
  own mean), so no single flat patch has to be found. Pairs are chosen only on what does
  not hold their own difference (see :func:`noise_ratio`), or the choice would bias it.
* **Chest contrast**: over the chest rows, the mean counts within 15 mm of the row's
  midline (midway between the outline's outer edges) over the mean counts 45-65 % of the
  half-width out on either side (lateral chest wall, inside the arms).
* **Trunk width**: the median over the chest rows of the outline's outer-edge width,
  arms included (as they lie at the sides); ``body_fill`` divides it by the field's width.
* **Background**: mean counts per pixel at least 20 mm outside the outline (clear of the
  scatter halo and the smoothing).
* **Bladder share**: the hottest point of the smoothed view in rows 45-65 % of L below the
  vertex and within 60 mm of the midline (the hands and an injection site lie beside the
  hips, not on the midline); the connected region around it at or above half that peak,
  within 60 mm of it; its counts over the view's total. An empty bladder gives the pubic
  bone's small share instead.

Figures that depend on the pixel size by nature (counts per pixel scale with its area):
``max_pixel``, ``p99_body``, ``p999_body``, ``body_mean`` and ``background``. The others
(totals, lengths, ratios, shares) read alike on a 2048x512 view at 1.13 mm and a 512x128
view at 4.5 mm of the same body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from scintilab.errors import InputError
from scintilab.ingest import load_cohort
from scintilab.paths import repo_path
from scintilab.study import Study

#: The real ranges the figures are held to (typical value, low, high, source).
REAL_RANGES_PATH = "validation/real_ranges.json"

#: The figures, in table order: name -> (unit, definition).
FIGURES: dict[str, tuple[str, str]] = {
    "total_counts": ("counts", "sum of all pixels of the view"),
    "max_pixel": ("counts", "the hottest pixel"),
    "p999_body": ("counts", "99.9th percentile of the pixels inside the body outline"),
    "p99_body": ("counts", "99th percentile of the pixels inside the body outline"),
    "body_mean": ("counts", "mean counts per pixel inside the body outline"),
    "background": ("counts", "mean counts per pixel at least 20 mm outside the body outline"),
    "noise_ratio": ("", "var(x[c+1]-x[c]) / (2 mean) on flat soft tissue (1: raw Poisson counts)"),
    "chest_contrast": ("", "mean counts within 15 mm of the midline / at 45-65 % of the half-width, chest rows"),
    "trunk_width_mm": ("mm", "median outer-edge width of the outline over the chest rows (arms included)"),
    "body_fill": ("", "trunk width / width of the field of view"),
    "body_length_mm": ("mm", "vertex-to-sole extent of the outline"),
    "bladder_share": ("", "share of all counts in the hottest pelvic blob (half maximum, central, 45-65 % of L)"),
}

#: Figures whose value scales with the pixel's area (counts per pixel).
PER_PIXEL_FIGURES: frozenset[str] = frozenset({"max_pixel", "p999_body", "p99_body", "body_mean", "background"})

#: Smoothing before the outline: a Gaussian of this full width at half maximum (mm).
SMOOTH_FWHM_MM = 10.0
#: Where between the background's and the body's median smoothed level the outline lies.
OUTLINE_FRACTION = 0.25
#: The noise figure needs at least this many neighbour pairs (else NaN).
MIN_NOISE_PAIRS = 200


def _sigma_px(spacing: tuple[float, float], fwhm_mm: float) -> tuple[float, float]:
    sigma_mm = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return (sigma_mm / spacing[0], sigma_mm / spacing[1])


def _centre_weights(spacing: tuple[float, float]) -> tuple[float, float]:
    """The smoothing kernel's weight on a pixel itself and on its right-hand neighbour."""
    sigma = _sigma_px(spacing, SMOOTH_FWHM_MM)
    k = int(math.ceil(4.0 * max(sigma))) + 2
    delta = np.zeros((2 * k + 1, 2 * k + 1))
    delta[k, k] = 1.0
    kernel = ndi.gaussian_filter(delta, sigma)
    return float(kernel[k, k]), float(kernel[k, k + 1])


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (the cut that maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def check_view(image: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, float]]:
    """The view as float counts and its (row, column) spacing, or a ValueError saying what is wrong.

    Raises:
        ValueError: not 2-D, too small, non-finite or negative values, no counts, or a
            spacing that is not two positive millimetre values.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"the view must be a 2-D count array (rows, columns), got {img.ndim}-D shape {img.shape}")
    if min(img.shape) < 16:
        raise ValueError(f"the view is too small to hold a body: shape {img.shape} (need at least 16x16)")
    img = img.astype(float)
    if not np.isfinite(img).all():
        raise ValueError("the view holds non-finite values (NaN or inf); counts expected")
    if img.min() < 0:
        raise ValueError(f"the view holds negative values (min {img.min():g}); counts expected")
    if img.sum() <= 0:
        raise ValueError("the view holds no counts (every pixel is zero)")
    sp = tuple(float(v) for v in spacing)
    if len(sp) != 2 or not all(math.isfinite(v) and v > 0 for v in sp):
        raise ValueError(f"pixel spacing must be two positive millimetre values (row, column), got {spacing!r}")
    return img, (sp[0], sp[1])


def body_outline(image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """The body outline of one view, from the image's own levels (see the module docstring).

    Args:
        image: counts (rows, columns).
        spacing: (row, column) pixel spacing in mm.

    Returns:
        Boolean mask, True inside the body.

    Raises:
        ValueError: bad input (:func:`check_view`), or no body stands out of the background.
    """
    img, sp = check_view(image, spacing)
    sm = ndi.gaussian_filter(img, _sigma_px(sp, SMOOTH_FWHM_MM))
    lg = np.log1p(sm)
    if float(lg.max() - lg.min()) < 1e-9:
        raise ValueError("no body stands out of the background (the smoothed view is flat)")
    first = lg > _otsu(lg.ravel())
    if first.all() or not first.any():
        raise ValueError("no body stands out of the background (Otsu's split found one level only)")
    bg, body = float(np.median(sm[~first])), float(np.median(sm[first]))
    mask = sm > bg + OUTLINE_FRACTION * (body - bg)
    lab, n = ndi.label(mask)
    if n == 0:
        raise ValueError("no body stands out of the background")
    sizes = ndi.sum(mask, lab, index=np.arange(1, n + 1))
    mask = np.isin(lab, np.flatnonzero(sizes >= 0.02 * sizes.max()) + 1)
    return ndi.binary_fill_holes(mask)


@dataclass(frozen=True)
class BodyExtent:
    """Where the body lies: its first and last rows and its width per row (mm)."""

    top: int
    bottom: int
    width_mm: np.ndarray  # per row, outer edge to outer edge (0 where the row holds no body)
    centre: np.ndarray  # per row, the column midway between the outer edges (NaN where none)

    @property
    def rows(self) -> int:
        """The body's length in rows."""
        return self.bottom - self.top + 1


def body_extent(mask: np.ndarray, spacing: Sequence[float]) -> BodyExtent:
    """First/last body rows and each row's outer-edge width (mm) and centre column."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        raise ValueError("the body outline is empty")
    any_row = mask.any(axis=1)
    left = np.where(any_row, np.argmax(mask, axis=1), 0)
    right = np.where(any_row, mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1), -1)
    width = np.where(any_row, (right - left + 1) * float(spacing[1]), 0.0)
    centre = np.where(any_row, 0.5 * (left + right), np.nan)
    return BodyExtent(int(rows[0]), int(rows[-1]), width, centre)


@dataclass(frozen=True)
class ChestRows:
    """The chest band found on one outline.

    Attributes:
        start: first chest row.
        stop: one past the last chest row.
        shoulder: the shoulder line's row.
        found: True when the neck and shoulders were found on the width profile; False when
            the shoulder line fell back on 17 % of the body length.
    """

    start: int
    stop: int
    shoulder: int
    found: bool


def chest_rows(extent: BodyExtent, spacing: Sequence[float]) -> ChestRows:
    """The chest band, from the outline's length and width profile (see the module docstring)."""
    top, length = extent.top, extent.rows
    w = ndi.median_filter(extent.width_mm, size=max(3, int(round(20.0 / float(spacing[0])))), mode="nearest")
    lo, hi = top + int(0.08 * length), top + int(0.25 * length)
    found = False
    shoulder = top + int(round(0.17 * length))
    if hi - lo >= 3:
        neck = lo + int(np.argmin(w[lo:hi]))
        head = float(w[top:neck].max()) if neck > top else 0.0
        trunk_stop = top + int(0.45 * length)
        widest = float(w[neck:trunk_stop].max()) if trunk_stop > neck else 0.0
        # A real neck is a clear waist: narrower than both the head above and the trunk below,
        # and not at the edge of the window (that is a slope, not a minimum).
        if lo < neck < hi - 1 and w[neck] < 0.9 * head and w[neck] < 0.7 * widest:
            wide = np.flatnonzero(w[neck:trunk_stop] >= 0.8 * widest)
            shoulder, found = neck + int(wide[0]), True
    start = shoulder + int(round(0.04 * length))
    stop = max(start + 1, shoulder + int(round(0.14 * length)))
    return ChestRows(start, min(stop, extent.bottom + 1), shoulder, found)


def noise_ratio(image: np.ndarray, spacing: Sequence[float], mask: np.ndarray | None = None) -> float:
    """``var(x[c+1] - x[c]) / (2 mean)`` over flat soft tissue (1 for raw Poisson counts).

    Args:
        image: counts (rows, columns).
        spacing: (row, column) pixel spacing in mm.
        mask: the body outline (default: :func:`body_outline`).

    Returns:
        The ratio, or NaN when fewer than :data:`MIN_NOISE_PAIRS` neighbour pairs qualify.
    """
    img, sp = check_view(image, spacing)
    body = body_outline(img, sp) if mask is None else np.asarray(mask, bool)
    inside = ndi.distance_transform_edt(body, sampling=sp) >= 10.0
    sm = ndi.gaussian_filter(img, _sigma_px(sp, SMOOTH_FWHM_MM))
    if not (inside[:, 1:] & inside[:, :-1]).any():
        return float("nan")
    d_all = img[:, 1:] - img[:, :-1]
    # Pairs are chosen only by what does not depend on their own difference d, or the choice
    # biases var(d): for Poisson counts, given the pair's sum S, var(d) = S whatever else is
    # chosen on S. The pair's smoothed level (sm[c] + sm[c+1]) / 2 holds x[c] and x[c+1] only
    # through S; the smoothed slope holds d with weight (g0 - g1), the kernel's centre less its
    # horizontal neighbour, which is taken out (left in, "flat" picks small differences: 24 %
    # low at 4.6 mm pixels on flat Poisson counts, where the kernel is about a pixel wide).
    level_sm = 0.5 * (sm[:, 1:] + sm[:, :-1])
    both_inside = inside[:, 1:] & inside[:, :-1]
    soft = level_sm <= float(np.median(level_sm[both_inside]))
    g0, g1 = _centre_weights(sp)
    trend = np.abs(np.diff(sm, axis=1) - (g0 - g1) * d_all)
    # Flat: the level changes between the two pixels by under a tenth of the Poisson SD of
    # their difference, so a gradient adds about 1 % to var(d) at most. In noise units, not counts
    # or mm: the same cut on a real export as on ours, at any pixel size (a cut of 1 % per mm
    # let soft-tissue slopes add 4-8 % at 4.6 mm pixels).
    flat = trend <= 0.1 * np.sqrt(2.0 * level_sm)
    ok = both_inside & soft & flat
    if int(ok.sum()) < MIN_NOISE_PAIRS:
        return float("nan")
    d = d_all[ok]
    level = 0.5 * (img[:, 1:] + img[:, :-1])[ok]
    mean = float(level.mean())
    return float(d.var() / (2.0 * mean)) if mean > 0 else float("nan")


def _chest_contrast(img: np.ndarray, sp: tuple[float, float], ext: BodyExtent, chest: ChestRows) -> float:
    cols = np.arange(img.shape[1], dtype=float)
    mid_sum = mid_n = lat_sum = lat_n = 0.0
    for r in range(chest.start, chest.stop):
        if not np.isfinite(ext.centre[r]) or ext.width_mm[r] <= 0:
            continue
        off_mm = np.abs(cols - ext.centre[r]) * sp[1]
        half = 0.5 * ext.width_mm[r]
        mid = off_mm <= 15.0
        lat = (off_mm >= 0.45 * half) & (off_mm <= 0.65 * half)
        mid_sum += float(img[r, mid].sum())
        mid_n += float(mid.sum())
        lat_sum += float(img[r, lat].sum())
        lat_n += float(lat.sum())
    if mid_n == 0 or lat_n == 0 or lat_sum == 0:
        return float("nan")
    return (mid_sum / mid_n) / (lat_sum / lat_n)


def _bladder_share(img: np.ndarray, sp: tuple[float, float], ext: BodyExtent) -> float:
    sm = ndi.gaussian_filter(img, _sigma_px(sp, SMOOTH_FWHM_MM))
    r0, r1 = ext.top + int(0.45 * ext.rows), ext.top + int(0.65 * ext.rows) + 1
    window = np.zeros(img.shape, bool)
    cols = np.arange(img.shape[1], dtype=float)
    for r in range(r0, min(r1, img.shape[0])):
        if np.isfinite(ext.centre[r]):
            # central only: the hands lie beside the hips, and an injection site may be there
            window[r] = np.abs(cols - ext.centre[r]) * sp[1] <= 60.0
    if not window.any():
        return float("nan")
    peak = np.unravel_index(int(np.argmax(np.where(window, sm, -1.0))), sm.shape)
    rr, cc = np.ogrid[: img.shape[0], : img.shape[1]]
    near = np.hypot((rr - peak[0]) * sp[0], (cc - peak[1]) * sp[1]) <= 60.0
    lab, _ = ndi.label((sm >= 0.5 * sm[peak]) & near)
    blob = lab == lab[peak]
    return float(img[blob].sum() / img.sum())


def measure_view(image: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """The twelve :data:`FIGURES` of one stored anterior view.

    Args:
        image: counts (rows, columns), head at the top (as :func:`scintilab.ingest.load_cohort`
            gives it).
        spacing: (row, column) pixel spacing in mm, PixelSpacing (0028,0030).

    Returns:
        Figure name -> value (NaN where a figure cannot be measured, e.g. no background
        20 mm outside a body that fills the field).

    Raises:
        ValueError: bad input, naming what is wrong (not 2-D, no counts, negative or
            non-finite values, bad spacing, no body).
    """
    img, sp = check_view(image, spacing)
    body = body_outline(img, sp)
    ext = body_extent(body, sp)
    chest = chest_rows(ext, sp)
    inside = img[body]
    far = ndi.distance_transform_edt(~body, sampling=sp) >= 20.0
    trunk = float(np.median(ext.width_mm[chest.start : chest.stop]))
    return {
        "total_counts": float(img.sum()),
        "max_pixel": float(img.max()),
        "p999_body": float(np.percentile(inside, 99.9)),
        "p99_body": float(np.percentile(inside, 99.0)),
        "body_mean": float(inside.mean()),
        "background": float(img[far].mean()) if far.any() else float("nan"),
        "noise_ratio": noise_ratio(img, sp, body),
        "chest_contrast": _chest_contrast(img, sp, ext, chest),
        "trunk_width_mm": trunk,
        "body_fill": trunk / (img.shape[1] * sp[1]),
        "body_length_mm": ext.rows * sp[0],
        "bladder_share": _bladder_share(img, sp, ext),
    }


@dataclass(frozen=True)
class RealRange:
    """One figure's real value: typical, range and where they come from.

    ``typical_from`` is ``measured`` (on a real export), ``brief`` (the domain brief states
    it) or ``inferred`` (no real value was measured: a value consistent with the others).
    An inferred typical value is too weak to demand; for it the check asks only that the
    synthetic 5-95 % range overlaps the real range.
    """

    typical: float
    low: float
    high: float
    source: str
    typical_from: str = "measured"


def load_real_ranges(path: str | Path | None = None) -> dict[str, RealRange]:
    """The real ranges (default ``validation/real_ranges.json`` in the repo).

    Raises:
        InputError: the file is missing, not JSON, lacks a figure of :data:`FIGURES`, or a
            range is not ``low <= typical <= high``.
    """
    p = repo_path(REAL_RANGES_PATH if path is None else path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(p, f"not a readable real-ranges JSON ({err})") from err
    figures = data.get("figures", {})
    missing = [f for f in FIGURES if f not in figures]
    if missing:
        raise InputError(p, f"no real range for {missing}")
    out = {}
    for name in FIGURES:
        item = figures[name]
        try:
            low, high = (float(v) for v in item["range"])
            rr = RealRange(
                float(item["typical"]), low, high, str(item["source"]), str(item.get("typical_from", "measured"))
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(p, f"{name}: needs typical, range [low, high] and source ({err})") from err
        if not rr.low <= rr.typical <= rr.high:
            raise InputError(p, f"{name}: typical {rr.typical:g} outside its range [{rr.low:g}, {rr.high:g}]")
        out[name] = rr
    return out


@dataclass(frozen=True)
class FigureRow:
    """One figure across a cohort against its real value."""

    figure: str
    real: RealRange
    p5: float
    p50: float
    p95: float
    n: int

    @property
    def covered(self) -> bool:
        """Whether the real typical value lies inside the synthetic 5-95 % range (for an
        inferred typical value: whether the 5-95 % range overlaps the real range)."""
        if self.n == 0:
            return False
        if self.real.typical_from == "inferred":
            return self.p5 <= self.real.high and self.p95 >= self.real.low
        return self.p5 <= self.real.typical <= self.p95

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {
            "figure": self.figure,
            "real_typical": self.real.typical,
            "real_range": [self.real.low, self.real.high],
            "source": self.real.source,
            "typical_from": self.real.typical_from,
            "synthetic_p5": self.p5,
            "synthetic_p50": self.p50,
            "synthetic_p95": self.p95,
            "n": self.n,
            "typical_inside_5_95": self.covered,
        }


@dataclass
class RealismSummary:
    """A cohort's figures against the real ranges.

    Attributes:
        rows: one per figure, in :data:`FIGURES` order.
        per_study: study key -> its figures.
        skipped: (study key, reason) for studies that could not be measured.
        spacings: the (row, column) spacing of each measured study.
    """

    rows: list[FigureRow]
    per_study: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    spacings: list[tuple[float, float]] = field(default_factory=list)

    @property
    def uncovered(self) -> list[str]:
        """Figures whose real typical value lies outside the synthetic 5-95 % range."""
        return [r.figure for r in self.rows if not r.covered]

    def table(self) -> str:
        """The table as text: figure, real typical and range, synthetic 5/50/95 %, covered."""
        head = f"{'figure':<16}{'real':>11}{'real range':>22}{'syn 5%':>11}{'syn 50%':>11}{'syn 95%':>11}  inside"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rng = f"{_fmt(r.real.low)}..{_fmt(r.real.high)}"
            lines.append(
                f"{r.figure:<16}{_fmt(r.real.typical):>11}{rng:>22}{_fmt(r.p5):>11}{_fmt(r.p50):>11}"
                f"{_fmt(r.p95):>11}  {'yes' if r.covered else 'NO'}"
            )
        lines.append(f"{len(self.per_study)} anterior views measured, {len(self.skipped)} skipped")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON (study keys are pseudonyms)."""
        return {
            "views": len(self.per_study),
            "figures_total": len(self.rows),
            "figures_inside": len(self.rows) - len(self.uncovered),
            "percentiles": [5, 50, 95],
            "figures": [r.as_dict() for r in self.rows],
            "per_study": self.per_study,
            "skipped": [list(s) for s in self.skipped],
            "uncovered": self.uncovered,
        }


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "nan"
    if abs(v) >= 1e5:
        return f"{v:.3g}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


#: Pixel size (mm) the real per-pixel ranges are quoted at (the GE export's 2.26 mm).
REFERENCE_SPACING_MM: float = 2.26


def summarise(
    measured: Iterable[Mapping[str, float]],
    ranges: Mapping[str, RealRange],
    spacings: Sequence[tuple[float, float]] | None = None,
) -> list[FigureRow]:
    """Each figure's synthetic 5/50/95 % (NaNs left out) against its real range.

    Given ``spacings`` (one per measured view), the per-pixel figures
    (:data:`PER_PIXEL_FIGURES`) are taken only from views within 15 % of
    :data:`REFERENCE_SPACING_MM`: counts per pixel grow with the pixel's area, so a 4.5 mm
    view's hottest pixel says nothing against a range quoted at 2.26 mm.
    """
    values = list(measured)
    near = None
    if spacings is not None:
        near = [abs(0.5 * (a + b) - REFERENCE_SPACING_MM) <= 0.15 * REFERENCE_SPACING_MM for a, b in spacings]
    rows = []
    for name in FIGURES:
        use = values if near is None or name not in PER_PIXEL_FIGURES else [v for v, k in zip(values, near) if k]
        col = np.array([v[name] for v in use], float)
        col = col[np.isfinite(col)]
        if col.size:
            p5, p50, p95 = (float(x) for x in np.percentile(col, [5, 50, 95]))
        else:
            p5 = p50 = p95 = float("nan")
        rows.append(FigureRow(name, ranges[name], p5, p50, p95, int(col.size)))
    return rows


def cohort_realism(
    cohort: str | Path | Sequence[Study], ranges: Mapping[str, RealRange] | None = None
) -> RealismSummary:
    """Measure every anterior view of a cohort and set the figures against the real ranges.

    Args:
        cohort: a cohort folder or manifest (read with :func:`scintilab.ingest.load_cohort`,
            ingested on the spot when it has no manifest), or studies already read.
        ranges: the real ranges (default :func:`load_real_ranges`).

    Returns:
        A :class:`RealismSummary`; studies without an anterior view, or whose view cannot be
        read or measured, are skipped with the reason.
    """
    ranges = load_real_ranges() if ranges is None else ranges
    studies = load_cohort(cohort, with_shapes=False) if isinstance(cohort, (str, Path)) else cohort
    summary = RealismSummary(rows=[])
    for i in range(len(studies)):
        try:
            study = studies[i]
        except (InputError, OSError, ValueError) as err:
            summary.skipped.append((f"#{i}", str(err)))
            continue
        if study.anterior is None:
            summary.skipped.append((study.study_key, "no anterior view"))
            continue
        try:
            summary.per_study[study.study_key] = measure_view(study.anterior, study.pixel_spacing)
        except ValueError as err:
            summary.skipped.append((study.study_key, str(err)))
            continue
        summary.spacings.append(tuple(float(v) for v in study.pixel_spacing))
    summary.rows = summarise(summary.per_study.values(), ranges, summary.spacings)
    return summary
