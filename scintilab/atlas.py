"""A landmark-based body atlas for one planar whole-body view.

The atlas answers "which bone is under this pixel?" for lesion statistics (coarse
:data:`~scintilab.anatomy.REGIONS`) and for the Bone Scan Index (fine
:data:`~scintilab.anatomy.BONES` groups and a skeleton mask).

How it is fitted, from the image alone:

1. The body outline: the smoothed counts thresholded between the near-empty background
   (well under one count per pixel) and soft tissue (a few counts), by Otsu on log counts.
2. Row landmarks from the outline's width profile and the uptake profile: head top (first
   body row), neck (narrowest row below the head), shoulder line (where the width jumps
   to the chest width), bladder (hottest blob low in the trunk, near the midline), knees
   (the joint uptake peak of the legs) and soles (last body row).
3. Column landmarks: the midline (a straight line through the body's row centroids, so a
   slightly tilted patient is followed), the half-width of the chest with the arms, and
   the spine line (the brightest column near the midline, neck to sacrum, smoothed), so
   that the vertebrae follow a scoliotic curve.

Each image row is then mapped to a canonical height coordinate ``v`` (0 at the vertex,
1 at the soles) piecewise linearly between the landmarks, and each column to ``u``: the
signed distance from the midline in units of the chest half-width. A hand-made template
of bone shapes in (u, v) -- human proportions, both sides -- is evaluated on that grid
(the vertebrae relative to the spine line) and clipped to the body outline. So the atlas
scales to the patient's height and width and to any matrix size.

On the synthetic cohort (120 patients, 1024 x 256) the region under each lesion agrees
with the generator's ground truth for about 95 % of lesions with both views (about 92 %
from one view alone); see notebook 08.

Where two bones overlap in projection (sternum over the thoracic spine, anterior ribs
over the scapulae) the view decides which is drawn on top (the one nearer that camera),
and lesion assignment may use the anterior/posterior count ratio as a depth cue
(:meth:`Atlas.assign_bone`).

The posterior view is stored mirrored (patient's left on the image left); the atlas
records it (:attr:`Atlas.mirrored`) because left and right matter for limbs only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi

from scintilab.anatomy import BONES, REGIONS, region_of

# The landmarks and the figure have their own modules (named here too).
from scintilab.atlas_figures import BONE_COLOURS, draw_atlas
from scintilab.atlas_landmarks import (
    CANONICAL_V,
    LANDMARK_CAP_PERCENTILE,
    Landmarks,
    body_mask,
    find_landmarks,
    sigma_px,
    trace_spine,
)
from scintilab.errors import InputError
from scintilab.view_frame import ViewFrame

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

#: Bones placed relative to the traced spine line rather than the body midline, so that a
#: scoliotic curve carries them along.
SPINE_BONES: frozenset[str] = frozenset({"cervical_spine", "thoracic_spine", "lumbar_spine", "sacrum"})

# Template: bone -> list of primitives in (u, v); u in chest half-widths (arms included),
# v in fractions of vertex-to-sole height. ("box", u0, u1, v0, v1), ("ellipse", cu, cv, ru,
# rv) or ("trap", v0, v1, half-width at v0, half-width at v1) for a central trapezoid.
# Every primitive is mirrored to both sides of the midline (a box with u0 = 0 is central).
# The numbers are adult proportions: head ~1/8 of height, shoulder line at ~0.17, iliac
# crest ~0.45, knee ~0.72, ribcage about 0.6 of the width with the arms at the sides; they
# were checked against the synthetic phantom's labelled bone maps with
# :func:`template_agreement` (see notebook 08).
TEMPLATE: dict[str, list[tuple[Any, ...]]] = {
    "skull": [("ellipse", 0.0, 0.062, 0.33, 0.064)],
    "mandible": [("box", 0.0, 0.22, 0.104, 0.142)],
    "cervical_spine": [("box", 0.0, 0.065, 0.118, 0.172)],
    "thoracic_spine": [("box", 0.0, 0.080, 0.172, 0.383)],
    "lumbar_spine": [("box", 0.0, 0.150, 0.383, 0.485)],
    "sacrum": [("trap", 0.485, 0.545, 0.15, 0.04)],
    "ribs": [("ellipse", 0.0, 0.295, 0.60, 0.125), ("ellipse", 0.0, 0.355, 0.52, 0.062)],
    "sternum": [("box", 0.0, 0.10, 0.172, 0.290)],
    "clavicles": [("box", 0.06, 0.66, 0.154, 0.188)],
    "scapulae": [("ellipse", 0.53, 0.235, 0.14, 0.065)],
    "humeri": [("box", 0.56, 1.25, 0.165, 0.372)],
    "forearms": [("box", 0.58, 1.25, 0.372, 0.515)],
    "hands": [("box", 0.52, 1.30, 0.515, 0.590)],
    "pelvis": [("ellipse", 0.34, 0.490, 0.30, 0.050), ("box", 0.0, 0.35, 0.525, 0.588)],
    "femora": [("box", 0.08, 0.64, 0.530, 0.726)],
    "tibiae_fibulae": [("box", 0.05, 0.58, 0.726, 0.948)],
    "feet": [("box", 0.02, 0.64, 0.948, 1.02)],
}

#: Drawing order (later wins) per view. The bone nearer the camera ends on top where
#: the two differ in depth only by the view (sternum in front of the thoracic spine);
#: ribs stay on top of the scapulae in both views, as they cover most of the scapular
#: blade in projection and are by far the commoner metastatic site.
_ORDER_COMMON: tuple[str, ...] = (
    "scapulae",
    "ribs",
    "humeri",
    "forearms",
    "hands",
    "femora",
    "tibiae_fibulae",
    "feet",
    "pelvis",
    "mandible",
    "skull",
    "cervical_spine",
    "lumbar_spine",
    "sacrum",
    "clavicles",
)
DRAW_ORDER: dict[str, tuple[str, ...]] = {
    "ANT": _ORDER_COMMON + ("thoracic_spine", "sternum"),
    "POST": _ORDER_COMMON + ("sternum", "thoracic_spine"),
}


@dataclass
class Atlas:
    """A body atlas fitted to one view (see the module docstring).

    Attributes:
        shape: (rows, columns) of the image it was fitted to.
        view: ``ANT`` or ``POST``.
        mirrored: True for POST (stored mirrored: the patient's left on the image left).
        spacing: (row, column) pixel spacing in mm.
        landmarks: the fitted :class:`Landmarks`.
        body: boolean body-outline mask.
    """

    shape: tuple[int, int]
    view: str
    mirrored: bool
    spacing: tuple[float, float]
    landmarks: Landmarks
    body: np.ndarray
    _bone_cache: np.ndarray | None = field(default=None, repr=False)

    # -- coordinates -------------------------------------------------------------------
    def _anchors(self) -> tuple[np.ndarray, np.ndarray]:
        lm = self.landmarks
        rows = np.array([lm.top, lm.neck, lm.shoulder, lm.bladder, lm.knee, lm.sole], float)
        vs = np.array([CANONICAL_V[k] for k in ("top", "neck", "shoulder", "bladder", "knee", "sole")])
        return rows, vs

    def v_of_row(self, row: float | np.ndarray) -> np.ndarray:
        """Canonical height coordinate of image rows (extrapolated linearly beyond the body)."""
        rows, vs = self._anchors()
        row = np.asarray(row, dtype=float)
        v = np.interp(row, rows, vs)
        # np.interp clamps; extend the end segments so rows above the head stay < 0.
        lo_slope = (vs[1] - vs[0]) / max(rows[1] - rows[0], 1e-6)
        hi_slope = (vs[-1] - vs[-2]) / max(rows[-1] - rows[-2], 1e-6)
        v = np.where(row < rows[0], vs[0] + (row - rows[0]) * lo_slope, v)
        v = np.where(row > rows[-1], vs[-1] + (row - rows[-1]) * hi_slope, v)
        return v

    def u_of(self, row: float | np.ndarray, col: float | np.ndarray, *, spine: bool = False) -> np.ndarray:
        """Signed distance from the midline (or the spine line) in chest half-widths."""
        lm = self.landmarks
        row = np.asarray(row, float)
        centre = lm.spine(row) if spine else lm.midline(row)
        return (np.asarray(col, float) - centre) / max(lm.half_width, 1.0)

    # -- lookups -----------------------------------------------------------------------
    def bone_candidates(self, row: float, col: float) -> list[str]:
        """Every template bone whose shape covers (row, col), ignoring overlap order."""
        v = np.array([float(self.v_of_row(row))])
        u = np.array([float(self.u_of(row, col))])
        us = np.array([float(self.u_of(row, col, spine=True))])
        return [b for b in BONES if _inside(TEMPLATE[b], us if b in SPINE_BONES else u, v)[0]]

    def bone_at(self, row: float, col: float) -> str | None:
        """Fine bone group at a pixel (the one nearest this view's camera), or None."""
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < self.shape[0] and 0 <= c < self.shape[1]):
            return None
        idx = int(self.bone_map()[r, c])
        return BONES[idx - 1] if idx else None

    def region_at(self, row: float, col: float) -> str | None:
        """Coarse region at a pixel, or None outside every bone."""
        bone = self.bone_at(row, col)
        return None if bone is None else region_of(bone)

    def nearest_bone(self, row: float, col: float) -> str | None:
        """Bone at the pixel, else the bone of the nearest labelled pixel."""
        bmap = self.bone_map()
        if not bmap.any():
            return None
        r = int(np.clip(round(row), 0, self.shape[0] - 1))
        c = int(np.clip(round(col), 0, self.shape[1] - 1))
        if bmap[r, c]:
            return BONES[bmap[r, c] - 1]
        _, (ir, ic) = ndi.distance_transform_edt(bmap == 0, return_indices=True, sampling=self.spacing)
        return BONES[bmap[ir[r, c], ic[r, c]] - 1]

    def assign_bone(self, mask: np.ndarray, ap_ratio: float | None = None) -> str | None:
        """Bone group for a lesion mask: majority of its pixels, resolved by depth.

        Where a sternum and a thoracic-spine lesion project onto the same pixels, the
        anterior/posterior count ratio decides: above 1 the lesion is nearer the front.
        Without it (one view only) the thoracic spine, the commoner metastatic site, wins.

        Args:
            mask: boolean lesion mask in this view's pixel grid.
            ap_ratio: anterior over posterior counts of the lesion, when both views exist.

        Returns:
            A :data:`~scintilab.anatomy.BONES` name, or None for an empty atlas.
        """
        mask = np.asarray(mask, bool)
        if not mask.any():
            return None
        rr, cc = np.nonzero(mask)
        labels = self.bone_map()[rr, cc]
        labels = labels[labels > 0]
        r0, c0 = float(rr.mean()), float(cc.mean())
        if labels.size:
            bone = BONES[int(np.bincount(labels).argmax()) - 1]
        else:
            bone = self.nearest_bone(r0, c0)
        if bone in ("sternum", "thoracic_spine"):
            cands = self.bone_candidates(r0, c0)
            if "sternum" in cands and "thoracic_spine" in cands:
                if ap_ratio is not None and np.isfinite(ap_ratio):
                    bone = "sternum" if ap_ratio > 1.0 else "thoracic_spine"
                else:
                    # One view only, no depth cue: the spine is by far the commoner site.
                    bone = "thoracic_spine"
        return bone

    def assign_region(self, mask: np.ndarray, ap_ratio: float | None = None) -> str | None:
        """Coarse region for a lesion mask (see :meth:`assign_bone`)."""
        bone = self.assign_bone(mask, ap_ratio)
        return None if bone is None else region_of(bone)

    # -- maps --------------------------------------------------------------------------
    def bone_map(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Integer map over :data:`BONES`: 0 = no bone, ``i + 1`` = ``BONES[i]``.

        Args:
            shape: output (rows, columns); defaults to the fitted image's shape. Another
                shape rescales the atlas (e.g. a model's input size).
        """
        if shape is None or tuple(shape) == tuple(self.shape):
            if self._bone_cache is None:
                self._bone_cache = self._render(self.shape)
            return self._bone_cache
        return self._render(tuple(shape))

    def region_map(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Integer map over :data:`REGIONS`: 0 = none, ``i + 1`` = ``REGIONS[i]``."""
        bmap = self.bone_map(shape)
        lut = np.zeros(len(BONES) + 1, dtype=np.int16)
        for i, b in enumerate(BONES):
            lut[i + 1] = REGIONS.index(region_of(b)) + 1
        return lut[bmap]

    def _render(self, shape: tuple[int, int]) -> np.ndarray:
        sr = self.shape[0] / shape[0]
        sc = self.shape[1] / shape[1]
        rows = (np.arange(shape[0]) + 0.5) * sr - 0.5
        cols = (np.arange(shape[1]) + 0.5) * sc - 0.5
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        u = self.u_of(rr, cc)
        us = self.u_of(rr, cc, spine=True)
        v = self.v_of_row(rr)
        out = np.zeros(shape, dtype=np.int16)
        for bone in DRAW_ORDER[self.view]:
            out[_inside(TEMPLATE[bone], us if bone in SPINE_BONES else u, v)] = BONES.index(bone) + 1
        # Bones live inside the body: clip the template to the (slightly grown) outline.
        body = ndi.binary_dilation(self.body, iterations=2)
        ri = np.clip(np.round(rows).astype(int), 0, self.shape[0] - 1)
        ci = np.clip(np.round(cols).astype(int), 0, self.shape[1] - 1)
        out[~body[np.ix_(ri, ci)]] = 0
        return out

    def skeleton_mask(self, image: np.ndarray, *, factor: float = 1.6) -> np.ndarray:
        """Bone-like uptake inside the body and near the template skeleton.

        A pixel is skeleton when its smoothed counts exceed ``factor`` times the median
        body count (soft tissue dominates the body, so the median is a soft-tissue level)
        and it lies within a few millimetres of a template bone. The bladder blob is left
        out: it is urine, not bone, and would swamp a Bone Scan Index.

        Args:
            image: the view the atlas was fitted to (counts).
            factor: threshold over the soft-tissue level.

        Returns:
            Boolean mask of the image's shape.
        """
        img = np.asarray(image, dtype=float)
        if img.shape != self.shape:
            raise ValueError(f"image shape {img.shape} differs from the atlas's {self.shape}")
        sm = ndi.gaussian_filter(img, sigma_px(self.spacing, 2.5))
        body_vals = sm[self.body]
        level = float(np.median(body_vals)) if body_vals.size else 0.0
        bone_like = (sm > factor * max(level, 1e-6)) & self.body
        near = ndi.binary_dilation(self.bone_map() > 0, iterations=max(1, int(round(6.0 / self.spacing[1]))))
        mask = bone_like & near
        return mask & ~self.bladder_mask(img)

    def bladder_mask(self, image: np.ndarray) -> np.ndarray:
        """The bladder blob: the connected very hot region around the bladder landmark."""
        img = np.asarray(image, dtype=float)
        sm = ndi.gaussian_filter(img, sigma_px(self.spacing, 3.0))
        lm = self.landmarks
        if not lm.found.get("bladder", False):
            return np.zeros(self.shape, bool)
        r = int(np.clip(round(lm.bladder), 0, self.shape[0] - 1))
        c = int(np.clip(round(float(lm.midline(lm.bladder))), 0, self.shape[1] - 1))
        peak = sm[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4].max()
        lab, _ = ndi.label(sm > 0.5 * peak)
        keep = lab[r, c]
        return (lab == keep) if keep else np.zeros(self.shape, bool)


# ---------------------------------------------------------------------------------------
def _inside(prims: list[tuple[Any, ...]], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au = np.abs(u)
    out = np.zeros(np.shape(u), dtype=bool)
    for p in prims:
        if p[0] == "box":
            _, u0, u1, v0, v1 = p
            out |= (au >= u0) & (au <= u1) & (v >= v0) & (v <= v1)
        elif p[0] == "trap":
            _, v0, v1, h0, h1 = p
            t = np.clip((v - v0) / max(v1 - v0, 1e-9), 0.0, 1.0)
            out |= (v >= v0) & (v <= v1) & (au <= h0 + (h1 - h0) * t)
        elif p[0] == "ellipse":
            _, cu, cv, ru, rv = p
            out |= ((au - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0
        else:  # pragma: no cover - template is ours
            raise ValueError(f"unknown primitive {p[0]!r}")
    return out


def fit_atlas(
    image: np.ndarray, *, view: str = "ANT", spacing: tuple[float, float] = (2.3, 2.3), other: np.ndarray | None = None
) -> Atlas:
    """Fit the landmark-based atlas to one whole-body view.

    Args:
        image: one view as stored (counts, rows x columns); POST is not flipped.
        view: ``ANT`` or ``POST`` (decides overlap order; POST is recorded as mirrored).
        spacing: (row, column) pixel spacing in mm, from PixelSpacing (0028,0030).
        other: optionally the opposite view already in this view's frame (for ANT:
            ``FusionResult.posterior_flipped_aligned``). The spine lies near the back, so
            it is traced far more reliably with the posterior counts added.

    Returns:
        The fitted :class:`Atlas`. Landmarks that cannot be found fall back on human
        proportions between those that can (see ``atlas.landmarks.found``).

    Raises:
        ValueError: if the image is not 2-D or holds no body.
    """
    view = view.upper()
    if view not in ("ANT", "POST"):
        raise ValueError(f"view must be ANT or POST, not {view!r}")
    img = np.asarray(image, dtype=float)
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D view, got shape {img.shape}")
    spacing = (float(spacing[0]), float(spacing[1]))
    body = body_mask(img, spacing)
    if body.sum() < 20:
        raise ValueError("no body found in the image (is it empty or all background?)")
    lm = find_landmarks(img, body, spacing)
    spine_img = img if other is None else img + np.asarray(other, dtype=float)
    if spine_img.shape != img.shape:
        raise ValueError(f"other view shape {spine_img.shape} differs from {img.shape}")
    lm.spine_rows, lm.spine_offset = trace_spine(spine_img, lm, spacing)
    lm.found["spine"] = lm.spine_rows.size > 0
    return Atlas(shape=img.shape, view=view, mirrored=(view == "POST"), spacing=spacing, landmarks=lm, body=body)


def fit_study_atlas(study: Any, view: str = "ANT", *, frame: Any = None) -> Atlas:
    """Fit the atlas to one stored view of a :class:`~scintilab.study.Study`, using both views.

    With both views present the other view (carried onto this one through the study's
    :class:`~scintilab.view_frame.ViewFrame`) helps trace the spine; with one view the
    atlas is fitted to it alone.

    Args:
        study: the study.
        view: ``ANT`` or ``POST``.
        frame: the study's view frame to reuse (aligned here when None).

    Returns:
        The fitted atlas.

    Raises:
        ValueError: the study lacks the view, or the view holds no body.
    """
    view = view.upper()
    img = study.view(view)
    if img is None:
        raise ValueError(f"study {study.study_key} has no {view} view")
    other_view = "POST" if view == "ANT" else "ANT"
    other = None
    if study.view(other_view) is not None:
        try:
            frame = ViewFrame.of_study(study) if frame is None else frame
            other = frame.other_view(study.view(other_view), other_view, view)
        except InputError:
            other = None  # views that cannot be aligned: fit on this view alone
    return fit_atlas(img, view=view, spacing=study.pixel_spacing, other=other)


def template_agreement(atlas: Atlas, bone_truth: np.ndarray, bone_names: tuple[str, ...] = BONES) -> dict[str, float]:
    """Pixel agreement of the atlas with a labelled bone map (e.g. the generator's).

    Args:
        atlas: a fitted atlas.
        bone_truth: integer map, 0 = no bone, ``i + 1`` = ``bone_names[i]``.
        bone_names: the names behind ``bone_truth``'s labels.

    Returns:
        ``{"bone": fraction of truth bone pixels given the same bone,
        "region": same for coarse regions}``.
    """
    truth = np.asarray(bone_truth)
    pred = atlas.bone_map(truth.shape)
    sel = truth > 0
    if not sel.any():
        return {"bone": float("nan"), "region": float("nan")}
    names_t = np.array(("",) + tuple(bone_names), dtype=object)[truth[sel]]
    names_p = np.array(("",) + BONES, dtype=object)[pred[sel]]
    reg = np.vectorize(lambda b: region_of(b) if b else "")
    return {
        "bone": float(np.mean(names_t == names_p)),
        "region": float(np.mean(reg(names_t) == reg(names_p))),
    }


__all__ = [
    "Atlas",
    "BONE_COLOURS",
    "CANONICAL_V",
    "DRAW_ORDER",
    "LANDMARK_CAP_PERCENTILE",
    "Landmarks",
    "SPINE_BONES",
    "TEMPLATE",
    "body_mask",
    "draw_atlas",
    "find_landmarks",
    "fit_atlas",
    "fit_study_atlas",
    "sigma_px",
    "template_agreement",
    "trace_spine",
]
