"""Benign findings where they occur in a clinic, not only where the narrow generator put them.

The narrow generator (:func:`scintilab.synth.lesions.sample_benign`) draws knee, shoulder
and foot arthritis, lateral osteophytes at L2-L5 and healed fractures lined up in one
column of the ribs, and the analysis' benign rules were fitted to exactly those. The clinic
variety adds, on top of them: degenerative change at any spine level (lateral osteophytes
and endplates), fractures on any rib in any alignment (down consecutive ribs, along one
rib, or alone), a sternotomy, arthritis of the hips, ankles, wrists, elbows and
sterno-clavicular joints, and Paget-like bone (a whole bone or a large part of it
brighter). At each follow-up a new benign finding appears in 15 % of patients.

Frequencies grow with age as in the narrow generator; they are a choice of ours, of the
order the literature gives for a lung-cancer population in its sixties.
"""

from __future__ import annotations

import math

import numpy as np

from scintilab.anatomy import region_of
from scintilab.synth.lesions import Finding, make_finding
from scintilab.synth.phantom import BONE_IDS, Phantom


def _pixels(ph: Phantom, bone: str) -> np.ndarray:
    return np.flatnonzero(ph.bone_map == BONE_IDS[bone])


def _near(ph: Phantom, bone: str, r: float, c: float, radius_px: float) -> tuple[float, float] | None:
    """Nearest pixel of ``bone`` to (r, c) within ``radius_px``."""
    h, w = ph.bone_map.shape
    r0, r1 = max(int(r - radius_px), 0), min(int(r + radius_px) + 1, h)
    c0, c1 = max(int(c - radius_px), 0), min(int(c + radius_px) + 1, w)
    if r0 >= r1 or c0 >= c1:
        return None
    rr, cc = np.nonzero(ph.bone_map[r0:r1, c0:c1] == BONE_IDS[bone])
    if rr.size == 0:
        return None
    k = int(np.argmin((rr + r0 - r) ** 2 + (cc + c0 - c) ** 2))
    return float(rr[k] + r0), float(cc[k] + c0)


def _one_side(ph: Phantom, bone: str, side: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(rows, cols) of ``bone``'s pixels on the patient's ``side`` (``R``: the viewer's left
    in the anterior view) and the bone's median column, or None when it has none there."""
    idx = _pixels(ph, bone)
    if idx.size == 0:
        return None
    rows, cols = np.divmod(idx, ph.bone_map.shape[1])
    mid = float(np.median(cols))
    sel = cols < mid if side == "R" else cols >= mid
    return (rows[sel], cols[sel], mid) if sel.any() else None


def _random_pixel(rng: np.random.Generator, ph: Phantom, bone: str) -> tuple[float, float] | None:
    idx = _pixels(ph, bone)
    if idx.size == 0:
        return None
    r, c = divmod(int(idx[rng.integers(idx.size)]), ph.bone_map.shape[1])
    return float(r), float(c)


def _one(
    rng: np.random.Generator, ph: Phantom, kind: str, first_visit: int
) -> list[tuple[str, str, tuple, float, float, float | None]]:
    """Placements (kind, bone, (r, c), size_mm, uptake at 2.3 mm pixels, angle) of one finding."""
    px = 0.5 * (ph.spacing[0] + ph.spacing[1])
    lm = ph.landmarks
    out: list[tuple[str, str, tuple, float, float, float | None]] = []
    up = float(rng.lognormal(math.log(60), 0.35))
    if kind == "spine":
        bone = str(rng.choice(["cervical_spine", "thoracic_spine", "lumbar_spine"], p=[0.3, 0.25, 0.45]))
        levels = {"cervical_spine": range(3, 8), "thoracic_spine": range(1, 13), "lumbar_spine": range(1, 6)}[bone]
        prefix = bone[0].upper()
        level = f"{prefix}{int(rng.choice(list(levels)))}"
        if level not in lm:
            return out
        r, c = lm[level]
        if rng.random() < 0.6:  # lateral osteophyte
            side = 1 if rng.random() < 0.5 else -1
            rc = _near(ph, bone, r + rng.normal(0, 1.5), c + side * 22 / ph.spacing[1], 14 / px)
            if rc:
                out.append(("spine_degeneration", bone, rc, float(rng.uniform(4, 8)), up, None))
        else:  # endplate: a band across the vertebra
            rc = _near(ph, bone, r + rng.choice([-1, 1]) * 8 / ph.spacing[0], c, 12 / px)
            if rc:
                out.append(("endplate_degeneration", bone, rc, float(rng.uniform(9, 15)), up, 0.0))
    elif kind == "rib":
        start = _random_pixel(rng, ph, "ribs")
        if start is None:
            return out
        mode = str(rng.choice(["column", "single", "along"], p=[0.5, 0.3, 0.2]))
        fr = float(rng.lognormal(math.log(70), 0.3))
        if mode == "single":
            out.append(("rib_fracture", "ribs", start, float(rng.uniform(3.5, 6)), fr, None))
        else:
            k = int(rng.integers(2, 5))
            step_r = (28.0 if mode == "column" else rng.normal(0, 6)) / ph.spacing[0]
            step_c = (rng.normal(0, 6) if mode == "column" else rng.choice([-1, 1]) * 22.0) / ph.spacing[1]
            for i in range(k):
                rc = _near(ph, "ribs", start[0] + i * step_r, start[1] + i * step_c, 10 / px)
                if rc:
                    out.append(
                        ("rib_fracture", "ribs", rc, float(rng.uniform(3.5, 5.5)), fr * rng.uniform(0.8, 1.2), None)
                    )
    elif kind == "sternotomy":
        idx = _pixels(ph, "sternum")
        if idx.size:
            rows, cols = np.divmod(idx, ph.bone_map.shape[1])
            rc = (float(rows.mean()), float(np.median(cols)))
            length = 0.4 * float(rows.max() - rows.min()) * ph.spacing[0]
            out.append(
                ("sternotomy", "sternum", rc, max(length, 15.0), float(rng.lognormal(math.log(55), 0.3)), math.pi / 2)
            )
    elif kind in ("hip", "ankle", "wrist", "elbow", "sc_joint"):
        side = str(rng.choice(["R", "L"]))
        if kind == "hip":
            bone = "femora"
            half = _one_side(ph, bone, side)
            if half is None:
                return out
            rows, cols, _ = half
            near = rows < rows.min() + 30 / ph.spacing[0]  # the femoral head: the bone's top
            rc = _near(ph, bone, float(rows[near].mean()), float(cols[near].mean()), 15 / px)
        elif kind == "ankle":
            bone = "tibiae_fibulae"
            r, c = lm[f"foot_{side}"]
            rc = _near(ph, bone, r - 30 / ph.spacing[0], c, 25 / px)
        elif kind == "wrist":
            bone = "hands"
            rc = _near(ph, bone, *lm[f"wrist_{side}"], 25 / px)
        elif kind == "elbow":
            bone = "humeri"
            rc = _near(ph, bone, *lm[f"elbow_{side}"], 20 / px)
        else:
            bone = "clavicles"
            half = _one_side(ph, bone, side)
            if half is None:
                return out
            rows, cols, mid = half
            k = int(np.argmin(np.abs(cols - mid)))  # the medial end
            rc = (float(rows[k]), float(cols[k]))
        if rc:
            out.append((f"{kind}_arthritis", bone, rc, float(rng.uniform(7, 14)), up, None))
    elif kind == "paget":
        bone = str(rng.choice(["pelvis", "femora", "skull", "lumbar_spine", "tibiae_fibulae", "humeri"]))
        rc = _random_pixel(rng, ph, bone)
        if rc:
            out.append(("paget", bone, rc, float(rng.uniform(25, 50)), float(rng.lognormal(math.log(110), 0.35)), None))
    return out


def wide_benign(rng: np.random.Generator, ph: Phantom, age: int, visits: int, start_id: int) -> list[Finding]:
    """Benign findings of the clinic variety (added to the narrow generator's own).

    Args:
        rng: the patient's variety stream.
        ph: the patient's phantom.
        age: years at baseline.
        visits: number of visits (new findings may appear at each follow-up).
        start_id: number of the first ``B`` id.

    Returns:
        The findings; ``first_visit`` > 0 for those that appear at a follow-up.
    """
    old = max(age - 50, 0)
    chances = {
        "spine": min(0.15 + 0.012 * old, 0.6),
        "rib": 0.06,
        "sternotomy": 0.03,
        "hip": min(0.05 + 0.008 * old, 0.35),
        "ankle": 0.03,
        "wrist": 0.03,
        "elbow": 0.02,
        "sc_joint": 0.04,
        "paget": 0.015,
    }
    plan: list[tuple[str, int]] = [(k, 0) for k, p in chances.items() if rng.random() < p]
    for v in range(1, visits):
        if rng.random() < 0.15:
            plan.append((str(rng.choice(["spine", "rib", "hip", "sc_joint"])), v))
    area = ph.spacing[0] * ph.spacing[1] / 2.3**2
    out: list[Finding] = []
    for kind, first in plan:
        for shape, bone, rc, size, uptake, angle in _one(rng, ph, kind, first):
            out.append(
                make_finding(
                    ph,
                    f"B{start_id + len(out):02d}",
                    "benign",
                    shape,
                    bone,
                    region_of(bone),
                    rc,
                    size,
                    uptake * area,
                    rng,
                    first_visit=first,
                    angle=angle,
                )
            )
    return out


__all__ = ["wide_benign"]
