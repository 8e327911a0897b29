"""A learned hot-spot classifier: features, :class:`HotspotModel` and its training from
annotated cohorts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab.anatomy import BONES
from scintilab.errors import InputError
from scintilab.hotspot_records import METASTATIC_P, Detection, Hotspot, atlas_uv, elongation
from scintilab.hotspot_rules import RULES
from scintilab.study import Study

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
        ou, ov = atlas_uv(det, other)
        if ou * u >= 0:
            continue
        d = abs(abs(ou) - abs(u)) / 0.15 + abs(ov - v) / 0.03
        if d < 2.0 and d < best_d:
            best_d = d
            best = max(hs.normalized_uptake, 1e-3) / max(other.normalized_uptake, 1e-3)
    return best


def hotspot_features(det: Detection, hs: Hotspot) -> dict[str, float]:
    """Numbers describing a hot spot for a learned classifier (see :data:`FEATURES`)."""
    u, v = atlas_uv(det, hs)
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
            "elongation": elongation(hs.mask),
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
    frame = det.view_frame
    les = np.zeros(shape, bool)
    for s in study.shapes:
        if not s.label.lower().startswith("lesion"):
            continue
        if s.view != "POST" and frame.name != "ANT":
            continue
        pts = frame.points_to_frame(np.asarray(s.points, float), "POST" if s.view == "POST" else "ANT")
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
