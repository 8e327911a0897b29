"""Shared DICOM codes: SOP classes, accepted modalities, view codes and words, transfer syntaxes.

Both :mod:`scintilab.dicom_write` (which writes these codes) and the reading side
(:mod:`scintilab.dicomio`, :mod:`scintilab.dicom_views`, :mod:`scintilab.dicom_pixels`,
which recognise them) import from here, so each code is spelt once and neither side
imports the other.
"""

from __future__ import annotations

from pydicom.uid import UID

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
#: Code value -> view, the reader's side of :data:`VIEW_CODES`: older files use the retired
#: SNOMED-RT codes for the same projections, so those are accepted too.
CODE_TO_VIEW: dict[str, str] = {
    "399321004": "ANT",
    "399348003": "ANT",
    "R-10B1E": "ANT",
    "G-A10B": "ANT",
    "399001007": "POST",
    "399380008": "POST",
    "R-10B1F": "POST",
    "G-A118": "POST",
}
#: Words that name a view in free text (descriptions, file names); matched as whole tokens.
VIEW_WORDS: dict[str, str] = {
    "ANT": "ANT",
    "ANTERIOR": "ANT",
    "ANTERIEUR": "ANT",
    "AP": "ANT",
    "POST": "POST",
    "POSTERIOR": "POST",
    "POS": "POST",
    "PA": "POST",
}

#: Transfer syntaxes pydicom decodes without any plugin.
NATIVE_SYNTAXES: set[str] = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.5",
}
#: Transfer syntaxes whose pixel data are the counts exactly (everything else compressed is lossy).
LOSSLESS_SYNTAXES = frozenset(
    NATIVE_SYNTAXES
    | {
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.203",
    }
)
