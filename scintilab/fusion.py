"""View fusion: flip the posterior view, align it to the anterior one, aggregate pixel-wise.

Guo et al. 2022 ("View aggregation") fuse the two views of a whole-body scan in three steps:

1. flip the posterior view left-right about its central vertical line, so that the patient's
   left is on the same side in both views;
2. sweep a horizontal line down/up and a vertical line left/right over each view until the
   line meets uptake above a threshold; the four lines found are the *critical points*
   ``ceil``, ``floor``, ``left`` and ``right``; align the two views so that their critical
   points coincide;
3. add the aligned views pixel by pixel.

Besides the paper's addition this module offers the mean, the maximum and the geometric
mean ``sqrt(ANT * POST)`` (the conjugate-view combination used in nuclear-medicine
quantification, which cancels the depth dependence of attenuation).

Sign convention: :attr:`FusionResult.shift` is the (rows, cols) translation *applied to the
flipped posterior view* to bring it onto the anterior one, i.e.
``aligned[r, c] = flipped[r - shift[0], c - shift[1]]``. Pixels that enter the field from
outside are 0 (no wrap-around).

Everything here is vectorised NumPy/SciPy and works on any matrix size (128x512, 256x1024,
512x2048, ...). This module never imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from scintilab.errors import InputError
from scintilab.study import Study

#: Aggregation functions offered by :func:`fuse` (``add`` is the paper's).
METHODS: tuple[str, ...] = ("add", "mean", "max", "geometric")

#: Default fraction of the reference percentile that counts as "uptake" for the sweep.
DEFAULT_THRESHOLD_FRACTION = 0.1
#: Percentile of the smoothed body pixels used as the reference level for the threshold.
DEFAULT_REFERENCE_PERCENTILE = 99.0
#: Default side of the box filter applied before sweeping (pixels).
DEFAULT_SMOOTH = 5


@dataclass
class CriticalPoints:
    """The four lines where a sweep first meets uptake (all inclusive pixel indices).

    Attributes:
        ceil: first row from the top with uptake above the threshold.
        floor: last row (from the bottom) with uptake above the threshold.
        left: first column from the left with uptake above the threshold.
        right: last column with uptake above the threshold.
    """

    ceil: int
    floor: int
    left: int
    right: int

    @property
    def height(self) -> int:
        """Rows spanned by uptake (the vertical sweep length)."""
        return self.floor - self.ceil + 1

    @property
    def width(self) -> int:
        """Columns spanned by uptake."""
        return self.right - self.left + 1

    @property
    def centre(self) -> tuple[float, float]:
        """(row, col) centre of the box the four points span."""
        return (self.ceil + self.floor) / 2.0, (self.left + self.right) / 2.0

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(ceil, floor, left, right)``."""
        return self.ceil, self.floor, self.left, self.right


@dataclass
class FusionResult:
    """A fused study plus the diagnostics needed to judge the fusion.

    Attributes:
        image: the fused image, float32 (rows, cols), in the anterior view's frame.
        anterior: the anterior view as float32.
        posterior_flipped_aligned: the posterior view flipped left-right and aligned, float32.
        points_ant: critical points of the anterior view.
        points_post: critical points of the flipped posterior view (before alignment).
        shift: (rows, cols) translation applied to the flipped posterior (see module doc).
        scale: scale factor applied to the flipped posterior (1.0 unless ``scale=True``).
        overlap: intersection over union of the two uptake masks after alignment (0..1).
        method: the aggregation used (one of :data:`METHODS`).
        threshold_ant: threshold used on the anterior view (counts).
        threshold_post: threshold used on the posterior view (counts).
        posterior_flipped: the flipped posterior before alignment, float32.
        single_view: ``"ANT"`` or ``"POST"`` when the study holds that view only: then
            ``image`` is that view alone in the anterior frame (a posterior mirrored),
            ``posterior_flipped_aligned`` is zeros, the shift is (0, 0) and ``overlap`` NaN.
        flags: remarks on the fusion (a single view says so here).
    """

    image: np.ndarray
    anterior: np.ndarray
    posterior_flipped_aligned: np.ndarray
    points_ant: CriticalPoints
    points_post: CriticalPoints
    shift: tuple[float, float]
    scale: float
    overlap: float
    method: str = "add"
    threshold_ant: float = 0.0
    threshold_post: float = 0.0
    posterior_flipped: np.ndarray | None = field(default=None, repr=False)
    single_view: str | None = None
    flags: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Diagnostics as a flat dict (no pixels), e.g. for a table row."""
        return {
            "method": self.method,
            "shift_rows": self.shift[0],
            "shift_cols": self.shift[1],
            "scale": self.scale,
            "overlap": round(float(self.overlap), 4),
            "ant_points": self.points_ant.as_tuple(),
            "post_points": self.points_post.as_tuple(),
            "threshold_ant": round(float(self.threshold_ant), 3),
            "threshold_post": round(float(self.threshold_post), 3),
            "single_view": self.single_view or "",
        }


def flip_posterior(posterior: np.ndarray) -> np.ndarray:
    """Mirror the posterior view left-right about its central vertical line.

    Args:
        posterior: the posterior view as stored, (rows, cols).

    Returns:
        A new float32 array in anterior orientation (patient's right on the image left).
    """
    return np.ascontiguousarray(np.asarray(posterior, dtype=np.float32)[:, ::-1])


def smooth_image(image: np.ndarray, smooth: int = DEFAULT_SMOOTH) -> np.ndarray:
    """Box-filter an image so that single Poisson-noise pixels do not stop a sweep.

    Args:
        image: (rows, cols) counts.
        smooth: side of the square box in pixels; 0 or 1 leaves the image unchanged.

    Returns:
        float32 smoothed image.
    """
    img = np.asarray(image, dtype=np.float32)
    if smooth is None or smooth <= 1:
        return img
    return ndimage.uniform_filter(img, size=int(smooth), mode="constant", cval=0.0)


def default_threshold(
    image: np.ndarray,
    smooth: int = DEFAULT_SMOOTH,
    fraction: float = DEFAULT_THRESHOLD_FRACTION,
    percentile: float = DEFAULT_REFERENCE_PERCENTILE,
) -> float:
    """The robust default sweep threshold: ``fraction`` x a high percentile of body counts.

    Why: the background outside the body is well under one count per pixel, soft tissue a
    few counts, normal bone tens. The 99th percentile of the smoothed *nonzero* pixels sits
    in bone (a bladder or injection site covers far fewer than 1 % of the pixels, so hot
    spots barely move it), and a tenth of it lies between the background and the body, on
    any matrix size and for any total count (the threshold scales with the scan).

    Args:
        image: (rows, cols) counts.
        smooth: box-filter side used before taking the percentile.
        fraction: fraction of the reference level.
        percentile: percentile of the nonzero smoothed pixels used as the reference level.

    Returns:
        The threshold in the image's units (0.0 for an empty image).
    """
    sm = smooth_image(image, smooth)
    body = sm[sm > 0]
    if body.size == 0:
        return 0.0
    return float(fraction * np.percentile(body, percentile))


def _sweep(profile: np.ndarray) -> tuple[int, int]:
    """First and last index where a boolean profile is True."""
    idx = np.flatnonzero(profile)
    return int(idx[0]), int(idx[-1])


def critical_points(
    image: np.ndarray,
    threshold: float | None = None,
    smooth: int = DEFAULT_SMOOTH,
) -> CriticalPoints:
    """Find the ceil, floor, left and right critical points of one view.

    A horizontal line sweeps from the top (ceil) and from the bottom (floor), a vertical line
    from the left and from the right, each stopping at the first line holding a smoothed
    pixel above ``threshold``. Vectorised: the sweep is the row/column maxima profile.

    Args:
        image: (rows, cols) counts in anterior orientation.
        threshold: uptake level in the image's units; None uses :func:`default_threshold`.
        smooth: box-filter side (pixels) applied first; 0 or 1 disables smoothing.

    Returns:
        The four critical points.

    Raises:
        InputError: the image is not 2-D or no pixel rises above the threshold.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise InputError(None, f"a view must be a 2-D image, got shape {img.shape}")
    sm = smooth_image(img, smooth)
    thr = _threshold_of_smoothed(sm) if threshold is None else float(threshold)
    return _points_of_smoothed(sm, thr)


def _threshold_of_smoothed(sm: np.ndarray, fraction: float = DEFAULT_THRESHOLD_FRACTION) -> float:
    body = sm[sm > 0]
    if body.size == 0:
        return 0.0
    return float(fraction * np.percentile(body, DEFAULT_REFERENCE_PERCENTILE))


def _points_of_smoothed(sm: np.ndarray, thr: float) -> CriticalPoints:
    above = sm > thr
    rows = above.any(axis=1)
    if not rows.any():
        raise InputError(None, f"no uptake above threshold {thr:.3g} (empty or blank view)")
    cols = above.any(axis=0)
    ceil, floor = _sweep(rows)
    left, right = _sweep(cols)
    return CriticalPoints(ceil=ceil, floor=floor, left=left, right=right)


def shift_image(image: np.ndarray, rows: float, cols: float) -> np.ndarray:
    """Translate an image by (rows, cols) pixels with zero fill (no wrap-around).

    Integer shifts copy pixels exactly (no interpolation, total counts inside the field are
    unchanged); fractional shifts use bilinear interpolation, a convex combination of
    neighbours, so counts never go negative or above the original maximum.

    Args:
        image: (rows, cols) array.
        rows: shift down (positive) or up (negative).
        cols: shift right (positive) or left (negative).

    Returns:
        float32 array of the same shape.
    """
    img = np.asarray(image, dtype=np.float32)
    if float(rows).is_integer() and float(cols).is_integer():
        dr, dc = int(rows), int(cols)
        out = np.zeros_like(img)
        h, w = img.shape
        if abs(dr) >= h or abs(dc) >= w:
            return out
        src_r = slice(max(0, -dr), h - max(0, dr))
        dst_r = slice(max(0, dr), h - max(0, -dr))
        src_c = slice(max(0, -dc), w - max(0, dc))
        dst_c = slice(max(0, dc), w - max(0, -dc))
        out[dst_r, dst_c] = img[src_r, src_c]
        return out
    out = ndimage.shift(img, (rows, cols), order=1, mode="constant", cval=0.0, prefilter=False)
    return np.clip(out, 0.0, None, out=out)


def _scale_about(
    image: np.ndarray, scale: float, centre: tuple[float, float], target: tuple[float, float]
) -> np.ndarray:
    """Scale about ``centre`` then move ``centre`` onto ``target`` (bilinear, zero fill)."""
    img = np.asarray(image, dtype=np.float32)
    # affine_transform maps output coords o to input coords i = o / scale + offset.
    offset = np.array(centre) - np.array(target) / scale
    out = ndimage.affine_transform(
        img, np.array([1.0 / scale, 1.0 / scale]), offset=offset, order=1, mode="constant", cval=0.0, prefilter=False
    )
    return np.clip(out, 0.0, None, out=out)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def align_views(
    anterior: np.ndarray,
    posterior: np.ndarray,
    *,
    flip: bool = True,
    threshold: float | None = None,
    smooth: int = DEFAULT_SMOOTH,
    scale: bool = False,
    threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
) -> FusionResult:
    """Flip the posterior view and align it to the anterior one by their critical points.

    The translation is the mean of the ceil/floor differences (rows) and of the left/right
    differences (cols), rounded to whole pixels so that pixels are copied, not interpolated.
    With ``scale=True`` the flipped posterior is also scaled by the ratio of the two vertical
    sweep lengths (``height_ant / height_post``) about its box centre, for sweeps that
    differ in length; then the shift is the (fractional) move of the box centre.

    Args:
        anterior: ANT view (rows, cols) as stored.
        posterior: POST view (rows, cols) as stored (not flipped), same shape as ``anterior``.
        flip: flip the posterior left-right first (False if it is already flipped).
        threshold: sweep threshold for both views; None = :func:`default_threshold` per view
            (each view gets its own, so the brighter posterior spine does not bias it).
        smooth: box-filter side used by the sweep.
        scale: also correct a differing sweep length by scaling.
        threshold_fraction: with ``threshold=None``, the fraction of each view's 99th
            percentile used as its threshold (the explorer's slider moves this).

    Returns:
        A :class:`FusionResult` whose ``image`` is the anterior view (no aggregation yet;
        :func:`fuse` fills it in) and whose ``method`` is ``"none"``.

    Raises:
        InputError: views of different shapes, or a view with no uptake.
    """
    ant = np.asarray(anterior, dtype=np.float32)
    post = np.asarray(posterior, dtype=np.float32)
    if ant.ndim != 2 or post.ndim != 2:
        raise InputError(None, f"views must be 2-D, got {ant.shape} and {post.shape}")
    if ant.shape != post.shape:
        raise InputError(None, f"ANT {ant.shape} and POST {post.shape} differ in matrix size")
    post_f = flip_posterior(post) if flip else post.copy()
    # smooth each view once: thresholds, sweeps and the overlap mask all reuse it
    sm_a, sm_p = smooth_image(ant, smooth), smooth_image(post_f, smooth)
    thr_a = _threshold_of_smoothed(sm_a, threshold_fraction) if threshold is None else float(threshold)
    thr_p = _threshold_of_smoothed(sm_p, threshold_fraction) if threshold is None else float(threshold)
    pa = _points_of_smoothed(sm_a, thr_a)
    pp = _points_of_smoothed(sm_p, thr_p)
    factor = 1.0
    if scale and pp.height > 1:
        factor = pa.height / pp.height
    if scale and abs(factor - 1.0) > 1e-6:
        ca, cp = pa.centre, pp.centre
        aligned = _scale_about(post_f, factor, cp, ca)
        shift = (float(ca[0] - cp[0]), float(ca[1] - cp[1]))
        mask_p = _scale_about(sm_p, factor, cp, ca) > thr_p
    else:
        factor = 1.0
        dr = round(((pa.ceil - pp.ceil) + (pa.floor - pp.floor)) / 2.0)
        dc = round(((pa.left - pp.left) + (pa.right - pp.right)) / 2.0)
        shift = (float(dr), float(dc))
        aligned = shift_image(post_f, dr, dc)
        mask_p = shift_image(sm_p, dr, dc) > thr_p
    mask_a = sm_a > thr_a
    return FusionResult(
        image=ant,
        anterior=ant,
        posterior_flipped_aligned=aligned,
        points_ant=pa,
        points_post=pp,
        shift=shift,
        scale=float(factor),
        overlap=_mask_iou(mask_a, mask_p),
        method="none",
        threshold_ant=thr_a,
        threshold_post=thr_p,
        posterior_flipped=post_f,
    )


def aggregate(anterior: np.ndarray, posterior: np.ndarray, method: str = "add") -> np.ndarray:
    """Pixel-wise aggregation of two aligned views.

    ``add``: A + P (the paper's Eq. 1); ``mean``: (A + P) / 2; ``max``: max(A, P);
    ``geometric``: sqrt(A * P), the conjugate-view mean (0 wherever either view is 0).

    Args:
        anterior: aligned anterior view.
        posterior: aligned, flipped posterior view of the same shape.
        method: one of :data:`METHODS`.

    Returns:
        float32 image.

    Raises:
        ValueError: unknown method.
    """
    a = np.asarray(anterior, dtype=np.float32)
    p = np.asarray(posterior, dtype=np.float32)
    if method == "add":
        return a + p
    if method == "mean":
        return (a + p) * np.float32(0.5)
    if method == "max":
        return np.maximum(a, p)
    if method == "geometric":
        # clip guards against tiny negatives from lossy inputs: sqrt of a negative is NaN
        return np.sqrt(np.clip(a, 0, None) * np.clip(p, 0, None))
    raise ValueError(f"unknown aggregation {method!r}; expected one of {METHODS}")


def fuse(
    anterior: np.ndarray,
    posterior: np.ndarray,
    *,
    method: str = "add",
    threshold: float | None = None,
    smooth: int = DEFAULT_SMOOTH,
    scale: bool = False,
    flip: bool = True,
    threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
) -> FusionResult:
    """Flip, align and aggregate the two views of one study (the paper's view aggregation).

    Args:
        anterior: ANT view (rows, cols) as stored.
        posterior: POST view as stored (flipped here unless ``flip=False``).
        method: aggregation, one of :data:`METHODS` (``add`` = the paper).
        threshold: sweep threshold; None = the robust per-view default.
        smooth: box-filter side used by the sweep.
        scale: also correct a differing sweep length.
        flip: flip the posterior view first.
        threshold_fraction: see :func:`align_views`.

    Returns:
        The fused image with its diagnostics.

    Raises:
        InputError: mismatched or empty views.
        ValueError: unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}; expected one of {METHODS}")
    res = align_views(
        anterior,
        posterior,
        flip=flip,
        threshold=threshold,
        smooth=smooth,
        scale=scale,
        threshold_fraction=threshold_fraction,
    )
    res.image = aggregate(res.anterior, res.posterior_flipped_aligned, method)
    res.method = method
    return res


def single_view_result(
    image: np.ndarray,
    view: str,
    *,
    method: str = "add",
    smooth: int = DEFAULT_SMOOTH,
    threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
) -> FusionResult:
    """The "fusion" of a study that holds one view: that view alone, flagged.

    Args:
        image: the one view as stored.
        view: ``"ANT"`` or ``"POST"`` (a posterior is mirrored into the anterior frame, as
            :func:`fuse` does before aggregating).
        method: recorded only (nothing is aggregated).
        smooth, threshold_fraction: as for :func:`align_views` (the critical points).

    Returns:
        A :class:`FusionResult` with ``single_view`` set and a flag saying so.

    Raises:
        InputError: the view is not 2-D or holds no uptake.
    """
    view = view.upper()
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(None, f"a view must be a 2-D image, got shape {img.shape}")
    oriented = flip_posterior(img).astype(np.float32) if view == "POST" else img
    sm = smooth_image(oriented, smooth)
    thr = _threshold_of_smoothed(sm, threshold_fraction)
    pts = _points_of_smoothed(sm, thr)
    other = "POST" if view == "ANT" else "ANT"
    return FusionResult(
        image=oriented.copy(),
        anterior=oriented if view == "ANT" else np.zeros_like(oriented),
        posterior_flipped_aligned=oriented if view == "POST" else np.zeros_like(oriented),
        points_ant=pts,
        points_post=pts,
        shift=(0.0, 0.0),
        scale=1.0,
        overlap=float("nan"),
        method=method,
        threshold_ant=thr if view == "ANT" else 0.0,
        threshold_post=thr if view == "POST" else 0.0,
        single_view=view,
        flags=[f"one view only ({view}; {other} missing): the fused image is the {view} view alone"],
    )


def fuse_study(study: Study, **kw: Any) -> FusionResult:
    """Fuse the two views of a :class:`~scintilab.study.Study` (one view: that view alone).

    Args:
        study: a study holding both views, or one (then :func:`single_view_result`: the
            result says so in ``single_view`` and ``flags``).
        **kw: passed to :func:`fuse` (method, threshold, smooth, scale).

    Returns:
        The fused result.

    Raises:
        InputError: the study holds no view, or its views cannot be fused; the message
            names the study by its pseudonymous key only.
    """
    try:
        if study.anterior is None and study.posterior is None:
            raise InputError(None, "cannot fuse: the study holds no view")
        if study.anterior is None or study.posterior is None:
            view = "ANT" if study.anterior is not None else "POST"
            return single_view_result(
                study.view(view),
                view,
                method=kw.get("method", "add"),
                smooth=kw.get("smooth", DEFAULT_SMOOTH),
                threshold_fraction=kw.get("threshold_fraction", DEFAULT_THRESHOLD_FRACTION),
            )
        return fuse(study.anterior, study.posterior, **kw)
    except InputError as err:
        raise InputError(study.study_key, err.problem) from None


def alignment_table(studies: Any, limit: int | None = None, **kw: Any) -> tuple[Any, list[tuple[str, str]]]:
    """Align every study of a cohort and tabulate the diagnostics (a batch: bad studies skipped).

    Args:
        studies: a sequence of :class:`~scintilab.study.Study` (lazy is fine).
        limit: only the first ``limit`` studies (None or 0 = all).
        **kw: passed to :func:`fuse` (threshold, threshold_fraction, smooth, scale).

    Returns:
        (DataFrame with one row per fused study: study_key, label, shift_rows, shift_cols,
        scale, overlap, ceil/floor/left/right of both views; list of (study_key, reason)
        for the studies skipped).
    """
    import pandas as pd  # lazy: only the table needs pandas

    rows: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    n = len(studies) if not limit else min(int(limit), len(studies))
    for i in range(n):
        s = studies[i]
        try:
            r = fuse_study(s, **kw)
        except InputError as err:
            skipped.append((s.study_key, err.problem))
            continue
        rows.append(
            {
                "study_key": s.study_key,
                "label": s.label,
                "shift_rows": r.shift[0],
                "shift_cols": r.shift[1],
                "scale": r.scale,
                "overlap": round(r.overlap, 4),
                **{f"ant_{k}": v for k, v in zip(("ceil", "floor", "left", "right"), r.points_ant.as_tuple())},
                **{f"post_{k}": v for k, v in zip(("ceil", "floor", "left", "right"), r.points_post.as_tuple())},
            }
        )
    return pd.DataFrame(rows), skipped
