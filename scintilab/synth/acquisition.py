"""What the clinic variety's camera and bed do to a visit: depth-dependent blur with
scatter, the patient lying elsewhere on the bed, a sweep that ends early, where the tracer
was injected, and a urine bag with its catheter (:mod:`scintilab.synth.variety` draws
them; :func:`scintilab.synth.scan.render_study` applies them)."""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from scintilab.synth.lesions import Finding
from scintilab.synth.phantom import Anatomy, Phantom
from scintilab.synth.variety import VisitVariety

#: Depth bins (cm from the camera side of the body) of the depth-dependent blur.
DEPTH_BINS_CM: tuple[float, ...] = (0.0, 4.0, 8.0, 12.0, 16.0, 1e9)
#: Air between the body and the collimator (cm) during a whole-body sweep.
COLLIMATOR_GAP_CM: float = 2.0


def camera_fwhm_mm(fwhm_10cm: float, depth_cm: float) -> float:
    """System resolution at ``depth_cm`` inside the body for a camera of ``fwhm_10cm`` at
    10 cm from the collimator: LEHR resolution grows about linearly with distance (roughly
    4 mm at the face of the collimator to 7-8 mm at 10 cm for a good camera)."""
    return fwhm_10cm * (0.45 + 0.055 * (depth_cm + COLLIMATOR_GAP_CM))


def camera_blur(img: np.ndarray, depth: np.ndarray, vv: VisitVariety, px_mm: float) -> np.ndarray:
    """Depth-dependent blur (each depth bin with its own resolution) plus a scatter halo."""
    out = np.zeros_like(img)
    edges = DEPTH_BINS_CM
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (depth >= lo) & (depth < hi)
        if not sel.any():
            continue
        d = float(np.median(depth[sel]))
        fwhm = camera_fwhm_mm(float(vv.fwhm_mm or 7.0), d)
        out += gaussian_filter(np.where(sel, img, 0.0).astype(img.dtype), fwhm / 2.3548 / px_mm, mode="constant")
    if vv.scatter_fraction > 0:
        sf = vv.scatter_fraction
        out = (1 - sf) * out + sf * gaussian_filter(img, vv.scatter_mm / px_mm, mode="constant")
    return out


def translate(x: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``x`` moved by (dr, dc) pixels, zero-filled (what leaves the field is lost)."""
    if dr == 0 and dc == 0:
        return x
    H, W = x.shape
    out = np.zeros_like(x)
    out[max(dr, 0) : H + min(dr, 0), max(dc, 0) : W + min(dc, 0)] = x[
        max(-dr, 0) : H + min(-dr, 0), max(-dc, 0) : W + min(-dc, 0)
    ]
    return out


def sweep_end_row(vv: VisitVariety, ph: Phantom, H: int, sr: float) -> int | None:
    """First stored row the sweep did not reach (clinic ``sweep_cut``), or None."""
    lm = ph.landmarks
    dr = round(vv.motion_mm[0] / sr)
    if vv.sweep_cut == "feet":
        row = min(lm["foot_R"][0], lm["foot_L"][0]) - 70.0 / sr  # ended at the lower shins
    elif vv.sweep_cut == "partial":
        row = min(lm["knee_R"][0], lm["knee_L"][0]) - 150.0 / sr  # ended at the thighs
    else:
        return None
    row = int(round(row)) + dr
    return row if 0 < row < H else None


def clinic_injection(
    vv: VisitVariety, an: Anatomy, ph: Phantom, side: str, area: float, H: int
) -> tuple[str, str, float]:
    """(site, side, uptake) of a clinic injection; ``absent`` when none shows in the field."""
    site = vv.injection or "absent"
    if site == "absent":
        return "absent", side, 0.0
    present = [s for s, pose in zip(("R", "L"), an.arms, strict=True) if pose != "missing"]
    if site != "foot":
        if not present:
            site = "foot"
        elif side not in present:
            side = present[0]
    r = ph.landmarks[f"{site}_{side}"][0]
    if not 0 <= r < H:  # a raised hand above the field's top: injected at the elbow instead
        site = "elbow"
        if not 0 <= ph.landmarks[f"elbow_{side}"][0] < H:
            return "absent", side, 0.0
    return site, side, float(vv.injection_uptake or 0.0) * area


def urine_bag(rng: np.random.Generator, ph: Phantom, first_id: int, area: float) -> list[Finding]:
    """A urine bag beside a thigh on the bed and the catheter running to it from the bladder."""
    side = str(rng.choice(["R", "L"]))
    sr, sc = ph.spacing
    kr, kc = ph.landmarks[f"knee_{side}"]
    br, bc = ph.landmarks["bladder"]
    W = ph.bone_map.shape[1]
    out_c = -1 if side == "R" else 1
    bag = (kr - float(rng.uniform(60, 200)) / sr, float(np.clip(kc + out_c * rng.uniform(90, 140) / sc, 3, W - 4)))
    mid = (0.5 * (bag[0] + br), 0.5 * (bag[1] + bc))
    half = 0.5 * math.hypot((bag[0] - br) * sr, (bag[1] - bc) * sc)
    common = {"kind": "benign", "bone": None, "depth_ant_cm": 12.0, "depth_post_cm": 3.0}
    return [
        Finding(
            id=f"B{first_id:02d}",
            shape="urine_bag",
            region="lower_limbs",
            center_rc=bag,
            size_mm=float(rng.uniform(30, 50)),
            angle=0.0,
            uptake=float(rng.lognormal(math.log(60), 0.5)) * area,
            shape_seed=int(rng.integers(2**31)),
            **common,
        ),
        Finding(
            id=f"B{first_id + 1:02d}",
            shape="catheter",
            region="pelvis",
            center_rc=mid,
            size_mm=half,
            angle=math.atan2(bag[0] - br, bag[1] - bc),
            uptake=float(rng.uniform(6, 15)) * area,
            shape_seed=int(rng.integers(2**31)),
            **common,
        ),
    ]


__all__ = [
    "COLLIMATOR_GAP_CM",
    "DEPTH_BINS_CM",
    "camera_blur",
    "camera_fwhm_mm",
    "clinic_injection",
    "sweep_end_row",
    "translate",
    "urine_bag",
]
