"""Metastases and benign hot spots: where they sit, how they look, how bright they are.

How the two metastatic classes differ (a choice of ours, documented because the paper's
ADMet/nADMet difference is not described; see ``docs`` in the cohort overview notebook).
The distributions overlap on purpose, so the task is learnable but not trivial:

================  =====================================  =====================================
                  ADMet (adenocarcinoma)                 nADMet (squamous, small-cell, ...)
================  =====================================  =====================================
count             1 + NegBin(mean 5.5): many lesions     1 + NegBin(mean 2.5): fewer lesions
shape mix         punctate .34, mottled .30, patchy .18,  patchy .34, flake .20, punctate .16,
                  strip .12, flake .06                   mottled .16, strip .14
size              x1 (lognormal sd .25)                  x1.3 (larger)
where             spine-heavy: thoracic .26, lumbar .16,  rib/peripheral-heavy: ribs .30,
                  ribs .20, pelvis .10 ...               thoracic .16, pelvis .13, limbs .10 ...
uptake (peak)     lognormal median 78 (88 %),            median 85 (85 %), 260 (15 %)
                  220 (12 %)
lytic rim         6 % (cold centre, hot rim)             22 %
================  =====================================  =====================================

Uptake is the lesion's own peak count (above the skeleton beneath it) in the conjugate-view
(geometric) mean after the camera blur; each view sees it attenuated by its depth:
``peak_ANT = uptake * exp(-mu * (depth_ant - depth_post) / 2)`` and the reverse for POST.

Benign findings (all classes; more with age): knee and shoulder arthritis, lumbar
degeneration, healed rib fractures lined up on consecutive ribs, foot arthritis; plus the
non-skeletal injection site and urine contamination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from scintilab.anatomy import region_of
from scintilab.synth.phantom import BONE_IDS, MU_PER_CM, Phantom

#: Class-specific lesion model (see the module docstring).
CLASS_MODELS: dict[str, dict] = {
    "ADMet": {
        "count_mean": 5.5,
        "count_max": 30,
        "shapes": {"punctate": 0.34, "mottled": 0.30, "patchy": 0.18, "strip": 0.12, "flake": 0.06},
        "size_factor": 1.0,
        "bones": {
            "thoracic_spine": 0.26,
            "lumbar_spine": 0.16,
            "cervical_spine": 0.04,
            "ribs": 0.20,
            "sternum": 0.03,
            "sacrum": 0.04,
            "pelvis": 0.10,
            "skull": 0.05,
            "scapulae": 0.03,
            "clavicles": 0.01,
            "humeri": 0.03,
            "femora": 0.05,
        },
        "uptake": ((0.88, 78.0, 0.30), (0.12, 220.0, 0.45)),
        "lytic": 0.06,
    },
    "nADMet": {
        "count_mean": 2.5,
        "count_max": 20,
        "shapes": {"patchy": 0.34, "flake": 0.20, "punctate": 0.16, "mottled": 0.16, "strip": 0.14},
        "size_factor": 1.3,
        "bones": {
            "thoracic_spine": 0.16,
            "lumbar_spine": 0.09,
            "cervical_spine": 0.02,
            "ribs": 0.30,
            "sternum": 0.04,
            "sacrum": 0.03,
            "pelvis": 0.13,
            "skull": 0.06,
            "scapulae": 0.05,
            "clavicles": 0.02,
            "humeri": 0.04,
            "femora": 0.06,
        },
        "uptake": ((0.85, 85.0, 0.32), (0.15, 260.0, 0.45)),
        "lytic": 0.22,
    },
}

#: Characteristic size (mm) per shape: radius, or half-length for strips.
SHAPE_SIZE_MM: dict[str, tuple[float, float]] = {
    "punctate": (3.5, 7.0),
    "patchy": (9.0, 18.0),
    "mottled": (11.0, 22.0),
    "strip": (12.0, 28.0),
    "flake": (9.0, 20.0),
}

#: Benign hot-spot kinds -> coarse region written in LabelMe (``benign:<kind>:<region>``).
BENIGN_REGION: dict[str, str] = {
    "knee_arthritis": "lower_limbs",
    "shoulder_arthritis": "upper_limbs",
    "lumbar_degeneration": "lumbar_spine",
    "rib_fracture": "ribs",
    "foot_arthritis": "lower_limbs",
    "injection_site": "upper_limbs",
    "urine_contamination": "pelvis",
    # off the skeleton, from the clinic variety (the others take their bone's region)
    "urine_bag": "lower_limbs",
    "catheter": "pelvis",
}


@dataclass
class Finding:
    """One hot spot: a metastasis (``kind="lesion"``) or a benign finding.

    Attributes:
        id: stable id within the patient (``L01``, ``B01``), the same at every visit.
        kind: ``"lesion"`` or ``"benign"``.
        shape: lesion shape (:data:`scintilab.study.SHAPE_CLASSES`) or benign kind.
        bone: fine bone group (:data:`scintilab.anatomy.BONES`), None off the skeleton.
        region: coarse region (:data:`scintilab.anatomy.REGIONS`).
        center_rc: centre (row, col) in the ANT image (stored orientation).
        size_mm: characteristic radius (half-length for strips).
        angle: long-axis direction in pixels (rad).
        uptake: peak counts in the conjugate-view mean at the baseline visit.
        depth_ant_cm / depth_post_cm: depth of the source from the front / back.
        lytic_rim: a cold centre inside a hot rim.
        first_visit: the visit at which it appears (0 = baseline).
        shape_seed: seeds the shape's irregularity, so it looks the same at each visit.
        visit_gain: uptake factor per visit (index = visit).
        flare: per visit, whether a healing flare brightens it.
        cold: a photopenic (osteolytic) lesion: less uptake than the bone around it
            (clinic variety).
        size_gain: size factor per visit (empty: the same size at every visit).
    """

    id: str
    kind: str
    shape: str
    bone: str | None
    region: str
    center_rc: tuple[float, float]
    size_mm: float
    angle: float
    uptake: float
    depth_ant_cm: float
    depth_post_cm: float
    lytic_rim: bool = False
    first_visit: int = 0
    shape_seed: int = 0
    visit_gain: list[float] = field(default_factory=list)
    flare: list[bool] = field(default_factory=list)
    cold: bool = False
    size_gain: list[float] = field(default_factory=list)

    def view_peaks(self, visit: int = 0) -> tuple[float, float]:
        """Peak counts (ANT, POST) this finding adds at ``visit``, following its depth."""
        u = self.uptake * (self.visit_gain[visit] if visit < len(self.visit_gain) else 1.0)
        half = 0.5 * (self.depth_ant_cm - self.depth_post_cm)
        return u * math.exp(-MU_PER_CM * half), u * math.exp(MU_PER_CM * half)


def _choice(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _bone_pixels(ph: Phantom, bone: str, cache: dict[str, np.ndarray], whole: bool = False) -> np.ndarray:
    """Flat indices of the pixels owned by ``bone`` (proximal half only for long bones,
    unless ``whole``)."""
    if bone not in cache:
        idx = np.flatnonzero(ph.bone_map == BONE_IDS[bone])
        if bone in ("humeri", "femora") and idx.size and not whole:
            rows = idx // ph.bone_map.shape[1]
            lo, hi = rows.min(), rows.max()
            idx = idx[rows <= lo + 0.45 * (hi - lo)]  # metastases favour the proximal shafts
        cache[bone] = idx
    return cache[bone]


def _place(
    rng: np.random.Generator,
    ph: Phantom,
    bone: str,
    cache: dict[str, np.ndarray],
    taken: list[tuple[float, float, float]],
    size_px: float,
    whole: bool = False,
) -> tuple[float, float] | None:
    """Pick a pixel on ``bone`` away from lesions already placed."""
    idx = _bone_pixels(ph, bone, cache, whole)
    if idx.size == 0:
        return None
    w = ph.bone_map.shape[1]
    for _ in range(12):
        k = int(idx[rng.integers(idx.size)])
        r, c = divmod(k, w)
        if all(math.hypot(r - r2, c - c2) > 0.8 * (size_px + s2) for r2, c2, s2 in taken):
            return float(r), float(c)
    return None


def make_finding(
    ph: Phantom,
    fid: str,
    kind: str,
    shape: str,
    bone: str | None,
    region: str,
    rc: tuple[float, float],
    size_mm: float,
    uptake: float,
    rng: np.random.Generator,
    *,
    lytic: bool = False,
    first_visit: int = 0,
    angle: float | None = None,
    depths: tuple[float, float] | None = None,
) -> Finding:
    r, c = int(round(rc[0])), int(round(rc[1]))
    pi = int(ph.prim_map[r, c])
    if pi >= 0:
        info = ph.prims[pi]
        d_a = info.depth_ant_cm + float(rng.normal(0, 0.4))
        d_p = info.depth_post_cm + float(rng.normal(0, 0.4))
        ang = info.angle if angle is None else angle
    else:
        d_a, d_p = depths if depths is not None else (10.0, 10.0)
        ang = 0.0 if angle is None else angle
    if depths is not None:
        d_a, d_p = depths
    return Finding(
        id=fid,
        kind=kind,
        shape=shape,
        bone=bone,
        region=region,
        center_rc=(float(rc[0]), float(rc[1])),
        size_mm=float(size_mm),
        angle=float(ang),
        uptake=float(uptake),
        depth_ant_cm=float(max(d_a, 0.5)),
        depth_post_cm=float(max(d_p, 0.5)),
        lytic_rim=lytic,
        first_visit=first_visit,
        shape_seed=int(rng.integers(2**31)),
    )


def sample_lesions(
    rng: np.random.Generator,
    ph: Phantom,
    label: str,
    *,
    n: int | None = None,
    first_visit: int = 0,
    start_id: int = 1,
    taken: list[tuple[float, float, float]] | None = None,
    sites: dict[str, float] | None = None,
) -> list[Finding]:
    """Draw the metastases of one patient of class ``label`` (none for NoMet).

    Args:
        rng: random generator.
        ph: the patient's phantom (lesions sit on its bones).
        label: ``NoMet``, ``ADMet`` or ``nADMet``.
        n: number of lesions (default: drawn from the class's count distribution).
        first_visit: visit at which these lesions appear.
        start_id: number of the first lesion id.
        taken: (row, col, radius_px) of lesions already placed (updated in place).
        sites: extra sites (bone -> share of all lesions) mixed into the class's own; given,
            lesions also reach the distal halves of the humeri and femora (clinic variety).

    Returns:
        The lesions.
    """
    if label not in CLASS_MODELS:
        return []
    m = CLASS_MODELS[label]
    bones = m["bones"]
    if sites:
        keep = 1.0 - sum(sites.values())
        total = sum(bones.values())
        bones = {**{b: keep * p / total for b, p in bones.items()}, **sites}
    if n is None:
        # negative binomial with dispersion 2: mostly a few, sometimes many (overlapping classes)
        mean = m["count_mean"]
        n = 1 + int(rng.negative_binomial(2, 2 / (2 + mean)))
        n = min(n, m["count_max"])
    taken = [] if taken is None else taken
    px_mm = 0.5 * (ph.spacing[0] + ph.spacing[1])
    area = ph.spacing[0] * ph.spacing[1] / 2.3**2  # counts per pixel grow with pixel area
    out: list[Finding] = []
    for _ in range(n):
        shape = _choice(rng, m["shapes"])
        lo, hi = SHAPE_SIZE_MM[shape]
        size = float(rng.uniform(lo, hi) * m["size_factor"] * rng.lognormal(0.0, 0.25))
        comp = m["uptake"][0] if rng.random() < m["uptake"][0][0] else m["uptake"][1]
        uptake = float(rng.lognormal(math.log(comp[1]), comp[2])) * area
        rc = None
        for _ in range(4):
            bone = _choice(rng, bones)
            rc = _place(rng, ph, bone, {}, taken, size / px_mm, whole=bool(sites))
            if rc is not None:
                break
        if rc is None:
            continue
        taken.append((rc[0], rc[1], size / px_mm))
        out.append(
            make_finding(
                ph,
                f"L{start_id + len(out):02d}",
                "lesion",
                shape,
                bone,
                region_of(bone),
                rc,
                size,
                uptake,
                rng,
                lytic=bool(rng.random() < m["lytic"]),
                first_visit=first_visit,
            )
        )
    return out


def sample_benign(rng: np.random.Generator, ph: Phantom, age: int) -> list[Finding]:
    """Draw degenerative and traumatic hot spots; their frequency grows with age."""
    out: list[Finding] = []
    area = ph.spacing[0] * ph.spacing[1] / 2.3**2
    px_mm = 0.5 * (ph.spacing[0] + ph.spacing[1])
    old = max(age - 50, 0)

    def add(kind: str, shape_rc: tuple[float, float], bone: str | None, size: float, uptake: float, **kw) -> None:
        out.append(
            make_finding(
                ph,
                f"B{len(out) + 1:02d}",
                "benign",
                kind,
                bone,
                BENIGN_REGION[kind],
                shape_rc,
                size,
                uptake * area,
                rng,
                **kw,
            )
        )

    def snap(r: float, c: float, bone: str, radius_px: float) -> tuple[float, float] | None:
        """Nearest pixel of ``bone`` to (r, c) within a search radius."""
        h, w = ph.bone_map.shape
        r0, r1 = max(int(r - radius_px), 0), min(int(r + radius_px) + 1, h)
        c0, c1 = max(int(c - radius_px), 0), min(int(c + radius_px) + 1, w)
        rr, cc = np.nonzero(ph.bone_map[r0:r1, c0:c1] == BONE_IDS[bone])
        if rr.size == 0:
            return None
        k = int(np.argmin((rr + r0 - r) ** 2 + (cc + c0 - c) ** 2))
        return float(rr[k] + r0), float(cc[k] + c0)

    lm = ph.landmarks
    if rng.random() < min(0.08 + 0.014 * old, 0.6):  # knee arthritis, often both knees
        sides = ["R", "L"] if rng.random() < 0.5 else [str(rng.choice(["R", "L"]))]
        for s in sides:
            r, c = lm[f"knee_{s}"]
            medial = 1 if s == "R" else -1  # the medial compartment faces the midline
            rc = snap(r + rng.normal(0, 1), c + medial * 12 / px_mm, "femora", 25 / px_mm) or snap(
                r, c, "tibiae_fibulae", 25 / px_mm
            )
            if rc is not None:
                add(
                    "knee_arthritis",
                    rc,
                    "femora" if ph.bone_map[int(rc[0]), int(rc[1])] == BONE_IDS["femora"] else "tibiae_fibulae",
                    float(rng.uniform(8, 16)),
                    float(rng.lognormal(math.log(65), 0.35)),
                    angle=0.0,
                )
    if rng.random() < min(0.04 + 0.008 * old, 0.35):  # shoulder (glenohumeral) arthritis
        s = str(rng.choice(["R", "L"]))
        r, c = lm[f"shoulder_{s}"]
        rc = snap(r, c, "humeri", 20 / px_mm)
        if rc is not None:
            add("shoulder_arthritis", rc, "humeri", float(rng.uniform(8, 14)), float(rng.lognormal(math.log(60), 0.3)))
    if rng.random() < min(0.06 + 0.014 * old, 0.6):  # lumbar degeneration: lateral osteophytes L2-L5
        for _ in range(int(rng.integers(1, 4))):
            lv = f"L{int(rng.integers(2, 6))}"
            r, c = lm[lv]
            side = 1 if rng.random() < 0.5 else -1
            rc = snap(r + rng.normal(0, 2), c + side * 28 / px_mm, "lumbar_spine", 12 / px_mm)
            if rc is not None:
                add(
                    "lumbar_degeneration",
                    rc,
                    "lumbar_spine",
                    float(rng.uniform(5, 9)),
                    float(rng.lognormal(math.log(55), 0.3)),
                )
    if rng.random() < 0.09:  # healed fractures: aligned foci on 2-4 consecutive ribs
        side = 1 if rng.random() < 0.5 else -1
        cc = int(round(ph.landmarks["pelvis_centre"][1] + side * rng.uniform(70, 120) / ph.spacing[1]))
        cc = int(np.clip(cc, 0, ph.bone_map.shape[1] - 1))
        col = ph.bone_map[:, cc] == BONE_IDS["ribs"]
        rows = np.flatnonzero(col)
        if rows.size:
            runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
            centres = [float(run.mean()) for run in runs]
            k = int(rng.integers(2, 5))
            if len(centres) >= k:
                start = int(rng.integers(0, len(centres) - k + 1))
                up = float(rng.lognormal(math.log(70), 0.3))
                for rr in centres[start : start + k]:
                    add(
                        "rib_fracture",
                        (rr, float(cc)),
                        "ribs",
                        float(rng.uniform(3.5, 5.5)),
                        up * float(rng.uniform(0.8, 1.2)),
                    )
    if rng.random() < min(0.03 + 0.006 * old, 0.3):
        bones = np.flatnonzero(ph.bone_map == BONE_IDS["feet"])
        if bones.size:
            r, c = divmod(int(bones[rng.integers(bones.size)]), ph.bone_map.shape[1])
            add(
                "foot_arthritis",
                (float(r), float(c)),
                "feet",
                float(rng.uniform(6, 12)),
                float(rng.lognormal(math.log(60), 0.3)),
            )
    return out


def visit_dynamics(
    rng: np.random.Generator,
    lesions: list[Finding],
    label: str,
    visits: int,
    ph: Phantom,
    sites: dict[str, float] | None = None,
) -> list[Finding]:
    """Add follow-up behaviour: uptake change, new lesions, and an optional flare.

    Metastatic patients are progressors (55 %: about 2-3 new lesions per visit) or stable
    (a new lesion now and then). At the first follow-up a flare (20 % of metastatic
    patients) brightens the existing lesions by 30-70 % while they heal.

    Returns:
        All lesions over all visits (old ones with their per-visit gains filled in).
    """
    lesions = [replace(f) for f in lesions]
    metastatic = label in CLASS_MODELS
    progress = metastatic and rng.random() < 0.55
    flare = metastatic and visits > 1 and rng.random() < 0.2
    px_mm = 0.5 * (ph.spacing[0] + ph.spacing[1])
    taken = [(f.center_rc[0], f.center_rc[1], f.size_mm / px_mm) for f in lesions]
    for v in range(1, visits):
        if metastatic:
            n_new = int(rng.poisson(2.5 if progress else 0.3))
            if n_new:
                lesions += sample_lesions(
                    rng, ph, label, n=n_new, first_visit=v, start_id=len(lesions) + 1, taken=taken, sites=sites
                )
    for f in lesions:
        gains, flares = [], []
        g = 1.0
        for v in range(visits):
            if v > f.first_visit:
                g *= float(rng.lognormal(0.08 if progress else -0.05, 0.12))
            fl = flare and v == 1 and f.first_visit == 0
            gains.append(g * (float(rng.uniform(1.3, 1.7)) if fl else 1.0))
            flares.append(bool(fl))
        f.visit_gain, f.flare = gains, flares
    return lesions


def finding_field(
    f: Finding, spacing: tuple[float, float], shape_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Pre-blur spatial profile of a finding over its bounding box (peak about 1).

    Returns:
        (field, (row0, col0)) with the box's top-left corner, or None if outside the image.
    """
    rng = np.random.default_rng(f.shape_seed)
    sr, sc = spacing
    px = 0.5 * (sr + sc)
    R = f.size_mm / px
    ext = int(math.ceil(R * (1.6 if f.shape in ("mottled", "patchy", "flake") else 1.3) + 3))
    r0 = int(round(f.center_rc[0])) - ext
    c0 = int(round(f.center_rc[1])) - ext
    n = 2 * ext + 1
    rr = np.arange(n, dtype=np.float32)[:, None] + r0 - f.center_rc[0]
    cc = np.arange(n, dtype=np.float32)[None, :] + c0 - f.center_rc[1]

    def blob(dr: float, dc: float, a: float, b: float, ang: float) -> np.ndarray:
        u = (cc - dc) * math.cos(ang) + (rr - dr) * math.sin(ang)
        v = -(cc - dc) * math.sin(ang) + (rr - dr) * math.cos(ang)
        return np.exp(-0.5 * ((u / max(a, 0.35)) ** 2 + (v / max(b, 0.35)) ** 2))

    shape = f.shape
    if shape in (
        "punctate",
        "rib_fracture",
        "lumbar_degeneration",
        "injection_site",
        "urine_contamination",
        "spine_degeneration",
        "sc_joint_arthritis",
    ):
        fld = blob(0, 0, 0.6 * R, 0.6 * R, 0)
    elif shape == "catheter":  # a thin tube of urine
        fld = blob(0, 0, R, 1.5 / px, f.angle)
    elif shape in ("strip", "knee_arthritis", "endplate_degeneration", "sternotomy"):
        fld = blob(0, 0, R, max(0.3 * R, 2.5 / px), f.angle)
    elif shape == "patchy" or shape in (
        "shoulder_arthritis",
        "foot_arthritis",
        "hip_arthritis",
        "ankle_arthritis",
        "wrist_arthritis",
        "elbow_arthritis",
    ):
        fld = np.zeros((n, n), np.float32)
        for _ in range(int(rng.integers(2, 5))):
            d = rng.normal(0, 0.35 * R, 2)
            fld = np.maximum(
                fld, blob(d[0], d[1], R * rng.uniform(0.4, 0.75), R * rng.uniform(0.4, 0.75), rng.uniform(0, math.pi))
            )
    elif shape == "mottled":
        fld = 0.25 * blob(0, 0, 0.7 * R, 0.7 * R, 0)
        for _ in range(int(rng.integers(4, 10))):
            d = rng.normal(0, 0.45 * R, 2)
            s = rng.uniform(0.15, 0.3) * R
            fld = np.maximum(fld, rng.uniform(0.5, 1.0) * blob(d[0], d[1], s, s, 0))
    elif shape in ("flake", "paget", "urine_bag"):
        theta = np.arctan2(rr, cc)
        rad = np.hypot(rr, cc)
        k = rng.normal(0, 1, 4)
        edge = R * (1 + 0.22 * (k[0] * np.cos(2 * theta + k[1]) + 0.6 * k[2] * np.cos(3 * theta + k[3])) / 1.5)
        fld = 0.85 * np.clip((edge - rad) / 1.5 + 0.5, 0, 1)  # flat sheet with a ragged edge
        fld = fld * rng.uniform(0.85, 1.0, size=fld.shape) ** 0.3
    else:
        raise ValueError(f"unknown finding shape {shape!r}")
    if f.lytic_rim:
        fld = fld * (1.0 - 0.85 * blob(0, 0, 0.45 * R, 0.45 * R, 0))
    fld = fld.astype(np.float32)
    # clip the box to the image
    h, w = shape_hw
    a, b = max(r0, 0), min(r0 + n, h)
    c, d = max(c0, 0), min(c0 + n, w)
    if a >= b or c >= d:
        return None
    return fld[a - r0 : b - r0, c - c0 : d - c0], (a, c)


def finding_mask(f: Finding, fld: np.ndarray, corner: tuple[int, int], bone_map: np.ndarray) -> np.ndarray:
    """Truth mask of a finding in its box: profile >= 30 % of its peak, on its own bone."""
    m = fld >= 0.3 * float(fld.max() or 1.0)
    if f.bone is not None:
        h, w = fld.shape
        on = bone_map[corner[0] : corner[0] + h, corner[1] : corner[1] + w] == BONE_IDS[f.bone]
        m &= on
    r, c = int(round(f.center_rc[0])) - corner[0], int(round(f.center_rc[1])) - corner[1]
    if 0 <= r < m.shape[0] and 0 <= c < m.shape[1]:
        m[r, c] = True  # the centre always belongs to the finding (it was sampled on the bone)
    return m


def blurred_peak(fld: np.ndarray, sigma_px: float) -> float:
    """Peak of ``fld`` after the camera blur (to scale a finding to its stated uptake)."""
    return float(gaussian_filter(np.pad(fld, 4), sigma_px, mode="constant").max()) or 1.0


__all__ = [
    "BENIGN_REGION",
    "CLASS_MODELS",
    "Finding",
    "SHAPE_SIZE_MM",
    "blurred_peak",
    "finding_field",
    "finding_mask",
    "make_finding",
    "sample_benign",
    "sample_lesions",
    "visit_dynamics",
]
