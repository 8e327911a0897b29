"""Hot-spot detection on whole-body bone scans, normalised to the patient's own bone.

What happens to one study (:func:`detect_hotspots`):

1. **Prepared study** (:func:`scintilab.prepared.prepare_study`, or one passed in): both
   views in one pixel grid (:class:`~scintilab.view_frame.ViewFrame`: the posterior
   mirrored and aligned to the stored anterior; a study with only a posterior view uses
   the mirrored posterior), the atlas fitted once on the frame's own view (the other view
   reuses its landmarks in its own drawing order), the bladder blob and each view's
   skeleton mask.
2. **Region-wise reference.** Per view and per bone group, the median smoothed count of
   the skeleton pixels of that bone: the patient's own healthy bone (metastases usually
   cover a small part of each bone, so the median stays on healthy bone; when they cover
   much of a vertebral column the median rises with them, see step 4). Each pixel's
   *normalised uptake* is its smoothed count over the reference of the bone under it (off
   the skeleton: of the nearest bone). A dim scan and a bright scan read the same.
3. **Hot spots.** Connected areas whose normalised uptake exceeds ``threshold`` (default
   1.6) in either view, an area holding a second hot spot split in two
   (``detection.split_peaks``); the two views' hot spots are matched by position (the same lesion
   seen from both sides becomes one ``ANT+POST`` hot spot). Per hot spot: bone group, area,
   peak and mean counts, normalised uptake, anterior/posterior count ratio (depth cue:
   above 1 nearer the front) and a probability of being metastatic.
4. **Probability.** Without a trained model (:func:`rule_probability`): a logistic
   function of the normalised uptake (on the vertebral column, of the larger of it and the
   contrast with the neighbouring vertebrae, so a spine full of tumour cannot set its own
   normal) times a focality term (waived in part from ``rules.focality_waiver_uptake``),
   damped by documented rules for what usually is not a
   metastasis (see :data:`RULES`; their constants were tuned on a seed-1 synthetic cohort
   of 100 patients x 3 visits, some checked and adjusted on cohorts of seeds 7, 23, 41,
   53, 61 and 101 and on the single-visit demo cohort of seed 0, and measured on cohorts
   of other seeds). A
   :class:`HotspotModel` trained on annotated cohorts (:func:`train_hotspot_model`)
   replaces the rules when given.

Positions (``row``, ``col``) are pixels of the stored anterior image. This module never
imports Keras. It holds the detection and names the whole public API; the records live in
:mod:`scintilab.hotspot_records`, the default rules in :mod:`scintilab.hotspot_rules`, the
learned model and its training in :mod:`scintilab.hotspot_model`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab import quant_params as qp

# the public API of hot-spot detection, whichever module holds each part
from scintilab.hotspot_model import (
    FEATURES,
    TRAIN_MAX_FP_PER_SCAN,
    HotspotModel,
    annotation_labels,
    choose_threshold,
    hotspot_features,
    train_hotspot_model,
)
from scintilab.hotspot_records import METASTATIC_P, Detection, Hotspot, atlas_uv, elongation
from scintilab.hotspot_rules import (
    NEIGHBOUR_REFERENCE_BONES,
    RULES,
    apply_rules,
    comparable_pair,
    contrast_probability,
    local_contrast,
    rule_kind,
    rule_probability,
    scaled_area_px,
    uptake_probability,
)
from scintilab.pairing import greedy_pairs
from scintilab.prepared import (
    SMOOTH_MM,
    PreparedStudy,
    bone_references,
    prepare_study,
    reference_image,
    view_atlas,
)
from scintilab.study import Study

# --------------------------------------------------------------------------------- detection


def _segment(
    view: str, img: np.ndarray, sm: np.ndarray, ref: np.ndarray, threshold: float, min_area: int
) -> list[dict[str, Any]]:
    """Connected areas above ``threshold`` x reference; one record per hot spot.

    An area can hold more than one (a lesion joined to the bladder or to a brighter
    lesion): see ``detection.split_peaks``.
    """
    norm = sm / np.maximum(ref, 1e-3)
    hot = norm >= threshold
    lab, n = ndi.label(hot)
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    slices = ndi.find_objects(lab)
    for k, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        comp = lab[sl] == k
        if int(comp.sum()) < min_area:
            continue
        rec = _record(view, img, sm, ref, sl, comp, *_argmax(sm[sl], comp))
        out.append(rec)
        if not qp.active().detection.split_peaks:
            continue
        taken = rec["mask"].copy()
        todo = _pieces(comp & ~ndi.binary_dilation(taken, iterations=1))
        while todo:
            part = todo.pop()
            if int(part.sum()) < min_area:
                continue
            pr, pc = _argmax(sm[sl], part)
            # The brightest pixel of what is left next to a hot spot already taken is its
            # shoulder, not a peak of its own.
            if taken[max(pr - 2, 0) : pr + 3, max(pc - 2, 0) : pc + 3].any():
                continue
            rec = _record(view, img, sm, ref, sl, part, pr, pc)
            out.append(rec)
            taken |= rec["mask"]
            todo += _pieces(part & ~ndi.binary_dilation(rec["mask"], iterations=1))
    return out


def _pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The connected pieces of ``mask``."""
    lab, n = ndi.label(mask)
    return [lab == j for j in range(1, n + 1)]


def _argmax(values: np.ndarray, where: np.ndarray) -> tuple[int, int]:
    """(row, col) of the largest of ``values`` where ``where`` holds."""
    s = np.where(where, values, -np.inf)
    pr, pc = np.unravel_index(int(np.argmax(s)), s.shape)
    return int(pr), int(pc)


def _record(
    view: str,
    img: np.ndarray,
    sm: np.ndarray,
    ref: np.ndarray,
    sl: tuple[slice, slice],
    comp: np.ndarray,
    pr: int,
    pc: int,
) -> dict[str, Any]:
    """One hot spot of an area (``comp`` within ``sl``) around its peak (``pr``, ``pc``)."""
    peak = float(sm[sl][pr, pc])
    base = float(ref[sl][pr, pc])
    # The hot spot's extent: where its excess over the bone keeps >= 30 % of its peak
    # excess (the truth convention of the synthetic generator), inside the component.
    mask = comp & (sm[sl] - ref[sl] >= 0.3 * (peak - base))
    lab2, _ = ndi.label(mask)
    mask = lab2 == lab2[pr, pc] if lab2[pr, pc] else comp
    w = np.clip(sm[sl] - ref[sl], 0, None) * mask
    rr, cc = np.nonzero(mask)
    wt = w[rr, cc]
    if wt.sum() <= 0:
        wt = np.ones_like(wt, dtype=float)
    return {
        "view": view,
        "row": float((rr * wt).sum() / wt.sum() + sl[0].start),
        "col": float((cc * wt).sum() / wt.sum() + sl[1].start),
        "bbox": (sl[0].start, sl[1].start),
        "mask": mask,
        "peak": peak,
        "mean": float(img[sl][mask].mean()),
        "norm": peak / max(base, 1e-3),
        "peak_rc": (pr + sl[0].start, pc + sl[1].start),
    }


def _union(a: dict[str, Any], b: dict[str, Any]) -> tuple[tuple[int, int], np.ndarray]:
    r0 = min(a["bbox"][0], b["bbox"][0])
    c0 = min(a["bbox"][1], b["bbox"][1])
    r1 = max(a["bbox"][0] + a["mask"].shape[0], b["bbox"][0] + b["mask"].shape[0])
    c1 = max(a["bbox"][1] + a["mask"].shape[1], b["bbox"][1] + b["mask"].shape[1])
    m = np.zeros((r1 - r0, c1 - c0), bool)
    for x in (a, b):
        h, w = x["mask"].shape
        m[x["bbox"][0] - r0 : x["bbox"][0] - r0 + h, x["bbox"][1] - c0 : x["bbox"][1] - c0 + w] |= x["mask"]
    return (r0, c0), m


def _match_views(
    ant: list[dict[str, Any]], post: list[dict[str, Any]], tol_px: float
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Pair anterior and posterior hot spots by distance (greedy, nearest first)."""
    pairs: list[tuple[float, int, int]] = []
    for i, a in enumerate(ant):
        ra = math.sqrt(a["mask"].sum() / math.pi)
        for j, p in enumerate(post):
            rp = math.sqrt(p["mask"].sum() / math.pi)
            d = math.hypot(a["row"] - p["row"], a["col"] - p["col"])
            if d <= max(tol_px, 0.6 * (ra + rp)):
                pairs.append((d, i, j))
    matched = greedy_pairs(pairs)
    used_a = {i for i, _ in matched}
    used_p = {j for _, j in matched}
    out: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [(ant[i], post[j]) for i, j in matched]
    out += [(a, None) for i, a in enumerate(ant) if i not in used_a]
    out += [(None, p) for j, p in enumerate(post) if j not in used_p]
    return out


def detect_hotspots(
    study: Study,
    *,
    threshold: float | None = None,
    model: HotspotModel | None = None,
    smooth_mm: float | None = None,
    match_mm: float = 12.0,
    prepared: PreparedStudy | None = None,
) -> Detection:
    """Find the hot spots of one study (see the module docstring).

    Args:
        study: the study (either or both views).
        threshold: smoothed counts over the bone's reference that make a pixel hot (None: the active
            ``detection.threshold``).
        model: a trained :class:`HotspotModel`; None applies the default rules.
        smooth_mm: Gaussian smoothing (sigma, mm) before thresholding, against Poisson noise
            (None: :data:`scintilab.prepared.SMOOTH_MM`, or ``prepared``'s).
        match_mm: largest distance between an anterior and a posterior hot spot taken for
            the same lesion (besides overlap of their extents).
        prepared: the study already prepared (:func:`scintilab.prepared.prepare_study`), so
            that the frame, atlas and references are not computed again.

    Returns:
        A :class:`Detection`.

    Raises:
        InputError: no view, mismatched views, or no body to fit the atlas to (named by the
            study's pseudonymous key).
        ValueError: ``smooth_mm`` differs from the smoothing ``prepared`` holds.
    """
    threshold = qp.active().detection.threshold if threshold is None else threshold
    if prepared is None:
        prepared = prepare_study(study, smooth_mm=SMOOTH_MM if smooth_mm is None else smooth_mm)
    elif smooth_mm is not None and abs(smooth_mm - prepared.smooth_mm) > 1e-9:
        raise ValueError(f"smooth_mm={smooth_mm} but the prepared study was smoothed by {prepared.smooth_mm} mm")
    spacing = prepared.spacing
    images, atlases = prepared.images, prepared.atlas
    base_view = prepared.base_view
    area_scale = spacing[0] * spacing[1] / 2.3**2
    min_area = max(2, int(round(qp.active().detection.min_area_px / area_scale)))
    found = {
        v: _segment(v, img, prepared.smoothed[v], prepared.reference_image(v), threshold, min_area)
        for v, img in images.items()
    }
    tol = match_mm / (0.5 * (spacing[0] + spacing[1]))
    pairs = _match_views(found.get("ANT", []), found.get("POST", []), tol)
    bmap = atlases[base_view].bone_map()
    hotspots: list[Hotspot] = []
    for a, p in pairs:
        if a is not None and p is not None:
            bbox, mask = _union(a, p)
            best = a if a["norm"] >= p["norm"] else p
            view = "ANT+POST"
        else:
            best = a if a is not None else p
            bbox, mask = best["bbox"], best["mask"]
            view = best["view"]
        h, w = mask.shape
        sl = (slice(bbox[0], bbox[0] + h), slice(bbox[1], bbox[1] + w))
        sums = {v: float(images[v][sl][mask].sum()) for v in images}
        ap = sums["ANT"] / sums["POST"] if len(sums) == 2 and sums.get("POST", 0) > 0 else float("nan")
        atlas = atlases[best["view"]]
        ap_arg = ap if np.isfinite(ap) else None
        bone = atlas.assign_bone(_full(mask, bbox, bmap.shape), ap_arg)
        # Off the skeleton (no template bone within ~5 mm of the peak): no bone.
        pr, pc = best["peak_rc"]
        near = bmap[max(pr - 2, 0) : pr + 3, max(pc - 2, 0) : pc + 3]
        if not (near > 0).any():
            bone = None
        hotspots.append(
            Hotspot(
                id=0,
                view=view,
                row=best["row"],
                col=best["col"],
                bone=bone,
                area_px=int(mask.sum()),
                peak_counts=best["peak"],
                mean_counts=best["mean"],
                normalized_uptake=float(best["norm"]),
                ap_ratio=float(ap),
                bbox=(int(bbox[0]), int(bbox[1])),
                mask=mask,
                best_view=best["view"],
                peak_rc=(int(pr), int(pc)),
            )
        )
    hotspots.sort(key=lambda x: -x.peak_counts)
    for i, hs in enumerate(hotspots, start=1):
        hs.id = i
    det = Detection(
        study_key=study.study_key,
        patient_key=study.patient_key,
        frame=prepared.frame.name,
        images=images,
        atlas=atlases,
        skeleton=prepared.skeleton,
        references=prepared.references,
        hotspots=hotspots,
        shift=prepared.frame.shift,
        spacing=spacing,
        bladder=prepared.bladder,
        smoothed=prepared.smoothed,
    )
    apply_rules(det)
    for h in det.hotspots:
        h.features = hotspot_features(det, h)
    if model is not None:
        model.apply(det)
    return det


def _full(mask: np.ndarray, bbox: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    h, w = mask.shape
    out[bbox[0] : bbox[0] + h, bbox[1] : bbox[1] + w] = mask
    return out


__all__ = [
    "Detection",
    "FEATURES",
    "Hotspot",
    "HotspotModel",
    "METASTATIC_P",
    "RULES",
    "TRAIN_MAX_FP_PER_SCAN",
    "annotation_labels",
    "NEIGHBOUR_REFERENCE_BONES",
    "apply_rules",
    "atlas_uv",
    "comparable_pair",
    "contrast_probability",
    "elongation",
    "greedy_pairs",
    "local_contrast",
    "scaled_area_px",
    "view_atlas",
    "bone_references",
    "choose_threshold",
    "detect_hotspots",
    "hotspot_features",
    "reference_image",
    "rule_kind",
    "rule_probability",
    "train_hotspot_model",
    "uptake_probability",
]
