"""A whole-body skeleton phantom with depth, drawn as projected activity for ANT and POST.

Every structure is a primitive (thick polyline, ellipse, ring or convex polygon) placed in
patient millimetres: ``x`` across the body (the patient's right at negative ``x``, i.e. on
the viewer's left in the anterior view), ``y`` down from the vertex. Each primitive carries
an activity per unit area and its depth from the front and from the back (cm), so its
contribution to the anterior view is ``activity * exp(-mu * depth_ant)`` and to the
posterior view ``activity * exp(-mu * depth_post)``. Both accumulations are kept in the
anterior orientation; :mod:`scintilab.synth.scan` mirrors and shifts the posterior view.

The phantom also fills label maps: which bone group (:data:`scintilab.anatomy.BONES`) owns
each pixel (first drawn wins, so order is priority), which primitive drew it (its local
direction and depth place lesions), and the soft-tissue thickness (the body outline).

Drawing is vectorised per primitive over its bounding box only, so a 1024 x 256 phantom
costs a few hundred small NumPy operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from scintilab.anatomy import BONES

#: Linear attenuation coefficient of soft tissue at 140 keV (per cm).
MU_PER_CM: float = 0.13
#: The paper's matrix (rows, columns) and pixel size (mm).
PAPER_MATRIX: tuple[int, int] = (1024, 256)
PAPER_SPACING_MM: float = 2.3
#: Bone group name -> id in the bone label map (0 = no bone).
BONE_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(BONES)}


def spacing_for(matrix: tuple[int, int]) -> tuple[float, float]:
    """Pixel spacing (row, column) in mm for a matrix covering the paper's field of view.

    A smaller matrix covers the same 2355 x 589 mm field with larger pixels, so the
    anatomy keeps its size in mm at every matrix.
    """
    rows, cols = matrix
    return (PAPER_SPACING_MM * PAPER_MATRIX[0] / rows, PAPER_SPACING_MM * PAPER_MATRIX[1] / cols)


@dataclass
class Anatomy:
    """Body habitus of one synthetic patient (no pixels).

    Attributes:
        sex: ``"M"`` or ``"F"``.
        age: years.
        height_mm: standing height, 1500-1900 mm.
        width: lateral scale factor (1 = average build).
        thickness_cm: antero-posterior thickness per level: head, neck, chest, abdomen,
            pelvis, thigh, calf (the depths of bones follow from these).
        top_mm: distance of the vertex below the top of the field of view.
        shift_x_mm: lateral offset of the midline from the image centre.
        rotation_deg: small in-plane rotation of the whole body about the pelvis.
        arm_abduction_deg: humerus angle from vertical, (right, left).
        forearm_deg: forearm angle from vertical (positive = hand away from the body).
        scoliosis_mm: lateral amplitude of a gentle spinal curve.
        bone_gain: per-bone-group uptake factor (individual variation).
        kidney_gain: kidney visibility (0.5-1.5).
        bladder_fraction: share of the anterior counts in the bladder.
        soft_width: lateral factor of the soft tissue alone (habitus: thin < 1 < obese);
            the skeleton keeps its size.
        arms: pose of each arm (right, left): ``sides``, ``abdomen``, ``raised`` or
            ``missing`` (amputated: no bone and no soft tissue drawn).
        breast_cm: extra soft-tissue thickness of the breasts over the chest (0 = none).
        head_tilt_deg: in-plane tilt of the head and upper neck towards a shoulder, about
            the mid-neck (positive tilts the vertex towards the image's right).
    """

    sex: str
    age: int
    height_mm: float
    width: float
    thickness_cm: dict[str, float]
    top_mm: float
    shift_x_mm: float
    rotation_deg: float
    arm_abduction_deg: tuple[float, float]
    forearm_deg: tuple[float, float]
    scoliosis_mm: float
    bone_gain: dict[str, float] = field(default_factory=dict)
    kidney_gain: float = 1.0
    bladder_fraction: float = 0.03
    soft_width: float = 1.0
    arms: tuple[str, str] = ("sides", "sides")
    breast_cm: float = 0.0
    head_tilt_deg: float = 0.0


def random_anatomy(rng: np.random.Generator, *, sex: str, age: int) -> Anatomy:
    """Draw a plausible body habitus for a patient of the given sex and age."""
    if sex == "M":
        height = float(np.clip(rng.normal(1700, 60), 1550, 1900))
        width = float(np.clip(rng.normal(1.0, 0.06), 0.86, 1.15))
    else:
        height = float(np.clip(rng.normal(1590, 55), 1500, 1780))
        width = float(np.clip(rng.normal(0.92, 0.05), 0.8, 1.05))
    build = float(np.clip(rng.normal(1.0, 0.1), 0.8, 1.25))  # thin .. heavy
    thickness = {
        "head": 18.0 * float(rng.uniform(0.95, 1.05)),
        "neck": 12.0 * build,
        "chest": 22.5 * build,
        "abdomen": 22.0 * build * float(rng.uniform(0.92, 1.12)),
        "pelvis": 21.0 * build,
        "thigh": 15.0 * build,
        "calf": 10.5 * build,
    }
    abd = rng.uniform(4, 16, size=2)
    fore = rng.uniform(-8, 6, size=2)
    gains = {b: float(rng.lognormal(0.0, 0.08)) for b in BONES}
    return Anatomy(
        sex=sex,
        age=int(age),
        height_mm=height,
        width=width,
        thickness_cm=thickness,
        top_mm=float(rng.uniform(25, 90)),
        shift_x_mm=float(rng.normal(0, 8)),
        rotation_deg=float(rng.normal(0, 1.0)),
        arm_abduction_deg=(float(abd[0]), float(abd[1])),
        forearm_deg=(float(fore[0]), float(fore[1])),
        scoliosis_mm=float(rng.normal(0, 4 + 0.08 * max(age - 50, 0))),
        bone_gain=gains,
        kidney_gain=float(rng.uniform(0.5, 1.4)),
        bladder_fraction=float(rng.uniform(0.015, 0.05)),
    )


@dataclass
class PrimInfo:
    """What a drawn primitive tells a lesion placed on it."""

    bone: str | None
    angle: float  # direction of the structure's long axis in image pixels (rad, atan2(dr, dc))
    depth_ant_cm: float
    depth_post_cm: float


@dataclass
class Phantom:
    """A rendered normal phantom: unattenuated-then-attenuated activity per view.

    Attributes:
        act_ant: activity reaching the anterior camera, ANT orientation (float32).
        act_post: activity reaching the posterior camera, ANT orientation (float32).
        bone_map: uint8 bone-group id per pixel (:data:`BONE_IDS`, 0 = none).
        prim_map: int16 index into :attr:`prims` of the primitive owning the pixel (-1 none).
        tissue_cm: soft-tissue thickness per pixel (cm); > 0 inside the body.
        organ_act_ant / organ_act_post: kidney activity per view (bladder is added later).
        bladder: (row, col, radius_r_px, radius_c_px, depth_ant_cm, depth_post_cm).
        prims: primitive descriptions.
        landmarks: named points in pixels (row, col), e.g. injection sites, knees.
        spacing: (row, col) mm per pixel.
        depth_ant_map / depth_post_map: activity-weighted mean depth (cm) from the front /
            the back of what each pixel holds (NaN where no bone or organ), for the
            depth-dependent camera blur of the clinic variety.
    """

    act_ant: np.ndarray
    act_post: np.ndarray
    bone_map: np.ndarray
    prim_map: np.ndarray
    tissue_cm: np.ndarray
    organ_act_ant: np.ndarray
    organ_act_post: np.ndarray
    bladder: tuple[float, float, float, float, float, float]
    prims: list[PrimInfo]
    landmarks: dict[str, tuple[float, float]]
    spacing: tuple[float, float]
    depth_ant_map: np.ndarray | None = None
    depth_post_map: np.ndarray | None = None

    @property
    def body_mask(self) -> np.ndarray:
        """True inside the body outline."""
        return self.tissue_cm > 0.5


class Canvas:
    """Accumulates projected activity and label maps; converts patient mm to pixels."""

    def __init__(self, matrix: tuple[int, int], an: Anatomy, spacing: tuple[float, float] | None = None) -> None:
        self.rows, self.cols = matrix
        self.sr, self.sc = spacing_for(matrix) if spacing is None else spacing
        self.px_mm = 0.5 * (self.sr + self.sc)
        self.act_a = np.zeros(matrix, np.float32)
        self.act_p = np.zeros(matrix, np.float32)
        self.org_a = np.zeros(matrix, np.float32)
        self.org_p = np.zeros(matrix, np.float32)
        # activity-weighted depth sums, kept apart so the activity itself is summed as before
        self.wd_a = np.zeros(matrix, np.float32)
        self.wd_p = np.zeros(matrix, np.float32)
        self.w_a = np.zeros(matrix, np.float32)
        self.w_p = np.zeros(matrix, np.float32)
        self.bone = np.zeros(matrix, np.uint8)
        self.prim = np.full(matrix, -1, np.int16)
        self.tissue = np.zeros(matrix, np.float32)
        self.prims: list[PrimInfo] = []
        th = math.radians(an.rotation_deg)
        self._cos, self._sin = math.cos(th), math.sin(th)
        self._pivot_y = 0.52 * an.height_mm  # rotate about the pelvis: the bed holds it
        self._top = an.top_mm
        self._cx = (self.cols - 1) / 2.0 + an.shift_x_mm / self.sc
        self.rot = th
        # a tilt of one body part (the head) about its own pivot, before the whole-body pose
        self._part: tuple[float, float, float, float] | None = None

    def tilt_part(self, deg: float, pivot_mm: tuple[float, float]) -> None:
        """Draw what follows rotated by ``deg`` about ``pivot_mm`` (0: stop tilting)."""
        t = math.radians(deg)
        self._part = (math.cos(t), math.sin(t), *pivot_mm) if deg else None

    # -- geometry -------------------------------------------------------------------
    def to_px(self, x: float, y: float) -> tuple[float, float]:
        """Patient mm (x across, y down from vertex) -> pixel (row, col)."""
        if self._part is not None:
            c, s_, px, py = self._part
            x, y = px + c * (x - px) - s_ * (y - py), py + s_ * (x - px) + c * (y - py)
        dy = y - self._pivot_y
        xr = self._cos * x - self._sin * dy
        yr = self._sin * x + self._cos * dy + self._pivot_y
        return (self._top + yr) / self.sr, self._cx + xr / self.sc

    def _bbox(self, r0: float, r1: float, c0: float, c1: float, pad: float):
        a = max(int(math.floor(r0 - pad)), 0)
        b = min(int(math.ceil(r1 + pad)) + 1, self.rows)
        c = max(int(math.floor(c0 - pad)), 0)
        d = min(int(math.ceil(c1 + pad)) + 1, self.cols)
        if a >= b or c >= d:
            return None
        return a, b, c, d

    def _emit(
        self,
        box,
        cov: np.ndarray,
        bone: str | None,
        act: float,
        d_a: float,
        d_p: float,
        angle: float,
        *,
        organ: bool = False,
    ) -> None:
        a, b, c, d = box
        wa = act * math.exp(-MU_PER_CM * d_a)
        wp = act * math.exp(-MU_PER_CM * d_p)
        self._depths(box, wa * cov, wp * cov, d_a, d_p)
        if organ:
            self.org_a[a:b, c:d] += wa * cov
            self.org_p[a:b, c:d] += wp * cov
            return
        self.act_a[a:b, c:d] += wa * cov
        self.act_p[a:b, c:d] += wp * cov
        if bone is not None:
            idx = len(self.prims)
            self.prims.append(PrimInfo(bone, angle, d_a, d_p))
            bm = self.bone[a:b, c:d]
            sel = (cov >= 0.45) & (bm == 0)
            bm[sel] = BONE_IDS[bone]
            self.prim[a:b, c:d][sel] = idx

    def _depths(self, box, wa, wp, da, dp) -> None:
        a, b, c, d = box
        self.wd_a[a:b, c:d] += wa * da
        self.w_a[a:b, c:d] += wa
        self.wd_p[a:b, c:d] += wp * dp
        self.w_p[a:b, c:d] += wp

    def depth_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """Activity-weighted mean depth per pixel from the front and from the back (NaN: none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (
                np.where(self.w_a > 0, self.wd_a / self.w_a, np.nan).astype(np.float32),
                np.where(self.w_p > 0, self.wd_p / self.w_p, np.nan).astype(np.float32),
            )

    # -- primitives -----------------------------------------------------------------
    def line(
        self,
        pts_mm: list[tuple[float, float]],
        width_mm: float,
        bone: str | None,
        act: float,
        depths: list[tuple[float, float]] | tuple[float, float],
        *,
        tissue: float | None = None,
        tube: bool = True,
    ) -> None:
        """A thick polyline (depth may change along it).

        Args:
            pts_mm: (x, y) vertices in patient mm.
            width_mm: full width.
            bone: bone group, or None for soft tissue.
            act: activity per unit area (before attenuation).
            depths: one (depth_ant, depth_post) in cm, or one per vertex.
            tissue: if given, max-accumulate this soft-tissue thickness (cm) instead.
            tube: shade across the width like a cylinder (bones), else flat.
        """
        P = np.array([self.to_px(x, y) for x, y in pts_mm], np.float32)
        hw = 0.5 * width_mm / self.px_mm
        box = self._bbox(P[:, 0].min(), P[:, 0].max(), P[:, 1].min(), P[:, 1].max(), hw + 1.5)
        if box is None:
            return
        # distance to the nearest segment (all segments at once), so joints are not drawn twice
        rr = np.arange(box[0], box[1], dtype=np.float32)[None, :, None]
        cc = np.arange(box[2], box[3], dtype=np.float32)[None, None, :]
        r0, c0 = P[:-1, 0, None, None], P[:-1, 1, None, None]
        dr, dc = (P[1:, 0] - P[:-1, 0])[:, None, None], (P[1:, 1] - P[:-1, 1])[:, None, None]
        L2 = np.maximum(dr * dr + dc * dc, 1e-6)
        t = np.clip(((rr - r0) * dr + (cc - c0) * dc) / L2, 0.0, 1.0)
        d2 = (rr - (r0 + t * dr)) ** 2 + (cc - (c0 + t * dc)) ** 2
        k = np.argmin(d2, axis=0)
        dist = np.sqrt(np.take_along_axis(d2, k[None], axis=0)[0])
        cov = np.clip(hw + 0.5 - dist, 0.0, 1.0)
        if tissue is not None:
            view = self.tissue[box[0] : box[1], box[2] : box[3]]
            np.maximum(view, tissue * cov, out=view)
            return
        if tube:  # thicker through the middle of a cylinder than at its edges
            cov = cov * (0.55 + 0.45 * np.sqrt(np.clip(1.0 - (dist / (hw + 0.5)) ** 2, 0.0, 1.0)))
        if isinstance(depths, list):  # depth interpolated along the polyline
            D = np.asarray(depths, np.float32)
            tk = np.take_along_axis(t, k[None], axis=0)[0]
            da = D[k, 0] + tk * (D[k + 1, 0] - D[k, 0])
            dp = D[k, 1] + tk * (D[k + 1, 1] - D[k, 1])
            seg_depth = 0.5 * (D[:-1] + D[1:])
        else:
            da, dp = depths  # type: ignore[misc]
            seg_depth = np.tile(np.asarray(depths, np.float32), (len(P) - 1, 1))
        angles = np.arctan2(dr[:, 0, 0], dc[:, 0, 0])
        a, b, c, d = box
        self.act_a[a:b, c:d] += act * np.exp(-MU_PER_CM * da) * cov
        self.act_p[a:b, c:d] += act * np.exp(-MU_PER_CM * dp) * cov
        self._depths(box, act * np.exp(-MU_PER_CM * da) * cov, act * np.exp(-MU_PER_CM * dp) * cov, da, dp)
        if bone is not None:
            base = len(self.prims)
            for i in range(len(P) - 1):
                self.prims.append(PrimInfo(bone, float(angles[i]), float(seg_depth[i, 0]), float(seg_depth[i, 1])))
            bm = self.bone[a:b, c:d]
            sel = (cov >= 0.45) & (bm == 0)
            bm[sel] = BONE_IDS[bone]
            self.prim[a:b, c:d][sel] = (base + k[sel]).astype(np.int16)

    def ellipse(
        self,
        x: float,
        y: float,
        ax_mm: float,
        ay_mm: float,
        bone: str | None,
        act: float,
        depths: tuple[float, float],
        *,
        angle_deg: float = 0.0,
        ring_mm: float | None = None,
        tissue: float | None = None,
        organ: bool = False,
    ) -> None:
        """A filled (or ring-shaped) ellipse with soft edges.

        Args:
            x, y: centre in patient mm.
            ax_mm, ay_mm: semi-axes across and along the body.
            bone, act, depths: as for :meth:`line`.
            angle_deg: extra rotation of the ellipse.
            ring_mm: if given, draw only a rim this thick (skull calvarium).
            tissue: max-accumulate soft-tissue thickness instead of activity.
            organ: accumulate into the organ maps (kidneys).
        """
        r0, c0 = self.to_px(x, y)
        th = self.rot + math.radians(angle_deg) + (math.atan2(self._part[1], self._part[0]) if self._part else 0.0)
        a = ax_mm / self.sc  # along columns before rotation
        b = ay_mm / self.sr
        ext = max(a, b)
        box = self._bbox(r0, r0, c0, c0, ext + 2)
        if box is None:
            return
        rr = np.arange(box[0], box[1], dtype=np.float32)[:, None] - r0
        cc = np.arange(box[2], box[3], dtype=np.float32)[None, :] - c0
        u = cc * math.cos(th) + rr * math.sin(th)
        v = -cc * math.sin(th) + rr * math.cos(th)
        q = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        cov = np.clip((1.0 - q) * min(a, b) + 0.5, 0.0, 1.0)
        if ring_mm is not None:
            t = ring_mm / self.px_mm
            qi = np.sqrt((u / max(a - t, 0.5)) ** 2 + (v / max(b - t, 0.5)) ** 2)
            inner = np.clip((1.0 - qi) * max(min(a, b) - t, 0.5) + 0.5, 0.0, 1.0)
            cov = np.clip(cov - inner, 0.0, 1.0)
        if tissue is not None:
            view = self.tissue[box[0] : box[1], box[2] : box[3]]
            np.maximum(view, tissue * cov, out=view)
            return
        self._emit(box, cov, bone, act, depths[0], depths[1], th + math.pi / 2 if b > a else th, organ=organ)

    def polygon(
        self,
        pts_mm: list[tuple[float, float]],
        bone: str | None,
        act: float,
        depths: tuple[float, float],
        *,
        tissue: float | None = None,
    ) -> None:
        """A filled convex polygon (vertices in either winding) with soft edges."""
        px = np.array([self.to_px(x, y) for x, y in pts_mm], np.float64)
        box = self._bbox(px[:, 0].min(), px[:, 0].max(), px[:, 1].min(), px[:, 1].max(), 2)
        if box is None:
            return
        rr = np.arange(box[0], box[1], dtype=np.float32)[:, None]
        cc = np.arange(box[2], box[3], dtype=np.float32)[None, :]
        centre = px.mean(axis=0)
        dmax = None
        n = len(px)
        for i in range(n):
            p, q = px[i], px[(i + 1) % n]
            er, ec = q[0] - p[0], q[1] - p[1]
            nr, nc = ec, -er  # a normal; orient it away from the centre
            norm = math.hypot(nr, nc) or 1e-6
            nr, nc = nr / norm, nc / norm
            if (centre[0] - p[0]) * nr + (centre[1] - p[1]) * nc > 0:
                nr, nc = -nr, -nc
            d = (rr - p[0]) * nr + (cc - p[1]) * nc
            dmax = d if dmax is None else np.maximum(dmax, d)
        cov = np.clip(0.5 - dmax, 0.0, 1.0)
        if tissue is not None:
            view = self.tissue[box[0] : box[1], box[2] : box[3]]
            np.maximum(view, tissue * cov, out=view)
            return
        span = px.max(axis=0) - px.min(axis=0)
        self._emit(box, cov, bone, act, depths[0], depths[1], math.pi / 2 if span[0] > span[1] else 0.0)


def _mirror(pts: list[tuple[float, float]], side: int) -> list[tuple[float, float]]:
    return [(side * x, y) for x, y in pts]


def render_phantom(
    an: Anatomy, matrix: tuple[int, int] = PAPER_MATRIX, spacing: tuple[float, float] | None = None
) -> Phantom:
    """Draw the normal skeleton, kidneys and soft tissue of one patient.

    Activities are relative (arbitrary units); :mod:`scintilab.synth.scan` scales them to
    counts. Depths (cm) follow the body thickness at each level: e.g. thoracic vertebrae
    lie 6 cm from the back of a 22.5 cm chest, the sternum 1.5 cm from the front.

    Args:
        an: the patient's habitus.
        matrix: (rows, columns) of the image.
        spacing: (row, column) mm per pixel; None keeps the paper's field of view
            (:func:`spacing_for`).

    Returns:
        The :class:`Phantom`.
    """
    cv = Canvas(matrix, an, spacing)
    fw = an.soft_width
    s = an.height_mm / 1700.0  # lengths scale with height
    w = an.width  # widths scale with build
    T = an.thickness_cm
    g = an.bone_gain

    def mid(t: float) -> tuple[float, float]:
        return (t / 2, t / 2)

    def Y(v: float) -> float:
        return v * s

    # -- spine (drawn first: it wins overlaps with ribs in the bone map) ------------
    def spine_x(y: float) -> float:
        return an.scoliosis_mm * math.sin(math.pi * (y - Y(300)) / Y(520)) if Y(300) < y < Y(820) else 0.0

    vert_levels: dict[str, float] = {}
    # a tilted head bends the neck: each cervical vertebra turns by its share of the tilt
    # about the base of the neck, the skull and face by all of it
    neck_base = (0.0, Y(288))
    tilted_px: dict[str, tuple[float, float]] = {}
    for i, y in enumerate(np.linspace(Y(212), Y(288), 7)):
        cv.tilt_part(an.head_tilt_deg * (6 - i) / 6, neck_base)
        cv.ellipse(spine_x(y), y, 13 * w, 5.5 * s, "cervical_spine", 1.15 * g["cervical_spine"], (T["neck"] - 5.0, 5.0))
        vert_levels[f"C{i + 1}"] = y
        tilted_px[f"C{i + 1}"] = cv.to_px(spine_x(y), y)
    cv.tilt_part(0.0, neck_base)
    ty = np.linspace(Y(300), Y(640), 12)
    for i, y in enumerate(ty):
        ax = (15 + 0.6 * i) * w
        cv.ellipse(
            spine_x(y),
            y,
            ax,
            (10.5 + 0.3 * i) * s,
            "thoracic_spine",
            1.25 * g["thoracic_spine"],
            (T["chest"] - 6.0, 6.0),
        )
        vert_levels[f"T{i + 1}"] = y
    ly = np.linspace(Y(664), Y(808), 5)
    for i, y in enumerate(ly):
        cv.ellipse(
            spine_x(y), y, (23 + i) * w, 13.5 * s, "lumbar_spine", 1.35 * g["lumbar_spine"], (T["abdomen"] - 7.0, 7.0)
        )
        vert_levels[f"L{i + 1}"] = y
    # sacrum: an inverted triangle, brighter SI joints drawn as pelvis lines beside it
    cv.polygon(
        [(-40 * w, Y(828)), (40 * w, Y(828)), (11 * w, Y(925)), (-11 * w, Y(925))],
        "sacrum",
        1.15 * g["sacrum"],
        (T["pelvis"] - 5.0, 5.0),
    )

    # -- sternum and clavicles (front) --------------------------------------------------
    cv.ellipse(0, Y(318), 24 * w, 22 * s, "sternum", 1.1 * g["sternum"], (1.5, T["chest"] - 1.5))
    cv.line([(0, Y(340)), (0, Y(470))], 24 * w, "sternum", 0.9 * g["sternum"], (1.5, T["chest"] - 1.5))
    cv.ellipse(0, Y(482), 8 * w, 10 * s, "sternum", 0.7 * g["sternum"], (1.5, T["chest"] - 1.5))
    sh = 188 * w  # half of the bi-acromial width
    for side in (-1, 1):
        cv.line(
            _mirror([(22 * w, Y(296)), (75 * w, Y(292)), (140 * w, Y(276)), (sh - 18, Y(282))], side),
            13,
            "clavicles",
            0.9 * g["clavicles"],
            (2.0, T["chest"] - 2.0),
        )

    # -- ribs: posterior arc near the back, anterior arc near the front ---------------
    lat = [55, 84, 104, 117, 126, 131, 134, 134, 131, 124, 104, 78]
    drop_p = [14, 18, 22, 26, 29, 31, 33, 35, 37, 38, 38, 34]
    drop_a = [28, 42, 56, 66, 74, 80, 80, 76, 66, 52, 0, 0]
    x_end = [24, 30, 33, 36, 42, 50, 64, 82, 100, 116, 0, 0]
    rib_levels = []
    for k in range(12):
        y0 = ty[k]
        rib_levels.append(y0)
        xl = lat[k] * w
        pts, dep = [], []
        for th_ in np.linspace(0, math.pi / 2, 5):
            f = th_ / (math.pi / 2)
            pts.append(
                (18 * w + (xl - 18 * w) * math.sin(th_) ** 0.8, y0 - 7 * s * math.sin(2 * th_) + drop_p[k] * s * f**1.6)
            )
            dp = 3.0 + (T["chest"] / 2 - 3.0) * (1 - math.cos(th_))
            dep.append((T["chest"] - dp, dp))
        if drop_a[k] > 0:
            for th_ in np.linspace(math.pi / 2, math.pi, 6)[1:]:
                f = (th_ - math.pi / 2) / (math.pi / 2)
                pts.append(
                    (
                        x_end[k] * w + (xl - x_end[k] * w) * math.sin(th_) ** 0.6,
                        y0 + drop_p[k] * s + drop_a[k] * s * f**1.25,
                    )
                )
                da = 2.0 + (T["chest"] / 2 - 2.0) * (1 + math.cos(th_))
                dep.append((da, T["chest"] - da))
        else:  # floating ribs end laterally
            pts.append((xl * 0.93, y0 + drop_p[k] * s + 16 * s))
            dep.append((T["chest"] / 2, T["chest"] / 2))
        for side in (-1, 1):
            cv.line(_mirror(pts, side), 10, "ribs", 0.72 * g["ribs"], dep)

    # -- scapulae (back), humeri, forearms, hands ----------------------------------------
    landmarks: dict[str, tuple[float, float]] = {}
    for si, side in enumerate((-1, 1)):
        glen = (side * (sh - 38), Y(312))
        cv.ellipse(*glen, 9, 17 * s, "scapulae", 0.95 * g["scapulae"], mid(T["chest"]))
        cv.line(
            [(side * 80 * w, Y(322)), (side * (sh - 22), Y(298))],
            12,
            "scapulae",
            0.75 * g["scapulae"],
            (T["chest"] - 3.0, 3.0),
        )
        cv.line([glen, (side * 96 * w, Y(468))], 12, "scapulae", 0.6 * g["scapulae"], (T["chest"] - 3.0, 3.0))
        cv.ellipse(side * 96 * w, Y(463), 10, 11, "scapulae", 0.85 * g["scapulae"], (T["chest"] - 3.0, 3.0))
        cv.polygon(
            [(side * (sh - 45), Y(305)), (side * 74 * w, Y(305)), (side * 96 * w, Y(468))],
            "scapulae",
            0.32 * g["scapulae"],
            (T["chest"] - 3.0, 3.0),
        )
        # arm: shoulder -> elbow -> wrist -> hand; keep the hand inside the field
        head = (side * (sh - 12), Y(318))
        a = math.radians(an.arm_abduction_deg[si])
        elbow = (head[0] + side * 290 * s * math.sin(a), head[1] + 290 * s * math.cos(a))
        b = math.radians(an.forearm_deg[si])
        fl = 250 * s
        wrist = (elbow[0] + side * fl * math.sin(b), elbow[1] + fl * math.cos(b))
        limit = 0.5 * matrix[1] * cv.sc - 30 - abs(an.shift_x_mm)
        if abs(wrist[0]) > limit:  # tuck the forearm in rather than leave the field
            wrist = (side * limit, wrist[1])
        name = "R" if side < 0 else "L"
        if an.arms[si] == "missing":  # amputated: landmarks stay (at the shoulder), nothing is drawn
            for part in ("elbow", "wrist", "hand", "shoulder"):
                landmarks[f"{part}_{name}"] = cv.to_px(*head)
            continue
        cv.ellipse(*head, 24, 26 * s, "humeri", 1.0 * g["humeri"], (4.5, 4.5))
        cv.line([head, elbow], 21, "humeri", 0.55 * g["humeri"], (4.5, 4.5))
        cv.ellipse(*elbow, 27, 16, "humeri", 0.75 * g["humeri"], (4.0, 4.0))
        ux, uy = (wrist[0] - elbow[0]) / fl, (wrist[1] - elbow[1]) / fl
        for off in (-9, 9):
            cv.line(
                [(elbow[0] - uy * off, elbow[1] + ux * off), (wrist[0] - uy * off * 0.8, wrist[1] + ux * off)],
                10,
                "forearms",
                0.5 * g["forearms"],
                (3.5, 3.5),
            )
        carpus = (wrist[0] + ux * 22, wrist[1] + uy * 22)
        cv.ellipse(*carpus, 20, 17, "hands", 0.95 * g["hands"], (2.5, 2.5))
        for fdeg in (-22, -10, 0, 10, 20):
            fa = math.atan2(uy, ux) + math.radians(fdeg) * side * -1
            tip = (carpus[0] + 85 * s * math.cos(fa), carpus[1] + 85 * s * math.sin(fa))
            cv.line([carpus, tip], 7, "hands", 0.55 * g["hands"], (2.0, 2.0))
        landmarks[f"elbow_{'R' if side < 0 else 'L'}"] = cv.to_px(*elbow)
        landmarks[f"wrist_{'R' if side < 0 else 'L'}"] = cv.to_px(*wrist)
        landmarks[f"hand_{'R' if side < 0 else 'L'}"] = cv.to_px(*carpus)
        landmarks[f"shoulder_{'R' if side < 0 else 'L'}"] = cv.to_px(*head)
        # soft tissue of the arm
        cv.line([head, elbow], 95 * w * fw, None, 0, (0, 0), tissue=9.0)
        cv.line([elbow, wrist], 72 * w * fw, None, 0, (0, 0), tissue=7.5)
        cv.ellipse(carpus[0] + ux * 30, carpus[1] + uy * 30, 40, 55, None, 0, (0, 0), tissue=3.5)

    # -- skull, face, mandible -------------------------------------------------------------
    cv.tilt_part(an.head_tilt_deg, neck_base)
    cv.ellipse(0, Y(100), 74 * w, 100 * s, "skull", 1.05 * g["skull"], mid(T["head"]), ring_mm=13)
    cv.ellipse(0, Y(100), 66 * w, 90 * s, "skull", 0.22 * g["skull"], mid(T["head"]))
    cv.ellipse(0, Y(168), 40 * w, 24 * s, "skull", 0.75 * g["skull"], (3.0, T["head"] - 3.0))
    cv.ellipse(0, Y(140), 14 * w, 14 * s, "skull", 0.45 * g["skull"], (2.0, T["head"] - 2.0))
    cv.line(
        [
            (-48 * w, Y(170)),
            (-44 * w, Y(210)),
            (-20 * w, Y(230)),
            (0, Y(233)),
            (20 * w, Y(230)),
            (44 * w, Y(210)),
            (48 * w, Y(170)),
        ],
        12,
        "mandible",
        0.9 * g["mandible"],
        (3.0, T["head"] - 3.0),
    )
    cv.tilt_part(0.0, neck_base)

    # -- pelvis: iliac wings (crest brighter), SI joints, acetabula, pubis, ischium ---------
    hip = 150 * w * (1.06 if an.sex == "F" else 1.0)
    for side in (-1, 1):
        wing = [
            (40 * w, Y(842)),
            (62 * w, Y(800)),
            (105 * w, Y(782)),
            (hip - 8, Y(805)),
            (hip - 16, Y(860)),
            (92 * w, Y(905)),
            (52 * w, Y(900)),
        ]
        cv.line(
            _mirror([(44 * w, Y(835)), (30 * w, Y(895))], side),
            11,
            "pelvis",
            1.45 * g["pelvis"],
            (T["pelvis"] - 6.0, 6.0),
        )
        cv.line(
            _mirror([(62 * w, Y(800)), (105 * w, Y(782)), (hip - 8, Y(805))], side),
            13,
            "pelvis",
            0.9 * g["pelvis"],
            (T["pelvis"] - 8.0, 8.0),
        )
        cv.polygon(_mirror(wing, side), "pelvis", 0.42 * g["pelvis"], (T["pelvis"] - 8.5, 8.5))
        cv.ellipse(side * 98 * w, Y(925), 27, 27, "pelvis", 0.55 * g["pelvis"], mid(T["pelvis"]), ring_mm=11)
        cv.line(
            _mirror([(88 * w, Y(942)), (45 * w, Y(955)), (12, Y(960))], side),
            14,
            "pelvis",
            0.85 * g["pelvis"],
            (3.0, T["pelvis"] - 3.0),
        )
        cv.line(
            _mirror([(85 * w, Y(948)), (74 * w, Y(990)), (35 * w, Y(988)), (14, Y(966))], side),
            12,
            "pelvis",
            0.55 * g["pelvis"],
            mid(T["pelvis"]),
        )

    # -- legs: femora, knees, patellae, tibiae, fibulae, feet ------------------------------
    for side in (-1, 1):
        fh = (side * 98 * w, Y(925))
        gt = (side * (hip + 2), Y(960))
        knee = (side * 82 * w, Y(1238))
        ankle = (side * 74 * w, Y(1610))
        cv.ellipse(*fh, 23, 23, "femora", 1.0 * g["femora"], mid(T["pelvis"]))
        cv.line([fh, (side * (hip - 20), Y(955))], 27, "femora", 0.75 * g["femora"], mid(T["pelvis"]))
        cv.ellipse(*gt, 18, 25, "femora", 0.9 * g["femora"], mid(T["thigh"]))
        cv.line(
            [(side * (hip - 22), Y(965)), (side * 100 * w, Y(1100)), knee],
            25,
            "femora",
            0.62 * g["femora"],
            mid(T["thigh"]),
        )
        cv.ellipse(knee[0], Y(1232), 38 * w, 22 * s, "femora", 0.95 * g["femora"], mid(11.0))
        cv.ellipse(knee[0] + side * 2, Y(1222), 19, 23, "femora", 0.55 * g["femora"], (1.5, 9.5))
        cv.ellipse(knee[0], Y(1266), 37 * w, 13 * s, "tibiae_fibulae", 0.9 * g["tibiae_fibulae"], mid(11.0))
        cv.line([(knee[0], Y(1275)), ankle], 23, "tibiae_fibulae", 0.58 * g["tibiae_fibulae"], (2.5, T["calf"] - 2.5))
        cv.line(
            [(side * 112 * w, Y(1282)), (ankle[0] + side * 26, Y(1606))],
            9,
            "tibiae_fibulae",
            0.35 * g["tibiae_fibulae"],
            mid(T["calf"]),
        )
        cv.ellipse(ankle[0], Y(1618), 28, 13, "tibiae_fibulae", 0.85 * g["tibiae_fibulae"], mid(8.0))
        cv.ellipse(ankle[0] + side * 8, Y(1656), 34, 30 * s, "feet", 0.85 * g["feet"], (4.0, 5.0))
        for toe in (-18, -6, 6, 18):
            cv.line(
                [(ankle[0] + side * 8 + toe, Y(1670)), (ankle[0] + side * 8 + toe * 1.3, Y(1705))],
                8,
                "feet",
                0.5 * g["feet"],
                (3.0, 6.0),
            )
        landmarks[f"knee_{'R' if side < 0 else 'L'}"] = cv.to_px(knee[0], Y(1250))
        landmarks[f"foot_{'R' if side < 0 else 'L'}"] = cv.to_px(ankle[0] + side * 8, Y(1665))
        # soft tissue of the leg
        cv.line([(side * 95 * w, Y(940)), knee], 150 * w * fw, None, 0, (0, 0), tissue=T["thigh"])
        cv.line([knee, ankle], 100 * w * math.sqrt(fw), None, 0, (0, 0), tissue=T["calf"])
        cv.ellipse(ankle[0] + side * 8, Y(1660), 45, 50 * s, None, 0, (0, 0), tissue=8.0)

    # -- kidneys (faint, posterior) -------------------------------------------------------
    for side in (-1, 1):
        cv.ellipse(
            side * 58 * w,
            Y(640 + (10 if side < 0 else 0)),
            30 * w,
            55 * s,
            None,
            0.35 * an.kidney_gain,
            (T["abdomen"] - 6.0, 6.0),
            angle_deg=side * -12,
            organ=True,
        )

    # -- soft tissue of head, neck and trunk ----------------------------------------------
    cv.tilt_part(an.head_tilt_deg, neck_base)
    cv.ellipse(0, Y(112), 82 * w, 118 * s, None, 0, (0, 0), tissue=T["head"])
    cv.tilt_part(0.0, neck_base)
    cv.line([(0, Y(215)), (0, Y(300))], 110 * w * math.sqrt(fw), None, 0, (0, 0), tissue=T["neck"])
    chest = 160 * w * fw
    waist = 142 * w * (0.95 if an.sex == "F" else 1.0) * fw
    cv.polygon(
        [
            (-(sh - 8), Y(278)),
            (sh - 8, Y(278)),
            ((sh + 12) * fw, Y(320)),
            (chest, Y(600)),
            (-chest, Y(600)),
            (-(sh + 12) * fw, Y(320)),
        ],
        None,
        0,
        (0, 0),
        tissue=T["chest"],
    )
    cv.polygon(
        [(-chest, Y(590)), (chest, Y(590)), (waist, Y(740)), (-waist, Y(740))], None, 0, (0, 0), tissue=T["abdomen"]
    )
    if an.breast_cm > 0:  # breasts add soft tissue (counts) over the lower anterior chest
        for side in (-1, 1):
            cv.ellipse(side * 85 * w * fw, Y(470), 70 * fw, 60 * s, None, 0, (0, 0), tissue=T["chest"] + an.breast_cm)
    cv.polygon(
        [
            (-waist, Y(730)),
            (waist, Y(730)),
            ((hip + 28) * fw, Y(900)),
            ((hip + 18) * fw, Y(1000)),
            (-(hip + 18) * fw, Y(1000)),
            (-(hip + 28) * fw, Y(900)),
        ],
        None,
        0,
        (0, 0),
        tissue=T["pelvis"],
    )

    by, bx = cv.to_px(0, Y(962))
    bl_r = 28 * s / cv.sr
    bl_c = 40 * w / cv.sc
    landmarks["bladder"] = (by, bx)
    landmarks["pelvis_centre"] = cv.to_px(0, Y(900))
    depth_a, depth_p = cv.depth_maps()
    for name, y in vert_levels.items():
        landmarks[name] = tilted_px.get(name) or cv.to_px(spine_x(y), y)
    for k, y in enumerate(rib_levels):
        landmarks[f"rib{k + 1}"] = (cv.to_px(0, y)[0], 0.0)
    return Phantom(
        act_ant=cv.act_a,
        act_post=cv.act_p,
        bone_map=cv.bone,
        prim_map=cv.prim,
        tissue_cm=cv.tissue,
        organ_act_ant=cv.org_a,
        organ_act_post=cv.org_p,
        bladder=(by, bx, bl_r, bl_c, 5.0, T["pelvis"] - 5.0),
        prims=cv.prims,
        landmarks=landmarks,
        spacing=(cv.sr, cv.sc),
        depth_ant_map=depth_a,
        depth_post_map=depth_p,
    )
