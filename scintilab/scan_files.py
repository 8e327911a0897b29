"""Reading a scanned folder for ingest: the folder walk and one record per readable file.

:func:`walk_files` lists a folder tree's files in a stable order; :func:`dicom_rec` and
:func:`raster_rec` keep what ingest needs of one DICOM or PNG/TIFF file as a
:class:`FileRec` holding one :class:`ViewRec` per view (shape, counts, flags; no pixel
arrays). The path helpers say why a walked path cannot be read (:func:`odd_path`) and show
a path in messages and CSV without absolute paths or undecodable bytes
(:func:`display_path`).

Input files are opened for reading only. :mod:`scintilab.ingest` groups the records into
studies.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.dicomio import SPACING_ASSUMED, DicomFile
from scintilab.errors import InputError
from scintilab.labelme import view_from_name
from scintilab.raster import read_raster


@dataclass
class ViewRec:
    """One candidate image of one view (pixels already reduced to what the manifest needs)."""

    path: Path
    frame: int | None
    shape: tuple[int, int]
    counts: int
    lossy: bool
    flags: list[str]
    order: tuple[Any, ...]
    source: str = ""  # what named the view: a header field, the file name, the image, the user
    logit: float | None = None  # the image recogniser's log-odds of ANT (one-view files it named)
    quarter_turns: int = 0  # turned upright / head-up by ingest, 90° steps ccw (scintilab.orientation)

    @property
    def stored_shape(self) -> tuple[int, int]:
        """(rows, columns) as stored: what an annotation drawn on the file measures."""
        return self.shape if self.quarter_turns % 2 == 0 else (self.shape[1], self.shape[0])


@dataclass
class FileRec:
    """What ingest keeps of one readable file (no pixel arrays)."""

    path: Path
    group: str  # StudyInstanceUID, or the raster base path
    patient_id: str
    study_ids: tuple[str, ...]  # ids a label sheet may use for the study
    study_date: _dt.date | None
    spacing: tuple[float, float]
    layout: str
    views: dict[str, ViewRec]
    spacing_known: bool = True
    manufacturer: str = ""  # Manufacturer (0008,0070); empty for PNG/TIFF
    model: str = ""  # ManufacturerModelName (0008,1090)


# --------------------------------------------------------------------------------------
# Paths and the folder walk
# --------------------------------------------------------------------------------------


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` for messages (never an absolute path if avoidable).

    Bytes of a file name that are not UTF-8 are shown as ``\\xNN`` escapes, so the text can
    be printed and written to CSV.
    """
    try:
        text = path.relative_to(root).as_posix()
    except ValueError:
        text = path.name
    return _printable(text)


def _printable(text: str) -> str:
    """``text`` with undecodable file-name bytes (surrogate escapes) as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def odd_path(path: Path) -> str | None:
    """Why a walked path cannot be read as an image file, or None when it can be tried."""
    if _printable(str(path)) != str(path):
        return "file name is not valid UTF-8: rename the file (or its folder) to read it"
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "symbolic link loop: skipped"
        except OSError as exc:
            if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40:
                return "symbolic link loop: skipped"
        return "broken symbolic link (its target does not exist): skipped"
    return None


def resolved_path(path: Path) -> Path:
    """``path.resolve()``, or its absolute form when resolving fails (a symlink loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def walk_files(source: Path) -> list[Path]:
    """Every file under ``source`` in a stable order (names sorted); hidden files and folders left out."""
    files = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            files.append(Path(dirpath) / name)
    return files


# --------------------------------------------------------------------------------------
# One record per file
# --------------------------------------------------------------------------------------


def _number(value: Any) -> int:
    """A SeriesNumber / InstanceNumber for ordering; a missing or garbled one counts as 0."""
    try:
        return int(str(value).strip() or 0)
    except (TypeError, ValueError):
        return 0


def dicom_rec(df: DicomFile) -> FileRec:
    """What ingest keeps of one read DICOM file: one :class:`ViewRec` per view it holds."""
    series = df.meta.get("series_number")
    instance = df.meta.get("instance_number")
    views = {}
    for view, img in df.views.items():
        views[view] = ViewRec(
            path=df.path,
            frame=df.frames[view] if df.meta.get("n_frames", 1) > 1 else None,
            shape=(int(img.shape[0]), int(img.shape[1])),
            counts=int(img.sum(dtype=np.int64)),
            lossy=df.lossy,
            flags=list(df.flags),
            order=(df.lossy, _number(series), _number(instance), str(df.path)),
            source=str(df.meta.get("view_source", "")),
            logit=df.meta.get("view_logit"),
            quarter_turns=int(df.meta.get("quarter_turns", 0)),
        )
    return FileRec(
        path=df.path,
        group=df.study_uid,
        patient_id=df.patient_id,
        study_ids=tuple(x for x in (df.study_id, df.study_uid) if x),
        study_date=df.study_date,
        spacing=df.pixel_spacing,
        layout="multiframe" if df.meta.get("n_frames", 1) > 1 else "pair",
        views=views,
        spacing_known=not any(f.startswith(SPACING_ASSUMED) for f in df.flags),
        manufacturer=str(df.meta.get("manufacturer", "") or ""),
        model=str(df.meta.get("model", "") or ""),
    )


def raster_base(path: Path) -> str:
    """The study name of a raster view file: its stem without the view token."""
    stem = Path(path).stem
    base = re.sub(r"(?i)[_\-. ]?(ant|anterior|post|posterior)$", "", stem)
    return base or stem


def raster_rec(path: Path, root: Path, spacing: tuple[float, float]) -> FileRec:
    """What ingest keeps of one PNG/TIFF view file: its view from the file name, ``spacing`` assumed.

    Files in one folder with the same :func:`raster_base` are one study.

    Raises:
        InputError: the file name names no view, or the file cannot be read.
    """
    view = view_from_name(path.name)
    if view is None:
        raise InputError(path, "cannot tell the view: the file name does not end in ANT or POST")
    img, flags = read_raster(path)
    base = raster_base(path)
    group = (display_path(path.parent, root) + "/" + base).lstrip("./") if path.parent != root else base
    return FileRec(
        path=path,
        group="raster:" + group,
        patient_id=base,
        study_ids=(base, path.stem, path.name),
        study_date=None,
        spacing=spacing,
        layout="png" if path.suffix.lower() == ".png" else "tiff",
        views={
            view: ViewRec(
                path,
                None,
                (int(img.shape[0]), int(img.shape[1])),
                int(img.sum(dtype=np.int64)),
                False,
                flags,
                (False, 0, 0, str(path)),
            )
        },
        spacing_known=False,
    )
