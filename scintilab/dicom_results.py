"""Results back where clinicians look: a DICOM SEG, a TID 1500 SR and an Encapsulated PDF per study.

``scintilab quantify MANIFEST --out DIR --dicom [--link-to-source]`` (and
:func:`scintilab.quantify.quantify_cohort` with ``dicom=True``) calls :func:`export_study`
for every quantified study, which writes under ``DIR/dicom/<study_key>/``:

* ``seg.dcm``: a Segmentation (BINARY) referencing the source anterior and posterior
  images. Segment 1 holds every hot spot called metastatic (SCT 14799000 "Neoplasm,
  metastatic"), segment 2 every other hot spot (SCT 52988006 "Lesion" with the modifier
  SCT 30807003 "Benign": benign disease and physiological uptake alike), then one segment
  per hot spot (``hot spot N``), typed as its class and carrying its bone (SCT bone
  structures, :data:`BONE_CODES`) as anatomic region. Masks lie on the stored views: the
  analysis frame's posterior is flipped and aligned, so posterior masks are carried back
  with the detection's :class:`~scintilab.view_frame.ViewFrame` (the alignment the analysis used, inverted).
* ``sr.dcm``: a Comprehensive 3D SR, TID 1500 measurement report: one group for the whole
  body and one per bone group (BSI, hot spots, hot spots called metastatic), one group per
  hot spot (area in mm^2, normalised uptake, probability of metastasis, peak counts, the
  call, its bone as finding site) referencing its segment of the SEG and the source image;
  every measurement names the algorithm and its parameters.
* ``report.dcm``: the per-study HTML report printed to PDF with headless Chromium (the PDF
  is also written beside the HTML, ``reports/<study_key>.pdf``), as Encapsulated PDF.

``DIR/dicom/export.csv`` lists, per study and object, what was written and why something
was not (no Chromium, a source that is not DICOM, a view missing from the export).

De-identified by default: patient name and id are the study's pseudonymous patient key,
birth date, sex, accession number, study id and referring physician are empty or
pseudonymous, and every UID (study, series, the source images the objects reference) is
replaced by a new one, the same new UID for the same source UID throughout one run
(:class:`UidMap`), so SEG, SR and PDF of a run reference each other but not the source.
``link_to_source`` keeps the source study's Study Instance UID, the source images' UIDs and
its patient module, for sending the objects back into the PACS the study came from.

Source headers are read from the manifest's source paths with pydicom, read only, without
pixels.
"""

from __future__ import annotations

import csv
import datetime as _dt
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from scintilab.anatomy import BONES

#: Coding scheme of the concepts DICOM has no code for (BSI, normalised uptake, ...).
LOCAL_SCHEME = "99SCINTILAB"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: Chromium flags for printing a report (no network, no first-run work).
CHROMIUM_PRINT_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)

#: Fine bone group -> SNOMED CT body structure (pydicom's code dictionary, so no typos).
BONE_CODES: dict[str, Any] = {
    "skull": codes.SCT.Skull,
    "mandible": codes.SCT.Mandible,
    "cervical_spine": codes.SCT.CervicalSpine,
    "thoracic_spine": codes.SCT.ThoracicSpine,
    "lumbar_spine": codes.SCT.LumbarSpine,
    "sacrum": codes.SCT.Sacrum,
    "ribs": codes.SCT.Rib,
    "sternum": codes.SCT.Sternum,
    "clavicles": codes.SCT.Clavicle,
    "scapulae": codes.SCT.Scapula,
    "humeri": codes.SCT.Humerus,
    "forearms": codes.SCT.Forearm,
    "hands": codes.SCT.Hand,
    "pelvis": codes.SCT.BoneStructureOfPelvis,
    "femora": codes.SCT.Femur,
    "tibiae_fibulae": codes.SCT.TibiaAndFibula,
    "feet": codes.SCT.Foot,
}
assert set(BONE_CODES) == set(BONES)


def _local(value: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value, LOCAL_SCHEME, meaning)


def _ucum(value: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value, "UCUM", meaning)


class UidMap:
    """Source UID -> new UID, the same new UID for the same source UID within one run.

    With ``link=True`` every UID maps to itself (the objects join the source study).
    """

    def __init__(self, link: bool = False) -> None:
        self.link = link
        self._map: dict[str, str] = {}

    def __call__(self, uid: Any) -> str:
        """The UID to write for a source UID."""
        uid = str(uid)
        if self.link:
            return uid
        if uid not in self._map:
            self._map[uid] = str(generate_uid())
        return self._map[uid]

    def for_key(self, key: str) -> str:
        """A run-stable new UID for something that has no source UID (e.g. a study read
        from PNG): same key, same UID, in de-identified and linked mode alike."""
        tag = f"scintilab-key:{key}"
        if tag not in self._map:
            self._map[tag] = str(generate_uid())
        return self._map[tag]


@dataclass
class SourceView:
    """One view's source image: its header (no pixels) and where the view sits in it.

    Attributes:
        view: ``ANT`` or ``POST``.
        path: the file (read only, never written out).
        frame: 1-based frame number in a multi-frame file, None for one frame.
        header: the pydicom dataset without pixel data.
    """

    view: str
    path: Path
    frame: int | None
    header: Dataset


@dataclass
class StudyExport:
    """What :func:`export_study` wrote for one study.

    Attributes:
        study_key: the study's pseudonymous key.
        folder: ``DIR/dicom/<study_key>``.
        files: object (``SEG``, ``SR``, ``PDF``) -> file written.
        notes: (object, sentence) of what was not written or not referenced, and why.
        pdf: the report printed to PDF beside the HTML (None when not printed).
    """

    study_key: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)
    pdf: Path | None = None


# --------------------------------------------------------------------------------- sources


def _is_nm_multiframe(sop_class: str) -> bool:
    # NM Image Storage is a multi-frame IOD even with one frame: references carry frame numbers.
    return str(sop_class) == "1.2.840.10008.5.1.4.1.1.20"


def source_views(row: Any, root: Path | None) -> tuple[dict[str, SourceView], list[str]]:
    """The DICOM source of each view of one manifest row.

    Args:
        row: the study's manifest row (``ant_path``, ``post_path``, ``ant_frame``, ``post_frame``).
        root: folder the manifest's relative paths start from.

    Returns:
        (view -> :class:`SourceView`, sentences about views that have no DICOM source).
    """
    out: dict[str, SourceView] = {}
    notes: list[str] = []
    for view, col in (("ANT", "ant"), ("POST", "post")):
        raw = str(row.get(f"{col}_path", "") or "")
        if raw in ("", "nan"):
            notes.append(f"{view} view absent from the export: the SEG references the other view only")
            continue
        path = Path(raw)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            _ = ds.SOPInstanceUID, ds.SOPClassUID
        except (pydicom.errors.InvalidDicomError, AttributeError, OSError):
            notes.append(
                f"{view} view was not read from DICOM ({path.suffix or 'no suffix'} file): "
                "there is no source image to reference"
            )
            continue
        n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        frame_raw = row.get(f"{col}_frame", "")
        frame = None
        if _is_nm_multiframe(ds.SOPClassUID) or n_frames > 1:
            try:
                frame = int(float(frame_raw)) + 1  # manifest frames are 0-based
            except (TypeError, ValueError):
                frame = 1
        out[view] = SourceView(view=view, path=path, frame=frame, header=ds)
    return out, notes


_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
)


def reference_header(
    src: SourceView | None, study: Any, uids: UidMap, spacing: tuple[float, float] | None = None
) -> Dataset:
    """The header the written objects derive from: the source's UIDs (mapped) and, only
    when linking, its patient and study modules; pseudonymous otherwise.

    Args:
        src: the view's source (None: a study with no DICOM source; UIDs come from its key).
        study: the :class:`scintilab.study.Study`.
        uids: the run's :class:`UidMap`.
        spacing: PixelSpacing when the source has none (e.g. Secondary Capture).
    """
    h = src.header if src is not None else Dataset()
    ref = Dataset()
    if src is not None:
        ref.SOPClassUID = h.SOPClassUID
        ref.SOPInstanceUID = uids(h.SOPInstanceUID)
        ref.StudyInstanceUID = uids(h.StudyInstanceUID)
        ref.SeriesInstanceUID = uids(h.SeriesInstanceUID)
        ref.Modality = str(h.get("Modality", "NM") or "NM")
    else:
        ref.SOPClassUID = SECONDARY_CAPTURE_STORAGE
        ref.SOPInstanceUID = uids.for_key(f"{study.study_key}/image")
        ref.StudyInstanceUID = uids.for_key(study.study_key)
        ref.SeriesInstanceUID = uids.for_key(f"{study.study_key}/series")
        ref.Modality = "NM"
    rows, cols = study.shape_hw
    ref.Rows, ref.Columns = int(h.get("Rows", rows)), int(h.get("Columns", cols))
    sp = h.get("PixelSpacing") or list(spacing or study.pixel_spacing)
    ref.PixelSpacing = [f"{float(s):.6g}" for s in sp]
    ref.SamplesPerPixel = 1
    ref.PhotometricInterpretation = "MONOCHROME2"
    ref.BitsAllocated, ref.BitsStored, ref.HighBit, ref.PixelRepresentation = 16, 16, 15, 0
    if _is_nm_multiframe(ref.SOPClassUID):
        # highdicom reads the pixel measures of a multi-frame IOD from its functional groups.
        ref.NumberOfFrames = 1
        pm = Dataset()
        pm.PixelSpacing = ref.PixelSpacing
        shared = Dataset()
        shared.PixelMeasuresSequence = DicomSequence([pm])
        ref.SharedFunctionalGroupsSequence = DicomSequence([shared])
    if uids.link and src is not None:
        for kw in _PATIENT_STUDY:
            setattr(ref, kw, h.get(kw, "") or "")
    else:
        ref.PatientName = f"{study.patient_key}^"  # one name component, said so (PN)
        ref.PatientID = study.patient_key
        ref.PatientBirthDate = ""
        ref.PatientSex = ""
        ref.StudyID = study.study_key[:16]
        ref.AccessionNumber = ""
        ref.ReferringPhysicianName = ""
        # The date is already in studies.csv (follow-up needs it); the time is not.
        ref.StudyDate = study.study_date.strftime("%Y%m%d") if study.study_date else ""
        ref.StudyTime = ""
    return ref


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
    from scintilab.orientation import rotate

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
            software_versions=_version(),
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


def _version() -> str:
    from scintilab import __version__

    return __version__


# --------------------------------------------------------------------------------- SR


def _algorithm_sr(algorithm: dict[str, Any]) -> Any:
    from highdicom.sr import AlgorithmIdentification

    return AlgorithmIdentification(
        name=algorithm["name"], version=_version(), parameters=[str(p) for p in algorithm.get("parameters", [])]
    )


def frame_of(seg: Dataset, segment: int, sop_uid: str, frame: int | None) -> int:
    """1-based frame of ``seg`` holding ``segment`` on the source (``sop_uid``, ``frame``)."""
    for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment:
            continue
        src = item.DerivationImageSequence[0].SourceImageSequence[0]
        if str(src.ReferencedSOPInstanceUID) == sop_uid and (
            frame is None or int(src.get("ReferencedFrameNumber", frame)) == frame
        ):
            return i
    raise KeyError(f"segment {segment} has no frame on {sop_uid}")


def _frame_or_segment(ds: Dataset) -> None:
    """Keep the frame number of SR references to SEG frames and drop the segment number.

    highdicom writes both for TID 1410's "Referenced Segmentation Frame"; the SOP Instance
    Reference macro allows one or the other (dciodvfy: "shall not be present when
    ReferencedFrameNumber is present"). A SEG frame belongs to one segment, so the frame
    number alone names it.
    """
    for item in ds.get("ContentSequence", []):
        for ref in item.get("ReferencedSOPSequence", []):
            if "ReferencedFrameNumber" in ref and "ReferencedSegmentNumber" in ref:
                del ref.ReferencedSegmentNumber
        _frame_or_segment(item)


def build_sr(
    sq: Any,
    refs: dict[str, tuple[Dataset, int | None]],
    header: Dataset,
    seg: Dataset | None,
    plans: list[SegmentPlan],
    algorithm: dict[str, Any],
    *,
    series_uid: str,
    sop_uid: str,
) -> Any:
    """The TID 1500 measurement report of one study (see the module docstring)."""
    import highdicom as hd
    from highdicom.sr import (
        DeviceObserverIdentifyingAttributes,
        FindingSite,
        Measurement,
        MeasurementReport,
        MeasurementsAndQualitativeEvaluations,
        ObservationContext,
        ObserverContext,
        PlanarROIMeasurementsAndQualitativeEvaluations,
        QualitativeEvaluation,
        ReferencedSegmentationFrame,
        SourceImageForSegmentation,
        TrackingIdentifier,
    )

    algo = _algorithm_sr(algorithm)
    bsi_row = sq.bsi.row()
    percent = _ucum("%", "percent")
    count = _ucum("{hot spots}", "hot spots")
    c_bsi = _local("BSI", "Bone Scan Index")
    c_hot = _local("HOTSPOTS", "Hot spot count")
    c_met = _local("HOTSPOTS_MET", "Hot spots called metastatic")

    def totals(bsi: float, hot: int, met: int, site: list[Any] | None) -> list[Any]:
        return [
            Measurement(name=c_bsi, value=float(bsi), unit=percent, algorithm_id=algo, finding_sites=site),
            Measurement(name=c_hot, value=float(hot), unit=count, algorithm_id=algo, finding_sites=site),
            Measurement(name=c_met, value=float(met), unit=count, algorithm_id=algo, finding_sites=site),
        ]

    groups: list[Any] = [
        MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=str(generate_uid()), identifier="whole skeleton"),
            finding_sites=[FindingSite(codes.SCT.Bone)],
            measurements=totals(bsi_row["bsi"], bsi_row["hotspots_total"], bsi_row["hotspots_metastatic"], None),
        )
    ]
    for b in BONES:
        site = [FindingSite(BONE_CODES[b])]
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(uid=str(generate_uid()), identifier=f"region {b}"),
                finding_sites=site,
                measurements=totals(bsi_row[f"bsi_{b}"], bsi_row[f"hotspots_{b}"], bsi_row[f"metastatic_{b}"], None),
            )
        )
    sy, sx = (float(s) for s in sq.detection.spacing)
    for plan in plans[2:]:
        hs = plan.hotspot
        row = hs.as_row()
        ident = TrackingIdentifier(uid=plan.tracking_uid, identifier=plan.label)
        meas = [
            Measurement(
                name=codes.SCT.Area,
                value=float(row["area_px"]) * sy * sx,
                unit=_ucum("mm2", "square millimeter"),
                algorithm_id=algo,
            ),
            Measurement(
                name=_local("NORM_UPTAKE", "Normalized uptake"),
                value=float(row["normalized_uptake"]),
                unit=_ucum("{ratio}", "ratio"),
                algorithm_id=algo,
            ),
            Measurement(
                name=_local("P_MET", "Probability of metastasis"),
                value=float(row["p_metastatic"]),
                unit=_ucum("{probability}", "probability"),
                algorithm_id=algo,
            ),
            Measurement(
                name=_local("PEAK_COUNTS", "Peak counts"),
                value=float(row["peak_counts"]),
                unit=_ucum("{counts}", "counts"),
                algorithm_id=algo,
            ),
        ]
        qual = [
            QualitativeEvaluation(
                _local("CALLED_MET", "Called metastatic"), codes.SCT.Yes if hs.metastatic else codes.SCT.No
            )
        ]
        sites = [FindingSite(BONE_CODES[hs.bone])] if hs.bone in BONE_CODES else None
        finding = codes.SCT.NeoplasmMetastatic if hs.metastatic else codes.SCT.Lesion
        view = hs.best_view if hs.best_view in refs else next(iter(refs), None)
        if seg is not None and view is not None:
            ref, frame = refs[view]
            segref = ReferencedSegmentationFrame(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                frame_number=frame_of(seg, plan.number, str(ref.SOPInstanceUID), frame),
                segment_number=plan.number,
                source_image=SourceImageForSegmentation(
                    ref.SOPClassUID, ref.SOPInstanceUID, [frame] if frame is not None else None
                ),
            )
            groups.append(
                PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=ident,
                    referenced_segment=segref,
                    finding_type=finding,
                    algorithm_id=algo,
                    finding_sites=sites,
                    measurements=meas,
                    qualitative_evaluations=qual,
                )
            )
        else:
            groups.append(
                MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=ident,
                    finding_type=finding,
                    algorithm_id=algo,
                    finding_sites=sites,
                    measurements=meas,
                    qualitative_evaluations=qual,
                )
            )
    context = ObservationContext(
        observer_device_context=ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                uid=str(generate_uid(entropy_srcs=["scintilab quantify device"])),
                name="scintilab quantify",
                manufacturer_name="scintilab",
                model_name=algorithm["name"],
            ),
        )
    )
    report = MeasurementReport(
        observation_context=context, procedure_reported=codes.SCT.NuclearMedicineProcedure, imaging_measurements=groups
    )
    evidence = [r for r, _ in refs.values()] + ([seg] if seg is not None else [])
    if not evidence:
        evidence = [header]
    sr = hd.sr.Comprehensive3DSR(
        evidence=_unique(evidence),
        content=report[0],
        series_instance_uid=series_uid,
        series_number=902,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="scintilab",
        is_complete=True,
        series_description="scintilab BSI",
    )
    _frame_or_segment(sr)
    scheme = Dataset()
    scheme.CodingSchemeDesignator = LOCAL_SCHEME
    scheme.CodingSchemeName = "scintilab local concepts"
    scheme.CodingSchemeResponsibleOrganization = "scintilab"
    sr.CodingSchemeIdentificationSequence = DicomSequence([scheme])
    return sr


def _unique(datasets: Iterable[Dataset]) -> list[Dataset]:
    seen: dict[str, Dataset] = {}
    for d in datasets:
        seen.setdefault(str(d.SOPInstanceUID), d)
    return list(seen.values())


# --------------------------------------------------------------------------------- PDF


def print_pdf(html_page: str | Path, pdf: str | Path, *, timeout: float = 120) -> Path:
    """Print an HTML page to PDF with headless Chromium (no network, throwaway profile).

    Raises:
        RuntimeError: no Chromium, or it wrote no PDF.
    """
    from scintilab.chromium import find_chromium

    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    pdf = Path(pdf).resolve()
    pdf.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="scintilab-print-") as profile:
        proc = subprocess.run(
            [
                exe,
                *CHROMIUM_PRINT_FLAGS,
                f"--user-data-dir={profile}",
                f"--print-to-pdf={pdf}",
                Path(html_page).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(f"chromium printed no PDF (rc={proc.returncode}): {proc.stderr[-800:]}")
    return pdf


def build_pdf_dataset(
    pdf: bytes, header: Dataset, *, title: str, series_uid: str, sop_uid: str, sources: Iterable[Dataset] = ()
) -> Dataset:
    """Encapsulated PDF Storage of one report, in the study of ``header``."""
    now = _dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    for kw in _PATIENT_STUDY + ("StudyInstanceUID",):
        setattr(ds, kw, header.get(kw, "") or "")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 903
    ds.SeriesDescription = "scintilab report"
    ds.Manufacturer = "scintilab"
    ds.ConversionType = "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = DicomSequence()
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    items = []
    for src in _unique(sources):
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        purpose = Dataset()
        purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = (
            "121322",
            "DCM",
            "Source image for image processing operation",
        )
        item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
        items.append(item)
    if items:
        ds.SourceInstanceSequence = DicomSequence(items)
    data = bytes(pdf)
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    return ds


# --------------------------------------------------------------------------------- per study


def algorithm_info(detection: Any, model: Any = None) -> dict[str, Any]:
    """Name and parameters of the classifier behind a study's calls (for the SEG and SR)."""
    params = [
        f"calling threshold p >= {detection.threshold:.4g}",
        f"BSI and new-lesion threshold p >= {detection.endpoint_threshold:.4g}",
        f"pixel spacing {detection.spacing[0]:.4g} x {detection.spacing[1]:.4g} mm",
    ]
    if model is None:
        return {"name": "scintilab hot-spot rules", "parameters": params}
    info = getattr(model, "info", {}) or {}
    params.append("features " + ",".join(getattr(model, "features", [])))
    if info.get("scans") is not None:
        params.append(f"trained on {info.get('scans')} scans")
    return {"name": "scintilab hot-spot model (logistic)", "parameters": params}


def export_study(
    sq: Any,
    row: Any,
    root: Path | None,
    out_dir: str | Path,
    uids: UidMap,
    *,
    report_html: Path | None = None,
    model: Any = None,
) -> StudyExport:
    """Write the SEG, SR and Encapsulated PDF of one quantified study.

    Args:
        sq: the :class:`scintilab.quantify.StudyQuant`.
        row: its manifest row (source paths and frames).
        root: folder the manifest's relative paths start from.
        out_dir: ``DIR/dicom``; the study's objects go to ``out_dir/<study_key>/``.
        uids: the run's :class:`UidMap` (also says whether to link to the source).
        report_html: the study's HTML report, printed to PDF (None: no PDF).
        model: the hot-spot model used (None: the default rules), named in SEG and SR.

    Returns:
        A :class:`StudyExport`.
    """
    import highdicom as hd

    st, det = sq.study, sq.detection
    folder = Path(out_dir) / st.study_key
    folder.mkdir(parents=True, exist_ok=True)
    res = StudyExport(study_key=st.study_key, folder=folder)
    sources, notes = source_views(row, root)
    sources = {v: s for v, s in sources.items() if v in det.images}
    for n in notes:
        res.notes.append(("SEG", n))
    refs = {v: (reference_header(s, st, uids), s.frame) for v, s in sources.items()}
    header = next(iter(refs.values()))[0] if refs else reference_header(None, st, uids)
    algorithm = algorithm_info(det, model)
    plans = plan_segments(det)
    seg = None
    if refs:
        algo_seg = hd.AlgorithmIdentificationSequence(
            name=algorithm["name"],
            version=_version(),
            family=codes.DCM.ArtificialIntelligence,
            parameters={f"p{i}": p for i, p in enumerate(algorithm["parameters"], start=1)},
        )
        seg = build_seg(
            det,
            refs,
            plans,
            algo_seg,
            series_uid=uids.for_key(f"{st.study_key}/seg-series"),
            sop_uid=uids.for_key(f"{st.study_key}/seg"),
            turns=dict(st.meta.get("quarter_turns") or {}),
        )
        res.files["SEG"] = folder / "seg.dcm"
        seg.save_as(res.files["SEG"], enforce_file_format=True)
    else:
        res.notes.append(("SEG", "not written: no view has a DICOM source image for the SEG to reference"))
    sr = build_sr(
        sq,
        refs,
        header,
        seg,
        plans,
        algorithm,
        series_uid=uids.for_key(f"{st.study_key}/sr-series"),
        sop_uid=uids.for_key(f"{st.study_key}/sr"),
    )
    res.files["SR"] = folder / "sr.dcm"
    sr.save_as(res.files["SR"], enforce_file_format=True)
    if report_html is not None:
        try:
            res.pdf = print_pdf(report_html, Path(report_html).with_suffix(".pdf"))
            pdf_ds = build_pdf_dataset(
                res.pdf.read_bytes(),
                header,
                title=f"Bone scan quantification {st.study_key}",
                series_uid=uids.for_key(f"{st.study_key}/pdf-series"),
                sop_uid=uids.for_key(f"{st.study_key}/pdf"),
                sources=[r for r, _ in refs.values()],
            )
            res.files["PDF"] = folder / "report.dcm"
            pydicom.dcmwrite(res.files["PDF"], pdf_ds, enforce_file_format=True)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
            res.notes.append(("PDF", f"not written: {err}"))
    else:
        res.notes.append(("PDF", "not written: no HTML report (reports were turned off)"))
    return res


def write_index(exports: list[StudyExport], out_dir: str | Path) -> Path:
    """``DIR/dicom/export.csv``: study_key, object, file (relative), note."""
    path = Path(out_dir) / "export.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["study_key", "object", "file", "note"])
        for e in exports:
            for obj, f in e.files.items():
                w.writerow([e.study_key, obj, f.relative_to(Path(out_dir)).as_posix(), ""])
            for obj, note in e.notes:
                w.writerow([e.study_key, obj, "", note])
    return path


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


__all__ = [
    "BONE_CODES",
    "SourceView",
    "StudyExport",
    "UidMap",
    "algorithm_info",
    "build_pdf_dataset",
    "build_seg",
    "build_sr",
    "draw_seg_overlay",
    "export_study",
    "frame_of",
    "plan_segments",
    "print_pdf",
    "read_seg_masks",
    "reference_header",
    "source_views",
    "stored_mask",
    "write_index",
]
