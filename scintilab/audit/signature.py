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
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize

from scintilab.study import Study

#: Thumbnail size (rows, cols) of the body box: whole-body views are about 4:1.
THUMB: tuple[int, int] = (64, 16)
#: Finer thumbnail for left-right asymmetry (the injection site is small).
THUMB_FINE: tuple[int, int] = (128, 32)
#: Samples along the body's length for the row and width profiles.
PROFILE_LEN: int = 64


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
        width_profile: body width (mm) along the body box.
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
    if hi <= 0:
        return None
    mask = sm > frac * hi
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
    frame = _unit_sum(np.sqrt(resize(f, THUMB, anti_aliasing=True, preserve_range=True)))
    if box is None:
        return ViewFeatures(float(f.sum()), mx, int((f == mx).sum()), int((f > 0).sum()), None,
                            (0.0, 0.0), empty[0], empty[1], frame,
                            np.zeros(PROFILE_LEN, np.float32), np.zeros(PROFILE_LEN, np.float32))
    t, b, l, r = box
    crop = f[t: b + 1, l: r + 1]
    thumb = _unit_sum(np.sqrt(resize(crop, THUMB, anti_aliasing=True, preserve_range=True)))
    fine = _unit_sum(resize(crop, THUMB_FINE, anti_aliasing=True, preserve_range=True))
    rowmean = crop.mean(axis=1)
    prof = _unit_sum(resize(rowmean, (PROFILE_LEN,), anti_aliasing=True, preserve_range=True))
    # Body width per row: soft tissue is a few counts, so threshold the smoothed crop low.
    sm = ndi.uniform_filter(crop, 3)
    level = 0.15 * float(np.median(sm[sm > 0])) if (sm > 0).any() else 0.0
    width = (sm > level).sum(axis=1).astype(np.float32) * float(spacing[1])
    wprof = resize(width, (PROFILE_LEN,), anti_aliasing=True, preserve_range=True).astype(np.float32)
    med_row = float(np.median(rowmean)) or 1.0
    k = max(2, (b - t) // 100)
    edge = (float(rowmean[:k].mean()) / med_row, float(rowmean[-k:].mean()) / med_row)
    return ViewFeatures(float(f.sum()), mx, int((f == mx).sum()), int((f > 0).sum()), box, edge,
                        thumb, fine, frame, prof, wprof)


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
    return StudyFeatures(study.study_key, study.patient_key, study.shape_hw, sp, ant, post,
                         pixel_hash(study))


def signature_vector(feat: StudyFeatures) -> np.ndarray:
    """The duplicate-search vector: both views' body-box thumbnails, centred, unit length.

    Body-box cropping makes it ignore shifts, margins and matrix size; centring and
    normalising make it ignore intensity scaling. A missing view contributes zeros.
    """
    parts = []
    for v in (feat.ant, feat.post):
        parts.append(np.zeros(THUMB, np.float32).ravel() if v is None else v.thumb.ravel())
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
    length = (v.box[1] - v.box[0]) * feat.spacing[0]
    return np.concatenate([v.width_profile, [length / 4.0]]).astype(np.float32)


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
    for s in range(0, n, block):
        e = min(n, s + block)
        m = x[s:e] @ x.T
        m[np.arange(e - s), np.arange(s, e)] = -np.inf  # not its own neighbour
        part = np.argpartition(-m, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(m, part, axis=1)
        order = np.argsort(-vals, axis=1)
        idx[s:e] = np.take_along_axis(part, order, axis=1)
        sim[s:e] = np.take_along_axis(vals, order, axis=1)
    return idx, sim
