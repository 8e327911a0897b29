"""The per-study HTML report printed to PDF with headless Chromium, as Encapsulated PDF."""

from __future__ import annotations

import datetime as _dt
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from scintilab.chromium import find_chromium
from scintilab.dicom_refs import PATIENT_STUDY, unique_datasets

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
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


# --------------------------------------------------------------------------------- PDF


def print_pdf(html_page: str | Path, pdf: str | Path, *, timeout: float = 120) -> Path:
    """Print an HTML page to PDF with headless Chromium (no network, throwaway profile).

    Raises:
        RuntimeError: no Chromium, or it wrote no PDF.
    """
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
    for kw in PATIENT_STUDY + ("StudyInstanceUID",):
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
    for src in unique_datasets(sources):
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
