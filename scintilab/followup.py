"""Follow-up: compare each later study of a patient with the baseline (PCWG3 "2+2").

For one patient (pseudonymous key), studies are ordered by StudyDate; the first is the
baseline. Each later study is registered to the baseline (a translation found by phase
correlation of the anterior views: the bed, the sweep start and the patient move between
visits), its hot spots are moved into the baseline's frame and matched:

* **new**: a lesion hot spot of the follow-up with no baseline hot spot (of any
  probability) at that place, or whose baseline counterpart was not called metastatic and
  had a small fraction of its excess uptake over the bone (normalised uptake minus one;
  ``followup.appeared_ratio``): a lesion
  just under the call threshold at baseline that brightens (healing flare, growth) is not
  new, while a lesion appearing on bone that showed only faint or joint uptake before is.
  "At that place" is a distance gate scaled to the two hot spots' sizes (see :func:`match`).
  A lesion hot spot is one at the endpoint cut, or one that *emerged*: at least
  ``followup.emerged_min_uptake`` times its bone where the baseline showed quiet bone (the
  rules' damping stands for normal anatomy and chronic disease, which were there before
  too). A follow-up hot spot matched to an old lesion counts as new as well when it holds
  a second peak, away from the old one, that emerged (a new lesion merged with an old
  one). New hot spots on one bone within ``followup.same_lesion_mm`` of each other are one
  lesion (:func:`count_lesions`);
* **resolved**: a metastatic hot spot of the baseline with no hot spot left at that place;
* **grown**: matched, and its area grew by more than 25 % or its normalised uptake by more
  than 25 %.

PCWG3 status per follow-up visit (Scher et al. 2016, bone scan "2+2" rule;
:func:`pcwg3_statuses`), one of ``none``, ``unconfirmed``, ``confirmed``:

* first follow-up (the first post-treatment scan): >= 2 new lesions versus baseline gives
  ``unconfirmed`` (could be a healing flare), else ``none``;
* a later scan after an ``unconfirmed`` first follow-up: >= 2 *additional* new lesions
  versus the first follow-up, at least 6 weeks (42 days) after it, gives ``confirmed``;
  otherwise the first follow-up's finding was not confirmed and the status is ``none``;
* any later scan otherwise: >= 2 new lesions versus the first follow-up gives
  ``confirmed`` (after the first reassessment PCWG3 asks for no confirmatory scan);
* once ``confirmed``, later visits stay ``confirmed``.

This module never imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab import quant_params as qp
from scintilab.hotspots import Detection, Hotspot
from scintilab.pairing import greedy_pairs

#: Rule kinds that are never a bone lesion, even when new: the injection site and urine
#: change between visits by nature.
NEVER_LESION: tuple[str, ...] = ("bladder", "soft_tissue", "injection_site", "contamination")
PCWG3_STATUSES: tuple[str, ...] = ("none", "unconfirmed", "confirmed")


@dataclass
class Comparison:
    """A follow-up study compared with an earlier one.

    Attributes:
        reference_key / study_key: pseudonymous keys of the earlier and the later study.
        shift: (rows, cols) that moves follow-up pixels onto the reference frame.
        new: follow-up hot spots that are new (lesion hot spots without a counterpart,
            or holding a new lesion beside an old one; see the module docstring).
        new_lesions: how many lesions those are: new hot spots on one bone whose extents
            come within ``followup.same_lesion_mm`` of each other are one lesion (a mottled
            lesion breaks into several hot spots).
        resolved: reference hot spots (metastatic) with no counterpart left.
        grown: (reference, follow-up) matched pairs that grew.
        matched: all (reference, follow-up) matched pairs.
    """

    reference_key: str
    study_key: str
    shift: tuple[float, float]
    new: list[Hotspot] = field(default_factory=list)
    new_lesions: int = 0
    resolved: list[Hotspot] = field(default_factory=list)
    grown: list[tuple[Hotspot, Hotspot]] = field(default_factory=list)
    matched: list[tuple[Hotspot, Hotspot]] = field(default_factory=list)


def register(reference: np.ndarray, moving: np.ndarray, smooth_px: float = 2.0) -> tuple[float, float]:
    """Translation (rows, cols) that moves ``moving`` onto ``reference`` (phase correlation).

    Both images are smoothed and square-root compressed first, so the bladder and the
    injection site (which change between visits) do not dominate the correlation.

    Raises:
        ValueError: the two images differ in shape.
    """
    from skimage.registration import phase_cross_correlation

    a = np.asarray(reference, np.float32)
    b = np.asarray(moving, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"cannot register images of shapes {a.shape} and {b.shape}")
    fa = np.sqrt(np.clip(ndi.gaussian_filter(a, smooth_px), 0, None))
    fb = np.sqrt(np.clip(ndi.gaussian_filter(b, smooth_px), 0, None))
    # clip the brightest 1 % (bladder, injection) to the 99th percentile
    fa = np.minimum(fa, np.percentile(fa, 99))
    fb = np.minimum(fb, np.percentile(fb, 99))
    shift, _, _ = phase_cross_correlation(fa, fb, upsample_factor=1, normalization=None)
    return float(shift[0]), float(shift[1])


def _radius(h: Hotspot) -> float:
    return math.sqrt(max(h.area_px, 1) / math.pi)


def match(
    reference: Sequence[Hotspot], followup: Sequence[Hotspot], shift: tuple[float, float], tol_px: float = 5.0
) -> list[tuple[Hotspot, Hotspot]]:
    """Greedy nearest-first matching of hot spots after moving the follow-up by ``shift``.

    Two hot spots match when their centres are within ``max(tol_px, 0.7 x (r1 + r2))``
    (r = radius of a disc of the hot spot's area).
    """
    pairs: list[tuple[float, int, int]] = []
    for i, a in enumerate(reference):
        for j, b in enumerate(followup):
            d = math.hypot(a.row - (b.row + shift[0]), a.col - (b.col + shift[1]))
            if d <= max(tol_px, 0.7 * (_radius(a) + _radius(b))):
                pairs.append((d, i, j))
    return [(reference[i], followup[j]) for i, j in greedy_pairs(pairs)]


def _emerged(uptake: float, before: float | None) -> bool:
    """Whether a normalised ``uptake`` holds at least ``followup.appeared_ratio`` times the
    excess over bone (normalised uptake - 1) that its place showed before (``before``)."""
    return before is not None and uptake - 1 >= qp.active().followup.appeared_ratio * max(before - 1, 1e-3)


def _uptake_before(reference: Detection, h: Hotspot, shift: tuple[float, float]) -> float | None:
    """The reference study's normalised uptake at follow-up hot spot ``h``'s place (its
    peak moved by ``shift``; the brightest count within ``followup.place_radius_px``)."""
    return _uptake_at(
        reference,
        h.best_view,
        h.bone,
        h.peak_rc[0] + shift[0],
        h.peak_rc[1] + shift[1],
        qp.active().followup.place_radius_px,
    )


def _emerged_beside(
    reference: Detection, followup: Detection, a: Hotspot, b: Hotspot, shift: tuple[float, float], gap_px: float
) -> bool:
    """Whether follow-up hot spot ``b`` (matched with reference hot spot ``a``) holds a
    local peak at least ``gap_px`` from ``a``'s peak, of normalised uptake at least
    ``followup.emerged_min_uptake``, that emerged where the reference showed quiet bone."""
    from skimage.feature import peak_local_max

    view = b.best_view
    found = _level(followup, view, b.bone)
    if found is None:
        return False
    sm, level = found
    h, w = b.mask.shape
    r0, c0 = b.bbox
    patch = np.where(b.mask, sm[r0 : r0 + h, c0 : c0 + w], 0.0)
    peaks = peak_local_max(
        patch, min_distance=2, threshold_abs=qp.active().followup.emerged_min_uptake * level, exclude_border=False
    )
    for pr, pc in peaks:
        r, c = pr + r0, pc + c0
        if math.hypot(r + shift[0] - a.peak_rc[0], c + shift[1] - a.peak_rc[1]) < gap_px:
            continue
        if _emerged(
            float(sm[r, c]) / level,
            _uptake_at(reference, view, b.bone, r + shift[0], c + shift[1], qp.active().followup.place_radius_px),
        ):
            return True
    return False


def _level(det: Detection, view: str, bone: str | None) -> tuple[np.ndarray, float] | None:
    """``det``'s smoothed ``view`` and its reference level for ``bone``; None when the
    detection did not keep them (or ``bone`` is None)."""
    sm = det.smoothed.get(view) if det.smoothed else None
    refs = det.references.get(view) if det.references else None
    if sm is None or not refs or bone not in refs:
        return None
    return sm, max(float(refs[bone]), 1e-3)


def _uptake_at(det: Detection, view: str, bone: str | None, row: float, col: float, rad: int) -> float | None:
    """``det``'s normalised uptake at (row, col) of ``view``: its brightest smoothed count
    within ``rad`` pixels, over its level for ``bone``. None when it cannot be read."""
    found = _level(det, view, bone)
    if found is None:
        return None
    sm, level = found
    r, c = int(round(row)), int(round(col))
    box = sm[max(r - rad, 0) : r + rad + 1, max(c - rad, 0) : c + rad + 1]
    if not box.size:
        return None
    return float(box.max()) / level


def compare(
    reference: Detection,
    followup: Detection,
    *,
    threshold: float | None = None,
    shift: tuple[float, float] | None = None,
    tol_mm: float = 12.0,
) -> Comparison:
    """Compare a follow-up detection with an earlier one (see the module docstring).

    Args:
        reference: the earlier study's detection (usually the baseline).
        followup: the later study's detection.
        threshold: probability at which a hot spot counts as a lesion; None: each
            detection's own endpoint cut (:attr:`Detection.endpoint_threshold`, the cut
            its BSI uses; for the default rules 0.5, above their calling threshold, see
            ``rules.endpoint_p``).
        shift: follow-up-to-reference translation; None registers the two studies.
        tol_mm: matching tolerance for small hot spots.

    Returns:
        A :class:`Comparison`.
    """
    if shift is None:
        view = "ANT" if "ANT" in reference.images and "ANT" in followup.images else None
        if view is None or reference.shape != followup.shape:
            shift = (0.0, 0.0)
        else:
            shift = register(reference.images[view], followup.images[view])
    t_ref = reference.endpoint_cut(threshold)
    t_fu = followup.endpoint_cut(threshold)
    tol = tol_mm / (0.5 * (reference.spacing[0] + reference.spacing[1]))
    # Every baseline hot spot takes part, whatever its probability: a lesion just under
    # the call threshold at baseline that crosses it later (a flare) is not new. A faint
    # baseline peak does not hide a lesion that appears on it: see followup.appeared_ratio.
    pairs = match(list(reference.hotspots), list(followup.hotspots), shift, tol)
    # What counts as a lesion at follow-up: a call at the endpoint cut, or a hot spot that
    # emerged where the reference showed quiet bone (see followup.emerged_min_uptake).
    before = {id(h): _uptake_before(reference, h, shift) for h in followup.hotspots}
    lesion_fu = {
        id(h)
        for h in followup.hotspots
        if h.p_metastatic >= t_fu
        or (
            h.kind not in NEVER_LESION
            and h.normalized_uptake >= qp.active().followup.emerged_min_uptake
            and _emerged(h.normalized_uptake, before[id(h)])
        )
    }
    appeared = {
        id(b)
        for a, b in pairs
        if a.p_metastatic < t_ref and id(b) in lesion_fu and _emerged(b.normalized_uptake, a.normalized_uptake)
    }
    pairs = [(a, b) for a, b in pairs if id(b) not in appeared]
    matched_ref = {id(a) for a, _ in pairs}
    matched_fu = {id(b) for _, b in pairs}
    # Unmatched is not enough: the reference must have shown quiet bone at that place (a
    # piece of an old lesion that the detection split differently is not new), where it
    # can be read at all.
    new = [
        h
        for h in followup.hotspots
        if id(h) in lesion_fu
        and id(h) not in matched_fu
        and (before[id(h)] is None or _emerged(h.normalized_uptake, before[id(h)]))
    ]
    gap = qp.active().followup.same_lesion_mm / (0.5 * (followup.spacing[0] + followup.spacing[1]))
    # A new lesion next to an old one can merge with it into one hot spot that matches the
    # old one: such a hot spot counts as new too when it holds a second peak that emerged.
    beside = [b for a, b in pairs if id(b) in lesion_fu and _emerged_beside(reference, followup, a, b, shift, gap)]
    new += beside
    resolved = [h for h in reference.hotspots if h.p_metastatic >= t_ref and id(h) not in matched_ref]
    grown = [
        (a, b)
        for a, b in pairs
        if b.p_metastatic >= t_fu
        and (
            b.area_px > (1 + qp.active().followup.growth) * a.area_px
            or b.normalized_uptake > (1 + qp.active().followup.growth) * a.normalized_uptake
        )
    ]
    return Comparison(
        reference_key=reference.study_key,
        study_key=followup.study_key,
        shift=shift,
        new=new,
        new_lesions=count_lesions(new, followup.shape, gap),
        resolved=resolved,
        grown=grown,
        matched=pairs,
    )


def count_lesions(hotspots: Sequence[Hotspot], shape: tuple[int, int], gap_px: float) -> int:
    """How many lesions ``hotspots`` are: those on one bone whose extents come within
    ``gap_px`` of each other are one (single linkage)."""
    n = len(hotspots)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    it = int(round(gap_px))
    if it < 1:
        return n
    masks = [h.full_mask(shape) for h in hotspots]
    grown = [ndi.binary_dilation(m, iterations=it) for m in masks]
    for i in range(n):
        for j in range(i + 1, n):
            if hotspots[i].bone == hotspots[j].bone and (grown[i] & masks[j]).any():
                parent[root(i)] = root(j)
    return len({root(i) for i in range(n)})


def pcwg3_statuses(
    days: Sequence[float], new_vs_baseline: Sequence[int], new_vs_first: Sequence[int | None]
) -> list[str]:
    """PCWG3 bone-scan status of each follow-up visit (see the module docstring).

    Args:
        days: days since baseline of each follow-up visit, in order (the first is the
            first post-treatment scan).
        new_vs_baseline: new lesions of each visit versus the baseline.
        new_vs_first: new lesions of each visit versus the first follow-up (None or
            ignored for the first follow-up itself).

    Returns:
        One of :data:`PCWG3_STATUSES` per follow-up visit.
    """
    out: list[str] = []
    first_flag = False
    confirmed = False
    pending = False  # the first follow-up flagged, its confirmatory scan not yet seen
    for k, (d, nb) in enumerate(zip(days, new_vs_baseline)):
        if confirmed:
            out.append("confirmed")
            continue
        if k == 0:
            first_flag = nb >= qp.active().followup.pcwg3_min_new
            pending = first_flag
            out.append("unconfirmed" if first_flag else "none")
            continue
        nf = new_vs_first[k] if k < len(new_vs_first) and new_vs_first[k] is not None else 0
        if pending:
            pending = False
            if nf >= qp.active().followup.pcwg3_min_new and d - days[0] >= qp.active().followup.pcwg3_confirm_days:
                confirmed = True
                out.append("confirmed")
            else:
                out.append("none")
            continue
        if nf >= qp.active().followup.pcwg3_min_new:
            confirmed = True
            out.append("confirmed")
        else:
            out.append("none")
    return out


@dataclass
class PatientFollowup:
    """All follow-up comparisons of one patient.

    Attributes:
        patient_key: pseudonymous patient id.
        baseline_key: the baseline study.
        rows: one dict per follow-up study (the columns of ``followup.csv``).
        comparisons: study_key -> comparison with the baseline.
    """

    patient_key: str
    baseline_key: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    comparisons: dict[str, Comparison] = field(default_factory=dict)


def follow_patient(
    detections: Sequence[Detection], dates: Sequence[Any], bsi: Sequence[float], *, threshold: float | None = None
) -> PatientFollowup:
    """Compare every later study of one patient with the baseline and grade PCWG3.

    Args:
        detections: the patient's detections, in date order (the first is the baseline).
        dates: their study dates (``datetime.date`` or None), same order.
        bsi: their BSI values (percent), same order.
        threshold: probability at which a hot spot counts as a lesion; None: each
            detection's own endpoint cut.

    Returns:
        A :class:`PatientFollowup` (no rows for a single study).
    """
    if not detections:
        raise ValueError("no studies")
    base = detections[0]
    out = PatientFollowup(patient_key=base.patient_key, baseline_key=base.study_key)
    if len(detections) < 2:
        return out
    days: list[float] = []
    vs_base: list[int] = []
    vs_first: list[int | None] = [None]
    comps: list[Comparison] = []
    for k, det in enumerate(detections[1:], start=1):
        comp = compare(base, det, threshold=threshold)
        comps.append(comp)
        d0, dk = dates[0], dates[k]
        days.append(float((dk - d0).days) if d0 is not None and dk is not None else float("nan"))
        vs_base.append(comp.new_lesions)
        if k > 1:
            # versus the first follow-up: register to it directly
            c1 = compare(detections[1], det, threshold=threshold)
            vs_first.append(c1.new_lesions)
    status = pcwg3_statuses(days, vs_base, vs_first)
    for k, (det, comp) in enumerate(zip(detections[1:], comps), start=1):
        out.comparisons[det.study_key] = comp
        out.rows.append(
            {
                "patient_key": base.patient_key,
                "baseline_study_key": base.study_key,
                "study_key": det.study_key,
                "days": None if not np.isfinite(days[k - 1]) else int(days[k - 1]),
                "new_lesions": comp.new_lesions,
                "resolved_lesions": len(comp.resolved),
                "grown_lesions": len(comp.grown),
                "new_vs_first_followup": vs_first[k - 1] if k > 1 else None,
                "bsi_change": round(float(bsi[k]) - float(bsi[0]), 4),
                "pcwg3": status[k - 1],
                "shift_rows": round(comp.shift[0], 1),
                "shift_cols": round(comp.shift[1], 1),
            }
        )
    return out


__all__ = [
    "Comparison",
    "PCWG3_STATUSES",
    "PatientFollowup",
    "compare",
    "count_lesions",
    "follow_patient",
    "match",
    "pcwg3_statuses",
    "register",
]
