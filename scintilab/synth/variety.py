"""How much synthetic patients and acquisitions differ: the ``clinic`` and ``narrow`` varieties.

``narrow`` is the generator as it was before issue 23: average builds, arms at the sides,
the whole body in the field, one matrix, 0.85-1.9 M counts, a 7 mm camera and a hot
injection site. Every constant of the analysis was fitted on it, so tests that pin a
figure keep it.

``clinic`` (the default of ``scintilab synth``) draws what a clinic's camera meets:

======================  ==================================================================
habitus                 thin 12 %, average 45 %, overweight 28 %, obese 15 %: soft tissue
                        0.85-1.6 x as wide (trunk about 280-520 mm), 0.8-1.5 x as thick
                        (deeper bones, more attenuation); breasts in most women
stature                 adolescents (14-19 years) 3 %; adults 1.50-2.00 m
arms (each side)        at the sides 72 %, on the abdomen 12 %, raised above the head 13 %
                        (both arms), one arm missing 3 %
position                off-centre up to ~60 mm; rotated up to 10 degrees in a quarter of
                        patients; the vertex cut off by the field's top 6 %
matrix                  1024 x 256 at 2.26 mm 70 %, 2048 x 512 at 1.13 mm 15 %,
                        512 x 128 at 4.5 mm 15 %
counts per view         lognormal around 2.5 M, 0.5-6 M (body and bladder; findings on top)
camera                  6-14 mm FWHM at 10 cm, growing with depth; 10-30 % of counts
                        scattered into a 25-45 mm halo; each head's sensitivity varies
                        2-7 % from column to column; room background 0.02-0.4 counts per
                        pixel; Poisson noise last, nothing after it
soft tissue             its uptake varies 5-20 % over 8-25 mm (organs, muscle, fat)
bladder                 0.5-8 % of counts, 0.4-2 x the size, off the midline, oblong;
                        a urine bag with its catheter beside a thigh 4 %
injection site          elbow / forearm 55 %, wrist or hand 22 %, foot 8 %, absent 15 %;
                        a few hundred counts at its peak, occasionally an extravasation
sweep                   feet cut off (the sweep ended early) 8 %, partial sweep (ended at
                        the thighs or the pelvis) 3 %
metastases              also in the distal limbs, hands and feet (rare) and along the whole
                        humerus and femur; the skull vault as before
benign findings         degenerative change at any spine level, fractures on any rib in
                        any alignment, sternotomy, arthritis of hips, ankles, wrists,
                        elbows and sterno-clavicular joints, Paget-like bone
head                    tilted towards a shoulder by 4-15 degrees 12 % (the neck bends)
superscan               3 % of metastatic patients: diffuse uptake over most of the axial
                        skeleton and the proximal humeri and femora, 1.8-3 x the normal,
                        faint kidneys and bladder, half the soft tissue
follow-up               the patient lies elsewhere on the bed (up to 40 mm); at 40 % of
                        follow-ups the arms move (abduction -8..+10 degrees, forearm
                        +-25 degrees, now and then a hand onto the abdomen) and their
                        findings move with the bone; lesions of stable patients may
                        vanish, new benign findings appear
======================  ==================================================================

Each patient's and each visit's draws are recorded in ``truth/<study>.json`` (``variety``)
with the families the study belongs to (``families``, for per-family reporting). The draws
come from random streams of their own, so a clinic patient has the same class, lesions'
count and benign findings' stream as its narrow twin where the anatomy allows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from scintilab.synth.phantom import Anatomy

#: The varieties :func:`scintilab.synth.cohort.write_cohort` accepts.
VARIETIES: tuple[str, ...] = ("clinic", "narrow")
#: Mean counts per anterior view of the narrow variety (uniform 0.85-1.9 M): the level the
#: findings' uptakes are stated at, so they scale with the counts of a clinic study.
NARROW_MEAN_COUNTS: float = 0.5 * (0.85e6 + 1.9e6)
#: Matrices of the clinic variety: (rows, cols), mm per pixel, share.
CLINIC_MATRICES: tuple[tuple[tuple[int, int], float, float], ...] = (
    ((1024, 256), 2.26, 0.70),
    ((2048, 512), 1.13, 0.15),
    ((512, 128), 4.5, 0.15),
)
#: Rare metastatic sites added by the clinic variety (share of all lesions, before
#: renormalising the class's own site mix, which keeps the other 97 %).
RARE_LESION_SITES: dict[str, float] = {"forearms": 0.006, "tibiae_fibulae": 0.012, "hands": 0.005, "feet": 0.007}
#: Families a study can belong to (per-family and leave-one-family-out reporting).
FAMILIES: tuple[str, ...] = (
    "thin",
    "obese",
    "adolescent",
    "arms_raised",
    "arms_abdomen",
    "one_arm",
    "rotated",
    "off_centre",
    "cut_fov",
    "matrix_1.1mm",
    "matrix_4.5mm",
    "low_counts",
    "high_counts",
    "blurred",
    "injection_absent",
    "injection_foot",
    "urine_bag",
    "moved",
    "head_tilted",
    "arms_moved",
    "superscan",
)
#: Share of clinic patients whose head is tilted.
HEAD_TILT_SHARE: float = 0.12
#: Share of metastatic clinic patients with a superscan.
SUPERSCAN_SHARE: float = 0.03
#: Share of clinic follow-up visits at which the arms lie otherwise than at baseline.
ARMS_MOVE_SHARE: float = 0.4


def check_variety(variety: str) -> str:
    """``variety`` if it is known, else a one-sentence ValueError."""
    if variety not in VARIETIES:
        raise ValueError(f"variety must be one of {list(VARIETIES)}, got {variety!r}")
    return variety


@dataclass(frozen=True)
class PatientVariety:
    """What the variety drew for one patient (the same at every visit).

    Attributes:
        profile: ``clinic`` or ``narrow``.
        habitus: ``thin``, ``average``, ``overweight`` or ``obese``.
        soft_width / build: soft-tissue width and thickness factors.
        breast_cm: extra soft tissue over the chest.
        age: age override for an adolescent, else None.
        height_mm: height override, else None.
        arms: pose per arm (right, left).
        shift_x_mm / rotation_deg / top_mm: position on the bed and in the field.
        matrix / spacing_mm: the camera's matrix and pixel size (None: the cohort's).
        lesion_sites: extra metastatic sites (bone -> share), empty in narrow.
        wide_benign: draw benign findings anywhere they occur.
        head_tilt_deg: tilt of the head towards a shoulder (0: straight).
        superscan_gain: bone uptake factor of a superscan (0: none).
    """

    profile: str
    habitus: str = "average"
    soft_width: float = 1.0
    build: float | None = None
    breast_cm: float = 0.0
    age: int | None = None
    height_mm: float | None = None
    arms: tuple[str, str] = ("sides", "sides")
    shift_x_mm: float | None = None
    rotation_deg: float | None = None
    top_mm: float | None = None
    matrix: tuple[int, int] | None = None
    spacing_mm: float | None = None
    lesion_sites: dict[str, float] = field(default_factory=dict)
    wide_benign: bool = False
    head_tilt_deg: float = 0.0
    superscan_gain: float = 0.0

    @property
    def clinic(self) -> bool:
        """True for the clinic variety."""
        return self.profile == "clinic"

    def record(self) -> dict[str, Any]:
        """JSON-ready draws (for ``truth/``)."""
        out = asdict(self)
        out["arms"] = list(self.arms)
        out["matrix"] = list(self.matrix) if self.matrix else None
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


@dataclass(frozen=True)
class VisitVariety:
    """What the variety drew for one visit (acquisition and what changed since baseline).

    Attributes:
        profile: ``clinic`` or ``narrow``.
        total_counts: counts in the anterior view (None: the narrow draw).
        fwhm_mm: camera resolution.
        scatter_fraction / scatter_mm: share of counts in the scatter halo, its sigma.
        tissue_gain: soft-tissue retention factor (1 = the narrow draw).
        bladder_fraction / bladder_fill / bladder_aspect / bladder_offset_mm: the bladder.
        injection: ``elbow``, ``wrist``, ``hand``, ``foot`` or ``absent`` (None: narrow draw).
        injection_uptake: peak counts of the injection site at narrow counts.
        sweep_cut: ``feet`` (the sweep ended above the feet), ``partial`` (ended at the
            thighs or pelvis) or None (the whole field).
        urine_bag: a urine bag and catheter beside a thigh.
        motion_mm: (down, across) the patient lies moved on the bed since baseline.
        uniformity_sd: pixel-to-pixel sensitivity spread of each camera head across the
            sweep (a column pattern: the sweep averages it along the body).
        texture_sd / texture_mm: spread and scale of the soft tissue's uptake (organs,
            muscle, fat are not one slab).
        background: counts per pixel outside the body (room background, at 2.3 mm pixels).
        pattern_seed: seeds the uniformity and texture patterns.
        abduction_change_deg / forearm_change_deg: how far each arm (right, left) lies
            otherwise than at baseline (upper arm from the body, forearm).
    """

    profile: str
    total_counts: float | None = None
    fwhm_mm: float | None = None
    scatter_fraction: float = 0.0
    scatter_mm: float = 0.0
    tissue_gain: float = 1.0
    bladder_fraction: float | None = None
    bladder_fill: float | None = None
    bladder_aspect: float = 1.0
    bladder_offset_mm: tuple[float, float] = (0.0, 0.0)
    injection: str | None = None
    injection_uptake: float | None = None
    sweep_cut: str | None = None
    urine_bag: bool = False
    motion_mm: tuple[float, float] = (0.0, 0.0)
    uniformity_sd: float = 0.0
    texture_sd: float = 0.0
    texture_mm: float = 0.0
    background: float | None = None
    pattern_seed: int = 0
    abduction_change_deg: tuple[float, float] = (0.0, 0.0)
    forearm_change_deg: tuple[float, float] = (0.0, 0.0)

    @property
    def arms_moved(self) -> bool:
        """True when an arm lies otherwise than at baseline."""
        return any(abs(v) > 1e-9 for v in (*self.abduction_change_deg, *self.forearm_change_deg))

    def record(self) -> dict[str, Any]:
        """JSON-ready draws (for ``truth/``)."""
        out = asdict(self)
        for name in ("bladder_offset_mm", "motion_mm", "abduction_change_deg", "forearm_change_deg"):
            out[name] = [round(v, 2) for v in getattr(self, name)]
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def patient_stream(seed: int, index: int) -> np.random.Generator:
    """The random stream of a patient's variety draws (apart from the generator's own)."""
    return np.random.default_rng([seed, index, 2323])


def draw_patient(rng: np.random.Generator, profile: str, *, sex: str, age: int) -> PatientVariety:
    """Draw one patient's variety (``narrow``: nothing is drawn)."""
    if check_variety(profile) == "narrow":
        return PatientVariety(profile="narrow")
    habitus = _pick(rng, {"thin": 0.12, "average": 0.45, "overweight": 0.28, "obese": 0.15})
    soft, build = {
        "thin": ((0.85, 0.95), (0.8, 0.9)),
        "average": ((0.95, 1.08), (0.9, 1.1)),
        "overweight": ((1.08, 1.25), (1.05, 1.25)),
        "obese": ((1.25, 1.6), (1.2, 1.5)),
    }[habitus]
    adolescent = rng.random() < 0.03
    new_age = int(rng.integers(14, 20)) if adolescent else None
    if adolescent:
        height = float(rng.uniform(1450, 1800))
    elif sex == "M":
        height = float(np.clip(rng.normal(1720, 75), 1500, 2000))
    else:
        height = float(np.clip(rng.normal(1610, 70), 1500, 1850))
    pose = _pick(rng, {"sides": 0.72, "abdomen": 0.12, "raised": 0.13, "missing": 0.03})
    if pose == "missing":
        arms = ("missing", "sides") if rng.random() < 0.5 else ("sides", "missing")
    elif pose == "abdomen" and rng.random() < 0.4:  # often only one hand rests on the abdomen
        arms = ("abdomen", "sides") if rng.random() < 0.5 else ("sides", "abdomen")
    else:
        arms = (pose, pose)
    rotated = rng.random() < 0.25
    rotation = float(rng.uniform(-10, 10)) if rotated else float(rng.normal(0, 1.5))
    shift = float(np.clip(rng.normal(0, 22), -60, 60))
    if "raised" in arms:  # hands above the head need room at the top of the field
        top = float(rng.uniform(170, 320))
    elif rng.random() < 0.06:  # the vertex above the field's top: the head is cut
        top = float(-rng.uniform(20, 110))
    else:
        top = float(rng.uniform(15, 110))
    k = int(rng.choice(len(CLINIC_MATRICES), p=[m[2] for m in CLINIC_MATRICES]))
    matrix, spacing, _ = CLINIC_MATRICES[k]
    breast = float(rng.uniform(2.0, 9.0) * soft[1]) if sex == "F" and not adolescent and rng.random() < 0.8 else 0.0
    return PatientVariety(
        profile="clinic",
        habitus=habitus,
        soft_width=float(rng.uniform(*soft)),
        build=float(rng.uniform(*build)),
        breast_cm=breast,
        age=new_age,
        height_mm=height,
        arms=arms,
        shift_x_mm=shift,
        rotation_deg=rotation,
        top_mm=top,
        matrix=matrix,
        spacing_mm=spacing,
        lesion_sites=dict(RARE_LESION_SITES),
        wide_benign=True,
    )


def rarity_stream(seed: int, index: int) -> np.random.Generator:
    """The stream of a patient's rarer clinic draws (head tilt, superscan). They were added
    after the first clinic release; a stream of their own leaves every earlier draw as it was."""
    return np.random.default_rng([seed, index, 3131])


def draw_rarities(rng: np.random.Generator, pv: PatientVariety, *, label: str) -> PatientVariety:
    """Add a head tilt and, for a metastatic patient, a superscan (``narrow``: nothing)."""
    if not pv.clinic:
        return pv
    tilt = float(rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 15.0)) if rng.random() < HEAD_TILT_SHARE else 0.0
    superscan = float(rng.uniform(1.8, 3.0)) if label != "NoMet" and rng.random() < SUPERSCAN_SHARE else 0.0
    return replace(pv, head_tilt_deg=tilt, superscan_gain=superscan)


def apply_to_anatomy(an: Anatomy, pv: PatientVariety, rng: np.random.Generator) -> Anatomy:
    """The narrow anatomy changed by the patient's variety (unchanged for ``narrow``)."""
    if not pv.clinic:
        return an
    thickness = dict(an.thickness_cm)
    if pv.build is not None:
        base = {"neck": 12.0, "chest": 22.5, "pelvis": 21.0, "thigh": 15.0, "calf": 10.5}
        for part, t0 in base.items():
            thickness[part] = t0 * pv.build
        thickness["abdomen"] = 22.0 * pv.build * float(rng.uniform(0.95, 1.2))
    abd = list(an.arm_abduction_deg)
    fore = list(an.forearm_deg)
    for i, pose in enumerate(pv.arms):
        if pose == "raised":
            abd[i] = float(rng.uniform(150, 172))
            fore[i] = abd[i] + float(rng.uniform(0, 25))
        elif pose == "abdomen":
            abd[i] = float(rng.uniform(8, 22))
            fore[i] = -float(rng.uniform(60, 95))
        elif pv.habitus in ("overweight", "obese"):  # arms rest on a wide trunk
            abd[i] = float(rng.uniform(10, 24))
    return replace(
        an,
        age=pv.age if pv.age is not None else an.age,
        height_mm=pv.height_mm if pv.height_mm is not None else an.height_mm,
        thickness_cm=thickness,
        top_mm=pv.top_mm if pv.top_mm is not None else an.top_mm,
        shift_x_mm=pv.shift_x_mm if pv.shift_x_mm is not None else an.shift_x_mm,
        rotation_deg=pv.rotation_deg if pv.rotation_deg is not None else an.rotation_deg,
        arm_abduction_deg=(abd[0], abd[1]),
        forearm_deg=(fore[0], fore[1]),
        soft_width=pv.soft_width,
        arms=pv.arms,
        breast_cm=pv.breast_cm,
        head_tilt_deg=pv.head_tilt_deg,
        bladder_fraction=float(np.clip(rng.lognormal(math.log(0.025), 0.6), 0.005, 0.08)),
    )


def visit_stream(patient_seed: int, visit: int) -> np.random.Generator:
    """The random stream of one visit's variety draws."""
    return np.random.default_rng([patient_seed, visit, 2929])


def draw_visit(
    rng: np.random.Generator, pv: PatientVariety, visit: int, *, arms: tuple[str, str] = ("sides", "sides")
) -> VisitVariety:
    """Draw one visit's acquisition (``narrow``: nothing is drawn)."""
    if not pv.clinic:
        return VisitVariety(profile="narrow")
    total = float(np.clip(rng.lognormal(math.log(2.5e6), 0.5), 0.5e6, 6.0e6))
    sites = {"elbow": 0.55, "wrist": 0.11, "hand": 0.11, "foot": 0.08, "absent": 0.15}
    injection = _pick(rng, sites)
    if injection in ("elbow", "wrist", "hand") and all(a == "missing" for a in arms):
        injection = "foot"
    # a few hundred counts at the peak at clinic counts; now and then an extravasation
    uptake = float(rng.lognormal(math.log(110), 0.7)) * (float(rng.uniform(3, 8)) if rng.random() < 0.05 else 1.0)
    sweep = None
    u = rng.random()
    if u < 0.08:
        sweep = "feet"
    elif u < 0.11:
        sweep = "partial"
    motion = (0.0, 0.0)
    if visit > 0:
        motion = (float(rng.uniform(-40, 40)), float(rng.uniform(-20, 20)))
    return VisitVariety(
        profile="clinic",
        total_counts=total,
        fwhm_mm=float(rng.uniform(6.0, 14.0)),
        scatter_fraction=float(rng.uniform(0.10, 0.30)),
        scatter_mm=float(rng.uniform(25.0, 45.0)),
        tissue_gain=float(rng.lognormal(math.log(0.8), 0.35)),
        bladder_fill=float(rng.uniform(0.4, 2.0)),
        bladder_aspect=float(rng.uniform(0.7, 1.4)),
        bladder_offset_mm=(float(rng.normal(0, 12)), float(rng.normal(0, 12))),
        injection=injection,
        injection_uptake=uptake,
        sweep_cut=sweep,
        urine_bag=bool(rng.random() < 0.04),
        motion_mm=motion,
        uniformity_sd=float(rng.uniform(0.02, 0.07)),
        texture_sd=float(rng.uniform(0.05, 0.2)),
        texture_mm=float(rng.uniform(8.0, 25.0)),
        background=float(rng.lognormal(math.log(0.08), 0.7)),
        pattern_seed=int(rng.integers(2**31)),
    )


def arm_stream(patient_seed: int, visit: int) -> np.random.Generator:
    """The stream of one visit's arm pose (added after the first clinic release)."""
    return np.random.default_rng([patient_seed, visit, 3737])


def draw_arm_motion(
    rng: np.random.Generator, pv: PatientVariety, vv: VisitVariety, visit: int, *, arms: tuple[str, str]
) -> VisitVariety:
    """At a clinic follow-up, now and then the arms lie otherwise than at baseline."""
    if not pv.clinic or visit == 0 or rng.random() >= ARMS_MOVE_SHARE:
        return vv
    abd: list[float] = []
    fore: list[float] = []
    for pose in arms:
        if pose == "missing":
            abd.append(0.0)
            fore.append(0.0)
        elif pose == "raised":
            abd.append(float(rng.uniform(-8.0, 4.0)))
            fore.append(float(rng.uniform(-10.0, 10.0)))
        else:
            abd.append(float(rng.uniform(-8.0, 10.0)))
            onto_abdomen = pose == "sides" and rng.random() < 0.12
            fore.append(-float(rng.uniform(60.0, 90.0)) if onto_abdomen else float(rng.uniform(-25.0, 25.0)))
    return replace(vv, abduction_change_deg=(abd[0], abd[1]), forearm_change_deg=(fore[0], fore[1]))


def families(pv: PatientVariety, vv: VisitVariety, *, counts: int, cut: bool) -> list[str]:
    """The variety families one study belongs to (empty for ``narrow``)."""
    if not pv.clinic:
        return []
    out: list[str] = []
    if pv.habitus == "thin":
        out.append("thin")
    if pv.habitus == "obese":
        out.append("obese")
    if pv.age is not None:
        out.append("adolescent")
    if "raised" in pv.arms:
        out.append("arms_raised")
    if "abdomen" in pv.arms:
        out.append("arms_abdomen")
    if "missing" in pv.arms:
        out.append("one_arm")
    if pv.rotation_deg is not None and abs(pv.rotation_deg) > 4:
        out.append("rotated")
    if pv.shift_x_mm is not None and abs(pv.shift_x_mm) > 30:
        out.append("off_centre")
    if cut:
        out.append("cut_fov")
    if pv.spacing_mm is not None and pv.spacing_mm < 1.5:
        out.append("matrix_1.1mm")
    if pv.spacing_mm is not None and pv.spacing_mm > 3.5:
        out.append("matrix_4.5mm")
    if counts < 1.0e6:
        out.append("low_counts")
    if counts > 4.0e6:
        out.append("high_counts")
    if vv.fwhm_mm is not None and vv.fwhm_mm > 11:
        out.append("blurred")
    if vv.injection == "absent":
        out.append("injection_absent")
    if vv.injection == "foot":
        out.append("injection_foot")
    if vv.urine_bag:
        out.append("urine_bag")
    if any(abs(v) > 1e-9 for v in vv.motion_mm):
        out.append("moved")
    if abs(pv.head_tilt_deg) > 4:
        out.append("head_tilted")
    if vv.arms_moved:
        out.append("arms_moved")
    if pv.superscan_gain > 0:
        out.append("superscan")
    return out


__all__ = [
    "CLINIC_MATRICES",
    "ARMS_MOVE_SHARE",
    "FAMILIES",
    "HEAD_TILT_SHARE",
    "NARROW_MEAN_COUNTS",
    "PatientVariety",
    "RARE_LESION_SITES",
    "SUPERSCAN_SHARE",
    "VARIETIES",
    "VisitVariety",
    "apply_to_anatomy",
    "arm_stream",
    "check_variety",
    "draw_arm_motion",
    "draw_patient",
    "draw_rarities",
    "draw_visit",
    "families",
    "patient_stream",
    "rarity_stream",
    "visit_stream",
]
