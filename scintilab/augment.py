"""Parametric-variation augmentation: small rotations and translations (Guo et al. 2022).

The paper ("Data augmentation"): rotate by r in [0, r_T] degrees to the left or right about
the image's geometric centre, and translate by t in [0, t_T] pixels, +t or -t, horizontally
or vertically. Both limits are "determined according to the distribution of the
radiotracer uptake"; :func:`suggest_limits` reads that as "the body must stay inside the
field": t_T is the narrowest margin between the uptake's critical points and the field
border, r_T the smallest angle at which uptake would leave the field.

Counts are treated as counts, not as colours:

* no wrap-around: pixels entering the field are 0 (the background of a scan is < 1 count);
* integer translations copy pixels exactly, so the total inside the field is unchanged;
* rotation uses bilinear interpolation (order 1), a convex combination of neighbours: values
  never go negative and never exceed the original maximum, and the total is kept up to
  interpolation smoothing (no renormalisation, which would invent counts when uptake
  leaves the field).

Each augmented copy gets *both* a rotation and a translation, each parameter drawn
independently (``mode="both"``, the default, which matches the on-the-fly Keras layers of
:func:`augmentation_layers`); ``mode="either"`` applies one of the two per copy, the way the
paper's Fig. 3 illustrates them.

Sign conventions: positive degrees turn the image anticlockwise (to the *left*) as displayed
with row 0 at the top; ``dx > 0`` moves the image right, ``dy > 0`` moves it down.
This module imports Keras only inside :func:`augmentation_layers`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from scintilab.fusion import DEFAULT_SMOOTH, DEFAULT_THRESHOLD_FRACTION, critical_points, shift_image, smooth_image
from scintilab.utils import as_rng

#: Default maximum rotation (degrees). See :func:`suggest_limits` and the report in the
#: module doc: on a 256x1024 whole-body view with the shoulders ~110 columns from the
#: midline and ~300 rows above the centre, 3 degrees moves the shoulder edge ~16 pixels
#: sideways, about all the lateral margin a typical scan has; it is also the value the
#: paper illustrates (Fig. 3d).
DEFAULT_R_T = 3.0
#: Default maximum translation (pixels, on the stored matrix): the paper's Fig. 3c value
#: and within the lateral margin of a typical whole-body view.
DEFAULT_T_T = 3

AugParams = dict  # {"rotation": float deg, "dx": int, "dy": int}


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the geometric centre without changing the matrix size.

    Args:
        image: (rows, cols) counts.
        degrees: angle; positive = anticlockwise (left) as displayed, negative = right.

    Returns:
        float32 image; zero fill outside the rotated field; values in [0, max(image)].
    """
    img = np.asarray(image, dtype=np.float32)
    if degrees == 0:
        return img.copy()
    out = ndimage.rotate(img, float(degrees), reshape=False, order=1, mode="constant", cval=0.0, prefilter=False)
    # order-1 interpolation is a convex combination; the clip only removes float round-off
    return np.clip(out, 0.0, float(img.max()) if img.size else 0.0, out=out)


def translate(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Translate by ``dx`` columns (right positive) and ``dy`` rows (down positive).

    Args:
        image: (rows, cols) counts.
        dx: horizontal shift in pixels.
        dy: vertical shift in pixels.

    Returns:
        float32 image, zero fill, no wrap-around; exact copy for integer shifts.
    """
    return shift_image(image, dy, dx)


def apply_params(image: np.ndarray, params: AugParams) -> np.ndarray:
    """Apply a parameter set from :func:`random_augment` (rotation first, then translation).

    Used to give the anterior view, the flipped posterior view and their fusion the very
    same augmentation.

    Args:
        image: (rows, cols) counts.
        params: ``{"rotation": deg, "dx": px, "dy": px}``.

    Returns:
        float32 augmented image.
    """
    out = rotate(image, params.get("rotation", 0.0))
    dx, dy = params.get("dx", 0), params.get("dy", 0)
    if dx or dy:
        out = translate(out, dx, dy)
    return out


def draw_params(r_t: float, t_t: int, rng: np.random.Generator | int | None = None, mode: str = "both") -> AugParams:
    """Draw one parameter set the paper's way.

    r ~ U[0, r_T] turned left or right with equal odds; t an integer in [0, t_T] with sign
    + or - and axis horizontal or vertical with equal odds.

    Args:
        r_t: maximum rotation in degrees (>= 0).
        t_t: maximum translation in pixels (>= 0).
        rng: randomness.
        mode: ``both`` (rotation and translation) or ``either`` (one of the two).

    Returns:
        ``{"rotation": float, "dx": int, "dy": int}``.

    Raises:
        ValueError: negative limits or unknown mode.
    """
    if r_t < 0 or t_t < 0:
        raise ValueError(f"limits must be >= 0, got r_t={r_t}, t_t={t_t}")
    if mode not in ("both", "either"):
        raise ValueError(f"mode must be 'both' or 'either', got {mode!r}")
    gen = as_rng(rng)
    r = float(gen.uniform(0.0, r_t)) * (1 if gen.random() < 0.5 else -1)
    t = int(gen.integers(0, int(t_t) + 1)) * (1 if gen.random() < 0.5 else -1)
    horizontal = gen.random() < 0.5
    if mode == "either":
        if gen.random() < 0.5:
            t = 0
        else:
            r = 0.0
    return {"rotation": r, "dx": t if horizontal else 0, "dy": 0 if horizontal else t}


def params_str(params: AugParams | None) -> str:
    """Compact text form of a parameter set (``orig`` for none), stored in datasets."""
    if not params:
        return "orig"
    return f"r={params.get('rotation', 0.0):+.2f},dx={int(params.get('dx', 0)):+d},dy={int(params.get('dy', 0)):+d}"


def random_augment(
    image: np.ndarray,
    r_t: float = DEFAULT_R_T,
    t_t: int = DEFAULT_T_T,
    rng: np.random.Generator | int | None = None,
    mode: str = "both",
) -> tuple[np.ndarray, AugParams]:
    """One randomly augmented copy of an image.

    Args:
        image: (rows, cols) counts.
        r_t: maximum rotation in degrees.
        t_t: maximum translation in pixels.
        rng: randomness.
        mode: see :func:`draw_params`.

    Returns:
        (float32 augmented image, the parameters used).
    """
    params = draw_params(r_t, t_t, rng, mode)
    return apply_params(image, params), params


def augment_copies(
    image: np.ndarray,
    n: int,
    r_t: float = DEFAULT_R_T,
    t_t: int = DEFAULT_T_T,
    rng: np.random.Generator | int | None = None,
    mode: str = "both",
) -> list[tuple[np.ndarray, AugParams]]:
    """``n`` independently augmented copies of one image (the offline expansion, D2).

    Args:
        image: (rows, cols) counts.
        n: number of copies.
        r_t: maximum rotation in degrees.
        t_t: maximum translation in pixels.
        rng: randomness; the same seed gives the same copies.
        mode: see :func:`draw_params`.

    Returns:
        A list of (image, params).
    """
    gen = as_rng(rng)
    return [random_augment(image, r_t, t_t, gen, mode) for _ in range(int(n))]


def count_retention(image: np.ndarray, r_t: float, t_t: int) -> float:
    """Worst-case fraction of an image's counts kept in the field at the extreme parameters.

    Tries rotation by +-r_T and translation by +-t_T on each axis (combined, as
    ``mode="both"`` may draw them) and returns the smallest total-count ratio.

    Args:
        image: (rows, cols) counts.
        r_t: maximum rotation in degrees.
        t_t: maximum translation in pixels.

    Returns:
        A ratio in [0, ~1] (1 = nothing leaves the field).
    """
    img = np.asarray(image, dtype=np.float32)
    total = float(img.sum())
    if total <= 0:
        return 1.0
    worst = 1.0
    for r in {r_t, -r_t}:
        rot = rotate(img, r)
        for dx, dy in ((t_t, 0), (-t_t, 0), (0, t_t), (0, -t_t)):
            worst = min(worst, float(translate(rot, dx, dy).sum()) / total)
    return worst


def max_safe_rotation(mask: np.ndarray, limit: float = 15.0, step: float = 0.25) -> float:
    """Largest angle (degrees, both directions) that keeps every uptake pixel in the field.

    A rotation moves a set out of the field exactly when it moves a vertex of its convex
    hull out, and those vertices are among the leftmost and rightmost pixels of each row,
    so only those (at most 2 x rows points) are rotated.

    Args:
        mask: boolean (rows, cols) uptake mask.
        limit: the largest angle tried.
        step: angle resolution.

    Returns:
        The angle, a multiple of ``step`` in [0, limit].
    """
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return float(limit)
    sub = mask[rows]
    left = sub.argmax(axis=1)
    right = w - 1 - sub[:, ::-1].argmax(axis=1)
    y = np.concatenate([rows, rows]).astype(np.float64)
    x = np.concatenate([left, right]).astype(np.float64)
    cr, cc = (h - 1) / 2.0, (w - 1) / 2.0
    y, x = y - cr, x - cc
    safe = 0.0
    for a in np.arange(step, limit + step / 2, step):
        t = np.deg2rad(a) * np.array([1.0, -1.0])[:, None]
        # same convention as rotate(): positive turns anticlockwise as displayed
        ry = y[None] * np.cos(t) - x[None] * np.sin(t) + cr
        rx = y[None] * np.sin(t) + x[None] * np.cos(t) + cc
        if ry.min() < -0.5 or rx.min() < -0.5 or ry.max() > h - 0.5 or rx.max() > w - 0.5:
            break
        safe = float(a)
    return safe


def translation_retention(image: np.ndarray, t: int) -> float:
    """Worst-case fraction of counts kept by a translation of ``t`` pixels along either axis.

    Exact and cheap: a shift by t drops the t border rows or columns on the far side, so the
    loss is read from the row and column sums.

    Args:
        image: (rows, cols) counts.
        t: translation in pixels (>= 0).

    Returns:
        The smallest kept fraction over the four directions.
    """
    img = np.asarray(image, dtype=np.float64)
    total = img.sum()
    if total <= 0 or t <= 0:
        return 1.0
    rs, cs = img.sum(axis=1), img.sum(axis=0)
    lost = max(rs[:t].sum(), rs[-t:].sum(), cs[:t].sum(), cs[-t:].sum())
    return float(1.0 - lost / total)


def suggest_limits(
    images: list[np.ndarray] | np.ndarray,
    *,
    keep: float = 0.995,
    percentile: float = 5.0,
    r_max: float = 15.0,
    t_max: int = 30,
    threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
    smooth: int = DEFAULT_SMOOTH,
) -> dict[str, Any]:
    """Data-driven r_T and t_T from the distribution of uptake in the field.

    Per image: the largest translation (pixels, any axis, either sign) and the largest
    rotation (0.5 degree steps, either direction) that keep at least ``keep`` of the image's
    counts in the field. The suggestion is a low ``percentile`` of each over the images, so
    a few scans lying at the very edge do not force zero. The geometric limits (margin of the
    critical points to the border; rotation keeping every uptake pixel in) are returned per
    image as well: on whole-body views with the arms at the field's edge they are often 0,
    which is why the count criterion is the one suggested.

    Args:
        images: (rows, cols) count images in anterior orientation.
        keep: fraction of counts that must stay in the field.
        percentile: percentile over images of the per-image limits.
        r_max: largest rotation considered (degrees).
        t_max: largest translation considered (pixels).
        threshold_fraction: uptake threshold for the geometric diagnostics.
        smooth: box-filter side for the geometric diagnostics.

    Returns:
        ``{"r_t": float, "t_t": int, "keep": keep, "per_image": [{"t_keep", "r_keep",
        "margin_px", "safe_rotation"}, ...]}``.
    """
    per: list[dict[str, float]] = []
    for img in images:
        img = np.asarray(img, dtype=np.float32)
        if not (img > 0).any():
            continue
        t_keep = 0
        for t in range(1, int(t_max) + 1):
            if translation_retention(img, t) < keep:
                break
            t_keep = t
        r_keep = 0.0
        for r in np.arange(0.5, r_max + 0.25, 0.5):
            kept = min(float(rotate(img, sgn * r).sum()) for sgn in (1, -1)) / float(img.sum())
            if kept < keep:
                break
            r_keep = float(r)
        sm = smooth_image(img, smooth)
        thr = threshold_fraction * float(np.percentile(sm[sm > 0], 99.0))
        pts = critical_points(sm, thr, smooth=0)
        h, w = sm.shape
        margin = min(pts.ceil, h - 1 - pts.floor, pts.left, w - 1 - pts.right)
        per.append(
            {
                "t_keep": float(t_keep),
                "r_keep": r_keep,
                "margin_px": float(margin),
                "safe_rotation": max_safe_rotation(sm > thr, limit=r_max),
            }
        )
    if not per:
        return {"r_t": DEFAULT_R_T, "t_t": DEFAULT_T_T, "keep": keep, "per_image": []}
    return {
        "r_t": float(np.percentile([p["r_keep"] for p in per], percentile)),
        "t_t": int(np.floor(np.percentile([p["t_keep"] for p in per], percentile))),
        "keep": keep,
        "per_image": per,
    }


def uptake_histogram(
    images: list[np.ndarray], bins: np.ndarray | int = 50, upper: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of body-pixel counts (pixels > 0.5 count) pooled over images.

    Args:
        images: count images.
        bins: bin edges or number of bins.
        upper: upper edge when ``bins`` is a number (default: 99.9th percentile).

    Returns:
        (density per bin, bin edges).
    """
    vals = np.concatenate([np.asarray(i, dtype=np.float32)[np.asarray(i) > 0.5].ravel() for i in images])
    if vals.size == 0:
        vals = np.zeros(1, dtype=np.float32)
    if np.isscalar(bins):
        hi = float(np.percentile(vals, 99.9)) if upper is None else float(upper)
        # whole-count bin widths centred on integers: counts are integers, and bins of
        # fractional width would alternately catch one or two of them (a comb artefact)
        step = max(1, int(np.ceil(hi / int(bins))))
        bins = np.arange(0.5, max(hi, 1.0) + step, step)
    dens, edges = np.histogram(vals, bins=bins, density=True)
    return dens, edges


def augmentation_layers(r_t: float, t_t: int, image_hw: tuple[int, int], seed: int | None = None) -> Any:
    """On-the-fly augmentation as Keras layers (runs on the accelerator, on every backend).

    ``RandomRotation`` by up to +-r_T degrees and ``RandomTranslation`` by up to t_T pixels,
    both bilinear with constant zero fill (no wrap-around, no negative counts, no value
    above the input maximum). Difference from the offline expansion: Keras draws the
    horizontal and vertical shifts independently (both axes at once, continuous), while the
    paper shifts one axis by a whole number of pixels; the range is the same.

    Args:
        r_t: maximum rotation in degrees.
        t_t: maximum translation in pixels of the *model input* (after resampling).
        image_hw: (rows, cols) of the model input.
        seed: layer seed (reproducible draws).

    Returns:
        A ``keras.Sequential`` expecting (batch, rows, cols, channels) float tensors; it
        augments only when called with ``training=True``.
    """
    import keras  # lazy: the rest of this module must not pay for Keras

    h, w = image_hw
    layers = []
    if r_t > 0:
        layers.append(
            keras.layers.RandomRotation(
                factor=float(r_t) / 360.0,
                fill_mode="constant",
                fill_value=0.0,
                interpolation="bilinear",
                seed=seed,
                name="paper_rotation",
            )
        )
    if t_t > 0:
        layers.append(
            keras.layers.RandomTranslation(
                height_factor=float(t_t) / h,
                width_factor=float(t_t) / w,
                fill_mode="constant",
                fill_value=0.0,
                interpolation="bilinear",
                seed=None if seed is None else seed + 1,
                name="paper_translation",
            )
        )
    return keras.Sequential(layers, name="paper_augmentation")


def save_augmentation_config(path: str | Path, r_t: float, t_t: int, mode: str = "both", **extra: Any) -> Path:
    """Write the chosen limits as JSON for the training configuration.

    Args:
        path: the JSON file (``augmentation.json``); parent folders are created.
        r_t: maximum rotation in degrees.
        t_t: maximum translation in pixels (of the stored matrix).
        mode: ``both`` or ``either``.
        **extra: anything else worth recording (e.g. the suggested values, the cohort size).

    Returns:
        The path written.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"r_t": float(r_t), "t_t": int(t_t), "mode": mode, **extra}
    p.write_text(json.dumps(cfg, indent=2, default=float) + "\n")
    return p


def load_augmentation_config(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_augmentation_config` (``r_t``, ``t_t``, ``mode``)."""
    cfg = json.loads(Path(path).read_text())
    cfg["r_t"] = float(cfg.get("r_t", DEFAULT_R_T))
    cfg["t_t"] = int(cfg.get("t_t", DEFAULT_T_T))
    cfg.setdefault("mode", "both")
    return cfg


def retention_grid(images: list[np.ndarray], r_values: list[float], t_values: list[int]) -> np.ndarray:
    """Worst-case fraction of counts kept in the field, over images, for each (r_T, t_T).

    Args:
        images: count images in anterior orientation.
        r_values: rotation limits (degrees).
        t_values: translation limits (pixels).

    Returns:
        (len(r_values), len(t_values)) array: the minimum over images of
        :func:`count_retention`.
    """
    out = np.ones((len(r_values), len(t_values)), dtype=np.float64)
    for i, r in enumerate(r_values):
        for j, t in enumerate(t_values):
            out[i, j] = min((count_retention(img, r, t) for img in images), default=1.0)
    return out
