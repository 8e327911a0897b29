"""Read whole-body bone scans from DICOM (pydicom 3): one file into its views, files into a study.

:func:`read_file` reads one file into its views plus the header facts ingest needs
(:class:`DicomFile`): it refuses what is not a whole-body NM image (:func:`check_header`),
names the views (:mod:`scintilab.dicom_views`: the header, the file name, else the image),
decodes the pixels into counts (:mod:`scintilab.dicom_pixels`), takes the pixel spacing
(assumed from a whole-body sweep when the header has none) and turns a file stored
sideways or head down upright. :func:`read_study` turns the files of one study (one
two-frame file, or an ANT and a POST file) into a :class:`~scintilab.study.Study`.

Input files are only ever opened for reading (``pydicom.dcmread`` opens them ``"rb"``).

This module stays the package's DICOM entry point: the writer (:mod:`scintilab.dicom_write`),
the shared codes (:mod:`scintilab.dicom_codes`) and the view and pixel helpers are
re-exported here (``__all__`` at the end), so ``from scintilab.dicomio import write_study``
keeps working. The writer never imports this module.
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
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian

from scintilab.dicom_codes import (
    ACCEPTED_MODALITIES,
    ACCEPTED_SC_MODALITIES,
    LOSSLESS_SYNTAXES,
    NM_IMAGE_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    VIEW_CODES,
)
from scintilab.dicom_pixels import check_pixel_length, decode_checked, to_uint16
from scintilab.dicom_views import (
    INFERRED_SOURCES,
    identify_views,
    unnamed,
    view_flag,
    views_from_image,
    views_named_in,
)
from scintilab.dicom_write import (
    COMPRESSIONS,
    GE_PRIVATE_CREATOR,
    GE_PRIVATE_NAME_ELEMENT,
    PRIVATE_CREATOR,
    VIEW_NAMINGS,
    ExportHeader,
    write_study,
)
from scintilab.errors import InputError
from scintilab.orientation import decide, default_model
from scintilab.pseudonym import patient_key as _patient_key
from scintilab.pseudonym import study_key as _study_key
from scintilab.study import VIEWS, Study

#: A whole-body sweep maps about this length onto the image's long axis (GE: 1024 x 2.26 mm
#: = 2.31 m; Siemens: 1024 x 2.40 mm = 2.46 m): the pixel size assumed when a file states none.
WHOLE_BODY_SWEEP_MM = 2350.0
#: The start of the flag of a file without PixelSpacing.
SPACING_ASSUMED = "no PixelSpacing: assumed"

#: The flag every lossy copy carries (the audit looks for it).
LOSSY_FLAG = "lossy compressed: counts are not raw"


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
    named, source = identify_views(ds, path, n_frames)
    if named is not None and len(set(named)) != len(named):
        raise InputError(path, f"cannot tell the views apart: frames named {'/'.join(named)}")
    if named is None and n_frames > 2:
        raise InputError(path, f"cannot tell the views apart: {unnamed(n_frames)}")
    flags: list[str] = []
    arr = decode_checked(ds, path, flags)
    arr = to_uint16(arr, ds, path, flags)
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
        named = views_from_image(arr, path, spacing, n_frames, assume_view, flags, view_meta)
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


# The reader's own names, then the ones defined elsewhere and re-exported for callers that
# import everything DICOM from here (tests, benchmarks, notebooks).
__all__ = [
    "LOSSY_FLAG",
    "PLAUSIBLE_SPACING_MM",
    "SPACING_ASSUMED",
    "WHOLE_BODY_SWEEP_MM",
    "DicomFile",
    "check_header",
    "read_file",
    "read_study",
    "read_views",
    "study_from_files",
    # scintilab.dicom_codes
    "ACCEPTED_MODALITIES",
    "ACCEPTED_SC_MODALITIES",
    "LOSSLESS_SYNTAXES",
    "NM_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_STORAGE",
    "VIEW_CODES",
    # scintilab.dicom_views
    "INFERRED_SOURCES",
    "view_flag",
    "views_named_in",
    # scintilab.dicom_pixels
    "check_pixel_length",
    "decode_checked",
    # scintilab.dicom_write
    "COMPRESSIONS",
    "GE_PRIVATE_CREATOR",
    "GE_PRIVATE_NAME_ELEMENT",
    "PRIVATE_CREATOR",
    "VIEW_NAMINGS",
    "ExportHeader",
    "write_study",
]
