"""A cohort as every command takes it: a cohort folder or a manifest CSV.

A cohort folder holds ``manifest.csv`` (written by ``scintilab ingest``), or images still to
ingest: a ``dicom/`` folder beside ``labels.csv`` and ``annotations/`` (the layout of
docs/CONVENTIONS.md), or DICOM files themselves. This module names the manifest of a path
without reading any image; :func:`scintilab.ingest.resolve_manifest` ingests a folder that
has none on the spot. Anything else gets one sentence naming the path and what was expected.
"""

from __future__ import annotations

import os
from pathlib import Path

from scintilab.errors import InputError

#: The manifest file a cohort folder holds.
MANIFEST_NAME = "manifest.csv"

#: Files that are never images: ingest leaves them alone, and they do not make a folder
#: one to ingest.
SIDECAR_SUFFIXES = frozenset({".json", ".csv", ".tsv", ".txt", ".md", ".yml", ".yaml", ".xlsx", ".html"})

EXPECTED = (
    "expected a cohort folder (holding manifest.csv, or DICOM files to ingest) "
    "or a manifest CSV written by 'scintilab ingest'"
)


def manifest_of(path: str | os.PathLike[str]) -> Path:
    """The manifest a path names, without ingesting: the CSV itself, or ``FOLDER/manifest.csv``.

    Raises:
        InputError: the path does not exist, is a folder without a manifest, or is a file
            that is not a CSV.
    """
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST_NAME).is_file():
            return p / MANIFEST_NAME
        raise InputError(p, f"a folder without {MANIFEST_NAME}: {EXPECTED}")
    if not p.exists():
        raise InputError(p, f"manifest not found: {EXPECTED}")
    if p.suffix.lower() != ".csv":
        raise InputError(p, f"a {p.suffix or 'extension-less'} file, not a manifest: {EXPECTED}")
    return p


def has_images(folder: Path) -> bool:
    """Whether ``folder`` holds any file ingest would try to read (not a sidecar)."""
    for _, _, files in os.walk(folder):
        if any(Path(f).suffix.lower() not in SIDECAR_SUFFIXES for f in files):
            return True
    return False
