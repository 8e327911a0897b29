"""The DICOM SEG of a study's hot spots, and reading one back.

:func:`build_seg` writes a Segmentation (BINARY) on the stored source views: segment 1 every
hot spot called metastatic, segment 2 every other one, then one segment per hot spot with
its bone as anatomic region (:func:`plan_segments`). The analysis frame's masks go back onto
the stored views through the detection's view frame (:func:`stored_mask`) and are turned
back where ingest turned a view head-up. :func:`read_seg_masks` and
:func:`draw_seg_overlay` read a SEG back for checking and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from scintilab.dicom_refs import BONE_CODES, SourceView, UidMap, scintilab_version
from scintilab.orientation import rotate

# --------------------------------------------------------------------------------- masks


def stored_mask(mask: np.ndarray, view: str, det: Any) -> np.ndarray:
    """A mask of the detection's frame on the stored (unflipped) ``view``.

    The frame is the stored anterior grid, or the flipped posterior when the study has no
    anterior view; the posterior goes back through the analysis' own alignment
    (:meth:`~scintilab.view_frame.ViewFrame.mask_from_frame`, the inverse of the flip and shift).

    Raises:
        ValueError: an anterior mask asked of a study without an anterior view.
    """
    return det.view_frame.mask_from_frame(mask, view)


@dataclass
class SegmentPlan:
    """The segments of one study's SEG: number, label, class, hot spot, frame-grid mask."""

    number: int
    label: str
    metastatic: bool
    mask: np.ndarray
    hotspot: Any = None
    tracking_uid: str = ""


def plan_segments(det: Any) -> list[SegmentPlan]:
    """Segment 1 metastatic hot spots, 2 the others, then one per hot spot (frame masks)."""
    shape = det.shape
    met = np.zeros(shape, bool)
    other = np.zeros(shape, bool)
    per: list[SegmentPlan] = []
    for hs in det.hotspots:
        m = hs.full_mask(shape)
        (met if hs.metastatic else other)[...] |= m
        per.append(SegmentPlan(0, f"hot spot {hs.id}", bool(hs.metastatic), m, hs, str(generate_uid())))
    plans = [
        SegmentPlan(1, "metastatic hot spots", True, met),
        SegmentPlan(2, "benign or physiological hot spots", False, other),
    ]
    for i, p in enumerate(per):
        p.number = 3 + i
    return plans + per


def _segment_description(plan: SegmentPlan, algorithm: Any) -> Any:
    import highdicom as hd
    from highdicom.sr import CodedConcept

    typ = codes.SCT.NeoplasmMetastatic if plan.metastatic else codes.SCT.Lesion
    regions = [codes.SCT.Bone]
    if plan.hotspot is not None:
        bone = plan.hotspot.bone
        regions = [BONE_CODES[bone]] if bone in BONE_CODES else []
    kw: dict[str, Any] = {}
    if plan.hotspot is not None:
        kw = {"tracking_uid": plan.tracking_uid, "tracking_id": plan.label}
    desc = hd.seg.SegmentDescription(
        segment_number=plan.number,
        segment_label=plan.label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=typ,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=regions or None,
        **kw,
    )
    if not plan.metastatic:
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = DicomSequence(
            [CodedConcept(codes.SCT.Benign.value, "SCT", codes.SCT.Benign.meaning)]
        )
    return desc


def _as_stored(mask: np.ndarray, quarter_turns: int) -> np.ndarray:
    return rotate(mask, -quarter_turns) if quarter_turns % 4 else mask


def build_seg(
    det: Any,
    refs: dict[str, tuple[Dataset, int | None]],
    plans: list[SegmentPlan],
    algorithm: Any,
    *,
    series_uid: str,
    sop_uid: str,
    turns: dict[str, int] | None = None,
) -> Dataset:
    """One BINARY Segmentation over every referenced view (``refs``: view -> (reference
    header, frame number in a multi-frame source or None)).

    highdicom builds a SEG from one source frame when the source has no frame of reference
    (planar NM has none); the second view's frames and references are appended here, and
    the pixel data repacked, frames ordered view by view, segment by segment. Views that
    ingest turned (``turns``: view -> quarter turns) are turned back: the SEG lies on the
    stored pixels.
    """
    import highdicom as hd
    from pydicom.pixels import pack_bits

    descs = [_segment_description(p, algorithm) for p in plans]
    stack: list[np.ndarray] = []
    base: Any = None
    for view, (ref, frame) in refs.items():
        masks = np.stack(
            [_as_stored(stored_mask(p.mask, view, det), (turns or {}).get(view, 0)) for p in plans], axis=-1
        )[None]
        seg = hd.seg.Segmentation(
            source_images=[ref],
            pixel_array=masks,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descs,
            series_instance_uid=series_uid,
            series_number=901,
            sop_instance_uid=sop_uid,
            instance_number=1,
            manufacturer="scintilab",
            manufacturer_model_name="scintilab quantify",
            software_versions=scintilab_version(),
            device_serial_number="n/a",
            omit_empty_frames=False,
            series_description="scintilab hot spots",
            content_label="HOTSPOTS",
            content_creator_name="scintilab^",
        )
        for item in seg.PerFrameFunctionalGroupsSequence:
            if frame is not None:
                for src in item.DerivationImageSequence[0].SourceImageSequence:
                    src.ReferencedFrameNumber = frame
        stack += [masks[0, ..., k] for k in range(len(plans))]
        if base is None:
            base = seg
            continue
        base.PerFrameFunctionalGroupsSequence.extend(seg.PerFrameFunctionalGroupsSequence)
        series = {str(s.SeriesInstanceUID): s for s in base.ReferencedSeriesSequence}
        for s in seg.ReferencedSeriesSequence:
            have = series.get(str(s.SeriesInstanceUID))
            if have is None:
                base.ReferencedSeriesSequence.append(s)
                continue
            known = {str(i.ReferencedSOPInstanceUID) for i in have.ReferencedInstanceSequence}
            for inst in s.ReferencedInstanceSequence:
                if str(inst.ReferencedSOPInstanceUID) not in known:
                    have.ReferencedInstanceSequence.append(inst)
    # Type 2C without a frame of reference; the two views face opposite ways, so one value
    # for the whole object would be wrong for one of them: empty (allowed for Type 2).
    base.PatientOrientation = ""
    base.NumberOfFrames = len(stack)
    base.PixelData = pack_bits(np.stack(stack).astype(np.uint8))
    return base


# --------------------------------------------------------------------------------- reading back


def read_seg_masks(seg_path: str | Path) -> dict[tuple[int, str, int | None], np.ndarray]:
    """Every frame of a SEG as (segment number, referenced SOP Instance UID, referenced
    frame number or None) -> boolean mask, read with pydicom."""
    ds = pydicom.dcmread(seg_path)
    frames = np.asarray(ds.pixel_array).reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    out = {}
    for arr, item in zip(frames, ds.PerFrameFunctionalGroupsSequence):
        seg_no = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        src = item.DerivationImageSequence[0].SourceImageSequence[0]
        frame = src.get("ReferencedFrameNumber")
        out[(seg_no, str(src.ReferencedSOPInstanceUID), None if frame is None else int(frame))] = arr.astype(bool)
    return out


def draw_seg_overlay(
    seg_path: str | Path,
    sources: dict[str, SourceView],
    png: str | Path | None = None,
    *,
    uids: UidMap | None = None,
    crop: bool = True,
) -> Any:
    """Draw a SEG over its source views, both read from DICOM (not from the analysis' arrays).

    Args:
        seg_path: the SEG file.
        sources: view -> :class:`SourceView` of the stored images (pixels read here).
        png: where to save the figure (None: only return it).
        uids: the run's map when the SEG was written de-identified (source UID -> the UID
            the SEG references); None: the SEG references the source UIDs themselves.
        crop: cut the empty rows below the feet.

    Returns:
        The matplotlib Figure: each view as stored, metastatic hot spots red, the others blue.
    """
    import matplotlib.pyplot as plt

    masks = read_seg_masks(seg_path)
    views = [v for v in ("ANT", "POST") if v in sources]
    pix: dict[str, np.ndarray] = {}
    for v in views:
        s = sources[v]
        arr = np.asarray(pydicom.dcmread(s.path).pixel_array, float)
        pix[v] = arr[s.frame - 1] if arr.ndim == 3 else arr
    rows = np.flatnonzero(np.concatenate([p for p in pix.values()], axis=1).max(axis=1) > 2)
    r0, r1 = (max(int(rows[0]) - 8, 0), int(rows[-1]) + 8) if crop and rows.size else (0, None)
    fig, axes = plt.subplots(1, len(views), figsize=(2.3 * len(views), 6.4))
    for ax, v in zip(np.atleast_1d(axes), views):
        s = sources[v]
        uid = str(s.header.SOPInstanceUID)
        uid = uids(uid) if uids is not None else uid
        img = pix[v][r0:r1]
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=float(np.percentile(img[img > 0], 99.5)) if (img > 0).any() else 1)
        for seg_no, colour in ((1, (0.85, 0.1, 0.1)), (2, (0.1, 0.35, 0.9))):
            m = masks.get((seg_no, uid, s.frame))
            if m is None:
                continue
            rgba = np.zeros((*m.shape, 4))
            rgba[m] = (*colour, 0.75)
            ax.imshow(rgba[r0:r1], interpolation="nearest")
        ax.set_title(f"{v} as stored", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("SEG read back over the source DICOM (red metastatic, blue other)", fontsize=7)
    fig.tight_layout()
    if png is not None:
        fig.savefig(png, dpi=110)
    return fig
