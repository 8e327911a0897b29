"""The records of hot-spot detection: :class:`Hotspot` and :class:`Detection`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scintilab.anatomy import region_of
from scintilab.atlas import Atlas
from scintilab.view_frame import ViewFrame

#: The probability cut for classifiers calibrated to it: a :class:`HotspotModel` folds its
#: own operating threshold into its intercept so that p >= 0.5 applies it.
METASTATIC_P: float = 0.5


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
        """(rows, cols) of the frame (from the atlas once the pixels are dropped)."""
        return next(iter(self.images.values() or self.atlas.values())).shape  # type: ignore[return-value]

    @property
    def view_frame(self) -> ViewFrame:
        """The frame the positions and masks live in (maps them onto the stored views)."""
        views = tuple(self.atlas) or tuple(self.images) or (self.frame,)
        return ViewFrame(shape=self.shape, shift=tuple(self.shift), name=self.frame, views=views)  # type: ignore[arg-type]

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


def atlas_uv(det: Detection, hs: Hotspot) -> tuple[float, float]:
    """(u, v) atlas coordinates of a hot spot (u in chest half-widths, v in body heights)."""
    atlas = det.atlas["ANT" if "ANT" in det.atlas else "POST"]
    return float(atlas.u_of(hs.row, hs.col)), float(atlas.v_of_row(hs.row))


def elongation(mask: np.ndarray) -> float:
    """Square root of the ratio of the mask's principal second moments (1 = round)."""
    rr, cc = np.nonzero(mask)
    if rr.size < 3:
        return 1.0
    cov = np.cov(np.stack([rr, cc]).astype(float)) + np.eye(2) * 1e-3
    ev = np.linalg.eigvalsh(cov)
    return float(math.sqrt(max(ev[1], 1e-6) / max(ev[0], 1e-6)))
