"""Hot-spot detection on whole-body bone scans, normalised to the patient's own bone.

What happens to one study (:func:`detect_hotspots`):

1. **Common frame.** The posterior view is flipped and aligned to the anterior one with
   the fusion module's critical points (:func:`scintilab.fusion.align_views`), so both
   views share the stored anterior image's pixel grid. A study with only a posterior view
   uses the flipped posterior as its frame.
2. **Skeleton and regions.** The lesion-statistics atlas (:func:`scintilab.atlas.fit_atlas`)
   is fitted once, on the anterior view; the posterior view reuses its landmarks with the
   posterior drawing order (bones nearer the back drawn on top). Each view gets its
   skeleton mask (:meth:`~scintilab.atlas.Atlas.skeleton_mask`).
3. **Region-wise reference.** Per view and per bone group, the median smoothed count of
   the skeleton pixels of that bone: the patient's own healthy bone (metastases usually
   cover a small part of each bone, so the median stays on healthy bone; when they cover
   much of a vertebral column the median rises with them, see step 5). Each pixel's
   *normalised uptake* is its smoothed count over the reference of the bone under it (off
   the skeleton: of the nearest bone). A dim scan and a bright scan read the same.
4. **Hot spots.** Connected areas whose normalised uptake exceeds ``threshold`` (default
   1.6) in either view, an area holding a second hot spot split in two
   (``detection.split_peaks``); the two views' hot spots are matched by position (the same lesion
   seen from both sides becomes one ``ANT+POST`` hot spot). Per hot spot: bone group, area,
   peak and mean counts, normalised uptake, anterior/posterior count ratio (depth cue:
   above 1 nearer the front) and a probability of being metastatic.
5. **Probability.** Without a trained model (:func:`rule_probability`): a logistic
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
imports Keras.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab import quant_params as qp
from scintilab.anatomy import BONES, region_of
from scintilab.atlas import Atlas, fit_atlas
from scintilab.errors import InputError
from scintilab.study import Study

#: Bones whose hot spots' uptake term may use the neighbouring vertebrae as the reference
#: (see :func:`rule_probability`).
NEIGHBOUR_REFERENCE_BONES: tuple[str, ...] = ("cervical_spine", "thoracic_spine", "lumbar_spine", "sacrum")
#: The probability cut for classifiers calibrated to it: a :class:`HotspotModel` folds its
#: own operating threshold into its intercept so that p >= 0.5 applies it.
METASTATIC_P: float = 0.5


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


@dataclass
class Hotspot:
    """One hot spot, in the stored anterior image's frame.

    Attributes:
        id: number within its study (1, 2, ...), by decreasing peak.
        view: ``ANT``, ``POST`` or ``ANT+POST`` (seen in both views).
        row / col: intensity-weighted centre (pixels of the stored anterior image).
        bone: fine bone group (:data:`scintilab.anatomy.BONES`) under it, None off the skeleton.
        area_px: pixels in its mask.
        peak_counts: highest smoothed count (in the view where it is brightest).
        mean_counts: mean raw count over the mask in that view.
        normalized_uptake: peak over the bone's reference (the larger of the two views).
        ap_ratio: anterior over posterior counts summed over the mask (NaN with one view).
        kind: the default rule that fired (a key of :data:`RULES`), ``""`` when none.
        p_metastatic: probability of being a metastasis (rules or a trained model).
        threshold: the operating (calling) threshold of the classifier that set
            ``p_metastatic`` (``rules.metastatic_p`` for the rules,
            :attr:`HotspotModel.threshold`).
        bbox: (row0, col0) of ``mask`` in the image.
        mask: boolean mask inside its bounding box.
        features: the numbers a learned model uses (see :data:`FEATURES`).
        contrast: peak over the same place on the other side (off the midline) or over the
            bone a few centimetres above and below (on the midline); see :func:`local_contrast`.
        best_view: the view in which it is brightest relative to its bone.
        peak_rc: (row, col) of its peak in that view.
    """

    id: int
    view: str
    row: float
    col: float
    bone: str | None
    area_px: int
    peak_counts: float
    mean_counts: float
    normalized_uptake: float
    ap_ratio: float
    kind: str = ""
    p_metastatic: float = 0.0
    bbox: tuple[int, int] = (0, 0)
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)
    features: dict[str, float] = field(default_factory=dict, repr=False)
    contrast: float = float("nan")
    best_view: str = "ANT"
    peak_rc: tuple[int, int] = (0, 0)
    threshold: float = METASTATIC_P

    @property
    def region(self) -> str | None:
        """Coarse region (:data:`scintilab.anatomy.REGIONS`) of :attr:`bone`."""
        return None if self.bone is None else region_of(self.bone)

    @property
    def metastatic(self) -> bool:
        """True when :attr:`p_metastatic` reaches its classifier's :attr:`threshold`."""
        return self.p_metastatic >= self.threshold

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The hot spot's mask in an image of ``shape``."""
        out = np.zeros(shape, bool)
        r0, c0 = self.bbox
        h, w = self.mask.shape
        out[r0 : r0 + h, c0 : c0 + w] = self.mask
        return out

    def as_row(self) -> dict[str, Any]:
        """Table row (no pixels)."""
        return {
            "id": self.id,
            "view": self.view,
            "row": round(self.row, 1),
            "col": round(self.col, 1),
            "region": self.bone or "soft_tissue",
            "area_px": int(self.area_px),
            "peak_counts": round(self.peak_counts, 1),
            "mean_counts": round(self.mean_counts, 1),
            "normalized_uptake": round(self.normalized_uptake, 3),
            "ap_ratio": None if not np.isfinite(self.ap_ratio) else round(self.ap_ratio, 3),
            "kind": self.kind,
            "p_metastatic": round(self.p_metastatic, 4),
            "metastatic": int(self.metastatic),
        }


@dataclass
class Detection:
    """Everything :func:`detect_hotspots` found for one study.

    Attributes:
        study_key / patient_key: pseudonymous ids.
        frame: ``ANT`` (the stored anterior grid) or ``POST`` (flipped posterior; no ANT).
        images: view -> float32 image in the frame (the posterior flipped and aligned).
        atlas: view -> fitted atlas (both share landmarks).
        skeleton: view -> boolean skeleton mask.
        references: view -> {bone: reference counts}.
        hotspots: the hot spots, by decreasing peak.
        shift: (rows, cols) applied to the flipped posterior (0, 0 without both views).
        spacing: (row, col) pixel spacing in mm.
        bladder: boolean bladder blob (found on the anterior view, where it is brightest).
        threshold: operating (calling) threshold of the classifier that scored the hot
            spots (set by :func:`apply_rules` and :meth:`HotspotModel.apply`): which hot
            spots are metastatic in tables, counts and reports.
        endpoint_threshold: that classifier's cut for the quantitative endpoints (BSI
            involvement, new / resolved lesions, PCWG3): ``rules.endpoint_p`` for the
            rules, the model's own threshold for a learned model.
    """

    study_key: str
    patient_key: str
    frame: str
    images: dict[str, np.ndarray]
    atlas: dict[str, Atlas]
    skeleton: dict[str, np.ndarray]
    references: dict[str, dict[str, float]]
    hotspots: list[Hotspot]
    shift: tuple[float, float] = (0.0, 0.0)
    spacing: tuple[float, float] = (2.3, 2.3)
    bladder: np.ndarray | None = field(default=None, repr=False)
    smoothed: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    threshold: float = METASTATIC_P
    endpoint_threshold: float = METASTATIC_P
    _bladder_zone: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the frame."""
        return next(iter(self.images.values())).shape  # type: ignore[return-value]

    def bone_map(self) -> np.ndarray:
        """Bone map of the frame (anterior drawing order when the anterior view exists)."""
        return self.atlas["ANT" if "ANT" in self.atlas else "POST"].bone_map()

    def skeleton_union(self) -> np.ndarray:
        """Pixels that are skeleton in either view."""
        out = np.zeros(self.shape, bool)
        for m in self.skeleton.values():
            out |= m
        return out

    def call_threshold(self, threshold: float | None = None) -> float:
        """``threshold`` when given, else the active classifier's (:attr:`threshold`)."""
        return self.threshold if threshold is None else float(threshold)

    def endpoint_cut(self, threshold: float | None = None) -> float:
        """``threshold`` when given, else the active classifier's cut for BSI and
        follow-up (:attr:`endpoint_threshold`)."""
        return self.endpoint_threshold if threshold is None else float(threshold)

    def set_threshold(self, threshold: float) -> None:
        """One cut for everything (calls and endpoints), e.g. a user's override."""
        self.threshold = self.endpoint_threshold = float(threshold)
        for h in self.hotspots:
            h.threshold = float(threshold)

    def metastatic(self, threshold: float | None = None) -> list[Hotspot]:
        """Hot spots whose probability reaches ``threshold`` (default: :attr:`threshold`)."""
        t = self.call_threshold(threshold)
        return [h for h in self.hotspots if h.p_metastatic >= t]

    def table(self) -> list[dict[str, Any]]:
        """Hot spots as table rows (with the study key)."""
        return [{"study_key": self.study_key, **h.as_row()} for h in self.hotspots]


# --------------------------------------------------------------------------------- detection


def _sigma(spacing: tuple[float, float], mm: float) -> tuple[float, float]:
    return (mm / max(spacing[0], 1e-6), mm / max(spacing[1], 1e-6))


def _frame_images(study: Study) -> tuple[str, dict[str, np.ndarray], tuple[float, float]]:
    """Both views in one pixel grid (see the module docstring, step 1)."""
    from scintilab.fusion import align_views, flip_posterior

    ant, post = study.anterior, study.posterior
    if ant is None and post is None:
        raise InputError(study.study_key, "study holds no view")
    if ant is not None and post is not None:
        if ant.shape != post.shape:
            raise InputError(study.study_key, f"ANT {ant.shape} and POST {post.shape} differ in matrix size")
        res = align_views(ant, post)
        return "ANT", {"ANT": res.anterior, "POST": res.posterior_flipped_aligned}, res.shift
    if ant is not None:
        return "ANT", {"ANT": np.asarray(ant, np.float32)}, (0.0, 0.0)
    return "POST", {"POST": flip_posterior(np.asarray(post, np.float32))}, (0.0, 0.0)


def view_atlas(base: Atlas, view: str) -> Atlas:
    """The same landmarks drawn in ``view``'s overlap order (the frame is shared)."""
    if base.view == view:
        return base
    return Atlas(
        shape=base.shape, view=view, mirrored=False, spacing=base.spacing, landmarks=base.landmarks, body=base.body
    )


def bone_references(
    smoothed: np.ndarray, skeleton: np.ndarray, bone_map: np.ndarray, min_pixels: int = 12
) -> dict[str, float]:
    """Median smoothed count of each bone group's skeleton pixels (its healthy level).

    Bones with fewer than ``min_pixels`` skeleton pixels get the whole skeleton's median.

    Args:
        smoothed: the smoothed view.
        skeleton: boolean skeleton mask.
        bone_map: atlas bone map (0 none, i + 1 = ``BONES[i]``).
        min_pixels: fewest pixels for a bone's own reference.

    Returns:
        {bone: reference counts}, every bone of :data:`BONES` present.
    """
    sel = skeleton & (bone_map > 0)
    overall = float(np.median(smoothed[sel])) if sel.sum() >= min_pixels else float(np.percentile(smoothed, 95))
    overall = max(overall, 1e-3)
    refs: dict[str, float] = {}
    for i, b in enumerate(BONES):
        vals = smoothed[sel & (bone_map == i + 1)]
        refs[b] = max(float(np.median(vals)), 1e-3) if vals.size >= min_pixels else overall
    return refs


def reference_image(refs: dict[str, float], bone_map: np.ndarray) -> np.ndarray:
    """Each pixel's reference: its bone's, or off the skeleton the nearest bone's."""
    lut = np.array([np.nan] + [refs[b] for b in BONES], np.float32)
    if not (bone_map > 0).any():
        return np.full(bone_map.shape, float(np.nanmedian(lut[1:])), np.float32)
    _, (ir, ic) = ndi.distance_transform_edt(bone_map == 0, return_indices=True)
    return lut[bone_map[ir, ic]]


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


def greedy_pairs(pairs: Sequence[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """One-to-one matching: take candidate ``(distance, i, j)`` pairs nearest first.

    Used for ANT/POST hotspot pairing and for baseline/follow-up matching.
    """
    used_i: set[int] = set()
    used_j: set[int] = set()
    out: list[tuple[int, int]] = []
    for _, i, j in sorted(pairs):
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        out.append((i, j))
    return out


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
    smooth_mm: float = 2.5,
    match_mm: float = 12.0,
) -> Detection:
    """Find the hot spots of one study (see the module docstring).

    Args:
        study: the study (either or both views).
        threshold: smoothed counts over the bone's reference that make a pixel hot (None: the active
            ``detection.threshold``).
        model: a trained :class:`HotspotModel`; None applies the default rules.
        smooth_mm: Gaussian smoothing (sigma, mm) before thresholding, against Poisson noise.
        match_mm: largest distance between an anterior and a posterior hot spot taken for
            the same lesion (besides overlap of their extents).

    Returns:
        A :class:`Detection`.

    Raises:
        InputError: no view, mismatched views, or no body to fit the atlas to (named by the
            study's pseudonymous key).
    """
    threshold = qp.active().detection.threshold if threshold is None else threshold
    frame, images, shift = _frame_images(study)
    spacing = tuple(float(s) for s in study.pixel_spacing)
    base_view = "ANT" if "ANT" in images else "POST"
    try:
        base = fit_atlas(images[base_view], view=base_view, spacing=spacing)
    except ValueError as err:
        raise InputError(study.study_key, f"cannot fit the skeleton atlas: {err}") from None
    atlases: dict[str, Atlas] = {v: view_atlas(base, v) for v in images}
    area_scale = spacing[0] * spacing[1] / 2.3**2
    min_area = max(2, int(round(qp.active().detection.min_area_px / area_scale)))
    skeleton: dict[str, np.ndarray] = {}
    refs: dict[str, dict[str, float]] = {}
    found: dict[str, list[dict[str, Any]]] = {}
    smoothed: dict[str, np.ndarray] = {}
    bladder = _bladder(atlases, images)
    for v, img in images.items():
        sm = ndi.gaussian_filter(img, _sigma(spacing, smooth_mm))
        smoothed[v] = sm
        sk = _skeleton(atlases[v], img, bladder)
        skeleton[v] = sk
        bmap = atlases[v].bone_map()
        refs[v] = bone_references(sm, sk, bmap)
        found[v] = _segment(v, img, sm, reference_image(refs[v], bmap), threshold, min_area)
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
        frame=frame,
        images=images,
        atlas=atlases,
        skeleton=skeleton,
        references=refs,
        hotspots=hotspots,
        shift=shift,
        spacing=spacing,
        bladder=bladder,
        smoothed=smoothed,
    )
    apply_rules(det)
    if model is not None:
        model.apply(det)
    return det


def _bladder(atlases: dict[str, Atlas], images: dict[str, np.ndarray]) -> np.ndarray:
    """The bladder blob, from the anterior view when there is one.

    The bladder lies in front, so the anterior view shows it far above its surroundings;
    in the posterior view it can be dim enough that "half its peak" spreads over the
    whole trunk, so the posterior view is used only when it is the only one.
    """
    view = "ANT" if "ANT" in images else "POST"
    mask = atlases[view].bladder_mask(images[view])
    # A blob over ~4 % of the frame is not a bladder but a failed threshold: ignore it.
    if mask.sum() > 0.04 * mask.size:
        return np.zeros(mask.shape, bool)
    return mask


def _skeleton(atlas: Atlas, image: np.ndarray, bladder: np.ndarray, factor: float = 1.6) -> np.ndarray:
    """Skeleton mask of one view, leaving out the shared bladder blob.

    The same criterion as :meth:`scintilab.atlas.Atlas.skeleton_mask` (bone-like uptake
    near the template skeleton) but with the bladder found once for both views (see
    :func:`_bladder`).
    """
    img = np.asarray(image, dtype=float)
    sm = ndi.gaussian_filter(img, _sigma(atlas.spacing, 2.5))
    body_vals = sm[atlas.body]
    level = float(np.median(body_vals)) if body_vals.size else 0.0
    near = ndi.binary_dilation(atlas.bone_map() > 0, iterations=max(1, int(round(6.0 / atlas.spacing[1]))))
    return (sm > factor * max(level, 1e-6)) & atlas.body & near & ~bladder


def _full(mask: np.ndarray, bbox: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    h, w = mask.shape
    out[bbox[0] : bbox[0] + h, bbox[1] : bbox[1] + w] = mask
    return out


# --------------------------------------------------------------------------------- rules


def uptake_probability(normalized_uptake: float) -> float:
    """The uptake term: logistic in log normalised uptake, one half at ``rules.uptake_midpoint``."""
    x = qp.active().rules.uptake_slope * (
        math.log(max(normalized_uptake, 1e-6)) - math.log(qp.active().rules.uptake_midpoint)
    )
    return 1.0 / (1.0 + math.exp(-x))


def _canon(det: Detection, hs: Hotspot) -> tuple[float, float]:
    """(u, v) atlas coordinates of a hot spot (u in chest half-widths, v in body heights)."""
    atlas = det.atlas["ANT" if "ANT" in det.atlas else "POST"]
    return float(atlas.u_of(hs.row, hs.col)), float(atlas.v_of_row(hs.row))


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
    u, v = _canon(det, hs)
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
        and _elongation(hs.mask) <= qp.active().rules.lumbar_facet_max_elongation
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
    u, v = _canon(det, hs)
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
        ou, ov = _canon(det, other)
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
        ou, ov = _canon(det, other)
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
            det, hs, *_canon(det, hs), min_uptake=qp.active().rules.uptake_midpoint
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
    _, v = _canon(det, hs)
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
    """Set ``kind``, ``p_metastatic``, ``threshold`` and ``features`` of every hot spot, and
    the detection's thresholds to the rules' (``rules.metastatic_p`` for calls,
    ``rules.endpoint_p`` for BSI and follow-up) (in place)."""
    det.threshold = qp.active().rules.metastatic_p
    det.endpoint_threshold = qp.active().rules.endpoint_p
    for hs in det.hotspots:
        hs.p_metastatic, hs.kind = rule_probability(det, hs)
        hs.threshold = qp.active().rules.metastatic_p
    for hs in det.hotspots:
        hs.features = hotspot_features(det, hs)


# --------------------------------------------------------------------------------- learned model

#: Features of a hot spot seen by :class:`HotspotModel`: intensity (normalised uptake,
#: local contrast, peak over mean), size and shape (area, elongation), depth (A/P ratio,
#: seen in both views), position (atlas u/v, distance from the spinal midline, bone
#: one-hot), symmetry (uptake over the mirror-image partner on the same bone, when there
#: is one), crowding (other hot spots on the same bone) and the default rules' verdict.
FEATURES: tuple[str, ...] = (
    "log_uptake",
    "log_contrast",
    "log_area",
    "log_ap",
    "has_ap",
    "both_views",
    "on_skeleton",
    "u_abs",
    "v",
    "rule_benign",
    "rule_p",
    *(f"rule_{k}" for k in RULES),
    "log_peak_mean",
    "elongation",
    "midline_dist",
    "has_partner",
    "log_partner_ratio",
    "log_n_same_bone",
    *(f"bone_{b}" for b in BONES),
)


def _partner_ratio(det: Detection, hs: Hotspot, u: float, v: float) -> float:
    """Normalised uptake of ``hs`` over that of its closest mirror-image partner on the same
    bone (same height within 3 % of body height, same distance from the midline within 0.15
    chest half-widths); NaN without one. Near 1: symmetric (joint disease, anatomy)."""
    best, best_d = float("nan"), float("inf")
    for other in det.hotspots:
        if other is hs or other.bone != hs.bone or hs.bone is None:
            continue
        ou, ov = _canon(det, other)
        if ou * u >= 0:
            continue
        d = abs(abs(ou) - abs(u)) / 0.15 + abs(ov - v) / 0.03
        if d < 2.0 and d < best_d:
            best_d = d
            best = max(hs.normalized_uptake, 1e-3) / max(other.normalized_uptake, 1e-3)
    return best


def _elongation(mask: np.ndarray) -> float:
    """Square root of the ratio of the mask's principal second moments (1 = round)."""
    rr, cc = np.nonzero(mask)
    if rr.size < 3:
        return 1.0
    cov = np.cov(np.stack([rr, cc]).astype(float)) + np.eye(2) * 1e-3
    ev = np.linalg.eigvalsh(cov)
    return float(math.sqrt(max(ev[1], 1e-6) / max(ev[0], 1e-6)))


def hotspot_features(det: Detection, hs: Hotspot) -> dict[str, float]:
    """Numbers describing a hot spot for a learned classifier (see :data:`FEATURES`)."""
    u, v = _canon(det, hs)
    f = {
        "log_uptake": math.log(max(hs.normalized_uptake, 1e-3)),
        "log_contrast": math.log(hs.contrast) if np.isfinite(hs.contrast) and hs.contrast > 0 else 0.0,
        "log_area": math.log(max(hs.area_px, 1)),
        # a one-view study has no A/P ratio: say so (has_ap 0) rather than let log_ap 0 read as "equal"
        "log_ap": math.log(hs.ap_ratio) if np.isfinite(hs.ap_ratio) and hs.ap_ratio > 0 else 0.0,
        "has_ap": float(np.isfinite(hs.ap_ratio) and hs.ap_ratio > 0),
        "both_views": float(hs.view == "ANT+POST"),
        "on_skeleton": float(hs.bone is not None),
        "u_abs": abs(u),
        "v": v,
        "rule_benign": float(bool(hs.kind)),
        "rule_p": hs.p_metastatic,
    }
    for k in RULES:
        f[f"rule_{k}"] = float(hs.kind == k)
    lm = det.atlas["ANT" if "ANT" in det.atlas else "POST"].landmarks
    spine_half = max(0.095 * float(lm.half_width), 1.0)
    ratio = _partner_ratio(det, hs, u, v)
    f.update(
        {
            "log_peak_mean": math.log(max(hs.peak_counts, 1e-3) / max(hs.mean_counts, 1e-3)),
            "elongation": _elongation(hs.mask),
            # in vertebral half-widths: facet / osteophyte foci sit at the column's edge
            "midline_dist": min(abs(hs.col - float(lm.midline(hs.row))) / spine_half, 20.0),
            "has_partner": float(np.isfinite(ratio)),
            "log_partner_ratio": math.log(ratio) if np.isfinite(ratio) else 0.0,
            "log_n_same_bone": math.log1p(sum(1 for o in det.hotspots if o is not hs and o.bone == hs.bone)),
        }
    )
    for b in BONES:
        f[f"bone_{b}"] = float(hs.bone == b)
    return f


@dataclass
class HotspotModel:
    """A logistic-regression hot-spot classifier, stored as plain JSON (no pickle).

    Its operating threshold (chosen on the training cohort, see
    :func:`train_hotspot_model`) is folded into the intercept, so p >= :attr:`threshold`
    (0.5) applies it.

    Attributes:
        features: feature names (:data:`FEATURES`).
        mean / scale: standardisation (0 / 1 for 0/1 indicator features).
        coef / intercept: the fitted logistic regression.
        info: how it was trained (cohort size, positives, ...).
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """Operating threshold on :meth:`predict`'s probabilities: :data:`METASTATIC_P`, the
        training cohort's chosen cut having been folded into the intercept."""
        return METASTATIC_P

    def predict(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        """Probability of metastasis for feature dicts."""
        if not rows:
            return np.zeros(0)
        x = np.array([[r.get(k, 0.0) for k in self.features] for r in rows], float)
        z = (x - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.array(self.coef) + self.intercept)))

    def apply(self, det: Detection) -> None:
        """Replace the rule probabilities of ``det``'s hot spots, and the rules' thresholds
        with this model's one threshold, for calls and endpoints alike (in place)."""
        p = self.predict([h.features for h in det.hotspots])
        det.threshold = det.endpoint_threshold = self.threshold
        for h, pi in zip(det.hotspots, p):
            h.p_metastatic = float(pi)
            h.threshold = self.threshold

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON."""
        path = Path(path)
        path.write_text(
            json.dumps({"type": "scintilab-hotspot-logreg", **self.__dict__}, indent=1) + "\n", encoding="utf-8"
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> HotspotModel:
        """Read a model written by :meth:`save`.

        Raises:
            InputError: not such a model file.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(path, f"cannot read hotspot model: {err}") from None
        if not isinstance(data, dict) or data.get("type") != "scintilab-hotspot-logreg":
            raise InputError(path, "not a scintilab hotspot model (expected type scintilab-hotspot-logreg)")
        try:
            return cls(
                features=list(data["features"]),
                mean=list(data["mean"]),
                scale=list(data["scale"]),
                coef=list(data["coef"]),
                intercept=float(data["intercept"]),
                info=dict(data.get("info", {})),
            )
        except KeyError as err:
            raise InputError(path, f"hotspot model lacks {err}") from None


def annotation_labels(det: Detection, study: Study, dilate_px: int = 2) -> list[int]:
    """1 for each hot spot overlapping an annotated lesion (``lesion...`` shapes), else 0.

    Shapes of the anterior view are used as drawn; posterior shapes are flipped and moved
    by the alignment shift into the frame.
    """
    from skimage.draw import polygon as draw_polygon

    shape = det.shape
    les = np.zeros(shape, bool)
    _, w = shape
    for s in study.shapes:
        if not s.label.lower().startswith("lesion"):
            continue
        pts = np.asarray(s.points, float)
        if s.view == "POST":
            if det.frame == "ANT":
                pts = np.stack([w - 1 - pts[:, 0] + det.shift[1], pts[:, 1] + det.shift[0]], axis=1)
            else:
                pts = np.stack([w - 1 - pts[:, 0], pts[:, 1]], axis=1)
        elif det.frame != "ANT":
            continue
        if s.shape_type == "circle" and len(pts) >= 2:
            rad = float(np.hypot(*(pts[1] - pts[0])))
            rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
            les |= (rr - pts[0, 1]) ** 2 + (cc - pts[0, 0]) ** 2 <= rad**2
            continue
        if s.shape_type == "rectangle" and len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[0], pts[1]
            pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        if len(pts) < 3:
            continue
        rr, cc = draw_polygon(pts[:, 1], pts[:, 0], shape)
        les[rr, cc] = True
    if dilate_px:
        les = ndi.binary_dilation(les, iterations=dilate_px)
    return [int((h.full_mask(shape) & les).any()) for h in det.hotspots]


#: Largest false-positive hot spots per scan allowed, out of fold on the training cohort,
#: when :func:`train_hotspot_model` picks the operating threshold: half the issue's bar of
#: 1.0, leaving room for a fresh cohort to differ from the training one.
TRAIN_MAX_FP_PER_SCAN: float = 0.5


def _fit_logreg(x: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardise ``x`` and fit an L2 logistic regression: (mean, scale, coef, intercept)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    # 0/1 indicators (bone one-hot, rule kinds) stay as they are: standardising a rare one
    # (a bone with a handful of training hot spots) turns its 1 into a z of 20-40, and a
    # small coefficient then swamps everything else on a cohort where that bone is common.
    binary = np.all((x == 0) | (x == 1), axis=0)
    mean[binary] = 0.0
    scale[binary] = 1.0
    clf = LogisticRegression(C=C, max_iter=3000)
    clf.fit((x - mean) / scale, y)
    return mean, scale, clf.coef_[0], float(clf.intercept_[0])


def choose_threshold(
    p: np.ndarray, y: np.ndarray, n_scans: int, max_fp_per_scan: float = TRAIN_MAX_FP_PER_SCAN
) -> tuple[float, float, float]:
    """The lowest probability threshold whose false positives per scan stay within
    ``max_fp_per_scan`` (so the most lesions are called within that budget).

    Args:
        p: (out-of-fold) probabilities of the training hot spots.
        y: their 0/1 annotation labels.
        n_scans: scans they come from.
        max_fp_per_scan: the false-positive budget.

    Returns:
        (threshold, false positives per scan, share of annotated hot spots called) at it.
    """
    best = (0.5, float("nan"), float("nan"))
    for t in np.round(np.arange(0.01, 0.96, 0.01), 2):
        fp = float(((p >= t) & (y == 0)).sum()) / max(n_scans, 1)
        if fp <= max_fp_per_scan:
            return float(t), fp, float(((p >= t) & (y == 1)).sum()) / max(int(y.sum()), 1)
    return best


def train_hotspot_model(
    detections: Iterable[Detection],
    labels: Iterable[Sequence[int]],
    *,
    C: float = 1.0,
    folds: int = 5,
    max_fp_per_scan: float = TRAIN_MAX_FP_PER_SCAN,
    seed: int = 0,
) -> HotspotModel:
    """Fit a :class:`HotspotModel` on hot spots with known truth (e.g. LabelMe lesions).

    The operating threshold is chosen on the training cohort only: out-of-fold
    probabilities (``folds`` folds by patient, so no patient's other visits leak into its
    own prediction) give the lowest threshold whose false positives per scan stay within
    ``max_fp_per_scan`` (:func:`choose_threshold`). The final model, fitted on every hot
    spot, has its intercept shifted by minus the log-odds of that threshold, so that the
    usual cut :data:`METASTATIC_P` (0.5) applies it everywhere downstream (BSI, counts,
    follow-up) without a separate setting.

    Args:
        detections: detections (default rules applied, so rule features are filled).
        labels: per detection, one 0/1 per hot spot (:func:`annotation_labels`).
        C: inverse L2 regularisation strength.
        folds: patient-grouped cross-validation folds for the threshold (fewer patients:
            as many folds as patients; below 2, the threshold stays at 0.5).
        max_fp_per_scan: false-positive budget for the threshold.
        seed: shuffles patients into folds.

    Returns:
        The fitted model; ``info`` records the cohort size, positives, the chosen raw
        threshold and its out-of-fold false positives per scan and share of lesions called.

    Raises:
        ValueError: fewer than two classes among the hot spots, or labels that do not
            match a detection's hot spots.
    """
    rows: list[dict[str, float]] = []
    y: list[int] = []
    groups: list[str] = []
    n_scans = 0
    for det, lab in zip(detections, labels):
        lab = list(lab)
        if len(lab) != len(det.hotspots):
            raise ValueError(f"{det.study_key}: {len(lab)} labels for {len(det.hotspots)} hot spots")
        rows += [h.features for h in det.hotspots]
        y += lab
        groups += [det.patient_key] * len(lab)
        n_scans += 1
    if len(set(y)) < 2:
        raise ValueError("training needs both metastatic and benign hot spots")
    feats = list(FEATURES)
    x = np.array([[r.get(k, 0.0) for k in feats] for r in rows], float)
    ya = np.array(y)
    ga = np.array(groups)
    pats = np.unique(ga)
    k = min(folds, len(pats))
    threshold, fp, called = 0.5, float("nan"), float("nan")
    if k >= 2:
        order = np.random.default_rng(seed).permutation(pats)
        oof = np.full(len(ya), np.nan)
        for part in np.array_split(order, k):
            test = np.isin(ga, part)
            if len(set(ya[~test])) < 2:
                continue
            m, s, c, b = _fit_logreg(x[~test], ya[~test], C)
            oof[test] = 1.0 / (1.0 + np.exp(-(((x[test] - m) / s) @ c + b)))
        ok = np.isfinite(oof)
        if ok.any():
            threshold, fp, called = choose_threshold(oof[ok], ya[ok], n_scans, max_fp_per_scan)
    mean, scale, coef, intercept = _fit_logreg(x, ya, C)
    shift = math.log(threshold / (1.0 - threshold))
    return HotspotModel(
        features=feats,
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=coef.tolist(),
        intercept=intercept - shift,
        info={
            "hotspots": len(y),
            "positives": int(sum(y)),
            "scans": n_scans,
            "patients": int(len(pats)),
            "C": C,
            "folds": k,
            "raw_threshold": threshold,
            "max_fp_per_scan": max_fp_per_scan,
            "cv_fp_per_scan": round(fp, 4) if np.isfinite(fp) else None,
            "cv_share_called": round(called, 4) if np.isfinite(called) else None,
        },
    )


__all__ = [
    "Detection",
    "FEATURES",
    "Hotspot",
    "HotspotModel",
    "METASTATIC_P",
    "RULES",
    "TRAIN_MAX_FP_PER_SCAN",
    "annotation_labels",
    "apply_rules",
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
