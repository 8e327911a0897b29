"""A cohort as every command takes it: a cohort folder or a manifest CSV.

A cohort folder holds ``manifest.csv`` (written by ``scintilab ingest``), or images still to
ingest: a ``dicom/`` folder beside ``labels.csv`` and ``annotations/`` (the layout of
docs/CONVENTIONS.md), or DICOM files themselves. Such a folder is ingested on the spot into
its own ``manifest.csv``, with one line saying so; the images are only read. Anything else
gets one sentence naming the path and what was expected.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from scintilab.errors import InputError

#: The manifest file a cohort folder holds.
MANIFEST_NAME = "manifest.csv"

EXPECTED = ("expected a cohort folder (holding manifest.csv, or DICOM files to ingest) "
            "or a manifest CSV written by 'scintilab ingest'")


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
    from scintilab.ingest import _SIDECAR_SUFFIXES  # one list of what ingest leaves alone

    for _, _, files in os.walk(folder):
        if any(Path(f).suffix.lower() not in _SIDECAR_SUFFIXES for f in files):
            return True
    return False


def resolve_manifest(path: str | os.PathLike[str], *, progress: bool = False,
                     note: Callable[[str], None] | None = print) -> Path:
    """The manifest of a cohort given as a folder or a manifest CSV, ingesting when needed.

    A folder with ``manifest.csv`` gives it. A folder without one but with images is ingested
    into ``FOLDER/manifest.csv`` (its ``dicom/`` subfolder when there is one, with
    ``labels.csv`` and ``annotations/`` when present) and ``note`` is told so.

    Args:
        path: a cohort folder or a manifest CSV.
        progress: show ingest's progress bar.
        note: where the one line about ingesting goes (None: silent).

    Returns:
        The manifest CSV.

    Raises:
        InputError: the path is missing, not a CSV, an empty folder, or a read-only folder
            that needs ingesting; one sentence naming the path and what was expected.
    """
    p = Path(path)
    if not p.is_dir():
        return manifest_of(p)
    manifest = p / MANIFEST_NAME
    if manifest.is_file():
        return manifest
    source = p / "dicom" if (p / "dicom").is_dir() else p
    if not has_images(source):
        raise InputError(p, f"a folder with neither {MANIFEST_NAME} nor images to ingest: {EXPECTED}")
    if not os.access(p, os.W_OK):
        raise InputError(p, f"holds no {MANIFEST_NAME} and is read-only: run 'scintilab ingest {p} --out "
                            f"ELSEWHERE/{MANIFEST_NAME}' and pass that manifest")
    from scintilab.ingest import ingest

    labels, annotations = p / "labels.csv", p / "annotations"
    if note is not None:
        note(f"{p}: no {MANIFEST_NAME}; ingesting {source} into {manifest} (the images are only read)")
    ingest(source, labels if labels.is_file() else None, annotations if annotations.is_dir() else None, manifest,
           progress=progress)
    return manifest
