"""The TID 1500 measurement report (Comprehensive 3D SR) of a study's quantification.

One group for the whole body and one per bone group (BSI, hot spots, hot spots called
metastatic), one per hot spot (area, normalised uptake, probability, peak counts, the call,
its bone as finding site) referencing its segment of the SEG and the source image; every
measurement names the algorithm and its parameters.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from scintilab.anatomy import BONES
from scintilab.dicom_refs import BONE_CODES, LOCAL_SCHEME, local_code, scintilab_version, ucum_code, unique_datasets
from scintilab.dicom_seg import SegmentPlan

# --------------------------------------------------------------------------------- SR


def _algorithm_sr(algorithm: dict[str, Any]) -> Any:
    from highdicom.sr import AlgorithmIdentification

    return AlgorithmIdentification(
        name=algorithm["name"],
        version=scintilab_version(),
        parameters=[str(p) for p in algorithm.get("parameters", [])],
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
    percent = ucum_code("%", "percent")
    count = ucum_code("{hot spots}", "hot spots")
    c_bsi = local_code("BSI", "Bone Scan Index")
    c_hot = local_code("HOTSPOTS", "Hot spot count")
    c_met = local_code("HOTSPOTS_MET", "Hot spots called metastatic")

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
                unit=ucum_code("mm2", "square millimeter"),
                algorithm_id=algo,
            ),
            Measurement(
                name=local_code("NORM_UPTAKE", "Normalized uptake"),
                value=float(row["normalized_uptake"]),
                unit=ucum_code("{ratio}", "ratio"),
                algorithm_id=algo,
            ),
            Measurement(
                name=local_code("P_MET", "Probability of metastasis"),
                value=float(row["p_metastatic"]),
                unit=ucum_code("{probability}", "probability"),
                algorithm_id=algo,
            ),
            Measurement(
                name=local_code("PEAK_COUNTS", "Peak counts"),
                value=float(row["peak_counts"]),
                unit=ucum_code("{counts}", "counts"),
                algorithm_id=algo,
            ),
        ]
        qual = [
            QualitativeEvaluation(
                local_code("CALLED_MET", "Called metastatic"), codes.SCT.Yes if hs.metastatic else codes.SCT.No
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
        evidence=unique_datasets(evidence),
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
