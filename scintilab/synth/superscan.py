"""The diffuse superscan: metastatic marrow everywhere in the axial skeleton.

A superscan shows intense, fairly even uptake over the spine, ribs, pelvis, skull and the
proximal humeri and femora, with faint or absent kidneys and bladder and little soft tissue:
the tracer goes to bone before the kidneys can clear it. No focal hot spot stands out, which
is why rules that look for spots above a bone reference miss it. The generator multiplies the
bone activity where the marrow is involved by a patchy factor and writes the involved pixels
into the lesion label map under :data:`DIFFUSE_ID` (they count towards the true BSI; no focal
lesion record and no LabelMe polygon describe them: a superscan is a study-level finding,
recorded in the truth's ``superscan``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from scintilab.synth.phantom import BONE_IDS, Phantom

#: Lesion label-map value of the diffusely involved marrow (focal lesions are numbered 1..).
DIFFUSE_ID: int = 255
#: Bone groups a superscan involves (the humeri and femora only near the trunk).
SUPERSCAN_BONES: tuple[str, ...] = (
    "skull",
    "cervical_spine",
    "thoracic_spine",
    "lumbar_spine",
    "sacrum",
    "ribs",
    "sternum",
    "clavicles",
    "scapulae",
    "pelvis",
    "humeri",
    "femora",
)
#: How far down a humerus or femur the marrow is involved (mm from the shoulder / hip).
PROXIMAL_MM: float = 160.0
#: Share of the organs' (kidneys) and the soft tissue's activity left in a superscan.
KIDNEY_SHARE: float = 0.15
SOFT_TISSUE_SHARE: float = 0.5
BLADDER_SHARE: float = 0.4


def involved_marrow(ph: Phantom, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a superscan involves the marrow, and how strongly.

    Args:
        ph: the patient's phantom.
        seed: seeds the patchiness (the same at every visit of a patient).

    Returns:
        ``(involved, strength)``: a boolean mask (at least three quarters of the named
        bones' pixels) and a float32 strength in 0.5-1 over it (0 elsewhere).
    """
    sr, sc = ph.spacing
    bones = np.isin(ph.bone_map, [BONE_IDS[b] for b in SUPERSCAN_BONES])
    rows, cols = np.indices(ph.bone_map.shape, dtype=np.float32)
    for bone, marks in (("humeri", ("shoulder_R", "shoulder_L")), ("femora", ("pelvis_centre",))):
        limb = ph.bone_map == BONE_IDS[bone]
        reach = PROXIMAL_MM + (110.0 if bone == "femora" else 0.0)  # the hips lie beside the pelvis centre
        near = np.zeros_like(limb)
        for m in marks:
            r, c = ph.landmarks[m]
            near |= np.hypot((rows - r) * sr, (cols - c) * sc) <= reach
        bones &= ~limb | near
    rng = np.random.default_rng([seed, 4141])
    patch = gaussian_filter(rng.standard_normal(ph.bone_map.shape).astype(np.float32), 30.0 / sr)
    vals = patch[bones]
    if not vals.size:
        return bones, np.zeros(ph.bone_map.shape, np.float32)
    involved = bones & (patch >= np.quantile(vals, 0.2))
    lo, hi = float(vals.min()), float(vals.max())
    strength = np.where(involved, 0.5 + 0.5 * (patch - lo) / max(hi - lo, 1e-6), 0.0).astype(np.float32)
    return involved, strength


def bone_factor(ph: Phantom, gain: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The factor on the phantom's bone activity and the involved mask of a superscan.

    The factor is ``1 + (gain - 1) * strength``, softened by a pixel so that the bone's
    soft edges (drawn outside the bone map) brighten with it.
    """
    involved, strength = involved_marrow(ph, seed)
    soft = gaussian_filter(strength, 1.0)
    return (1.0 + (gain - 1.0) * np.maximum(soft, strength)).astype(np.float32), involved


__all__ = [
    "BLADDER_SHARE",
    "DIFFUSE_ID",
    "KIDNEY_SHARE",
    "PROXIMAL_MM",
    "SOFT_TISSUE_SHARE",
    "SUPERSCAN_BONES",
    "bone_factor",
    "involved_marrow",
]
