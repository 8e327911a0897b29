"""Shared anatomical vocabulary: bones, coarse body regions, skeletal-mass shares.

One source for the synthetic generator (ground truth), the lesion-statistics atlas
(coarse regions, the paper's Fig. 12b) and the Bone Scan Index (fine bones with their
share of skeletal mass).
"""

from __future__ import annotations

#: Coarse body regions used by lesion statistics (issue: lesion statistics; paper Fig. 12b).
REGIONS: tuple[str, ...] = (
    "skull",
    "cervical_spine",
    "thoracic_spine",
    "lumbar_spine",
    "ribs",
    "sternum",
    "shoulder_girdle",
    "pelvis",
    "upper_limbs",
    "lower_limbs",
)

#: Skeletal-mass share (percent of the whole skeleton) per BSI bone group.
#: Spiers 1968 weights as used for the Bone Scan Index (Imbriaco et al. 1998), both sides
#: summed (e.g. femora = 2 x 8.9). "Spine and sacrum" (8.3 %) is split here by a choice
#: of ours, roughly by vertebral volume: cervical 1.6, thoracic 3.2, lumbar 2.4, sacrum 1.1.
#: Forearms = ulnae (2 x 1.5) + radii (2 x 1.2); tibiae_fibulae = 2 x 5.1 + 2 x 1.3.
#: The published shares add to 100.1 through rounding; :data:`BONE_MASS_FRACTION` renormalises.
BONE_MASS_PERCENT: dict[str, float] = {
    "skull": 16.6,
    "mandible": 1.8,
    "cervical_spine": 1.6,
    "thoracic_spine": 3.2,
    "lumbar_spine": 2.4,
    "sacrum": 1.1,
    "ribs": 4.4,
    "sternum": 0.3,
    "clavicles": 1.0,
    "scapulae": 3.0,
    "humeri": 6.6,
    "forearms": 5.4,
    "hands": 3.0,
    "pelvis": 7.5,
    "femora": 17.8,
    "tibiae_fibulae": 12.8,
    "feet": 11.6,
}

_total = sum(BONE_MASS_PERCENT.values())
#: Shares as fractions that sum to exactly 1.
BONE_MASS_FRACTION: dict[str, float] = {k: v / _total for k, v in BONE_MASS_PERCENT.items()}

#: Fine BSI bone group -> coarse lesion-statistics region.
BONE_TO_REGION: dict[str, str] = {
    "skull": "skull",
    "mandible": "skull",
    "cervical_spine": "cervical_spine",
    "thoracic_spine": "thoracic_spine",
    "lumbar_spine": "lumbar_spine",
    "sacrum": "pelvis",
    "ribs": "ribs",
    "sternum": "sternum",
    "clavicles": "shoulder_girdle",
    "scapulae": "shoulder_girdle",
    "humeri": "upper_limbs",
    "forearms": "upper_limbs",
    "hands": "upper_limbs",
    "pelvis": "pelvis",
    "femora": "lower_limbs",
    "tibiae_fibulae": "lower_limbs",
    "feet": "lower_limbs",
}

BONES: tuple[str, ...] = tuple(BONE_MASS_PERCENT)

#: The paper's uptake-intensity bins for lesion statistics (counts; Fig. 12c).
UPTAKE_BINS: tuple[float, ...] = (0, 50, 100, 150, 200, 300, 500, float("inf"))


def region_of(bone: str) -> str:
    """Coarse region for a fine bone group name."""
    try:
        return BONE_TO_REGION[bone]
    except KeyError:
        raise ValueError(f"unknown bone group {bone!r}; expected one of {BONES}") from None
