"""What the DICOM results share: codes, the UID map, and the source images they reference.

Bone structures as SNOMED CT codes (:data:`BONE_CODES`), the local scheme for concepts DICOM
has no code for, UCUM units; :class:`UidMap` (one new UID per source UID throughout a run,
so the objects of a run reference each other but not the source); the source views read
from a manifest row (:func:`source_views`, headers only, read only) and the header every
result object starts from (:func:`reference_header`: patient and study modules
pseudonymous, or linked to the source study with ``link_to_source``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from scintilab import __version__
from scintilab.anatomy import BONES

#: Coding scheme of the concepts DICOM has no code for (BSI, normalised uptake, ...).
LOCAL_SCHEME = "99SCINTILAB"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"

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


def local_code(value: str, meaning: str) -> Any:
    """A concept of the project's own coding scheme (:data:`LOCAL_SCHEME`)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value, LOCAL_SCHEME, meaning)


def ucum_code(value: str, meaning: str) -> Any:
    """A UCUM unit as a coded concept."""
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


# --------------------------------------------------------------------------------- sources


def is_nm_multiframe(sop_class: str) -> bool:
    """Whether a SOP class is NM Image Storage."""
    # NM Image Storage is a multi-frame IOD even with one frame: references carry frame numbers.
    return str(sop_class) == "1.2.840.10008.5.1.4.1.1.20"


#: Patient and study attributes every result object carries (the source study's own with
#: ``link_to_source``).
PATIENT_STUDY = (
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
        if is_nm_multiframe(ds.SOPClassUID) or n_frames > 1:
            try:
                frame = int(float(frame_raw)) + 1  # manifest frames are 0-based
            except (TypeError, ValueError):
                frame = 1
        out[view] = SourceView(view=view, path=path, frame=frame, header=ds)
    return out, notes


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
    if is_nm_multiframe(ref.SOPClassUID):
        # highdicom reads the pixel measures of a multi-frame IOD from its functional groups.
        ref.NumberOfFrames = 1
        pm = Dataset()
        pm.PixelSpacing = ref.PixelSpacing
        shared = Dataset()
        shared.PixelMeasuresSequence = DicomSequence([pm])
        ref.SharedFunctionalGroupsSequence = DicomSequence([shared])
    if uids.link and src is not None:
        for kw in PATIENT_STUDY:
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


def scintilab_version() -> str:
    """The package version the result objects name as their software."""
    return __version__


def unique_datasets(datasets: Iterable[Dataset]) -> list[Dataset]:
    """Datasets with duplicates (the same SOP Instance UID) left out, first kept."""
    seen: dict[str, Dataset] = {}
    for d in datasets:
        seen.setdefault(str(d.SOPInstanceUID), d)
    return list(seen.values())
