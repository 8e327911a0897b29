"""One synthetic patient (anatomy, lesions, visits) and the rendering of one study.

``generate_patient`` draws everything that stays the same between visits (habitus,
metastases and when each appears, benign findings); ``render_study`` turns one visit into
the two views a camera stores: counts with Poisson noise, the posterior view mirrored and
shifted by a few pixels, plus the ground truth.

Counts: the normal body (skeleton, soft tissue, kidneys) is scaled so that the anterior
view holds 0.8-1.9 million counts less the bladder's share; the bladder, metastases,
benign hot spots, the injection site and any urine contamination are added in counts on
top. Everything is blurred once for the camera (7 mm FWHM) and then Poisson sampled.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter
from skimage.measure import find_contours

from scintilab.anatomy import BONE_MASS_FRACTION, BONES
from scintilab.study import CLASSES, Shape
from scintilab.synth.acquisition import camera_blur, clinic_injection, sweep_end_row, translate, urine_bag
from scintilab.synth.arm_motion import follow_arms, moved_anatomy
from scintilab.synth.clinic_findings import wide_benign
from scintilab.synth.identity import patient_identity
from scintilab.synth.lesions import (
    Finding,
    blurred_peak,
    finding_field,
    finding_mask,
    sample_benign,
    sample_lesions,
    visit_dynamics,
)
from scintilab.synth.phantom import (
    BONE_IDS,
    MU_PER_CM,
    PAPER_MATRIX,
    Anatomy,
    Phantom,
    random_anatomy,
    render_phantom,
    spacing_for,
)
from scintilab.synth.superscan import BLADDER_SHARE, DIFFUSE_ID, KIDNEY_SHARE, SOFT_TISSUE_SHARE, bone_factor
from scintilab.synth.variety import (
    NARROW_MEAN_COUNTS,
    PatientVariety,
    VisitVariety,
    apply_to_anatomy,
    arm_stream,
    draw_arm_motion,
    draw_patient,
    draw_rarities,
    draw_visit,
    families,
    patient_stream,
    rarity_stream,
    visit_stream,
)
from scintilab.utils import as_rng

#: Camera resolution (FWHM, mm) of a LEHR collimator at whole-body distance.
CAMERA_FWHM_MM: float = 7.0
#: Mean background outside the body (counts per pixel, at the paper's pixel size).
BACKGROUND: float = 0.03


@dataclass
class SynthPatient:
    """Everything about one synthetic patient that does not change between visits.

    Attributes:
        index: 1-based case number (``case_0001``).
        patient_id / patient_name: raw identity as a hospital would store it (synthetic).
        sex / age / birth_date: demographics (age at baseline).
        label: ``NoMet``, ``ADMet`` or ``nADMet``.
        anatomy: body habitus.
        lesions: metastases over all visits (``first_visit`` says when each appears).
        benign: benign skeletal findings (persist over visits).
        visit_dates: StudyDate of each visit.
        matrix: (rows, cols).
        missing_view: ``"ANT"``/``"POST"`` for a study whose view was not recorded, else None.
        seed: the patient's own seed (visits derive their noise from it).
        variety: what the variety drew for this patient (:mod:`scintilab.synth.variety`).
        spacing: (row, col) mm per pixel.
    """

    index: int
    patient_id: str
    patient_name: str
    sex: str
    age: int
    birth_date: _dt.date
    label: str
    anatomy: Anatomy
    lesions: list[Finding]
    benign: list[Finding]
    visit_dates: list[_dt.date]
    matrix: tuple[int, int]
    missing_view: str | None = None
    seed: int = 0
    variety: PatientVariety = field(default_factory=lambda: PatientVariety(profile="narrow"))
    spacing: tuple[float, float] | None = None
    _phantom: Phantom | None = field(default=None, repr=False)

    @property
    def visits(self) -> int:
        """Number of visits generated for this patient."""
        return len(self.visit_dates)

    @property
    def phantom(self) -> Phantom:
        """The normal phantom (rendered once, cached)."""
        if self._phantom is None:
            self._phantom = render_phantom(self.anatomy, self.matrix, self.spacing)
        return self._phantom

    def phantom_at(self, vv: VisitVariety) -> Phantom:
        """The phantom as it lies at a visit: drawn again when the arms moved."""
        if not vv.arms_moved:
            return self.phantom
        return render_phantom(moved_anatomy(self.anatomy, vv), self.matrix, self.spacing)


@dataclass
class SynthStudy:
    """One rendered visit: stored views, annotations and ground truth.

    Attributes:
        anterior: ANT view, uint16 as stored (None if not recorded).
        posterior: POST view, uint16 as stored (mirrored and shifted; None if not recorded).
        shapes: LabelMe shapes for both views (stored coordinates of each view).
        lesions: truth records of the metastases present at this visit.
        benign: truth records of benign findings (skeletal and not).
        bone_maps: uint8 bone-group id per pixel, ANT orientation (:data:`BONE_IDS`).
        lesion_maps: uint8 lesion number per pixel (``L07`` -> 7), ANT orientation.
        benign_maps: uint8 benign-finding number per pixel, ANT orientation.
        body_map: bool body outline, ANT orientation.
        true_bsi: Bone Scan Index of this visit (percent).
        involved_fraction: per bone group, lesion pixels / bone pixels.
        shift_rc: (rows, cols) the stored POST is shifted by after mirroring.
        visit / study_date / counts: acquisition facts.
        variety: what the variety drew for this visit.
        families: the variety families this study belongs to (empty for ``narrow``).
        cut_row: first row not acquired (the sweep ended early), else None.
        superscan: what a superscan drew (gain, involved pixels), else None.
    """

    anterior: np.ndarray | None
    posterior: np.ndarray | None
    shapes: list[Shape]
    lesions: list[dict[str, Any]]
    benign: list[dict[str, Any]]
    bone_maps: np.ndarray
    lesion_maps: np.ndarray
    benign_maps: np.ndarray
    body_map: np.ndarray
    true_bsi: float
    involved_fraction: dict[str, float]
    shift_rc: tuple[int, int]
    visit: int
    study_date: _dt.date
    counts: dict[str, int]
    variety: VisitVariety = field(default_factory=lambda: VisitVariety(profile="narrow"))
    families: list[str] = field(default_factory=list)
    cut_row: int | None = None
    superscan: dict[str, Any] | None = None


def generate_patient(
    rng: np.random.Generator | int | None,
    label: str,
    *,
    index: int = 1,
    matrix: tuple[int, int] = PAPER_MATRIX,
    visits: int = 1,
    seed: int = 0,
    missing_view: str | None = None,
    variety: str = "narrow",
    draw_matrix: bool = True,
) -> SynthPatient:
    """Draw one patient: demographics, habitus, metastases (per visit) and benign findings.

    Args:
        rng: random generator or seed.
        label: ``NoMet``, ``ADMet`` or ``nADMet``.
        index: case number (enters the raw ids).
        matrix: (rows, cols) of the images.
        visits: number of visits (1 = a single baseline study).
        seed: cohort seed (enters the raw ids).
        missing_view: ``"ANT"`` or ``"POST"`` to leave that view unrecorded.
        variety: ``narrow`` (the generator the analysis was tuned on) or ``clinic``
            (:mod:`scintilab.synth.variety`); its draws come from a stream of their own.
        draw_matrix: let the clinic variety draw the matrix and pixel size; False keeps
            ``matrix`` (at the paper's field of view).

    Returns:
        The :class:`SynthPatient` (its phantom is rendered lazily and cached).

    Raises:
        ValueError: on an unknown label or a visit count below 1.
    """
    if label not in CLASSES:
        raise ValueError(f"label must be one of {CLASSES}, got {label!r}")
    if visits < 1:
        raise ValueError(f"visits must be >= 1, got {visits}")
    rng = as_rng(rng)
    # Lung-cancer cohorts are mostly men in their sixties (cf. the paper's Fig. 5).
    sex = "M" if rng.random() < 0.68 else "F"
    age = int(np.clip(round(rng.normal(61 if sex == "M" else 58, 9.5)), 32, 88))
    vrng = patient_stream(seed, index)
    pv = draw_rarities(rarity_stream(seed, index), draw_patient(vrng, variety, sex=sex, age=age), label=label)
    if not draw_matrix:
        pv = replace(pv, matrix=None, spacing_mm=None)
    age = pv.age if pv.age is not None else age
    baseline = _dt.date(2014, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 6 * 365 - 400)))
    dates = [baseline]
    for _ in range(visits - 1):
        dates.append(dates[-1] + _dt.timedelta(days=int(rng.integers(56, 120))))
    birth = baseline - _dt.timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    an = apply_to_anatomy(random_anatomy(rng, sex=sex, age=age), pv, vrng)
    if pv.matrix is not None:
        matrix = pv.matrix
    pid, name = patient_identity(index, seed)
    pat = SynthPatient(
        index=index,
        patient_id=pid,
        patient_name=name,
        sex=sex,
        age=age,
        birth_date=birth,
        label=label,
        anatomy=an,
        lesions=[],
        benign=[],
        visit_dates=dates,
        matrix=tuple(matrix),
        missing_view=missing_view,
        seed=int(rng.integers(2**31)),
        variety=pv,
        spacing=(pv.spacing_mm, pv.spacing_mm) if pv.spacing_mm is not None else spacing_for(tuple(matrix)),
    )
    ph = pat.phantom
    sites = pv.lesion_sites or None
    lesions = sample_lesions(rng, ph, label, sites=sites)
    pat.lesions = visit_dynamics(rng, lesions, label, visits, ph, sites=sites)
    pat.benign = sample_benign(rng, ph, age)
    if pv.wide_benign:
        pat.benign += wide_benign(vrng, ph, age, visits, start_id=len(pat.benign) + 1)
        _vanish(vrng, pat.lesions, visits)
        for f in pat.lesions:
            f.cold = bool(vrng.random() < 0.04)  # osteolytic: a defect, not a hot spot
            # lesions grow and shrink with their uptake; a flare brightens without growing
            f.size_gain = [
                float(np.clip(math.sqrt(g / (1.5 if fl else 1.0)), 0.5, 2.0)) if g > 0 else 1.0
                for g, fl in zip(f.visit_gain, f.flare or [False] * len(f.visit_gain), strict=True)
            ]
    return pat


def _vanish(rng: np.random.Generator, lesions: list[Finding], visits: int) -> None:
    """Clinic variety: some lesions of patients who are not progressing fade out at a
    follow-up (gain 0 from then on: absent from that visit's image and truth)."""
    if visits < 2:
        return
    for f in lesions:
        if f.first_visit == 0 and f.visit_gain and f.visit_gain[-1] < f.visit_gain[0] and rng.random() < 0.3:
            v0 = int(rng.integers(1, visits))
            f.visit_gain = [g if v < v0 else 0.0 for v, g in enumerate(f.visit_gain)]


def _next_number(*groups: list[Finding]) -> int:
    """The number of the next ``B`` finding: one above every number already given (the
    clinic variety leaves out findings not yet present, so a count would repeat one)."""
    return 1 + max((int(f.id[1:]) for g in groups for f in g), default=0)


def _polygon(mask: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    """(N, 2) (x, y) polygon around a finding's mask, as a reader would draw it."""
    m = np.pad(binary_dilation(mask), 1)
    contours = find_contours(m.astype(np.float32), 0.5)
    if not contours:
        r, c = np.argwhere(mask)[0]
        contours = [np.array([[r - 1, c - 1], [r - 1, c + 1], [r + 1, c + 1], [r + 1, c - 1]], float) + 1]
    cont = max(contours, key=len)
    if np.allclose(cont[0], cont[-1]):
        cont = cont[:-1]
    if len(cont) > 4:  # drop points on straight runs (cheaper than Douglas-Peucker, same shape)
        d_prev = cont - np.roll(cont, 1, axis=0)
        d_next = np.roll(cont, -1, axis=0) - cont
        turn = np.abs(d_prev[:, 0] * d_next[:, 1] - d_prev[:, 1] * d_next[:, 0]) > 1e-6
        if turn.sum() >= 3:
            cont = cont[turn]
    rows = cont[:, 0] - 1 + corner[0]
    cols = cont[:, 1] - 1 + corner[1]
    return np.stack([cols, rows], axis=1)


def _pixels_in_field(mask: np.ndarray, corner: tuple[int, int], shape: tuple[int, int]) -> int:
    """How many of a finding's mask pixels (its box at ``corner``) lie inside the image."""
    rr, cc = np.nonzero(mask)
    rr, cc = rr + corner[0], cc + corner[1]
    return int(((rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])).sum())


def _area(pts: np.ndarray) -> float:
    """Area of a polygon given as (x, y) vertices (shoelace)."""
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _truth_record(f: Finding, visit: int, peaks: tuple[float, float], n_px: int, px_mm: float) -> dict[str, Any]:
    rec = {
        "id": f.id,
        "kind": f.kind,
        "bone": f.bone,
        "region": f.region,
        "shape": f.shape,
        "center_rc": [round(f.center_rc[0], 2), round(f.center_rc[1], 2)],
        "radius_px": round(f.size_mm / px_mm, 2),
        "size_mm": round(f.size_mm, 2),
        "uptake": round(f.uptake * (f.visit_gain[visit] if f.visit_gain else 1.0), 2),
        "peak_ant": round(peaks[0], 2),
        "peak_post": round(peaks[1], 2),
        "depth_ant_cm": round(f.depth_ant_cm, 2),
        "depth_post_cm": round(f.depth_post_cm, 2),
        "lytic_rim": f.lytic_rim,
        "first_visit": f.first_visit,
        "new_since_baseline": f.first_visit > 0,
        "new": f.first_visit == visit and visit > 0,
        "flare": bool(f.flare[visit]) if f.flare else False,
        "pixels": int(n_px),
    }
    return rec


def _poisson_image(rng: np.random.Generator, mean: np.ndarray, background: float) -> np.ndarray:
    """Poisson counts of ``mean + background`` as uint16.

    Poisson(a + b) = Poisson(a) + Poisson(b): the body part is sampled only where it is
    non-negligible, the uniform background as a Poisson number of events scattered over
    the matrix, which is exact and about three times cheaper than sampling every pixel.
    """
    out = np.zeros(mean.shape, np.int64)
    sel = mean > 1e-4
    out[sel] = rng.poisson(mean[sel])
    n_bg = int(rng.poisson(background * mean.size))
    if n_bg:
        np.add.at(out.reshape(-1), rng.integers(0, mean.size, n_bg), 1)
    return np.minimum(out, 65535).astype(np.uint16)


def render_study(
    patient: SynthPatient,
    rng: np.random.Generator | int | None = None,
    *,
    visit: int = 0,
    fwhm_mm: float = CAMERA_FWHM_MM,
) -> SynthStudy:
    """Render one visit of ``patient`` as the camera would store it.

    Args:
        patient: from :func:`generate_patient`.
        rng: random generator or seed for this visit's noise, injection site, sweep shift;
            None derives it from the patient's seed and the visit (reproducible).
        visit: 0-based visit number.
        fwhm_mm: camera resolution.

    Returns:
        The :class:`SynthStudy`.

    Raises:
        ValueError: if ``visit`` is outside the patient's visits.
    """
    if not 0 <= visit < patient.visits:
        raise ValueError(f"visit {visit} outside 0..{patient.visits - 1}")
    rng = as_rng(np.random.default_rng([patient.seed, visit, 17]) if rng is None else rng)
    an = patient.anatomy
    pv = patient.variety
    vv = draw_visit(visit_stream(patient.seed, visit), pv, visit, arms=an.arms)
    vv = draw_arm_motion(arm_stream(patient.seed, visit), pv, vv, visit, arms=an.arms)
    ph = patient.phantom_at(vv)
    lesions, benign = patient.lesions, patient.benign
    if ph is not patient.phantom:  # the arms moved: their findings move with the bone
        lesions, benign = follow_arms(lesions, patient.phantom, ph), follow_arms(benign, patient.phantom, ph)
    clinic = pv.clinic
    if vv.fwhm_mm is not None:
        fwhm_mm = vv.fwhm_mm
    H, W = patient.matrix
    sr, sc = ph.spacing
    area = sr * sc / 2.3**2
    sigma = fwhm_mm / 2.3548 / (0.5 * (sr + sc))

    # normal body: skeleton + soft tissue (slab of thickness T seen through itself) + kidneys
    tissue_gain = (
        0.019 * float(rng.uniform(0.75, 1.3)) * vv.tissue_gain
    )  # soft-tissue retention varies (renal function)
    T = ph.tissue_cm
    soft = tissue_gain * (1.0 - np.exp(-MU_PER_CM * T)) / MU_PER_CM
    pattern_rng = np.random.default_rng(vv.pattern_seed)
    if clinic and vv.texture_sd > 0:  # organs, muscle and fat do not take up the tracer alike
        tex = gaussian_filter(pattern_rng.standard_normal((H, W)).astype(np.float32), vv.texture_mm / 2.3548 / sr)
        tex /= float(tex.std()) or 1.0
        soft = soft * np.exp(vv.texture_sd * tex - 0.5 * vv.texture_sd**2)
    bone_a, bone_p, organ_a, organ_p = ph.act_ant, ph.act_post, ph.organ_act_ant, ph.organ_act_post
    involved = None
    if pv.superscan_gain > 0:  # the tracer goes to the involved marrow before the kidneys clear it
        factor, involved = bone_factor(ph, pv.superscan_gain, patient.seed)
        bone_a, bone_p = bone_a * factor, bone_p * factor
        organ_a, organ_p, soft = organ_a * KIDNEY_SHARE, organ_p * KIDNEY_SHARE, soft * SOFT_TISSUE_SHARE
    ant = bone_a + soft + organ_a
    post = bone_p + soft + organ_p
    total = float(rng.uniform(0.85e6, 1.9e6))
    bl_frac = an.bladder_fraction * float(rng.uniform(0.7, 1.3)) * (BLADDER_SHARE if involved is not None else 1.0)
    count_scale = 1.0
    if clinic and vv.total_counts is not None:
        total = vv.total_counts
        count_scale = total / NARROW_MEAN_COUNTS  # findings are stated at narrow counts
    scale = total * (1.0 - bl_frac) / float(ant.sum())
    ant = ant * scale
    post = post * scale

    # bladder: a few percent of the counts, nearer the front
    by, bx, brr, brc, bda, bdp = ph.bladder
    fill = float(rng.uniform(0.75, 1.25))
    if clinic and vv.bladder_fill is not None:
        fill = vv.bladder_fill
        by, bx = by + vv.bladder_offset_mm[0] / sr, bx + vv.bladder_offset_mm[1] / sc
        brr, brc = brr * math.sqrt(vv.bladder_aspect), brc / math.sqrt(vv.bladder_aspect)
    rr = (np.arange(H, dtype=np.float32)[:, None] - by) / (brr * fill)
    cc = (np.arange(W, dtype=np.float32)[None, :] - bx) / (brc * fill)
    r0, r1 = max(int(by - 3 * brr), 0), min(int(by + 3 * brr) + 1, H)
    bl = np.zeros((H, W), np.float32)
    bl[r0:r1] = np.clip(1.3 - np.sqrt(rr[r0:r1] ** 2 + cc**2), 0, 0.3)
    bl /= bl.sum() or 1.0
    ant += bl * (bl_frac * total)
    post += bl * (bl_frac * total) * math.exp(-MU_PER_CM * (bdp - bda))

    # metastases present at this visit, and benign skeletal findings
    lesion_map = np.zeros((H, W), np.uint8)
    benign_map = np.zeros((H, W), np.uint8)
    truth_les: list[dict[str, Any]] = []
    truth_ben: list[dict[str, Any]] = []
    masks: list[tuple[Finding, np.ndarray, tuple[int, int]]] = []

    def paint(f: Finding, peaks: tuple[float, float], target: np.ndarray, num: int) -> int:
        if f.size_gain and visit < len(f.size_gain) and f.size_gain[visit] != 1.0:
            f = replace(f, size_mm=f.size_mm * f.size_gain[visit])
        got = finding_field(f, ph.spacing, (H, W))
        if got is None:
            return 0
        fld, (a, c) = got
        h, w = fld.shape
        if f.bone is not None:  # a bone lesion lives in its bone (edge softened by one pixel)
            on = ph.bone_map[a : a + h, c : c + w] == BONE_IDS[f.bone]
            fld = fld * (0.35 + 0.65 * on) * binary_dilation(on)
        if f.cold:  # the tumour replaces bone: up to three quarters of the uptake is missing
            deficit = 1.0 - 0.75 * fld / (float(fld.max()) or 1.0)
            ant[a : a + h, c : c + w] *= deficit
            post[a : a + h, c : c + w] *= deficit
        else:
            fld = fld / blurred_peak(fld, sigma)
            if clinic:
                peaks = (peaks[0] * count_scale, peaks[1] * count_scale)
            ant[a : a + h, c : c + w] += peaks[0] * fld
            post[a : a + h, c : c + w] += peaks[1] * fld
        m = finding_mask(f, fld, (a, c), ph.bone_map)
        view = target[a : a + h, c : c + w]
        view[m & (view == 0)] = num
        masks.append((f, m, (a, c)))
        return int(m.sum())

    for f in lesions:
        if f.first_visit > visit or (f.visit_gain and f.visit_gain[visit] <= 0):
            continue
        peaks = f.view_peaks(visit)
        n = paint(f, peaks, lesion_map, int(f.id[1:]))
        rec = _truth_record(f, visit, (0.0, 0.0) if f.cold else peaks, n, 0.5 * (sr + sc))
        if f.cold:
            rec["cold"], rec["uptake"] = True, 0.0
        if f.size_gain:
            rec["size_mm"] = round(f.size_mm * f.size_gain[visit], 2)
            rec["radius_px"] = round(f.size_mm * f.size_gain[visit] / (0.5 * (sr + sc)), 2)
        truth_les.append(rec)
    superscan = None
    if involved is not None:  # diffuse marrow: in the label map (true BSI), not a focal lesion
        lesion_map[involved & (lesion_map == 0)] = DIFFUSE_ID
        superscan = {"gain": round(pv.superscan_gain, 3), "label_id": DIFFUSE_ID}

    extra: list[Finding] = [f for f in benign if f.first_visit <= visit]
    # injection site: antecubital fossa mostly, else wrist or back of the hand; new each visit
    site = str(rng.choice(["elbow", "elbow", "elbow", "wrist", "hand"]))
    side = str(rng.choice(["R", "L"]))
    jitter = rng.normal(0, 4.0 / sr, 2)
    size_mm = float(rng.uniform(4, 9))
    uptake = float(rng.lognormal(math.log(600), 0.6)) * area
    shape_seed = int(rng.integers(2**31))
    if clinic:
        site, side, uptake = clinic_injection(vv, an, ph, side, area, H)
    if site != "absent":
        ir, ic = ph.landmarks[f"{site}_{side}"]
        extra.append(
            Finding(
                id=f"B{len(patient.benign) + 1:02d}",
                kind="benign",
                shape="injection_site",
                bone=None,
                region="lower_limbs" if site == "foot" else "upper_limbs",
                center_rc=(float(ir + jitter[0]), float(ic + jitter[1])),
                size_mm=size_mm,
                angle=0.0,
                uptake=uptake,
                depth_ant_cm=1.5,
                depth_post_cm=5.5,
                shape_seed=shape_seed,
            )
        )
    if rng.random() < 0.12:  # urine on skin or clothing near the pelvis / upper thighs
        pr, pc = ph.landmarks["bladder"]
        front = rng.random() < 0.6
        extra.append(
            Finding(
                id=f"B{_next_number(patient.benign, extra):02d}",
                kind="benign",
                shape="urine_contamination",
                bone=None,
                region="pelvis",
                center_rc=(float(pr + rng.uniform(10, 120) / sr), float(pc + rng.normal(0, 45) / sc)),
                size_mm=float(rng.uniform(4, 12)),
                angle=0.0,
                uptake=float(rng.lognormal(math.log(150), 0.6)) * area,
                depth_ant_cm=0.5 if front else 18.0,
                depth_post_cm=18.0 if front else 0.5,
                shape_seed=int(rng.integers(2**31)),
            )
        )
    if clinic and vv.urine_bag:
        extra += urine_bag(rng, ph, _next_number(patient.benign, extra), area)
    for f in extra:
        peaks = f.view_peaks(0)
        n = paint(f, peaks, benign_map, int(f.id[1:]))
        truth_ben.append(_truth_record(f, 0, peaks, n, 0.5 * (sr + sc)))

    bone_map, body_map = ph.bone_map, ph.body_mask
    depth_a = depth_p = None
    if clinic:  # where no bone or organ holds the activity, it is soft tissue: half the thickness deep
        half = 0.5 * ph.tissue_cm
        depth_a = np.where(np.isnan(ph.depth_ant_map), half, ph.depth_ant_map)
        depth_p = np.where(np.isnan(ph.depth_post_map), half, ph.depth_post_map)
    if clinic and visit > 0:  # the patient lies elsewhere on the bed at this visit
        mr_, mc_ = round(vv.motion_mm[0] / sr), round(vv.motion_mm[1] / sc)
        ant, post, lesion_map, benign_map, bone_map, body_map, depth_a, depth_p = (
            translate(x, mr_, mc_) for x in (ant, post, lesion_map, benign_map, bone_map, body_map, depth_a, depth_p)
        )
        masks = [(f, m, (corner[0] + mr_, corner[1] + mc_)) for f, m, corner in masks]
        for rec in truth_les + truth_ben:
            rec["center_rc"] = [round(rec["center_rc"][0] + mr_, 2), round(rec["center_rc"][1] + mc_, 2)]
        # a finding moved wholly out of the field is not in this study
        gone = {f.id for f, m, corner in masks if not _pixels_in_field(m, corner, (H, W))}
        truth_les = [r for r in truth_les if r["id"] not in gone]
        truth_ben = [r for r in truth_ben if r["id"] not in gone]
        masks = [(f, m, corner) for f, m, corner in masks if f.id not in gone]
    cut_row = sweep_end_row(vv, ph, H, sr) if clinic else None

    # camera blur (and scatter), Poisson, background; the posterior view is mirrored and shifted
    bg = (vv.background if clinic and vv.background is not None else BACKGROUND) * area
    if clinic:
        ant = camera_blur(ant, depth_a, vv, 0.5 * (sr + sc))
        post = camera_blur(post, depth_p, vv, 0.5 * (sr + sc))[:, ::-1]
    else:
        ant = gaussian_filter(ant, sigma, mode="constant")
        post = gaussian_filter(post, sigma, mode="constant")[:, ::-1]
    # sweep misalignment of up to ~14 mm along and ~9 mm across the bed (+-6 / +-4 px at 2.3 mm)
    mr, mc = max(1, round(14.0 / sr)), max(1, round(9.0 / sc))
    dr, dc = int(rng.integers(-mr, mr + 1)), int(rng.integers(-mc, mc + 1))
    shifted = np.zeros_like(post)
    shifted[max(dr, 0) : H + min(dr, 0), max(dc, 0) : W + min(dc, 0)] = post[
        max(-dr, 0) : H + min(-dr, 0), max(-dc, 0) : W + min(-dc, 0)
    ]
    if clinic and vv.uniformity_sd > 0:  # each head's own column-to-column sensitivity
        for img in (ant, shifted):
            img *= np.clip(1.0 + vv.uniformity_sd * pattern_rng.standard_normal(W), 0.5, 1.5).astype(img.dtype)[None, :]
    a_img = _poisson_image(rng, ant, bg)
    p_img = _poisson_image(rng, shifted, bg)
    if cut_row is not None:  # the sweep ended early: nothing was acquired below (Poisson stays last)
        a_img[cut_row:] = 0
        p_img[cut_row:] = 0
        lesion_map, benign_map, bone_map, body_map = (x.copy() for x in (lesion_map, benign_map, bone_map, body_map))
        for x in (lesion_map, benign_map, bone_map, body_map):
            x[cut_row:] = 0
        gone = {r["id"] for r in truth_les + truth_ben if r["center_rc"][0] >= cut_row}
        truth_les = [r for r in truth_les if r["id"] not in gone]
        truth_ben = [r for r in truth_ben if r["id"] not in gone]
        masks = [(f, m, corner) for f, m, corner in masks if f.id not in gone]

    # annotations: every finding on both views, in each view's stored coordinates
    shapes: list[Shape] = []
    for f, m, corner in masks:
        poly = _polygon(m, corner)
        label = f"lesion:{f.shape}:{f.region}" if f.kind == "lesion" else f"benign:{f.shape}:{f.region}"
        attrs = {"kind": f.kind, "shape": f.shape, "region": f.region, "bone": f.bone, "id": f.id}
        post_poly = np.stack([W - 1 - poly[:, 0] + dc, poly[:, 1] + dr], axis=1)
        if clinic:  # a finding moved or cut at the field's edge keeps its outline inside the image
            poly = np.stack([np.clip(poly[:, 0], 0, W - 1), np.clip(poly[:, 1], 0, H - 1)], axis=1)
            post_poly = np.stack([np.clip(post_poly[:, 0], 0, W - 1), np.clip(post_poly[:, 1], 0, H - 1)], axis=1)
        for view, pts in (("ANT", poly), ("POST", post_poly)):
            if patient.missing_view == view or (clinic and _area(pts) < 0.5):  # a sliver at the edge
                continue
            shapes.append(
                Shape(label=label, points=np.round(pts, 2), shape_type="polygon", view=view, attributes=dict(attrs))
            )

    counts = {"ANT": int(a_img.sum(dtype=np.int64)), "POST": int(p_img.sum(dtype=np.int64))}
    # true BSI: per bone, lesion pixels / bone pixels (ANT projection maps), weighted by mass share
    involved: dict[str, float] = {}
    bsi = 0.0
    bone_counts = np.bincount(bone_map.ravel(), minlength=len(BONES) + 1)
    les_counts = np.bincount(bone_map[lesion_map > 0], minlength=len(BONES) + 1)
    for b in BONES:
        i = BONE_IDS[b]
        frac = float(les_counts[i]) / float(bone_counts[i]) if bone_counts[i] else 0.0
        involved[b] = round(frac, 5)
        bsi += frac * BONE_MASS_FRACTION[b]
    anterior = None if patient.missing_view == "ANT" else a_img
    posterior = None if patient.missing_view == "POST" else p_img
    return SynthStudy(
        anterior=anterior,
        posterior=posterior,
        shapes=shapes,
        lesions=truth_les,
        benign=truth_ben,
        bone_maps=bone_map,
        lesion_maps=lesion_map,
        benign_maps=benign_map,
        body_map=body_map,
        true_bsi=round(100.0 * bsi, 4),
        involved_fraction=involved,
        shift_rc=(dr, dc),
        visit=visit,
        study_date=patient.visit_dates[visit],
        counts=counts,
        variety=vv,
        families=families(pv, vv, counts=counts["ANT"], cut=cut_row is not None or (an.top_mm < 0 and clinic)),
        cut_row=cut_row,
        superscan=None if superscan is None else {**superscan, "pixels": int((lesion_map == DIFFUSE_ID).sum())},
    )
