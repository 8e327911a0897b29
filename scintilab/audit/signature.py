"""Image signatures for the cohort audit: cheap per-study features that survive small
shifts, crops, matrix changes and intensity scaling.

Each study is reduced once (streaming, so a cohort of many thousands never sits in memory)
to a :class:`StudyFeatures`: counts, body box (the paper's "critical points": first and
last rows and columns where a sweeping line meets uptake), a coarse thumbnail of the body
box per view, the body's row profile and width profile. Duplicates are then found by
comparing L2-normalised thumbnail vectors with a matrix product, block by block, keeping
only each study's few nearest neighbours: O(n^2 d) multiply-adds with a small ``d``, no
full-resolution comparison except for the few candidate pairs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from scintilab.study import Study

#: Thumbnail size (rows, cols) of the body box: whole-body views are about 4:1.
THUMB: tuple[int, int] = (64, 16)
#: Finer thumbnail for left-right asymmetry (the injection site is small).
THUMB_FINE: tuple[int, int] = (128, 32)
#: Samples along the body's length for the row and width profiles.
PROFILE_LEN: int = 64
#: The duplicate-search window in mm (rows from the vertex down, columns about the midline).
WINDOW_MM: tuple[float, float] = (2000.0, 640.0)


def _span_matrix(n_in: int, n_out: int, start: float, length: float) -> np.ndarray:
    """(n_out, n_in) weights averaging ``n_out`` equal cells of ``[start, start + length)``.

    Sub-pixel ``start`` and ``length`` (in input pixels); pixels outside ``[0, n_in)`` count
    as zero, so a window reaching past the image edge sees empty background.
    """
    edges = start + np.linspace(0.0, length, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    w = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return (w / (hi - lo)).astype(np.float32)


def _mm_window(img: np.ndarray, spacing: tuple[float, float], top: float, centre: float) -> np.ndarray:
    """Mean counts in a fixed window in millimetres below the vertex, centred on the body.

    Anchoring at the vertex and at the count-weighted centre (both to a fraction of a
    pixel), with a size in mm rather than the body box, keeps the window still when a
    copy loses margins, a few centimetres of feet or arms, or is re-exported at another
    matrix size.
    """
    h = WINDOW_MM[0] / spacing[0]
    w = WINDOW_MM[1] / spacing[1]
    R = _span_matrix(img.shape[0], THUMB[0], top, h)
    Cm = _span_matrix(img.shape[1], THUMB[1], centre - w / 2, w)
    return (R @ img.astype(np.float32) @ Cm.T).astype(np.float32)


def _vertex(img: np.ndarray) -> float:
    """Sub-pixel row of the vertex: where the cumulative row counts pass 0.1 %."""
    rc = np.cumsum(img.sum(axis=1, dtype=np.float64))
    if rc[-1] <= 0:
        return 0.0
    x = np.concatenate([[0.0], rc]) / rc[-1]
    return float(np.interp(0.001, x, np.arange(len(x), dtype=np.float64)))


@dataclass
class ViewFeatures:
    """What the audit keeps of one view.

    Attributes:
        counts: total counts.
        max: the largest pixel value.
        n_at_max: how many pixels hold that value (a plateau means clipping).
        nonzero: pixels above zero.
        box: body box ``(top, bottom, left, right)`` in pixels, or None when no body.
        edge_uptake: mean row uptake at the top and bottom body rows, relative to the
            median body row (a body cut by the image edge keeps high uptake there).
        thumb: coarse thumbnail of the body box (sqrt counts, scaled to unit sum).
        thumb_fine: finer thumbnail of the body box (counts, unit sum).
        thumb_frame: thumbnail of the whole frame (sqrt counts, unit sum) for exact geometry.
        row_profile: mean uptake per row along the body box, unit sum.
        thumb_mm: thumbnail of a fixed window in mm below the vertex (duplicate search).
        width_profile: body width (mm) along the body box.
        extent_mm: body length (mm) between the 0.2 and 99.8 percentiles of row counts.
    """

    counts: float
    max: float
    n_at_max: int
    nonzero: int
    box: tuple[int, int, int, int] | None
    edge_uptake: tuple[float, float]
    thumb: np.ndarray
    thumb_fine: np.ndarray
    thumb_frame: np.ndarray
    row_profile: np.ndarray
    width_profile: np.ndarray
    extent_mm: float = 0.0
    thumb_mm: np.ndarray | None = None


@dataclass
class StudyFeatures:
    """Per-study features: both views (POST flipped left-right to match ANT) and facts.

    Attributes:
        study_key: the manifest's study key.
        patient_key: the manifest's patient key.
        shape: stored matrix (rows, cols).
        spacing: pixel spacing (row, col) in mm.
        ant: ANT features or None.
        post: POST features (computed on the flipped view) or None.
        pixel_hash: SHA-1 of both views' pixels and shapes (exact duplicates).
        error: why features could not be computed (then the rest is empty).
    """

    study_key: str
    patient_key: str
    shape: tuple[int, int]
    spacing: tuple[float, float]
    ant: ViewFeatures | None
    post: ViewFeatures | None
    pixel_hash: str
    error: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def views(self) -> list[ViewFeatures]:
        """Views present."""
        return [v for v in (self.ant, self.post) if v is not None]


@lru_cache(maxsize=256)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights averaging each output cell's share of input pixels."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    w = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def area_resize(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize by area averaging (anti-aliased, exact for counts) with two matrix products.

    Much faster than a Gaussian-prefiltered resize for the large reductions used here
    (1024x256 to 64x16), which matters at many thousands of studies.
    """
    x = np.asarray(img, np.float32)
    if x.ndim == 1:
        return _area_matrix(x.shape[0], shape[0]) @ x
    return _area_matrix(x.shape[0], shape[0]) @ x @ _area_matrix(x.shape[1], shape[1]).T


def body_box(img: np.ndarray, frac: float = 0.04) -> tuple[int, int, int, int] | None:
    """The body's critical points: first/last rows and columns with uptake.

    The image is smoothed first because single background counts (Poisson noise, well
    under one count per pixel) would otherwise stretch the box to the frame.

    Args:
        img: one view (rows, cols).
        frac: threshold as a fraction of the smoothed image's 99.5th percentile.

    Returns:
        ``(top, bottom, left, right)`` inclusive, or None when nothing stands out.
    """
    f = img.astype(np.float32)
    k = max(3, int(round(min(img.shape) / 32)))
    sm = ndi.uniform_filter(f, k)
    hi = float(np.percentile(sm, 99.5))
    # Background level: lossy copies and some cameras carry a floor of counts everywhere.
    bg = float(np.percentile(sm, 10))
    if hi <= bg:
        return None
    mask = sm > bg + frac * (hi - bg)
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    if rows.size < 2 or cols.size < 2:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _unit_sum(x: np.ndarray) -> np.ndarray:
    s = float(x.sum())
    return (x / s).astype(np.float32) if s > 0 else x.astype(np.float32)


def view_features(img: np.ndarray, spacing: tuple[float, float]) -> ViewFeatures:
    """Features of one view (already in ANT orientation)."""
    f = img.astype(np.float32)
    mx = float(f.max()) if f.size else 0.0
    box = body_box(img)
    empty = np.zeros(THUMB, np.float32), np.zeros(THUMB_FINE, np.float32)
    frame = _unit_sum(np.sqrt(area_resize(f, THUMB)))
    if box is None:
        return ViewFeatures(
            float(f.sum()),
            mx,
            int((f == mx).sum()),
            int((f > 0).sum()),
            None,
            (0.0, 0.0),
            empty[0],
            empty[1],
            frame,
            np.zeros(PROFILE_LEN, np.float32),
            np.zeros(PROFILE_LEN, np.float32),
        )
    top, bottom, left, right = box
    crop = f[top : bottom + 1, left : right + 1]
    thumb = _unit_sum(np.sqrt(area_resize(crop, THUMB)))
    fine = _unit_sum(area_resize(crop, THUMB_FINE))
    rowmean = crop.mean(axis=1)
    prof = _unit_sum(area_resize(rowmean, (PROFILE_LEN,)))
    # Body width along the body: the spread (5th-95th percentile column) of counts in each
    # of PROFILE_LEN bands of rows. Percentiles of counts, unlike a threshold, do not move
    # with noise, counts or a background floor, so two acquisitions of one body agree.
    bands = area_resize(crop, (PROFILE_LEN, crop.shape[1]))
    cum = np.cumsum(np.clip(bands, 0, None), axis=1)
    tot = np.maximum(cum[:, -1:], 1e-9)
    x = np.arange(cum.shape[1], dtype=np.float64)
    # Sub-pixel crossings (linear interpolation), so the width is not stuck to whole pixels.
    wprof = np.array(
        [np.interp(0.95 * t[0], c, x) - np.interp(0.05 * t[0], c, x) for c, t in zip(cum, tot)], np.float32
    ) * float(spacing[1])
    med_row = float(np.median(rowmean)) or 1.0
    k = max(2, (bottom - top) // 100)
    edge = (float(rowmean[:k].mean()) / med_row, float(rowmean[-k:].mean()) / med_row)
    rc = np.cumsum(f.sum(axis=1))
    extent = float(((rc < 0.998 * rc[-1]).sum() - (rc < 0.002 * rc[-1]).sum()) * spacing[0])
    colsum = f.sum(axis=0)
    centre = float((colsum * np.arange(f.shape[1])).sum() / max(colsum.sum(), 1e-9))
    tmm = _unit_sum(np.sqrt(np.clip(_mm_window(f, spacing, _vertex(f) - 40.0 / spacing[0], centre), 0, None)))
    return ViewFeatures(
        float(f.sum()),
        mx,
        int((f == mx).sum()),
        int((f > 0).sum()),
        box,
        edge,
        thumb,
        fine,
        frame,
        prof,
        wprof,
        extent,
        tmm,
    )


def pixel_hash(study: Study) -> str:
    """SHA-1 over both views' shapes and pixel bytes: equal only for identical pixels."""
    h = hashlib.sha1()
    for v in (study.anterior, study.posterior):
        if v is None:
            h.update(b"none")
        else:
            a = np.ascontiguousarray(v.astype(np.uint16, copy=False))
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def study_features(study: Study) -> StudyFeatures:
    """Features of one study; POST is flipped left-right so both views face the same way."""
    sp = tuple(float(x) for x in study.pixel_spacing)
    ant = None if study.anterior is None else view_features(study.anterior, sp)
    post = None if study.posterior is None else view_features(study.posterior[:, ::-1], sp)
    return StudyFeatures(study.study_key, study.patient_key, study.shape_hw, sp, ant, post, pixel_hash(study))


def signature_vector(feat: StudyFeatures) -> np.ndarray:
    """The duplicate-search vector: both views' vertex-anchored thumbnails, centred, unit length.

    A window fixed in mm below the vertex and about the body's centre makes it ignore
    shifts, margins, small crops and matrix size; centring and normalising make it ignore
    intensity scaling. A missing view contributes zeros.
    """
    parts = []
    for v in (feat.ant, feat.post):
        ok = v is not None and v.thumb_mm is not None
        parts.append(v.thumb_mm.ravel() if ok else np.zeros(THUMB, np.float32).ravel())
    x = np.concatenate(parts).astype(np.float32)
    x = x - x.mean()
    n = float(np.linalg.norm(x))
    return x / n if n > 0 else x


def shape_vector(feat: StudyFeatures) -> np.ndarray:
    """Body-outline vector for same-patient search: width profile (mm) and body length.

    Unlike :func:`signature_vector` this is in millimetres, not normalised away, because
    a person's build is what two acquisitions of the same patient share.
    """
    views = feat.views
    if not views or views[0].box is None:
        return np.zeros(PROFILE_LEN + 1, np.float32)
    v = views[0]
    return np.concatenate([v.width_profile, [v.extent_mm / 4.0]]).astype(np.float32)


def nearest_neighbours(x: np.ndarray, k: int = 5, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most similar other rows by dot product, computed block by block.

    Args:
        x: (n, d) L2-normalised vectors.
        k: neighbours kept per row.
        block: rows per matrix product (memory is ``block * n`` floats).

    Returns:
        ``(idx, sim)``: (n, k) neighbour indices and similarities, most similar first.
    """
    n = x.shape[0]
    k = max(1, min(k, n - 1))
    idx = np.zeros((n, k), np.int64)
    sim = np.full((n, k), -np.inf, np.float32)
    if n < 2:
        return idx[:, :0], sim[:, :0]
    from threadpoolctl import threadpool_limits

    for s in range(0, n, block):
        e = min(n, s + block)
        with threadpool_limits(os.cpu_count() or 1):  # the one big product: every core
            m = x[s:e] @ x.T
        m[np.arange(e - s), np.arange(s, e)] = -np.inf  # not its own neighbour
        part = np.argpartition(-m, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(m, part, axis=1)
        order = np.argsort(-vals, axis=1)
        idx[s:e] = np.take_along_axis(part, order, axis=1)
        sim[s:e] = np.take_along_axis(vals, order, axis=1)
    return idx, sim
