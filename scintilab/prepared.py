"""A study prepared for quantification: its frame, atlas, skeleton and references, once.

Detection (:func:`scintilab.hotspots.detect_hotspots`) and lesion statistics
(:func:`scintilab.lesions.study_lesions`) start from the same derived data:

1. **Frame.** The two views in one pixel grid (:class:`~scintilab.view_frame.ViewFrame`:
   the posterior mirrored and aligned to the stored anterior; a study with a posterior view
   only uses the mirrored posterior).
2. **Atlas.** The landmark atlas (:func:`scintilab.atlas.fit_atlas`) fitted once, on the
   frame's own view (the anterior when there is one) with the other view's counts added
   for the spine; the other view reuses its landmarks in its own drawing order (bones
   nearer the back drawn on top).
3. **Skeleton and references.** The bladder blob (found once, on the anterior view), each
   view's skeleton mask and, per view and bone group, the median smoothed count of its
   skeleton pixels: the patient's own healthy bone, against which uptake is normalised.

:func:`prepare_study` aligns and fits the atlas; the skeleton and references follow on
first use. A caller that needs them twice passes the one :class:`PreparedStudy` on
instead of recomputing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from scintilab.anatomy import BONES
from scintilab.atlas import Atlas, fit_atlas
from scintilab.atlas_landmarks import sigma_px
from scintilab.errors import InputError
from scintilab.fusion import aggregate
from scintilab.view_frame import ViewFrame

#: Gaussian smoothing (sigma, mm) of the skeleton criterion and, by default, of detection:
#: about one pixel of a 2.3 mm matrix, against Poisson noise.
SMOOTH_MM = 2.5


@dataclass(eq=False)
class PreparedStudy:
    """One study's frame, images and atlas; its skeleton and references on first use.

    The derived parts (:attr:`smoothed`, :attr:`bladder`, :attr:`skeleton`,
    :attr:`references`) are computed the first time they are asked for and kept, so lesion
    statistics, which need only the frame and the atlas, do not pay for them.

    Attributes:
        study_key / patient_key: pseudonymous ids.
        frame: the views' shared grid and the alignment between them.
        spacing: (row, col) pixel spacing in mm.
        images: view -> float32 image in the frame.
        atlas: view -> the fitted atlas (one set of landmarks, each view's drawing order).
        smooth_mm: the smoothing of :attr:`smoothed`.
    """

    study_key: str
    patient_key: str
    frame: ViewFrame
    spacing: tuple[float, float]
    images: dict[str, np.ndarray] = field(repr=False)
    atlas: dict[str, Atlas] = field(repr=False)
    smooth_mm: float = SMOOTH_MM

    @property
    def base_view(self) -> str:
        """The view the atlas was fitted on (the frame's own)."""
        return self.frame.name

    @cached_property
    def smoothed(self) -> dict[str, np.ndarray]:
        """View -> the image smoothed by :attr:`smooth_mm` (Gaussian sigma, mm)."""
        return {v: ndi.gaussian_filter(img, sigma_px(self.spacing, self.smooth_mm)) for v, img in self.images.items()}

    @cached_property
    def bladder(self) -> np.ndarray:
        """Boolean bladder blob in the frame (:func:`bladder_mask`)."""
        return bladder_mask(self.atlas, self.images)

    @cached_property
    def skeleton(self) -> dict[str, np.ndarray]:
        """View -> boolean skeleton mask, the bladder left out (:func:`skeleton_mask`)."""
        return {v: skeleton_mask(self.atlas[v], img, self.bladder) for v, img in self.images.items()}

    @cached_property
    def references(self) -> dict[str, dict[str, float]]:
        """View -> {bone: reference counts} (:func:`bone_references`)."""
        return {v: bone_references(self.smoothed[v], self.skeleton[v], self.atlas[v].bone_map()) for v in self.images}

    def reference_image(self, view: str) -> np.ndarray:
        """Each pixel's reference counts in ``view`` (see :func:`reference_image`)."""
        return reference_image(self.references[view], self.atlas[view].bone_map())

    def fused(self, method: str = "add") -> np.ndarray | None:
        """The two views aggregated in the frame (:func:`scintilab.fusion.aggregate`), or
        None without both views."""
        if not {"ANT", "POST"} <= set(self.images):
            return None
        return aggregate(self.images["ANT"], self.images["POST"], method)


def prepare_study(study: Any, *, smooth_mm: float = SMOOTH_MM, skeleton: Any = None) -> PreparedStudy:
    """Align the views of one study and fit its atlas (the rest follows on first use).

    The atlas is fitted on the frame's own view; with both views the other one, in the
    frame, is added for tracing the spine (which lies near the back, so the posterior
    counts show it far more reliably).

    Args:
        study: a :class:`~scintilab.study.Study` (either or both views).
        smooth_mm: Gaussian smoothing (sigma, mm) of :attr:`PreparedStudy.smoothed`.
        skeleton: a learned skeleton (:class:`scintilab.skeleton_model.SkeletonModel`):
            its per-pixel bone groups replace the atlas template's as the source of every
            bone lookup (hot spots' bones and regions, the skeleton mask's neighbourhood,
            each bone's reference counts and the BSI's bone sizes); the atlas's landmarks
            and coordinates stay. None keeps the template.

    Raises:
        InputError: no view, mismatched views, or no body to fit the atlas to (named by the
            study's pseudonymous key).
    """
    frame = ViewFrame.of_study(study)
    images = {v: frame.to_frame(study.view(v), v) for v in frame.views}
    spacing = (float(study.pixel_spacing[0]), float(study.pixel_spacing[1]))
    other = images.get("POST") if frame.name == "ANT" else None
    try:
        base = fit_atlas(images[frame.name], view=frame.name, spacing=spacing, other=other)
    except ValueError as err:
        raise InputError(study.study_key, f"cannot fit the skeleton atlas: {err}") from None
    atlas = {v: view_atlas(replace(base, mirrored=False), v) for v in images}
    if skeleton is not None:
        from scintilab.skeleton_model import predict_bone_map  # Keras: only when asked for

        # one map for both views: the frame is shared, and the network saw both views
        learned = predict_bone_map(skeleton, study, frame).astype(np.int16)
        atlas = {v: replace(a, _bone_cache=learned) for v, a in atlas.items()}
    return PreparedStudy(
        study_key=study.study_key,
        patient_key=study.patient_key,
        frame=frame,
        spacing=spacing,
        images=images,
        # the frame is in anterior orientation, a posterior-only one included
        atlas=atlas,
        smooth_mm=float(smooth_mm),
    )


def view_atlas(base: Atlas, view: str) -> Atlas:
    """The same landmarks drawn in ``view``'s overlap order (the frame is shared)."""
    if base.view == view:
        return base
    return Atlas(
        shape=base.shape, view=view, mirrored=False, spacing=base.spacing, landmarks=base.landmarks, body=base.body
    )


def bone_references(
    smoothed: np.ndarray, skeleton: np.ndarray, bone_map: np.ndarray, min_pixels: int = 12
) -> dict[str, float]:
    """Median smoothed count of each bone group's skeleton pixels (its healthy level).

    Bones with fewer than ``min_pixels`` skeleton pixels get the whole skeleton's median.

    Args:
        smoothed: the smoothed view.
        skeleton: boolean skeleton mask.
        bone_map: atlas bone map (0 none, i + 1 = ``BONES[i]``).
        min_pixels: fewest pixels for a bone's own reference.

    Returns:
        {bone: reference counts}, every bone of :data:`BONES` present.
    """
    sel = skeleton & (bone_map > 0)
    overall = float(np.median(smoothed[sel])) if sel.sum() >= min_pixels else float(np.percentile(smoothed, 95))
    overall = max(overall, 1e-3)
    refs: dict[str, float] = {}
    for i, b in enumerate(BONES):
        vals = smoothed[sel & (bone_map == i + 1)]
        refs[b] = max(float(np.median(vals)), 1e-3) if vals.size >= min_pixels else overall
    return refs


def reference_image(refs: dict[str, float], bone_map: np.ndarray) -> np.ndarray:
    """Each pixel's reference: its bone's, or off the skeleton the nearest bone's."""
    lut = np.array([np.nan] + [refs[b] for b in BONES], np.float32)
    if not (bone_map > 0).any():
        return np.full(bone_map.shape, float(np.nanmedian(lut[1:])), np.float32)
    _, (ir, ic) = ndi.distance_transform_edt(bone_map == 0, return_indices=True)
    return lut[bone_map[ir, ic]]


def bladder_mask(atlases: dict[str, Atlas], images: dict[str, np.ndarray]) -> np.ndarray:
    """The bladder blob, from the anterior view when there is one.

    The bladder lies in front, so the anterior view shows it far above its surroundings;
    in the posterior view it can be dim enough that "half its peak" spreads over the
    whole trunk, so the posterior view is used only when it is the only one.
    """
    view = "ANT" if "ANT" in images else "POST"
    mask = atlases[view].bladder_mask(images[view])
    # A blob over ~4 % of the frame is not a bladder but a failed threshold: ignore it.
    if mask.sum() > 0.04 * mask.size:
        return np.zeros(mask.shape, bool)
    return mask


def skeleton_mask(atlas: Atlas, image: np.ndarray, bladder: np.ndarray, factor: float = 1.6) -> np.ndarray:
    """Skeleton mask of one view, leaving out the shared bladder blob.

    The same criterion as :meth:`scintilab.atlas.Atlas.skeleton_mask` (bone-like uptake
    near the template skeleton) but with the bladder found once for both views (see
    :func:`bladder_mask`).
    """
    img = np.asarray(image, dtype=float)
    sm = ndi.gaussian_filter(img, sigma_px(atlas.spacing, SMOOTH_MM))
    body_vals = sm[atlas.body]
    level = float(np.median(body_vals)) if body_vals.size else 0.0
    near = ndi.binary_dilation(atlas.bone_map() > 0, iterations=max(1, int(round(6.0 / atlas.spacing[1]))))
    return (sm > factor * max(level, 1e-6)) & atlas.body & near & ~bladder
