"""Read and write whole-body bone scans as DICOM (pydicom 3).

A whole-body study arrives in one of two layouts:

* ``multiframe``: one NM Image Storage file with two frames, one per detector/view. The
  view of each frame is named by DetectorVector (0054,0020) pointing into
  DetectorInformationSequence (0054,0022), whose items carry ViewCodeSequence
  (0054,0220); vendors that skip this name the frames in the per-frame functional groups,
  in a private tag, or in SeriesDescription (0008,103E) / ImageComments (0020,4000)
  ("ANT/POST", frame order).
* ``pair``: two single-frame files whose ViewCodeSequence, ImageID (0054,0400),
  SeriesDescription, ImageComments, a private tag or, failing all, the file name says
  ANT or POST.

:func:`write_study` produces both layouts (the synthetic generator and the tests use it),
with every supported way of naming the views. :func:`read_file` reads one file into its
views plus the header facts ingest needs; :func:`read_study` turns the files of one study
into a :class:`~scintilab.study.Study`.

Input files are only ever opened for reading (``pydicom.dcmread`` opens them ``"rb"``).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from scintilab.errors import InputError
from scintilab.pseudonym import patient_key as _patient_key
from scintilab.pseudonym import study_key as _study_key
from scintilab.study import VIEWS, Study

#: NM Image Storage SOP class.
NM_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.20")
#: Secondary Capture Image Storage (older systems store whole-body views this way).
SECONDARY_CAPTURE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")
#: Modalities accepted as a bone scan; anything else is skipped with a reason.
ACCEPTED_MODALITIES = ("NM",)
#: Modalities a Secondary Capture bone scan may carry (OT = "other").
ACCEPTED_SC_MODALITIES = ("NM", "OT")

#: SNOMED CT codes of CID 26 "Nuclear Medicine Projection" used in ViewCodeSequence.
VIEW_CODES: dict[str, tuple[str, str, str]] = {
    "ANT": ("399321004", "SCT", "Anterior projection"),
    "POST": ("399001007", "SCT", "Posterior projection"),
}
# Older files use the retired SNOMED-RT codes for the same projections.
_CODE_TO_VIEW = {
    "399321004": "ANT",
    "399348003": "ANT",
    "R-10B1E": "ANT",
    "G-A10B": "ANT",
    "399001007": "POST",
    "399380008": "POST",
    "R-10B1F": "POST",
    "G-A118": "POST",
}
# Words that name a view in free text (descriptions, file names); matched as whole tokens.
_VIEW_WORDS = {
    "ANT": "ANT",
    "ANTERIOR": "ANT",
    "ANTERIEUR": "ANT",
    "AP": "ANT",
    "POST": "POST",
    "POSTERIOR": "POST",
    "POS": "POST",
    "PA": "POST",
}
#: The view naming styles :func:`write_study` can produce (tests exercise each).
VIEW_NAMINGS: dict[str, tuple[str, ...]] = {
    "multiframe": ("standard", "frame_label", "private", "series_description", "image_comments", "none"),
    "pair": ("standard", "image_id", "series_description", "image_comments", "private", "filename", "none"),
}
#: Private creator used by :func:`write_study` for the "private" naming (a made-up vendor).
PRIVATE_CREATOR = "ACME NM VIEWS 1.0"

#: A GE Genie-style private creator, and the element (0009,xx40) where such exports repeat the
#: patient's name (the "patient object name"); :class:`ExportHeader` writes both.
GE_PRIVATE_CREATOR = "GEMS_GENIE_1"
GE_PRIVATE_NAME_ELEMENT = 0x40


@dataclass(frozen=True)
class ExportHeader:
    """What a camera or PACS export writes beside the patient module: other names and ids,
    places, people, devices, comments and a vendor private block. Every value is
    identifying; none may reach an output (the identity checks search for each).

    Empty strings are not written. ``private_patient_name`` goes into a GE Genie-style
    block: creator (0009,0010) :data:`GE_PRIVATE_CREATOR`, value (0009,1040) as LO.
    """

    other_patient_names: str = ""
    other_patient_ids: str = ""
    institution: str = ""
    institution_address: str = ""
    station: str = ""
    operators: str = ""
    referring_physician: str = ""
    performing_physician: str = ""
    device_serial: str = ""
    image_comments: str = ""
    study_comments: str = ""
    patient_comments: str = ""
    private_patient_name: str = ""

    #: field -> DICOM keyword, for the public attributes.
    KEYWORDS = {
        "other_patient_names": "OtherPatientNames",
        "other_patient_ids": "OtherPatientIDs",
        "institution": "InstitutionName",
        "institution_address": "InstitutionAddress",
        "station": "StationName",
        "operators": "OperatorsName",
        "referring_physician": "ReferringPhysicianName",
        "performing_physician": "PerformingPhysicianName",
        "device_serial": "DeviceSerialNumber",
        "image_comments": "ImageComments",
        "study_comments": "StudyComments",
        "patient_comments": "PatientComments",
    }

    def apply(self, ds: Dataset) -> None:
        """Write the non-empty values into ``ds``."""
        for name, keyword in self.KEYWORDS.items():
            value = getattr(self, name)
            if value:
                setattr(ds, keyword, value)
        if self.private_patient_name:
            block = ds.private_block(0x0009, GE_PRIVATE_CREATOR, create=True)
            block.add_new(GE_PRIVATE_NAME_ELEMENT, "LO", self.private_patient_name)

    def values(self) -> list[str]:
        """Every non-empty value (what a test plants and then searches the outputs for)."""
        return [v for v in (getattr(self, n) for n in (*self.KEYWORDS, "private_patient_name")) if v]


#: A whole-body sweep maps about this length onto the image's long axis (GE: 1024 x 2.26 mm
#: = 2.31 m; Siemens: 1024 x 2.40 mm = 2.46 m): the pixel size assumed when a file states none.
WHOLE_BODY_SWEEP_MM = 2350.0
#: The start of the flag of a file without PixelSpacing.
SPACING_ASSUMED = "no PixelSpacing: assumed"

#: The flag every lossy copy carries (the audit looks for it).
LOSSY_FLAG = "lossy compressed: counts are not raw"

# Transfer syntaxes pydicom decodes without any plugin.
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
}


# --------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------


def _uid(*parts: Any) -> UID:
    """A UID derived only from ``parts``, so the same inputs always give the same UID."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _da(value: _dt.date | str | None) -> str | None:
    """A DICOM DA string (YYYYMMDD) from a date, an ISO string or a DA string."""
    if value is None or value == "":
        return None
    if isinstance(value, _dt.date):
        return value.strftime("%Y%m%d")
    text = str(value).strip()
    if re.fullmatch(r"\d{8}", text):
        return text
    return _dt.date.fromisoformat(text).strftime("%Y%m%d")


def _code_item(view: str) -> Dataset:
    value, scheme, meaning = VIEW_CODES[view]
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _pixels(image: np.ndarray, name: str, signed: bool) -> np.ndarray:
    """Validate one view array and return it as the stored integer type."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, columns) array, got shape {arr.shape}")
    if signed:
        if arr.min(initial=0) < -32768 or arr.max(initial=0) > 32767:
            raise ValueError(f"{name} does not fit int16")
        return arr.astype("<i2")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise ValueError(f"{name} does not fit uint16")
    return arr.astype("<u2")


def write_study(
    out_dir: Path,
    anterior: np.ndarray,
    posterior: np.ndarray | None,
    *,
    stem: str,
    layout: str = "multiframe",
    patient_id: str,
    patient_name: str,
    study_id: str,
    study_uid: str | None = None,
    study_date: _dt.date | str | None = None,
    pixel_spacing: tuple[float, float] = (2.3, 2.3),
    birth_date: str | None = None,
    sex: str | None = None,
    age: int | None = None,
    manufacturer: str = "scintilab",
    accession_number: str | None = None,
    view_naming: str = "standard",
    frame_order: tuple[str, str] = ("ANT", "POST"),
    sop_class: str = "nm",
    signed: bool = False,
    lossy: bool = False,
    modality: str = "NM",
    series_number: int = 1,
    compress: str | None = None,
    include_pixels: bool = True,
    file_stems: dict[str, str] | None = None,
    export_header: ExportHeader | None = None,
    patient_position: str | None = "HFS",
) -> list[Path]:
    """Write one whole-body study as DICOM, in either layout.

    The output depends only on the arguments (UIDs come from
    ``generate_uid(entropy_srcs=...)`` and no timestamps are written), so the same
    inputs give the same bytes.

    Args:
        out_dir: folder to write into (created if missing).
        anterior: ANT view, (rows, columns) counts that fit uint16 (int16 if ``signed``).
        posterior: POST view as stored (not flipped), same shape, or None for a one-view study.
        stem: file name stem: ``<stem>.dcm`` (multiframe) or ``<stem>_ANT.dcm`` /
            ``<stem>_POST.dcm`` (pair).
        layout: ``"multiframe"`` (one NM file, NumberOfFrames 2) or ``"pair"``.
        patient_id: PatientID (0010,0020).
        patient_name: PatientName (0010,0010).
        study_id: StudyID (0020,0010), the id a hospital label sheet uses.
        study_uid: StudyInstanceUID (0020,000D); derived from patient/study id if None.
        study_date: StudyDate (0008,0020) as a date, ``YYYY-MM-DD`` or ``YYYYMMDD``.
        pixel_spacing: PixelSpacing (0028,0030) as (row, column) mm.
        birth_date: PatientBirthDate (0010,0030), ``YYYYMMDD`` or ISO.
        sex: PatientSex (0010,0040): ``M``, ``F`` or ``O``.
        age: PatientAge (0010,1010) in years.
        manufacturer: Manufacturer (0008,0070).
        accession_number: AccessionNumber (0008,0050).
        view_naming: how the views are named, one of :data:`VIEW_NAMINGS` for the layout:
            ``standard`` (DetectorInformationSequence (0054,0022) items with
            ViewCodeSequence (0054,0220)), ``frame_label`` (multiframe: FrameLabel
            (0020,9453) in PerFrameFunctionalGroupsSequence), ``image_id`` (pair: ImageID
            (0054,0400)), ``series_description`` / ``image_comments`` (multiframe: the
            frame order, e.g. ``"WB ANT/POST"``), ``private`` (a vendor private tag only),
            ``filename`` (pair: the file name only) or ``none`` (nothing names the views;
            pair files are then called ``<stem>_1.dcm`` / ``<stem>_2.dcm``).
        frame_order: view of frame 1 and frame 2 (multiframe), to test that readers use
            the names rather than the order.
        sop_class: ``"nm"`` (NM Image Storage) or ``"sc"`` (Secondary Capture; pair only).
        signed: store PixelRepresentation (0028,0103) 1 (int16), as some older systems do.
        lossy: mark LossyImageCompression (0028,2110) "01" (a lossy copy; with ``signed``
            the arrays may hold small negative values).
        modality: Modality (0008,0060); anything but NM makes a wrong-modality file.
        series_number: SeriesNumber (0020,0011); also enters the series/instance UIDs.
        compress: None, or one of :data:`COMPRESSIONS` (``"rle"``, ``"jpeg-ls"``,
            ``"jpeg-lossless-sv1"``, ``"j2k-lossy"``, ...) to store compressed pixel data.
        include_pixels: False writes a file without PixelData (a bad-input case).
        file_stems: optional explicit file stems per view for the pair layout.
        export_header: other identifiers, places, people, comments and a private name tag,
            as a real export carries them (:class:`ExportHeader`); written after the view
            naming, so its ``image_comments`` replaces a naming that used ImageComments.
        patient_position: PatientPosition (0018,5100), ``HFS`` (head first, supine) as a
            camera writes it; ``FFS`` for a feet-first patient; None leaves it out.

    Returns:
        The files written.

    Raises:
        ValueError: on an unknown layout/naming or arrays that do not fit.
    """
    out_dir = Path(out_dir)
    if layout not in VIEW_NAMINGS:
        raise ValueError(f"layout must be 'multiframe' or 'pair', got {layout!r}")
    if view_naming not in VIEW_NAMINGS[layout]:
        raise ValueError(f"view_naming {view_naming!r} not supported for {layout}: {VIEW_NAMINGS[layout]}")
    if sop_class not in ("nm", "sc"):
        raise ValueError(f"sop_class must be 'nm' or 'sc', got {sop_class!r}")
    if sop_class == "sc" and layout != "pair":
        raise ValueError("Secondary Capture studies are written in the pair layout")
    if sorted(frame_order) != sorted(VIEWS):
        raise ValueError(f"frame_order must hold ANT and POST once each, got {frame_order}")
    images: dict[str, np.ndarray] = {"ANT": _pixels(anterior, "anterior", signed)}
    if posterior is not None:
        images["POST"] = _pixels(posterior, "posterior", signed)
        if images["POST"].shape != images["ANT"].shape:
            raise ValueError("anterior and posterior must have the same shape")
    if study_uid is None:
        study_uid = _uid("study", patient_id, study_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    common = dict(
        patient_id=patient_id,
        patient_name=patient_name,
        study_id=study_id,
        study_uid=study_uid,
        study_date=_da(study_date),
        birth_date=_da(birth_date),
        sex=sex,
        age=age,
        manufacturer=manufacturer,
        accession_number=accession_number,
        pixel_spacing=pixel_spacing,
        sop_class=sop_class,
        signed=signed,
        lossy=lossy,
        modality=modality,
        series_number=series_number,
        compress=compress,
        include_pixels=include_pixels,
        export_header=export_header,
        patient_position=patient_position,
    )
    written: list[Path] = []
    if layout == "multiframe":
        views = [v for v in frame_order if v in images]
        path = out_dir / f"{stem}.dcm"
        ds = _dataset(
            views=views,
            frames=[images[v] for v in views],
            naming=view_naming,
            instance_number=1,
            tag=f"{stem}",
            **common,
        )
        _save(ds, path, compress)
        written.append(path)
    else:
        for number, view in enumerate(v for v in VIEWS if v in images):
            name = (file_stems or {}).get(view) or (
                f"{stem}_{number + 1}" if view_naming == "none" else f"{stem}_{view}"
            )
            path = out_dir / f"{name}.dcm"
            ds = _dataset(
                views=[view],
                frames=[images[view]],
                naming=view_naming,
                instance_number=number + 1,
                tag=f"{stem}/{view}",
                **common,
            )
            _save(ds, path, compress)
            written.append(path)
    return written


#: Compressed storage :func:`write_study` can produce (``compress=``): name -> transfer syntax
#: name. RLE is pydicom's own encoder, JPEG-LS goes through pyjpegls, JPEG 2000 through
#: pylibjpeg-openjpeg, the JPEG process 1/2-4/14 syntaxes through GDCM's transcoder (pydicom
#: has no JPEG encoder); "deflate" is Deflated Explicit VR Little Endian.
COMPRESSIONS: dict[str, str] = {
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "jpeg-ls-near": "1.2.840.10008.1.2.4.81",
    "j2k": "1.2.840.10008.1.2.4.90",
    "j2k-lossy": "1.2.840.10008.1.2.4.91",
    "jpeg-lossless": "1.2.840.10008.1.2.4.57",
    "jpeg-lossless-sv1": "1.2.840.10008.1.2.4.70",
    "jpeg-baseline": "1.2.840.10008.1.2.4.50",
    "jpeg-extended": "1.2.840.10008.1.2.4.51",
    "deflate": "1.2.840.10008.1.2.1.99",
}
#: Transfer syntaxes whose pixel data are the counts exactly (everything else compressed is lossy).
LOSSLESS_SYNTAXES = frozenset(
    _NATIVE_SYNTAXES
    | {
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.203",
    }
)


def _gdcm_transcode(ds: Dataset, path: Path, syntax: str) -> None:
    """Write ``ds`` uncompressed, then let GDCM re-encode it into ``path`` as ``syntax``."""
    import tempfile

    import gdcm  # lazy: only the JPEG process 1/2-4/14 writers need it

    if syntax in (COMPRESSIONS["jpeg-baseline"], COMPRESSIONS["jpeg-extended"]):
        # Baseline/extended JPEG of 16-bit data is not decodable anywhere: store 8 bits.
        arr = ds.pixel_array
        if int(arr.min(initial=0)) < 0 or int(arr.max(initial=0)) > 255:
            raise ValueError("JPEG baseline/extended stores 8-bit pixels: values must lie in 0..255")
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = arr.astype(np.uint8).tobytes()
    codes = {
        COMPRESSIONS["jpeg-lossless"]: gdcm.TransferSyntax.JPEGLosslessProcess14,
        COMPRESSIONS["jpeg-lossless-sv1"]: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
        COMPRESSIONS["jpeg-baseline"]: gdcm.TransferSyntax.JPEGBaselineProcess1,
        COMPRESSIONS["jpeg-extended"]: gdcm.TransferSyntax.JPEGExtendedProcess2_4,
    }
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.dcm"
        ds.save_as(plain, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(plain))
        if not reader.Read():
            raise ValueError(f"GDCM cannot read the dataset written for {path.name}")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(codes[syntax]))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise ValueError(f"GDCM cannot encode {path.name} as {UID(syntax).name}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise ValueError(f"GDCM cannot write {path}")


def _save(ds: Dataset, path: Path, compress: str | None) -> None:
    if compress is not None and compress not in COMPRESSIONS:
        raise ValueError(f"compress must be None or one of {sorted(COMPRESSIONS)}, got {compress!r}")
    syntax = COMPRESSIONS.get(compress or "")
    if syntax is None or "PixelData" not in ds:
        ds.save_as(path, enforce_file_format=True)
    elif compress == "deflate":
        ds.file_meta.TransferSyntaxUID = UID(syntax)
        ds.save_as(path, enforce_file_format=True)
    elif compress.startswith("jpeg-") and not compress.startswith("jpeg-ls"):
        _gdcm_transcode(ds, path, syntax)
    else:
        options: dict[str, Any] = {"encoding_plugin": "pydicom"} if compress == "rle" else {}
        if compress == "jpeg-ls-near":
            options["jls_error"] = 2  # near-lossless: each pixel within 2 counts
        elif compress == "j2k-lossy":
            options["j2k_cr"] = [10]  # compression ratio 10
        ds.compress(UID(syntax), **options)
        ds.save_as(path, enforce_file_format=True)


def _dataset(
    *,
    views: list[str],
    frames: list[np.ndarray],
    naming: str,
    instance_number: int,
    tag: str,
    patient_id: str,
    patient_name: str,
    study_id: str,
    study_uid: str,
    study_date: str | None,
    birth_date: str | None,
    sex: str | None,
    age: int | None,
    manufacturer: str,
    accession_number: str | None,
    pixel_spacing: tuple[float, float],
    sop_class: str,
    signed: bool,
    lossy: bool,
    modality: str,
    series_number: int,
    compress: str | None,
    include_pixels: bool,
    export_header: ExportHeader | None = None,
    patient_position: str | None = "HFS",
) -> Dataset:
    """Build one NM (or Secondary Capture) dataset holding ``frames`` named ``views``."""
    is_nm = sop_class == "nm"
    sop_uid_class = NM_IMAGE_STORAGE if is_nm else SECONDARY_CAPTURE_STORAGE
    series_uid = _uid("series", study_uid, series_number, tag if naming == "none" else "", lossy, sop_class)
    sop_uid = _uid("instance", study_uid, series_number, tag, lossy, sop_class, signed, compress)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_uid_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_uid_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if birth_date:
        ds.PatientBirthDate = birth_date
    if sex:
        ds.PatientSex = sex
    if age is not None:
        ds.PatientAge = f"{int(age):03d}Y"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = study_id
    if study_date:
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.ContentDate = study_date
    if accession_number:
        ds.AccessionNumber = accession_number
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.BodyPartExamined = "WHOLEBODY"
    if patient_position:
        ds.PatientPosition = patient_position

    rows, cols = frames[0].shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(rows)
    ds.Columns = int(cols)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelSpacing = [f"{float(pixel_spacing[0]):.6g}", f"{float(pixel_spacing[1]):.6g}"]
    if lossy:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = "8"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"

    if is_nm:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
        # NM Multi-frame module: frames are indexed by detector (one detector per view).
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = [pydicom.tag.Tag("EnergyWindowVector"), pydicom.tag.Tag("DetectorVector")]
        ds.EnergyWindowVector = [1] * len(frames)
        ds.NumberOfEnergyWindows = 1
        window = Dataset()
        rng_item = Dataset()
        rng_item.EnergyWindowLowerLimit = "126"
        rng_item.EnergyWindowUpperLimit = "154"
        window.EnergyWindowRangeSequence = DicomSequence([rng_item])
        window.EnergyWindowName = "Tc99m"
        ds.EnergyWindowInformationSequence = DicomSequence([window])
        radio = Dataset()
        radio.Radiopharmaceutical = "Tc-99m MDP"
        nuclide = Dataset()
        nuclide.CodeValue = "C-163A8"
        nuclide.CodingSchemeDesignator = "SRT"
        nuclide.CodeMeaning = "^99m^Technetium"
        radio.RadionuclideCodeSequence = DicomSequence([nuclide])
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([radio])
        ds.DetectorVector = list(range(1, len(frames) + 1))
        ds.NumberOfDetectors = len(frames)
        items = []
        for view in views:
            item = Dataset()
            if naming == "standard":
                item.ViewCodeSequence = DicomSequence([_code_item(view)])
            items.append(item)
        ds.DetectorInformationSequence = DicomSequence(items)
        ds.WholeBodyTechnique = "1PS"  # one pass, both heads at once
    else:
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ConversionType = "WSD"

    if naming == "frame_label":
        groups = []
        for view in views:
            content = Dataset()
            content.FrameLabel = view
            group = Dataset()
            group.FrameContentSequence = DicomSequence([content])
            groups.append(group)
        ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    elif naming == "image_id":
        ds.ImageID = views[0]
    elif naming == "series_description":
        ds.SeriesDescription = "WB " + "/".join(views)
    elif naming == "image_comments":
        ds.ImageComments = "Whole body " + "/".join(views)
    elif naming == "private":
        block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
        block.add_new(0x10, "CS", list(views) if len(views) > 1 else views[0])
    if naming in ("standard", "frame_label", "private", "filename", "image_id", "none"):
        # A neutral description, as most vendors write, that names no view.
        ds.SeriesDescription = "WB Bone Scan"
    if export_header is not None:
        export_header.apply(ds)

    if include_pixels:
        stack = np.stack(frames).astype("<i2" if signed else "<u2")
        ds.PixelData = stack.tobytes()
    return ds


# --------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------


@dataclass
class DicomFile:
    """One image file read for ingest: its views plus the header facts ingest needs.

    The raw identifiers (``patient_id``, ``study_id``, ``study_uid``) stay inside ingest:
    they are used to group files and join label sheets, and are never written out.

    Attributes:
        path: the file.
        views: view name -> uint16 (rows, columns) array as stored.
        frames: view name -> frame index in the file (0-based).
        patient_id: PatientID (0010,0020) (raw; never output).
        study_uid: StudyInstanceUID (0020,000D) (raw; never output).
        study_id: StudyID (0020,0010) (raw; never output).
        study_date: StudyDate (0008,0020).
        pixel_spacing: (row, column) mm.
        lossy: True when LossyImageCompression (0028,2110) is "01" or the transfer syntax is lossy.
        flags: plain-words findings about this file (signed pixels converted, values clipped...).
        meta: acquisition facts (manufacturer, sop class, transfer syntax, naming source).
    """

    path: Path
    views: dict[str, np.ndarray]
    frames: dict[str, int]
    patient_id: str
    study_uid: str
    study_id: str
    study_date: _dt.date | None
    pixel_spacing: tuple[float, float]
    lossy: bool = False
    flags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^A-Z0-9]+", str(text).upper()) if t]


def views_named_in(text: str) -> list[str]:
    """Views named in free text, in order of appearance (``"WB ANT/POST"`` -> [ANT, POST])."""
    found: list[str] = []
    for token in _tokens(text):
        view = _VIEW_WORDS.get(token)
        if view is not None and view not in found:
            found.append(view)
    return found


def _view_from_code(item: Dataset) -> str | None:
    """The view a ViewCodeSequence item names, by code value or meaning."""
    value = str(item.get("CodeValue", "")).strip()
    if value in _CODE_TO_VIEW:
        return _CODE_TO_VIEW[value]
    named = views_named_in(str(item.get("CodeMeaning", "")))
    return named[0] if len(named) == 1 else None


def _views_from_codes(ds: Dataset, n_frames: int) -> list[str] | None:
    """Per-frame views from DetectorVector -> DetectorInformationSequence -> ViewCodeSequence."""
    det_seq = ds.get("DetectorInformationSequence")
    if det_seq:
        det_views: list[str | None] = []
        for item in det_seq:
            codes = item.get("ViewCodeSequence")
            det_views.append(_view_from_code(codes[0]) if codes else None)
        vector = ds.get("DetectorVector")
        if vector is None:
            vector = list(range(1, n_frames + 1)) if len(det_seq) == n_frames else [1] * n_frames
        vector = [int(v) for v in (vector if isinstance(vector, (list, pydicom.multival.MultiValue)) else [vector])]
        if len(vector) == n_frames and all(1 <= v <= len(det_views) for v in vector):
            views = [det_views[v - 1] for v in vector]
            if all(views):
                return views  # type: ignore[return-value]
    codes = ds.get("ViewCodeSequence")
    if codes and n_frames == 1:
        view = _view_from_code(codes[0])
        if view:
            return [view]
    return None


def _views_from_frame_labels(ds: Dataset, n_frames: int) -> list[str] | None:
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups or len(groups) != n_frames:
        return None
    views = []
    for group in groups:
        texts = []
        for content in group.get("FrameContentSequence", []):
            texts += [str(content.get("FrameLabel", "")), str(content.get("FrameComments", ""))]
        named = views_named_in(" ".join(texts))
        if len(named) != 1:
            return None
        views.append(named[0])
    return views


def _views_from_private(ds: Dataset, n_frames: int) -> list[str] | None:
    """A view name stored only in a vendor private tag: a string element whose values are
    exactly view words, one per frame."""
    for elem in ds.iterall():
        if not elem.tag.is_private or elem.VR not in ("CS", "LO", "SH", "ST", "LT", "UT", "UC"):
            continue
        values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
        words = [str(v).strip().upper() for v in values]
        if words and all(w in _VIEW_WORDS for w in words):
            if len(words) == n_frames:
                return [_VIEW_WORDS[w] for w in words]
            if n_frames > 1 and len(words) == 1:
                order = views_named_in(words[0])
                if len(order) == n_frames:
                    return order
    return None


def _views_from_text(texts: list[str], n_frames: int) -> tuple[list[str], str] | None:
    for source, text in texts:
        named = views_named_in(text)
        if len(named) == n_frames:
            return named, source
    return None


def _identify_views(ds: Dataset, path: Path, n_frames: int) -> tuple[list[str], str]:
    """Name every frame, trying the sources in order of trust; returns (views, source)."""
    attempts = [
        ("ViewCodeSequence", _views_from_codes(ds, n_frames)),
        ("FrameLabel", _views_from_frame_labels(ds, n_frames)),
    ]
    for source, views in attempts:
        if views:
            return views, source
    texts = [
        ("ImageID", str(ds.get("ImageID", "") or "")),
        ("SeriesDescription", str(ds.get("SeriesDescription", "") or "")),
        ("ImageComments", str(ds.get("ImageComments", "") or "")),
    ]
    found = _views_from_text(texts, n_frames)
    if found:
        return found
    private = _views_from_private(ds, n_frames)
    if private:
        return private, "private tag"
    if n_frames == 1:
        named = views_named_in(path.stem)
        if len(named) == 1:
            return named, "file name"
    return None, ""


#: The view sources that are a decision from outside the header (the image, the user):
#: the manifest's word on such a file is final (a pair may overrule two single calls).
INFERRED_SOURCES = ("image", "--assume-view")


def _unnamed(n_frames: int) -> str:
    return (
        "nothing names " + ("the two frames" if n_frames > 1 else "the view") + " ANT or POST "
        "(no ViewCodeSequence in DetectorInformationSequence, no frame label, ImageID, "
        "SeriesDescription, ImageComments or private tag naming them"
        + (", nor the file name)" if n_frames == 1 else ")")
    )


def view_flag(call_view: str, p: float, confident: bool, *, pair: bool = False, typical: bool = True) -> str:
    """The manifest flag of a view decided from the image."""
    from scintilab.viewrec import CONFIDENCE

    what = "views inferred from the image, as a pair" if pair else "view inferred from the image"
    if confident:
        return f"{what} (p {p:.2f})"
    why = (
        f"p {p:.2f}, below {CONFIDENCE:.2f}"
        if typical
        else "the image is unlike every view the recogniser was trained on"
    )
    return (
        f"view unknown: the image suggests {call_view} ({why}); "
        f"analysed as {call_view}, set --assume-view ANT|POST to decide"
    )


def _views_from_image(
    arr: np.ndarray,
    path: Path,
    spacing: tuple[float, float],
    n_frames: int,
    assume_view: str | None,
    flags: list[str],
    meta: dict[str, Any],
) -> list[str]:
    """Name unnamed frames: ``assume_view`` for one frame, else the image recogniser."""
    if n_frames == 1 and assume_view:
        flags.append(f"view set by --assume-view {assume_view} (nothing in the file names it)")
        return [assume_view]
    if n_frames > 2:
        raise InputError(path, f"cannot tell the views apart: {_unnamed(n_frames)}, and {n_frames} frames")
    from scintilab.viewrec import CONFIDENCE, default_recogniser

    rec = default_recogniser()
    try:
        if n_frames == 1:
            call = rec.recognise(arr[0], spacing)
            views, p, typical = [call.view], call.p, call.typical
            if typical:  # a pair may overrule it at ingest; not from an image unlike the training
                meta["view_logit"] = rec.logit(arr[0], spacing)
        else:
            pair, p = rec.recognise_pair(arr[0], arr[1], spacing)
            views, typical = list(pair), rec.typical(arr[0], spacing) and rec.typical(arr[1], spacing)
    except ValueError as err:
        raise InputError(
            path, f"cannot tell the views apart: {_unnamed(n_frames)}, and the image cannot say: {err}"
        ) from err
    meta["view_p"] = round(p, 4)
    flags.append(view_flag(views[0], p, typical and p >= CONFIDENCE, pair=n_frames > 1, typical=typical))
    return views


def _plugin_hint(ts: UID) -> str:
    name = ts.name
    if "2000" in name or "HTJ2K" in name or "High-Throughput" in name:
        return "install pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)"
    if "JPEG" in name:
        return "install pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)"
    return "install python-gdcm or pylibjpeg with a matching plugin"


def _decoder_available(ts: UID) -> bool:
    """True when pydicom has an installed plugin that decodes ``ts``."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(ts).is_available)
    except (NotImplementedError, ValueError):
        return False


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """Decode the pixel data, turning every failure into an InputError with a clear reason."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises several types; all mean "cannot decode"
        if ts.is_compressed and str(ts) not in _NATIVE_SYNTAXES:
            if not _decoder_available(ts):
                raise InputError(
                    path,
                    f"pixel data is compressed as {ts.name} ({ts}) and no decoder is available: {_plugin_hint(ts)}",
                ) from exc
            raise InputError(
                path,
                f"pixel data compressed as {ts.name} ({ts}) could not be decoded (corrupt codestream?): "
                f"{str(exc).splitlines()[0][:200]}",
            ) from exc
        text = str(exc)
        if "less than expected" in text or "truncat" in text.lower() or "shorter" in text:
            raise InputError(path, f"truncated file: pixel data shorter than Rows x Columns x frames ({text})") from exc
        raise InputError(path, f"cannot decode pixel data: {text}") from exc
    return arr


def check_pixel_length(ds: Dataset, path: Path) -> list[str]:
    """Rows x Columns x frames x bits against the length of native pixel data.

    pydicom reads ``Rows x Columns x frames`` values from the start of PixelData and trims
    the rest as "excess padding" with only a warning: a multi-frame file whose Rows is
    smaller than its stored rows then starts each later frame inside the one before. So:
    too few bytes is refused (truncated), too many in a multi-frame file is refused (the
    frames cannot be placed), too many in a single frame is kept with a flag (the first
    rows are read in order; the rest is ignored). Compressed (encapsulated) pixel data is
    not checked here: its length says nothing about the matrix.

    Returns:
        Flags for a file that can be read safely (empty when the lengths agree).

    Raises:
        InputError: the header's matrix and the pixel data length cannot be reconciled.
    """
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    elem = ds.get("PixelData")
    if elem is None or ts.is_encapsulated or getattr(elem, "is_undefined_length", False):
        return []
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(
            path, f"pixel matrix not described: Rows, Columns or BitsAllocated missing or not a number ({exc})"
        ) from exc
    if rows < 1 or cols < 1 or frames < 1:
        raise InputError(path, f"pixel matrix of {rows} x {cols} x {frames} frame(s) is empty")
    if bits not in (1, 8, 16, 32, 64):
        raise InputError(path, f"BitsAllocated {bits} is not 1, 8, 16, 32 or 64")
    stored = int(ds.get("BitsStored", bits) or bits)
    if not 0 < stored <= bits:
        raise InputError(path, f"BitsStored {stored} does not fit BitsAllocated {bits}")
    n_bits = rows * cols * frames * samples * bits
    expected = (n_bits + 7) // 8
    actual = len(ds.PixelData)
    matrix = f"Rows {rows} x Columns {cols} x {frames} frame(s) x {bits} bits = {expected} bytes"
    if actual < expected:
        raise InputError(path, f"truncated pixel data: {actual} bytes where {matrix}")
    excess = actual - expected - (expected % 2)  # odd lengths are padded to even
    if excess <= 0:
        return []
    per_row = cols * samples * bits // 8 or 1
    hint = (
        f" (about {rows + excess // (frames * per_row)} rows per frame stored)"
        if excess % (frames * per_row) == 0
        else ""
    )
    if frames > 1:
        raise InputError(
            path,
            f"pixel data holds {actual} bytes, more than {matrix}{hint}: "
            "the header's matrix does not match the pixels, frames cannot be placed",
        )
    return [
        f"pixel data longer than the header's matrix ({actual} bytes, {matrix}{hint}): "
        "the extra bytes are ignored, check the image is whole"
    ]


def decode_checked(ds: Dataset, path: Path, flags: list[str]) -> np.ndarray:
    """:func:`check_pixel_length`, then decode, pydicom's warnings about the pixels becoming flags.

    Args:
        ds: the dataset (with pixel data).
        path: its file, for messages.
        flags: the file's flags; remarks are appended.

    Raises:
        InputError: as :func:`check_pixel_length` and :func:`_decode`.
    """
    import warnings

    flags += check_pixel_length(ds, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arr = _decode(ds, path)
    for w in caught:
        text = " ".join(str(w.message).split())
        if not any(text in f for f in flags):
            flags.append(f"pixel data: {text}")
    return arr


def _to_uint16(arr: np.ndarray, ds: Dataset, path: Path, flags: list[str]) -> np.ndarray:
    """Bring decoded pixels to uint16 counts, flagging every conversion."""
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind == "f":
        raise InputError(path, f"floating-point pixel data ({arr.dtype}) is not raw counts")
    if arr.dtype.kind not in "iu":
        raise InputError(path, f"unsupported pixel data type {arr.dtype}")
    lo = int(arr.min()) if arr.size else 0
    hi = int(arr.max()) if arr.size else 0
    if hi > 65535:
        raise InputError(path, f"pixel values up to {hi} do not fit 16-bit counts")
    if lo < 0:
        flags.append(
            f"negative pixel values (min {lo}) clipped at 0"
            + (" (lossy copy)" if str(ds.get("LossyImageCompression", "")) == "01" else "")
        )
        arr = np.clip(arr, 0, None)
    elif arr.dtype.kind == "i":
        flags.append("signed pixel data (PixelRepresentation 1) converted to unsigned")
    else:
        flags.append(f"{arr.dtype.itemsize * 8}-bit pixel data widened to 16-bit")
    return arr.astype(np.uint16)


def _parse_date(value: Any) -> _dt.date | None:
    text = str(value or "").strip()
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return _dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


#: Pixel sizes (mm) a planar gamma-camera image can have; outside, the header is wrong.
PLAUSIBLE_SPACING_MM = (0.05, 50.0)


def _spacing(ds: Dataset, problems: list[str] | None = None) -> tuple[float, float] | None:
    """The pixel spacing (row, column) in mm, or None when absent or not a plausible size.

    An implausible value (zero, negative, NaN, kilometres) is not used and is said in
    ``problems``; a distance computed from it would be meaningless.
    """
    lo, hi = PLAUSIBLE_SPACING_MM
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        value = ds.get(keyword)
        try:
            if value is None or len(value) != 2:
                continue
            pair = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            pair = None
        if pair is not None and all(math.isfinite(v) and lo <= v <= hi for v in pair):
            return pair
        if problems is not None:
            problems.append(f"{keyword} {list(value)!r} is not a pixel size ({lo:g}-{hi:g} mm), not used")
    return None


def _open(path: Path, *, pixels: bool = True) -> Dataset:
    """dcmread with every failure mapped to an InputError (file opened read-only)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
        # pydicom parses elements when first touched: touch them all now, so a corrupt
        # element (an unknown VR, a length past the end) is this file's error, said here
        for _ in ds.iterall():
            pass
        ts = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    except PermissionError as exc:  # not a header problem: say what it is
        raise InputError(path, f"unreadable file: permission denied ({exc.strerror})") from exc
    except InvalidDicomError as exc:
        raise InputError(path, "not a DICOM file (no DICM preamble/marker)") from exc
    except (EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        # pydicom raises these on headers cut short mid-element.
        raise InputError(path, f"truncated or corrupt DICOM header: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - anything else pydicom throws is a bad file too
        raise InputError(path, f"unreadable DICOM: {type(exc).__name__}: {exc}") from exc
    if ts is not None:
        try:
            known = UID(str(ts)).is_transfer_syntax
        except ValueError:  # a private or garbled UID: pydicom cannot tell, nor decode it
            known = False
        if not known:
            raise InputError(path, f"TransferSyntaxUID {str(ts)[:64]!r} is not a transfer syntax pydicom knows")
    return ds


#: DICOM objects that travel with images but are none: named for what they are when skipped.
_NON_IMAGE_MODALITIES = {
    "SEG": "segmentation object",
    "RTSTRUCT": "RT structure set",
    "PR": "presentation state",
    "KO": "key object selection",
    "DOC": "encapsulated document",
    "REG": "registration object",
}
_NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation object",
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.11.1": "presentation state",
}


def check_header(ds: Dataset, path: Path) -> None:
    """Reject what is not a whole-body NM image: wrong modality, reports, no pixels.

    Raises:
        InputError: naming the file and the reason.
    """
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    if sop.startswith("1.2.840.10008.5.1.4.1.1.88") or modality == "SR":
        raise InputError(path, f"structured report (Modality {modality or '?'}), not an image: skipped")
    if modality in _NON_IMAGE_MODALITIES or sop in _NON_IMAGE_SOP_CLASSES:
        what = _NON_IMAGE_MODALITIES.get(modality) or _NON_IMAGE_SOP_CLASSES[sop]
        raise InputError(path, f"{what} (Modality {modality or '?'}), not an image: skipped")
    if sop == str(SECONDARY_CAPTURE_STORAGE) or sop.startswith("1.2.840.10008.5.1.4.1.1.7."):
        if modality not in ACCEPTED_SC_MODALITIES:
            raise InputError(path, f"wrong modality {modality or '(none)'} for a bone scan (Secondary Capture)")
    elif modality not in ACCEPTED_MODALITIES:
        raise InputError(path, f"wrong modality {modality or '(none)'}: expected NM (bone scintigraphy)")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError(path, "no pixel data (PixelData (7FE0,0010) missing)")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise InputError(path, "floating-point pixel data is not raw counts")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(path, f"{ds.get('SamplesPerPixel')} samples per pixel (a colour screenshot?), expected 1")


def read_file(path: Path, *, assume_view: str | None = None, orient: bool = True) -> DicomFile:
    """Read one DICOM file into its named views and header facts.

    The views are named by the header (in order of trust: ViewCodeSequence, frame labels,
    ImageID, SeriesDescription, ImageComments, a private tag) or the file name; when
    nothing names them, by ``assume_view`` (a one-view file) or else the image itself
    (:mod:`scintilab.viewrec`), flagged with its probability.

    Args:
        path: a DICOM file (opened read-only).
        assume_view: ``"ANT"`` or ``"POST"`` for a one-view file whose header and name do
            not say (it overrides the image recogniser, never the header).
        orient: turn a file stored sideways upright (90°), decide head up or down
            (:mod:`scintilab.orientation`: the image, else PatientPosition) and turn a
            head-down file's views 180°, each flagged (``meta["quarter_turns"]``: the turn
            in 90° steps counter-clockwise); False reads the views as stored (a manifest
            already says how ingest turned them).

    Returns:
        A :class:`DicomFile`.

    Raises:
        InputError: not DICOM, truncated, wrong modality, no pixel data, undecodable
            compression, views that cannot be told apart, or non-count pixel data.
    """
    path = Path(path)
    ds = _open(path)
    check_header(ds, path)
    if assume_view is not None and assume_view not in VIEWS:
        raise ValueError(f"assume_view must be ANT or POST, got {assume_view!r}")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    named, source = _identify_views(ds, path, n_frames)
    if named is not None and len(set(named)) != len(named):
        raise InputError(path, f"cannot tell the views apart: frames named {'/'.join(named)}")
    if named is None and n_frames > 2:
        raise InputError(path, f"cannot tell the views apart: {_unnamed(n_frames)}")
    flags: list[str] = []
    arr = decode_checked(ds, path, flags)
    arr = _to_uint16(arr, ds, path, flags)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] != n_frames:
        raise InputError(path, f"pixel array of shape {arr.shape} does not match NumberOfFrames {n_frames}")
    spacing_problems: list[str] = []
    spacing = _spacing(ds, spacing_problems)
    quarter_turns = 0
    if orient:
        from scintilab.orientation import rotate

        if arr.shape[2] > arr.shape[1]:  # a whole-body view is tall: this one was stored sideways
            flags.append(f"stored sideways ({arr.shape[1]}x{arr.shape[2]}, wider than tall): turned upright (90°)")
            arr, quarter_turns = rotate(arr, 1), 1
            spacing = None if spacing is None else (spacing[1], spacing[0])
    if spacing is None:
        assumed = WHOLE_BODY_SWEEP_MM / max(arr.shape[1], arr.shape[2])
        flags.append(
            f"{SPACING_ASSUMED} {assumed:.2f} mm from the {max(arr.shape[1:])}-pixel long axis "
            f"(a whole-body sweep of about {WHOLE_BODY_SWEEP_MM / 1000:.2f} m)"
            + (f"; {'; '.join(spacing_problems)}" if spacing_problems else "")
        )
        spacing = (assumed, assumed)
    if orient and _head_down(arr, ds, spacing, flags):
        arr, quarter_turns = rotate(arr, 2), quarter_turns + 2
    view_meta: dict[str, Any] = {}
    if named is None:
        named = _views_from_image(arr, path, spacing, n_frames, assume_view, flags, view_meta)
        source = "--assume-view" if n_frames == 1 and assume_view else f"image (p {view_meta['view_p']:.2f})"
    views = named
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)))
    # A lossy copy says so in LossyImageCompression (0028,2110) or by its transfer syntax.
    lossy_syntax = str(ts) not in LOSSLESS_SYNTAXES
    lossy_header = str(ds.get("LossyImageCompression", "")).strip() == "01"
    lossy = lossy_header or lossy_syntax
    if lossy:
        flags.append(LOSSY_FLAG + " (" + (f"{ts.name}" if lossy_syntax else "LossyImageCompression 01") + ")")
    patient_id = str(ds.get("PatientID", "") or "").strip()
    study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    if not study_uid:
        raise InputError(path, "no StudyInstanceUID (0020,000D): cannot tell which study the file belongs to")
    return DicomFile(
        path=path,
        views={v: np.ascontiguousarray(arr[i]) for i, v in enumerate(views)},
        frames={v: i for i, v in enumerate(views)},
        patient_id=patient_id,
        study_uid=study_uid,
        study_id=str(ds.get("StudyID", "") or "").strip(),
        study_date=_parse_date(ds.get("StudyDate")),
        pixel_spacing=spacing,
        lossy=lossy,
        flags=flags,
        meta={
            "manufacturer": str(ds.get("Manufacturer", "") or ""),
            "model": str(ds.get("ManufacturerModelName", "") or ""),  # scanner model (0008,1090)
            "sop_class": str(ds.get("SOPClassUID", "")),
            "transfer_syntax": str(ts),
            "view_source": source,
            **view_meta,
            "quarter_turns": quarter_turns,
            "n_frames": n_frames,
            "series_number": ds.get("SeriesNumber"),
            "instance_number": ds.get("InstanceNumber"),
        },
    )


def _head_down(arr: np.ndarray, ds: Dataset, spacing: tuple[float, float], flags: list[str]) -> bool:
    """Whether a file's views are stored head down (the image, else PatientPosition decides);
    says why in ``flags`` whenever there is something to say."""
    from scintilab.orientation import decide, default_model

    try:
        call = default_model().call(list(arr), spacing)
    except ValueError:  # no counts or too short a body: the header alone decides
        call = None
    turn_it, flag = decide(call, str(ds.get("PatientPosition", "") or ""))
    if flag:
        flags.append(flag)
    return turn_it


def read_views(path: Path) -> dict[str, np.ndarray]:
    """The views stored in one DICOM file, as uint16 (rows, columns) arrays as stored.

    Args:
        path: a multi-frame (two views) or single-frame (one view) DICOM file.

    Returns:
        ``{"ANT": array, "POST": array}`` or the one view the file holds.

    Raises:
        InputError: naming the file and the reason it cannot be read as a bone scan.
    """
    return read_file(path).views


def study_from_files(files: list[DicomFile], *, key: str | None = None) -> Study:
    """Assemble one :class:`Study` from the files read for it (one or two files).

    Raises:
        InputError: the files mix patients or studies, or name the same view twice.
    """
    if not files:
        raise InputError(None, "no files for the study")
    first = files[0]
    if len({f.patient_id for f in files}) > 1:
        raise InputError(first.path, "files of one study carry two different patients (PatientID differs)")
    if len({f.study_uid for f in files}) > 1:
        raise InputError(first.path, "files belong to different studies (StudyInstanceUID differs)")
    views: dict[str, np.ndarray] = {}
    flags: list[str] = []
    for f in files:
        for view, img in f.views.items():
            if view in views:
                raise InputError(f.path, f"view {view} given twice")
            views[view] = img
        flags += f.flags
    missing = [v for v in VIEWS if v not in views]
    if missing:
        flags.append(f"one view only ({'/'.join(v for v in VIEWS if v in views)}; {missing[0]} missing)")
    if len({img.shape for img in views.values()}) > 1:
        flags.append("views differ in matrix size")
    ant, post = views.get("ANT"), views.get("POST")
    any_img = ant if ant is not None else post
    layout = (
        "multiframe"
        if len(files) == 1 and first.meta.get("n_frames", 1) > 1
        else ("pair" if len(files) > 1 else "single")
    )
    return Study(
        study_key=_study_key(first.study_uid, key),
        patient_key=_patient_key(first.patient_id, key),
        anterior=ant,
        posterior=post,
        pixel_spacing=first.pixel_spacing,
        study_date=first.study_date,
        source_paths=[f.path for f in files],
        flags=flags,
        meta={
            "matrix": tuple(int(s) for s in any_img.shape),
            "counts_ant": int(ant.sum(dtype=np.int64)) if ant is not None else None,
            "counts_post": int(post.sum(dtype=np.int64)) if post is not None else None,
            "manufacturer": first.meta.get("manufacturer", ""),
            "layout": layout,
            "view_source": first.meta.get("view_source"),
            "transfer_syntax": first.meta.get("transfer_syntax"),
            "lossy": any(f.lossy for f in files),
        },
    )


def read_study(paths: list[Path], *, key: str | None = None) -> Study:
    """Read one study: a multi-frame file or two single-frame files.

    Args:
        paths: the study's files (one multi-frame file, or ANT and POST files).
        key: pseudonym key (see :mod:`scintilab.pseudonym`); default from the environment.

    Returns:
        A :class:`Study` with pseudonymous keys; a one-view study is flagged.

    Raises:
        InputError: a file cannot be read, or the files do not form one study of one patient.
    """
    if isinstance(paths, (str, Path)):
        paths = [Path(paths)]
    return study_from_files([read_file(Path(p)) for p in paths], key=key)
