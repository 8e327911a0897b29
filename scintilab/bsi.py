"""Bone Scan Index: the percentage of skeletal mass involved by tumour, per bone and in total.

BSI (Imbriaco et al. 1998) = sum over bone groups b of (fraction of b involved) x (b's
share of skeletal mass). Here, on one study's :class:`~scintilab.hotspots.Detection`:

* the bone groups are the atlas's (:data:`scintilab.anatomy.BONES`), drawn in the
  anterior frame; each group's *size* is its own pixels in the bone map (the template
  fitted to this body) times :data:`TEMPLATE_AREA_SCALE`, the bone area per template
  pixel, which is nearly constant from body to body. Counting the skeleton pixels
  (bone-like uptake) instead made the size depend on how bright each bone is: the
  pelvis read 0.48 of its true area (coefficient of variation 0.27 between studies), the
  skull 0.51, the sternum 4.4, so a pelvic lesion counted twice and its BSI varied with
  the patient's uptake;
* the involved pixels are the union of the hot spots' extents whose probability reaches
  the active classifier's endpoint cut (:attr:`Detection.endpoint_threshold`: 0.5 for
  the default rules, whose calling threshold is lower; see
  ``rules.endpoint_p`` for why), counted on the group they fall on.
  Where two groups differ only in depth (sternum in front of the thoracic spine,
  :data:`scintilab.atlas.DRAW_ORDER`), each group's own pixels, involved or not, are
  those of the view's map that draws it in front, and a hot spot's extent
  falls on the group its depth put it on (:meth:`scintilab.atlas.Atlas.assign_bone`):
  the anterior map alone gave the pixels behind the sternum to the sternum, so a
  thoracic-spine lesion there counted as sternum (0.3 % of skeletal mass instead of 3.2 %)
  and the spine's own size held 0.63 of its true pixels. A hot spot's extent
  (:func:`lesion_extent`) is re-segmented in the view where it is brightest: the pixels
  around it whose smoothed excess over the bone's reference keeps at least
  ``bsi.extent_level`` of the peak excess, connected to the peak. The reference is the
  bone's *healthy* level (:func:`healthy_references`: its skeleton pixels away from every
  hot spot), not the detection's median of all its skeleton pixels: in a heavily
  involved bone that median is lesion uptake, which raised the cut and shrank every
  extent (the seed-1 tuning cohort read 0.86 of the true BSI over studies with a true BSI
  >= 1). The level is higher than
  the detection mask's 30 % because the camera blur spreads a lesion: 40 % of the blurred
  excess approximates 30 % of the unblurred one (the truth convention of the synthetic
  generator), chosen on a tuning cohort and checked on a fresh one. The blur also adds
  a rim of about the same area whatever the lesion's size, which doubles a punctate
  lesion: the extent leaves out its ``bsi.blur_rim_px`` dimmest pixels (keeping at least
  ``bsi.blur_rim_min_keep`` of them);
* the shares are :data:`scintilab.anatomy.BONE_MASS_FRACTION` (Spiers 1968, as for BSI).

Like the commercial tools, the result also counts hot spots per bone group (all, and
those called metastatic at the classifier's calling threshold). This module never imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab import quant_params as qp
from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.atlas import DRAW_ORDER
from scintilab.hotspots import (
    METASTATIC_P,
    Detection,
    Hotspot,
    bone_references,
    reference_image,
    scaled_area_px,
    view_atlas,
)

#: Bone area per pixel of a group's own template (its pixels in the bone map that draws
#: it in front, :func:`front_view`): the median, over 1,380 studies of ten synthetic tuning
#: cohorts (seeds 0, 1, 7, 23, 41, 53, 61, 101, 109 and 113), of the phantom's true
#: projected pixels of the group over its own template pixels; the cohorts' medians lay
#: within 2 % of each other for every group but the tibiae and fibulae (3 %), and between
#: studies the ratio varied by 3-10 % (coefficient of variation). The templates are boxes
#: that hold soft tissue between bones (the forearms' 0.195), or are partly drawn over by
#: a commoner metastatic site (the scapulae under the ribs: 2.79, their visible projection
#: over the third of it left to them). ``benchmarks/measure_template_scale.py`` measures
#: these on any cohort with truth maps.
TEMPLATE_AREA_SCALE: dict[str, float] = {
    "skull": 0.830,
    "mandible": 0.589,
    "cervical_spine": 0.584,
    "thoracic_spine": 0.595,
    "lumbar_spine": 0.408,
    "sacrum": 1.020,
    "ribs": 0.495,
    "sternum": 0.199,
    "clavicles": 0.282,
    "scapulae": 2.793,
    "humeri": 0.216,
    "forearms": 0.195,
    "hands": 0.364,
    "pelvis": 0.548,
    "femora": 0.301,
    "tibiae_fibulae": 0.319,
    "feet": 0.472,
}


def front_view(bone: str) -> str:
    """The view whose bone map draws ``bone`` in front of the groups it overlaps.

    Both views draw every group in the same order except those that differ only in depth
    (:data:`scintilab.atlas.DRAW_ORDER`); there the later-drawn view wins, and for the
    rest the anterior map is used, as everywhere else in the frame.
    """
    ant, post = DRAW_ORDER["ANT"].index(bone), DRAW_ORDER["POST"].index(bone)
    return "POST" if post > ant else "ANT"


def depth_maps(det: Detection) -> dict[str, np.ndarray]:
    """Bone maps of the detection's frame in both views' drawing orders.

    Args:
        det: the detection (one view or two; the atlas landmarks are shared).

    Returns:
        {"ANT": map, "POST": map} (0 none, i + 1 = ``BONES[i]``).
    """
    base = det.atlas["ANT" if "ANT" in det.atlas else "POST"]
    return {v: (det.atlas[v] if v in det.atlas else view_atlas(base, v)).bone_map() for v in ("ANT", "POST")}


def healthy_references(det: Detection) -> dict[str, np.ndarray]:
    """Per view, each pixel's healthy bone level for :func:`lesion_extent`.

    The median of each bone group's skeleton pixels at least ``bsi.healthy_margin_px``
    away from every hot spot (:func:`scintilab.hotspots.bone_references`), never above the
    detection's own reference (the median of all its skeleton pixels): a group mostly
    covered by tumour otherwise takes tumour uptake as its healthy level.

    Args:
        det: the detection.

    Returns:
        view -> reference image (:func:`scintilab.hotspots.reference_image`).
    """
    hot = np.zeros(det.shape, bool)
    for h in det.hotspots:
        hot |= h.full_mask(det.shape)
    hot = ndi.binary_dilation(hot, iterations=qp.active().bsi.healthy_margin_px) if hot.any() else hot
    out: dict[str, np.ndarray] = {}
    for v, sm in det.smoothed.items():
        if v not in det.atlas or v not in det.skeleton:
            continue
        bmap = det.atlas[v].bone_map()
        own = bone_references(sm, det.skeleton[v] & ~hot, bmap)
        out[v] = reference_image({b: min(own[b], det.references[v][b]) for b in BONES}, bmap)
    return out


@dataclass
class BSIResult:
    """Bone Scan Index of one study.

    Attributes:
        study_key: pseudonymous study id.
        bsi: total BSI in percent of skeletal mass.
        per_bone: bone -> {"bsi", "involved_fraction", "bone_px", "involved_px",
            "hotspots", "hotspots_metastatic"}.
        hotspots_total / hotspots_metastatic: counts over the study (metastatic: at
            ``call_threshold``).
        threshold: the probability from which a hot spot's extent counted as involved
            (the active classifier's endpoint cut unless one was given).
        call_threshold: the probability at which a hot spot counted as metastatic (the
            classifier's calling threshold unless one was given).
    """

    study_key: str
    bsi: float
    per_bone: dict[str, dict[str, float]] = field(default_factory=dict)
    hotspots_total: int = 0
    hotspots_metastatic: int = 0
    threshold: float = METASTATIC_P
    call_threshold: float = METASTATIC_P

    def row(self) -> dict[str, Any]:
        """A flat row: totals, then ``bsi_<bone>`` and ``hotspots_<bone>`` per bone group."""
        out: dict[str, Any] = {
            "bsi": round(self.bsi, 4),
            "hotspots_total": self.hotspots_total,
            "hotspots_metastatic": self.hotspots_metastatic,
        }
        for b in BONES:
            out[f"bsi_{b}"] = round(self.per_bone[b]["bsi"], 4)
        for b in BONES:
            out[f"hotspots_{b}"] = int(self.per_bone[b]["hotspots"])
        for b in BONES:
            out[f"metastatic_{b}"] = int(self.per_bone[b]["hotspots_metastatic"])
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per bone group (the region table of a report)."""
        return [
            {
                "bone": b,
                "mass_share_pct": round(100 * BONE_MASS_FRACTION[b], 2),
                **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.per_bone[b].items()},
            }
            for b in BONES
        ]


def lesion_extent(
    det: Detection,
    hs: Hotspot,
    refs: dict[str, np.ndarray] | None = None,
    level: float | None = None,
    rim: float | None = None,
) -> np.ndarray:
    """A hot spot's extent for the BSI, in the detection's frame (see the module docstring).

    Args:
        det: the detection holding ``hs``.
        hs: the hot spot.
        refs: view -> reference image; None: :func:`healthy_references` (pass the dict
            it returns so several hot spots share it).
        level: fraction of the peak excess that bounds the extent (None: the active
            ``bsi.extent_level``).
        rim: pixels of the blur's rim left out (the dimmest); None:
            ``bsi.blur_rim_px`` in pixels of the detection's spacing; 0 keeps them.

    Returns:
        Boolean mask; the hot spot's detection mask when the smoothed view is not kept.
    """
    level = qp.active().bsi.extent_level if level is None else level
    full = hs.full_mask(det.shape)
    view = hs.best_view
    sm = det.smoothed.get(view)
    if sm is None or view not in det.atlas:
        return full
    refs = healthy_references(det) if refs is None else refs
    if view not in refs:
        refs[view] = reference_image(det.references[view], det.atlas[view].bone_map())
    ref = refs[view]
    pr, pc = hs.peak_rc
    excess = sm - ref
    zone = ndi.binary_dilation(full, iterations=3)
    mask = zone & (excess >= level * float(excess[pr, pc]))
    lab, _ = ndi.label(mask)
    mask = lab == lab[pr, pc] if lab[pr, pc] else full
    rim = scaled_area_px(det, qp.active().bsi.blur_rim_px) if rim is None else rim
    n = int(mask.sum())
    keep = max(int(round(n - rim)), int(np.ceil(qp.active().bsi.blur_rim_min_keep * n)), 1)
    if keep >= n:
        return mask
    # The blur's rim is the dimmest part of the extent: keep the brightest ``keep`` pixels.
    cut = np.sort(sm[mask])[::-1][keep - 1]
    return mask & (sm >= cut)


def involvement_by_view(det: Detection, threshold: float | None = None) -> dict[str, np.ndarray]:
    """Metastatic hot spots' extents (:func:`lesion_extent`), by the view whose bone map
    counts them (:func:`front_view` of the hot spot's bone).

    Args:
        det: the detection.
        threshold: probability from which a hot spot counts; None: the detection's own
            endpoint cut (:attr:`Detection.endpoint_threshold`).

    Returns:
        {"ANT": mask, "POST": mask}.
    """
    t = det.endpoint_cut(threshold)
    out = {v: np.zeros(det.shape, bool) for v in ("ANT", "POST")}
    refs = healthy_references(det)
    for h in det.hotspots:
        if h.p_metastatic >= t and h.bone is not None:
            out[front_view(h.bone)] |= lesion_extent(det, h, refs)
    return out


def involvement_mask(det: Detection, threshold: float | None = None) -> np.ndarray:
    """Union of the metastatic hot spots' extents (:func:`lesion_extent`) in the frame.

    Args:
        det: the detection.
        threshold: probability from which a hot spot counts; None: the detection's own
            endpoint cut (:attr:`Detection.endpoint_threshold`).
    """
    by_view = involvement_by_view(det, threshold)
    return by_view["ANT"] | by_view["POST"]


def compute_bsi(det: Detection, threshold: float | None = None) -> BSIResult:
    """Bone Scan Index of one detection (see the module docstring).

    Args:
        det: from :func:`scintilab.hotspots.detect_hotspots`.
        threshold: one probability cut for involvement and counts; None: the
            detection's own (involvement at :attr:`Detection.endpoint_threshold`,
            metastatic counts at :attr:`Detection.threshold`).

    Returns:
        A :class:`BSIResult`.
    """
    call = det.call_threshold(threshold)
    threshold = det.endpoint_cut(threshold)
    maps = depth_maps(det)
    by_view = involvement_by_view(det, threshold)
    n = len(BONES) + 1
    # Each group reads the bone map that draws it in front (front_view); a pixel is
    # involved for a group when an extent counted in either view's map falls on it there.
    bone_px = np.zeros(n, float)
    inv_px = np.zeros(n, np.int64)
    for i, b in enumerate(BONES, start=1):
        own = maps[front_view(b)] == i
        bone_px[i] = float(own.sum()) * TEMPLATE_AREA_SCALE[b]
        hit = (by_view["ANT"] & (maps["ANT"] == i)) | (by_view["POST"] & (maps["POST"] == i))
        inv_px[i] = int((own & hit).sum())
    per: dict[str, dict[str, float]] = {}
    total = 0.0
    for i, b in enumerate(BONES, start=1):
        frac = float(inv_px[i]) / bone_px[i] if bone_px[i] > 0 else 0.0
        frac = min(frac, 1.0)
        val = 100.0 * frac * BONE_MASS_FRACTION[b]
        total += val
        hs = [h for h in det.hotspots if h.bone == b]
        per[b] = {
            "bsi": val,
            "involved_fraction": frac,
            "bone_px": int(round(bone_px[i])),
            "involved_px": int(inv_px[i]),
            "hotspots": len(hs),
            "hotspots_metastatic": sum(1 for h in hs if h.p_metastatic >= call),
        }
    return BSIResult(
        study_key=det.study_key,
        bsi=total,
        per_bone=per,
        hotspots_total=len(det.hotspots),
        hotspots_metastatic=sum(1 for h in det.hotspots if h.p_metastatic >= call),
        threshold=threshold,
        call_threshold=call,
    )


def repeatability(values: Any) -> dict[str, float]:
    """Spread of repeated BSI measurements of one study (fresh noise each time).

    Args:
        values: BSI values (percent) of the same study measured several times.

    Returns:
        {"n", "mean", "sd" (BSI points), "cv" (sd / mean), "range"}.
    """
    v = np.asarray(list(values), float)
    if v.size < 2:
        return {
            "n": int(v.size),
            "mean": float(v.mean()) if v.size else float("nan"),
            "sd": float("nan"),
            "cv": float("nan"),
            "range": float("nan"),
        }
    mean = float(v.mean())
    sd = float(v.std(ddof=1))
    return {
        "n": int(v.size),
        "mean": mean,
        "sd": sd,
        "cv": sd / mean if mean > 0 else float("nan"),
        "range": float(v.max() - v.min()),
    }


def bland_altman(measured: Any, truth: Any) -> dict[str, float]:
    """Agreement of measured and true BSI: bias and 95 % limits of agreement, Pearson r.

    Args:
        measured: measured values.
        truth: true values, same length.

    Returns:
        {"n", "pearson_r", "bias", "sd", "loa_low", "loa_high"} (BSI points).
    """
    m = np.asarray(list(measured), float)
    t = np.asarray(list(truth), float)
    if m.shape != t.shape or m.size < 3:
        raise ValueError("need at least three paired values of equal length")
    d = m - t
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    r = float(np.corrcoef(m, t)[0, 1]) if m.std() > 0 and t.std() > 0 else float("nan")
    return {
        "n": int(m.size),
        "pearson_r": r,
        "bias": bias,
        "sd": sd,
        "loa_low": bias - 1.96 * sd,
        "loa_high": bias + 1.96 * sd,
    }


__all__ = [
    "BSIResult",
    "TEMPLATE_AREA_SCALE",
    "bland_altman",
    "compute_bsi",
    "depth_maps",
    "front_view",
    "healthy_references",
    "involvement_by_view",
    "involvement_mask",
    "lesion_extent",
    "repeatability",
]
