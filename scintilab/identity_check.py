"""The identity check: identifiers a cohort's DICOM headers carry, searched for in rendered files.

:func:`phi_terms_from_dicom` collects what must never be shown (names in their usual
spellings, IDs, dates of birth, institution and device names, the text of private
elements); :func:`scan_for_phi` finds them in a page on whole words, after
:func:`searchable_text` has left out CSS, embedded library code and base64 images;
:func:`check_reports` runs it over files. ``scintilab report --phi-check`` and the test
suite (a planted name and ID grepped in the HTML) use it.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Person-name attributes: each is searched for in its usual spellings.
_NAME_KEYWORDS = (
    "PatientName",
    "OtherPatientNames",
    "OperatorsName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "PatientMotherBirthName",
    "PatientBirthName",
)
#: Attributes searched for as written (whole value), when at least 3 characters long.
_VALUE_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "ImageComments",
    "StudyComments",
    "PatientComments",
)
#: Words of scan vocabulary: a private value made only of these (``WHOLE BODY``, ``BONE SCAN``)
#: names nobody, and searching for it would flag every report.
_SCAN_WORDS = frozenset(
    """
    ANT ANTERIOR POST POSTERIOR WB WHOLE BODY BONE BONES SCAN SCANS NM TC MDP HDP STATIC SWEEP
    EMISSION ORIGINAL PRIMARY DERIVED SECONDARY LEHR LEAP COLLIMATOR DETECTOR HEAD IMAGE
    STUDY SERIES VIEW FRAME SPOT
""".split()
)


def _name_terms(name: str) -> set[str]:
    """A person name as written and as a report might spell it (``Family Given``, ``Given
    Family``, ``Family, Given``, the family name alone when 4 characters or more)."""
    parts = [s for s in name.split("^") if s.strip()]
    terms = {name}
    if parts:
        terms.add(" ".join(parts))
        terms.add(" ".join(reversed(parts[:2])))
        terms.add(", ".join(parts[:2]))
        if len(parts[0]) >= 4:
            terms.add(parts[0])
    return terms


def _texts(value: Any) -> list[str]:
    """An element value as stripped strings: one per value of a multi-valued element; UN bytes
    (implicit-VR files read private values so) when they decode as printable text."""
    if value is None:
        return []
    if isinstance(value, bytes):
        text = value.rstrip(b"\x00 ").decode("latin-1")
        return [t.strip() for t in text.split("\\")] if text.isprintable() else []
    from pydicom.multival import MultiValue

    if isinstance(value, (list, tuple, MultiValue)):
        return [str(v).strip() for v in value]
    return [str(value).strip()]  # str, PersonName (which iterates by character), numbers


def _private_texts(ds: Any) -> list[str]:
    """The text of every private element that is not a private creator."""
    out: list[str] = []
    for elem in ds.iterall():
        if elem.tag.is_private and not elem.tag.is_private_creator and elem.VR != "SQ":
            if isinstance(elem.value, bytes) or elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC", "CS", "UN"):
                out += _texts(elem.value)
    return out


def phi_terms_from_dicom(paths: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Identifiers in DICOM headers that must never appear in anything rendered.

    Collects person names (PatientName, OtherPatientNames, OperatorsName, referring and
    performing physician) in their usual spellings; PatientID, OtherPatientIDs,
    AccessionNumber, institution, station, device serial number, addresses and the image,
    study and patient comments as written; PatientBirthDate as written and as YYYY-MM-DD;
    StudyID when it is long enough (>= 6 characters) not to match ordinary numbers by
    chance; and the text of every private element (a GE Genie block repeats the patient's
    name in (0009,1040)) of at least 4 characters, bar values made only of scan vocabulary
    such as ``WHOLE BODY``.

    Args:
        paths: DICOM files or folders (searched recursively for ``*.dcm``).

    Returns:
        The set of strings to search for (empty strings left out).
    """
    import pydicom

    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.rglob("*.dcm")) if p.is_dir() else [p]
    terms: set[str] = set()
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        except Exception:
            continue  # unreadable files hold nothing we could have rendered either
        for kw in _NAME_KEYWORDS:
            for name in _texts(ds.get(kw)):
                if name:
                    terms |= _name_terms(name)
        for kw in _VALUE_KEYWORDS:
            terms.update(v for v in _texts(ds.get(kw)) if len(v) >= 3)
        birth = str(ds.get("PatientBirthDate", "") or "").strip()
        if len(birth) == 8 and birth.isdigit():
            terms.update({birth, f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"})
        study_id = str(ds.get("StudyID", "") or "").strip()
        if len(study_id) >= 6:
            terms.add(study_id)
        for text in _private_texts(ds):
            words = set(re.findall(r"[A-Za-z0-9]+", text.upper()))
            if len(text) < 4 or not re.search(r"[A-Za-z]", text) or words <= _SCAN_WORDS:
                continue
            terms |= _name_terms(text) if "^" in text else {text}
    return {t for t in terms if t}


_STYLE_BLOCK = re.compile(r"<style\b.*?</style>", re.S | re.I)
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>(.*?)</script>", re.S | re.I)
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")


def searchable_text(page: str) -> str:
    """What of an HTML page can show an identifier: text, attributes and figure data.

    Left out: CSS, embedded library code (plotly.js) and base64 images, where short names
    match by chance (``wang`` occurs in base64). Figure scripts are kept: a name in a
    plotly hover label is shown to the reader.
    """
    page = _STYLE_BLOCK.sub(" ", page)
    page = _SCRIPT_BLOCK.sub(lambda m: " " if len(m.group(1)) > 200_000 else m.group(0), page)
    page = _DATA_URI.sub(" ", page)
    return html.unescape(page)


def scan_for_phi(text: str, terms: Iterable[str]) -> list[str]:
    """The identifiers from ``terms`` found in ``text``, sorted.

    Matching is case-insensitive and on whole words (``Ann`` does not match ``annotation``);
    HTML pages are first reduced to :func:`searchable_text`.
    """
    if "<html" in text[:2000].lower() or "<!doctype" in text[:200].lower():
        text = searchable_text(text)
    found = set()
    for t in terms:
        if t and re.search(r"(?<![A-Za-z0-9])" + re.escape(t) + r"(?![A-Za-z0-9])", text, re.I):
            found.add(t)
    return sorted(found)


def check_reports(paths: Iterable[str | os.PathLike[str]], terms: Iterable[str]) -> dict[str, list[str]]:
    """Scan rendered files for identifiers; return ``{file: [found identifiers]}`` for hits only."""
    terms = list(terms)
    hits: dict[str, list[str]] = {}
    for p in map(Path, paths):
        found = scan_for_phi(p.read_text(encoding="utf-8", errors="replace"), terms)
        if found:
            hits[str(p)] = found
    return hits
