"""The default rules: a hot spot's probability of metastasis from its uptake, its focality
and what usually is not a metastasis (see :data:`RULES`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from scintilab import quant_params as qp
from scintilab.atlas import Atlas
from scintilab.hotspot_records import Detection, Hotspot, atlas_uv, elongation

#: Bones whose hot spots' uptake term may use the neighbouring vertebrae as the reference
#: (see :func:`rule_probability`).
NEIGHBOUR_REFERENCE_BONES: tuple[str, ...] = ("cervical_spine", "thoracic_spine", "lumbar_spine", "sacrum")
#: The default rules: kind -> (factor applied to the probability, what it stands for).
RULES: dict[str, tuple[float, str]] = {
    "bladder": (0.02, "touching the bladder blob and brighter in front (the bladder lies anteriorly): urine, not bone"),
    "soft_tissue": (0.10, "centre off the atlas skeleton (kidney, soft tissue, contamination)"),
    "injection_site": (0.05, "forearm, hand or elbow lateral to the chest wall: the usual injection sites"),
    "contamination": (0.10, "below the bladder and over 4x more intense in one view than the other (surface urine)"),
    "knee_joint": (0.15, "at the knee joint line (degenerative joint disease; the paper's main false positive)"),
    "shoulder_joint": (0.40, "humeral head at the shoulder joint (arthritis); 0.1 when both shoulders light up"),
    "symmetric_joint": (0.10, "a mirror-image hot spot of comparable intensity on the other side (joint disease)"),
    "feet": (0.15, "feet: degenerative uptake is the rule there"),
    "rib_fracture_line": (0.10, "small foci of similar intensity lined up on consecutive ribs (healed fractures)"),
    "symmetric_anatomy": (
        0.30,
        "rib or scapular focus with a mirror-image focus of similar intensity (normal anatomy)",
    ),
    "lumbar_facet": (0.45, "small focus at the lateral edge of a lumbar vertebra (osteophyte / facet arthritis)"),
    "facial_bones": (
        0.1,
        "skull hot spot of moderate uptake far brighter in front: the facial bones and "
        "sinuses, normally bright in the anterior view",
    ),
    "anterior_thigh": (
        0.2,
        "femoral hot spot of moderate uptake far brighter in front than behind: it lies in "
        "front of the femur (patella, quadriceps insertion, skin), not in it",
    ),
    "pelvic_anatomy": (
        0.2,
        "large pelvic area of only moderate uptake (sacroiliac joints, posterior ilium, iliac "
        "crests): normal anatomy; a metastasis that large is hotter",
    ),
}


def uptake_probability(normalized_uptake: float) -> float:
    """The uptake term: logistic in log normalised uptake, one half at ``rules.uptake_midpoint``."""
    x = qp.active().rules.uptake_slope * (
        math.log(max(normalized_uptake, 1e-6)) - math.log(qp.active().rules.uptake_midpoint)
    )
    return 1.0 / (1.0 + math.exp(-x))


def rule_kind(det: Detection, hs: Hotspot) -> str:
    """The default rule (a key of :data:`RULES`) that explains ``hs`` as benign, or ``""``.

    The rules look only at position, size and depth (never at the class label):

    * ``bladder``: the hot spot touches the bladder blob the atlas found and is brighter
      in front (A/P ratio above ``rules.bladder_min_ap``; the bladder lies anteriorly, a
      pelvic bone lesion next to it does not) or is as large as a bladder
      (``rules.bladder_min_area_px``). The atlas's bladder blob can spread over the
      neighbouring pelvis, hence the checks.
    * ``soft_tissue``: no template bone within ~5 mm of its peak (kidneys, soft tissue).
    * ``injection_site``: forearms and hands (the brightest hot spot there, or one that is
      not focal: :func:`_injection_like`), or the distal humerus (elbow) lateral to the
      chest wall (``|u|`` above ``rules.arm_min_u``): a lateral rib lesion that the atlas
      gives to the humerus is not an injection.
    * ``contamination``: below the bladder landmark, off the axial skeleton, and more than
      4x brighter in one view than in the other (a source on the skin; the bones below the
      bladder lie mid-depth).
    * ``knee_joint``: on a femur or tibia within 3 % of body height of the knee landmark.
    * ``symmetric_joint``: a humeral head / knee hot spot with a mirror-image partner and
      a mirror-image place of comparable brightness (:func:`local_contrast` below
      ``rules.symmetric_max_contrast``): joint disease is bilateral and similar.
    * ``shoulder_joint``: humeral head at the shoulder, not far brighter than the other
      shoulder (a focus many times the other side is a lesion, not arthritis).
    * ``feet``: on the feet.
    * ``rib_fracture_line``: a small rib focus with another small rib focus of similar
      normalised uptake (within a factor ``rules.fracture_max_ratio``) 4-30 px above or below
      it in the same column (+-4 px): healed fractures in a line share their intensity.
    * ``symmetric_anatomy``: a rib or scapular focus of moderate uptake (below
      ``rules.symmetric_anatomy_max_uptake``) with a mirror-image focus of similar normalised
      uptake (:func:`comparable_pair`): normal bilateral anatomy.
    * ``facial_bones``: a skull hot spot of moderate uptake much brighter in front
      (``rules.facial_min_ap``, ``rules.facial_max_uptake``): the face, not the calvarium.
    * ``anterior_thigh``: a femoral hot spot of moderate uptake much brighter in front
      (``rules.anterior_thigh_min_ap``, ``rules.anterior_thigh_max_uptake``): in front of the
      femur, which lies mid-depth.
    * ``pelvic_anatomy``: a large pelvic hot spot of moderate normalised uptake
      (``rules.pelvic_anatomy_min_area_px``, ``rules.pelvic_anatomy_max_uptake``): sacroiliac
      joints and posterior ilium, brighter than the rest of the pelvis in normal scans.
    * ``lumbar_facet``: a small round lumbar focus of moderate uptake
      (``rules.lumbar_facet_max_area_px``, ``rules.lumbar_facet_max_elongation``,
      ``rules.lumbar_facet_max_uptake``) at the lateral edge of the vertebral column.

    When the atlas found no bladder blob, a large front-heavy midline hot spot at the
    bladder landmark is called ``bladder`` too.

    :attr:`Hotspot.contrast` must be set (:func:`rule_probability` does so first).
    """
    atlas = det.atlas["ANT" if "ANT" in det.atlas else "POST"]
    lm = atlas.landmarks
    u, v = atlas_uv(det, hs)
    shape = det.shape
    full = hs.full_mask(shape)
    if det.bladder is not None and det.bladder.any():
        if det._bladder_zone is None:
            det._bladder_zone = ndi.binary_dilation(det.bladder, iterations=2)
        big = hs.area_px >= scaled_area_px(det, qp.active().rules.bladder_min_area_px)
        if (det._bladder_zone & full).any() and (
            big or not (np.isfinite(hs.ap_ratio) and hs.ap_ratio < qp.active().rules.bladder_min_ap)
        ):
            return "bladder"
    elif (
        hs.area_px >= scaled_area_px(det, qp.active().rules.bladder_min_area_px)
        and abs(u) < 0.3
        and abs(v - float(atlas.v_of_row(lm.bladder))) < 0.04
        and np.isfinite(hs.ap_ratio)
        and hs.ap_ratio >= qp.active().rules.bladder_min_ap
    ):
        # No bladder blob (the atlas's threshold failed): a large, front-heavy hot spot on
        # the midline at the bladder landmark is the bladder.
        return "bladder"
    if hs.bone is None:
        below = hs.row > lm.bladder
        if below and np.isfinite(hs.ap_ratio) and (hs.ap_ratio > 4 or hs.ap_ratio < 1 / 4):
            return "contamination"
        if abs(u) > 0.5 and v > 0.3:
            return "injection_site"
        return "soft_tissue"
    small = hs.area_px <= scaled_area_px(det, 60)
    if hs.bone in ("forearms", "hands") and _injection_like(det, hs):
        return "injection_site"
    if hs.bone == "humeri" and v > 0.32 and abs(u) > qp.active().rules.arm_min_u:
        return "injection_site"
    if (
        hs.row > lm.bladder
        and hs.bone in ("femora", "tibiae_fibulae", "pelvis")
        and np.isfinite(hs.ap_ratio)
        and (hs.ap_ratio > 4 or hs.ap_ratio < 1 / 4)
    ):
        return "contamination"
    comparable = not (np.isfinite(hs.contrast) and hs.contrast >= qp.active().rules.symmetric_max_contrast)
    partner = comparable and _mirror_partner(det, hs, u, v)
    knee_v = float(atlas.v_of_row(lm.knee))
    if hs.bone in ("femora", "tibiae_fibulae") and abs(v - knee_v) < 0.03:
        return "symmetric_joint" if partner else "knee_joint"
    if hs.bone == "humeri" and v < qp.active().rules.shoulder_max_v and comparable:
        return "symmetric_joint" if partner else "shoulder_joint"
    if hs.bone == "feet":
        return "feet"
    if hs.bone == "ribs" and small:
        for other in det.hotspots:
            if other is hs or other.bone != "ribs":
                continue
            ratio = max(other.normalized_uptake, 1e-3) / max(hs.normalized_uptake, 1e-3)
            if (
                other.area_px <= scaled_area_px(det, 60)
                and abs(other.col - hs.col) <= 4
                and 4 <= abs(other.row - hs.row) <= 30
                and 1 / qp.active().rules.fracture_max_ratio <= ratio <= qp.active().rules.fracture_max_ratio
            ):
                return "rib_fracture_line"
    if (
        hs.bone in ("ribs", "scapulae")
        and hs.normalized_uptake < qp.active().rules.symmetric_anatomy_max_uptake
        and comparable_pair(det, hs, u, v)
    ):
        return "symmetric_anatomy"
    if (
        hs.bone == "skull"
        and np.isfinite(hs.ap_ratio)
        and hs.ap_ratio >= qp.active().rules.facial_min_ap
        and hs.normalized_uptake < qp.active().rules.facial_max_uptake
    ):
        return "facial_bones"
    if (
        hs.bone == "femora"
        and np.isfinite(hs.ap_ratio)
        and hs.ap_ratio >= qp.active().rules.anterior_thigh_min_ap
        and hs.normalized_uptake < qp.active().rules.anterior_thigh_max_uptake
    ):
        return "anterior_thigh"
    if (
        hs.bone == "pelvis"
        and hs.normalized_uptake < qp.active().rules.pelvic_anatomy_max_uptake
        and hs.area_px >= scaled_area_px(det, qp.active().rules.pelvic_anatomy_min_area_px)
    ):
        return "pelvic_anatomy"
    if (
        hs.bone == "lumbar_spine"
        and hs.area_px <= scaled_area_px(det, qp.active().rules.lumbar_facet_max_area_px)
        and elongation(hs.mask) <= qp.active().rules.lumbar_facet_max_elongation
        and hs.normalized_uptake <= qp.active().rules.lumbar_facet_max_uptake
    ):
        spine_half = 0.095 * max(lm.half_width, 1.0)
        if abs(hs.col - float(lm.midline(hs.row))) > 0.55 * spine_half:
            return "lumbar_facet"
    return ""


def scaled_area_px(det: Detection, px_at_2_3mm: float) -> float:
    """An area given in pixels of 2.3 mm, in pixels of ``det``'s spacing."""
    return px_at_2_3mm * (2.3**2 / (det.spacing[0] * det.spacing[1]))


def _arm_site(det: Detection, hs: Hotspot) -> bool:
    """Where an injection can show: a forearm or hand, the distal humerus lateral to the
    chest wall, or off the skeleton beside the trunk below the shoulders."""
    u, v = atlas_uv(det, hs)
    if hs.bone is None:
        return abs(u) > 0.5 and v > 0.3
    return hs.bone in ("forearms", "hands") or (
        hs.bone == "humeri" and v > 0.32 and abs(u) > qp.active().rules.arm_min_u
    )


def _injection_like(det: Detection, hs: Hotspot) -> bool:
    """Whether a hot spot the atlas puts on a forearm or hand reads as the injection site.

    With the arms at the sides the hands lie beside the proximal femora and the forearms
    beside the lower ribs and pelvis, so a lesion there can be given to the hand. There is
    one injection per scan: the brightest hot spot of the places an injection shows
    (:func:`_arm_site`) is it, and so is anything on the forearm or hand that is not focal
    (a wrist or elbow like its mirror image); a second, focal one (:func:`local_contrast`
    at least ``rules.symmetric_max_contrast``) is judged by the other rules like any bone
    hot spot.
    """
    if not (np.isfinite(hs.contrast) and hs.contrast >= qp.active().rules.symmetric_max_contrast):
        return True
    arm = [h for h in det.hotspots if _arm_site(det, h)]
    return not arm or max(arm, key=lambda h: h.peak_counts) is hs


def comparable_pair(det: Detection, hs: Hotspot, u: float, v: float) -> bool:
    """True when a hot spot on the same bone group mirrors ``hs`` across the midline (same
    height within 2 % of body height, same distance from the midline within 0.12 chest
    half-widths) with a normal uptake within ``rules.fracture_max_ratio`` of it: normal
    bilateral anatomy (rib ends, scapular tips) rather than a metastasis."""
    for other in det.hotspots:
        if other is hs or other.bone != hs.bone:
            continue
        ou, ov = atlas_uv(det, other)
        ratio = max(other.normalized_uptake, 1e-3) / max(hs.normalized_uptake, 1e-3)
        if (
            ou * u < 0
            and abs(abs(ou) - abs(u)) < 0.12
            and abs(ov - v) < 0.02
            and 1 / qp.active().rules.fracture_max_ratio <= ratio <= qp.active().rules.fracture_max_ratio
        ):
            return True
    return False


def _mirror_partner(det: Detection, hs: Hotspot, u: float, v: float, min_uptake: float = 0.0) -> bool:
    """A hot spot on the same bone at the mirror-image place (the other side, within 0.12
    chest half-widths of the same distance from the midline and 2 % of body height), with
    a normalised uptake of at least ``min_uptake``."""
    for other in det.hotspots:
        if other is hs or other.bone != hs.bone or other.normalized_uptake < min_uptake:
            continue
        ou, ov = atlas_uv(det, other)
        if ou * u < 0 and abs(abs(ou) - abs(u)) < 0.12 and abs(ov - v) < 0.02:
            return True
    return False


def local_contrast(det: Detection, hs: Hotspot) -> float:
    """How much the hot spot stands out from the same anatomy nearby.

    Normal bright anatomy (sacroiliac joints, scapular tips, iliac crests, knees, the
    manubrium) is symmetric or continuous; a metastasis is focal. So:

    * off the midline (beyond the vertebral column): peak over the brightest smoothed
      count at the mirror-image place on the other side (a window of about +-1 cm);
    * on the midline: peak over the median of the row maxima of the column 3-9 cm above
      and below (the neighbouring vertebrae or sternum), leaving out the rows that other
      hot spots at least ``rules.uptake_midpoint`` times their bone cross (unless fewer than
      three rows would be left);
    * on a femoral or humeral shaft (away from the hip, knee and shoulder:
      ``rules.shaft_hip_gap``, ``rules.shaft_knee_gap``, ``rules.shaft_shoulder_gap``) whose
      mirror image holds a hot spot on the same bone of at least ``rules.uptake_midpoint``
      times its bone, the larger of the mirror contrast and the same measure along the
      bone: the mirror is then not normal bone. Lesions on both femora at one height read
      0.9-1.3 against each other and scored p 0.01-0.05 (two single-visit tuning cohorts
      lost 1.3 and 2.6 BSI points in one patient each). Joint disease sits at the joints,
      left out here; hypertrophic osteoarthropathy (common in lung cancer, not in the
      generator) is bilateral on the shafts but lines them from end to end, so it stays
      no brighter than its own bone above and below. On eleven tuning cohorts (1,500
      studies) four hot spots changed their call, all four lesions now called;
    * not measured on the skull and mandible (nothing like them beside, above or below).

    Returns:
        The ratio (1 = no different from its surroundings); NaN when it cannot be measured.
    """
    if hs.bone in ("skull", "mandible"):
        # The skull is one plate over the head's midline and has nothing like it above or
        # below: no like-for-like neighbour, so the normalised uptake alone decides.
        return float("nan")
    atlas = det.atlas[hs.best_view]
    lm = atlas.landmarks
    sm = det.smoothed.get(hs.best_view)
    if sm is None:
        return float("nan")
    r, c = hs.peak_rc
    peak = float(sm[r, c])
    mid = _row_midline(atlas.body, r)
    if mid is None:
        mid = float(lm.midline(r))
    px = 0.5 * (det.spacing[0] + det.spacing[1])
    spine_half = max(0.095 * lm.half_width, 10.0 / px)
    win_r = max(2, int(round(10.0 / det.spacing[0])))
    win_c = max(2, int(round(10.0 / det.spacing[1])))
    if abs(c - mid) > spine_half:
        mirror = _mirror_contrast(det, atlas, sm, r, c, mid, peak, win_r, win_c)
        if _on_shaft(det, hs) and _mirror_partner(
            det, hs, *atlas_uv(det, hs), min_uptake=qp.active().rules.uptake_midpoint
        ):
            along = _along_contrast(det, hs, sm, r, c, peak, win_c)
            if np.isfinite(along) and not mirror >= along:  # a NaN mirror gives way too
                return along
        return mirror
    return _along_contrast(det, hs, sm, r, c, peak, win_c)


def _mirror_contrast(
    det: Detection, atlas: Atlas, sm: np.ndarray, r: int, c: int, mid: float, peak: float, win_r: int, win_c: int
) -> float:
    """Peak over the brightest smoothed count at the mirror-image place (see :func:`local_contrast`)."""
    cols = sm.shape[1]
    mc = int(round(2 * mid - c))
    if 0 <= mc < cols and not atlas.body[r, mc]:
        # The mirror image fell off the body: the row's outline was skewed by an arm or
        # hand lying further out on one side than the other (beside the pelvis, one hand
        # 4 cm further out moved it by 2 cm). The atlas's midline, fitted to head and
        # trunk, is the better guess there.
        mc = int(round(2 * float(atlas.landmarks.midline(r)) - c))
    if not 0 <= mc < cols:
        return float("nan")
    box = sm[max(r - win_r, 0) : r + win_r + 1, max(mc - win_c, 0) : mc + win_c + 1]
    return peak / max(float(box.max()), 1e-3) if box.size else float("nan")


def _along_contrast(det: Detection, hs: Hotspot, sm: np.ndarray, r: int, c: int, peak: float, win_c: int) -> float:
    """Peak over the median row maximum 3-9 cm above and below in its own column band,
    leaving out rows of other bright hot spots (see :func:`local_contrast`)."""
    rows = sm.shape[0]
    near, far = int(round(30.0 / det.spacing[0])), int(round(90.0 / det.spacing[0]))
    band = np.r_[max(r - far, 0) : max(r - near, 0), min(r + near, rows) : min(r + far, rows)]
    c_lo, c_hi = max(c - win_c, 0), c + win_c + 1
    # The neighbours stand for normal bone: rows that another bright hot spot crosses are
    # tumour or disease, not what normal is (a mottled lesion over three lumbar vertebrae,
    # split into several hot spots, made each piece look no brighter than its neighbours).
    hot = _rows_of_hot_spots(det, hs, rows, c_lo, c_hi)
    kept = band[~hot[band]]
    if kept.size >= 3:
        band = kept
    if band.size < 3:
        return float("nan")
    strip = sm[band, c_lo:c_hi]
    return peak / max(float(np.median(strip.max(axis=1))), 1e-3)


def _rows_of_hot_spots(det: Detection, hs: Hotspot, rows: int, c_lo: int, c_hi: int) -> np.ndarray:
    """Rows crossed, between columns ``c_lo`` and ``c_hi``, by the detection's other hot spots
    whose normalised uptake reaches ``rules.uptake_midpoint`` (the uptake term's half point:
    more likely tumour than not)."""
    out = np.zeros(rows, bool)
    for other in det.hotspots:
        if other is hs or other.normalized_uptake < qp.active().rules.uptake_midpoint:
            continue
        r0, c0 = other.bbox
        a, b = max(c_lo - c0, 0), min(max(c_hi - c0, 0), other.mask.shape[1])
        if b <= a:
            continue
        crossed = np.nonzero(other.mask[:, a:b].any(axis=1))[0] + r0
        out[crossed[(crossed >= 0) & (crossed < rows)]] = True
    return out


def _on_shaft(det: Detection, hs: Hotspot) -> bool:
    """Whether the hot spot lies on a femoral or humeral shaft, away from the joints."""
    if hs.bone not in ("femora", "humeri"):
        return False
    atlas = det.atlas["ANT" if "ANT" in det.atlas else "POST"]
    lm = atlas.landmarks
    _, v = atlas_uv(det, hs)
    if hs.bone == "humeri":
        return v > qp.active().rules.shoulder_max_v + qp.active().rules.shaft_shoulder_gap
    return (
        float(atlas.v_of_row(lm.bladder)) + qp.active().rules.shaft_hip_gap
        < v
        < float(atlas.v_of_row(lm.knee)) - qp.active().rules.shaft_knee_gap
    )


def _row_midline(body: np.ndarray, row: int, half: int = 8) -> float | None:
    """Centre column of the body outline around ``row`` (the local midline).

    Measured per row rather than taken from the atlas's straight midline, because a
    straight line fitted to the head and trunk can drift by centimetres at the legs.
    """
    band = body[max(row - half, 0) : row + half + 1]
    if not band.any():
        return None
    cols = np.nonzero(band)[1]
    return 0.5 * (float(cols.min()) + float(cols.max()))


def contrast_probability(contrast: float) -> float:
    """The focality term: logistic in log contrast, one half at ``rules.contrast_midpoint``."""
    if not np.isfinite(contrast):
        return 1.0
    x = qp.active().rules.contrast_slope * (
        math.log(max(contrast, 1e-6)) - math.log(qp.active().rules.contrast_midpoint)
    )
    return 1.0 / (1.0 + math.exp(-x))


def rule_probability(det: Detection, hs: Hotspot) -> tuple[float, str]:
    """Default probability of metastasis: the uptake term times the focality term
    (:func:`local_contrast`) times the factor of the rule that fired (see :data:`RULES`
    and :func:`rule_kind`).

    On the vertebral column (:data:`NEIGHBOUR_REFERENCE_BONES`) the uptake term reads the
    larger of the normalised uptake and the local contrast (the latter capped at
    ``rules.neighbour_max_gain`` times the former): a spine full of tumour raises
    its own median (the region-wise reference) until its lesions look only 1.7-2.3 times
    "normal", while the vertebrae 3-9 cm above and below still show what normal is. Off
    the spine the contrast is against the mirror-image side, which normal anatomy and
    bilateral disease share, so it does not stand in for the reference there (on the
    seed-1 tuning cohort doing so for the pelvis tripled the false positives). From a
    normalised uptake of ``rules.focality_waiver_uptake`` the focality term damps at most
    to ``rules.focality_waiver_floor``. On the skull a hot spot seen in both views that no
    rule explains reads its normalised uptake times ``rules.skull_both_views_gain`` (the
    calvarium en face, against a reference set by its rim).
    """
    hs.contrast = local_contrast(det, hs)
    kind = rule_kind(det, hs)
    uptake = hs.normalized_uptake
    if hs.bone in NEIGHBOUR_REFERENCE_BONES and np.isfinite(hs.contrast):
        uptake = max(uptake, min(hs.contrast, qp.active().rules.neighbour_max_gain * uptake))
    if hs.bone == "skull" and hs.view == "ANT+POST" and not kind:
        uptake *= qp.active().rules.skull_both_views_gain
    focality = contrast_probability(hs.contrast)
    if hs.normalized_uptake >= qp.active().rules.focality_waiver_uptake:
        focality = max(focality, qp.active().rules.focality_waiver_floor)
    p = uptake_probability(uptake) * focality
    if kind:
        p *= RULES[kind][0]
    return float(p), kind


def apply_rules(det: Detection) -> None:
    """Set ``kind``, ``p_metastatic`` and ``threshold`` of every hot spot, and
    the detection's thresholds to the rules' (``rules.metastatic_p`` for calls,
    ``rules.endpoint_p`` for BSI and follow-up) (in place)."""
    det.threshold = qp.active().rules.metastatic_p
    det.endpoint_threshold = qp.active().rules.endpoint_p
    for hs in det.hotspots:
        hs.p_metastatic, hs.kind = rule_probability(det, hs)
        hs.threshold = qp.active().rules.metastatic_p
