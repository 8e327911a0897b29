"""Write whole-body bone scans as DICOM, the way cameras and PACS export them (pydicom 3).

:func:`write_study` produces both layouts the reader accepts (see :mod:`scintilab.dicomio`):
one two-frame NM file (``multiframe``) or two single-frame files (``pair``), with every
supported way of naming the views (:data:`VIEW_NAMINGS`), NM or Secondary Capture, signed
or lossy pixels, compressed storage (:data:`COMPRESSIONS`) and the identifying header a
real export carries (:class:`ExportHeader`). The synthetic generator and the tests use it.

The output depends only on the arguments, so the same inputs give the same bytes. This
module never imports the reader: what both need lives in :mod:`scintilab.dicom_codes`.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from scintilab.dicom_codes import NM_IMAGE_STORAGE, SECONDARY_CAPTURE_STORAGE, VIEW_CODES
from scintilab.study import VIEWS

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
