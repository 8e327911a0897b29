"""Cohort ingest: a folder of DICOM (or 16-bit PNG/TIFF) files -> one manifest row per study.

``scintilab ingest DICOM_DIR [--labels labels.csv] [--annotations DIR] --out manifest.csv``
walks the folder tree, reads every file once, groups files into studies by
StudyInstanceUID (0020,000D), picks one image per view (the lossless copy when a view
was exported twice), joins labels (NoMet / ADMet / nADMet, keyed by patient or study id)
and LabelMe annotations, and writes the manifest described in ``docs/CONVENTIONS.md``.

Bad items never stop the batch: each is skipped and reported as ``(path, reason)``.
Studies kept with a remark (one view only, no label, clipped pixels, annotation
problems) carry ``status == "flagged"`` and the remarks in ``flags``; clean studies carry
``status == "ok"``.

Only pseudonymous keys reach the manifest and the printed summary: raw PatientID,
StudyID and StudyInstanceUID are used in memory to group files and join label sheets,
and never written. Input files are opened for reading only.

:func:`load_cohort` turns a manifest back into a lazy sequence of
:class:`~scintilab.study.Study` whose pixels are read when a study is accessed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from scintilab.cohorts import EXPECTED, MANIFEST_NAME, SIDECAR_SUFFIXES, has_images, manifest_of
from scintilab.dicomio import SPACING_ASSUMED, DicomFile, read_file
from scintilab.errors import EXIT_FAILED, EXIT_USAGE, InputError, partial_exit
from scintilab.labelme import is_lesion, read_labelme, view_from_name
from scintilab.orientation import format_turned, parse_turned, rotate, rotate_points
from scintilab.outputs import OutputFile, write_csv
from scintilab.pseudonym import patient_key as _patient_key
from scintilab.pseudonym import study_key as _study_key
from scintilab.raster import is_raster, read_raster
from scintilab.study import CLASSES, VIEWS, Shape, Study

#: Manifest columns, in order (docs/CONVENTIONS.md).
MANIFEST_COLUMNS: tuple[str, ...] = (
    "study_key",
    "patient_key",
    "study_date",
    "label",
    "views",
    "layout",
    "rows",
    "cols",
    "spacing_row",
    "spacing_col",
    "counts_ant",
    "counts_post",
    "lesion_count",
    "ant_path",
    "post_path",
    "ant_frame",
    "post_frame",
    "annotation_ant",
    "annotation_post",
    "status",
    "flags",
    "manufacturer",
    "model",
    "view_source",
    "turned",
)
#: Skipped items (``path, reason``; paths relative to the scanned folder) beside the manifest.
SKIPPED_FILE = "skipped.csv"
#: Separator between flags in the manifest's ``flags`` column.
FLAG_SEP = "; "
# Sidecar files that live beside images and are not images themselves: never reported.
_LABEL_ALIASES = {c.lower(): c for c in CLASSES}
_LABEL_ALIASES.update({"no_met": "NoMet", "no met": "NoMet", "ad_met": "ADMet", "nad_met": "nADMet"})
_STR_COLUMNS = (
    "study_key",
    "patient_key",
    "study_date",
    "label",
    "views",
    "layout",
    "ant_path",
    "post_path",
    "annotation_ant",
    "annotation_post",
    "status",
    "flags",
    "manufacturer",
    "model",
    "view_source",
    "turned",
)


@dataclass
class _ViewRec:
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
class _FileRec:
    """What ingest keeps of one readable file (no pixel arrays)."""

    path: Path
    group: str  # StudyInstanceUID, or the raster base path
    patient_id: str
    study_ids: tuple[str, ...]  # ids a label sheet may use for the study
    study_date: _dt.date | None
    spacing: tuple[float, float]
    layout: str
    views: dict[str, _ViewRec]
    spacing_known: bool = True
    manufacturer: str = ""  # Manufacturer (0008,0070); empty for PNG/TIFF
    model: str = ""  # ManufacturerModelName (0008,1090)


@dataclass
class IngestResult:
    """What :func:`ingest` produced.

    Attributes:
        manifest: one row per kept study, columns :data:`MANIFEST_COLUMNS`.
        skipped: ``(path or item, reason)`` for every file, label row or annotation left out.
        out: the manifest file written, if any.
    """

    manifest: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    out: Path | None = None

    def summary(self, max_flagged: int = 50) -> str:
        """A plain-words report of what was kept and what was skipped, and why.

        Args:
            max_flagged: at most this many flagged studies are listed (all skipped items are).
        """
        m = self.manifest
        n = len(m)
        n_ok = int((m["status"] == "ok").sum()) if n else 0
        lines = [f"ingest: {n} studies kept ({n_ok} ok, {n - n_ok} flagged), {len(self.skipped)} item(s) skipped"]
        if n:
            n_pat = m["patient_key"].nunique()
            lines.append(
                f"  patients: {n_pat}; layouts: "
                + ", ".join(f"{k} {v}" for k, v in sorted(Counter(m["layout"]).items()))
            )
            labelled = m["label"].fillna("").astype(str)
            counts = Counter(x for x in labelled if x)
            lines.append(
                "  labels: "
                + (", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES))
                + f", unlabelled {int((labelled == '').sum())}"
            )
            one_view = int((m["views"] != "ANT+POST").sum())
            if one_view:
                lines.append(f"  one view only: {one_view}")
            turned = int((m["turned"].fillna("").astype(str) != "").sum()) if "turned" in m else 0
            if turned:
                lines.append(f"  turned head-up (stored head down): {turned}")
            annotated = m["lesion_count"].notna()
            if annotated.any():
                lines.append(
                    f"  annotated: {int(annotated.sum())} studies, "
                    f"{int(m.loc[annotated, 'lesion_count'].sum())} lesion shapes"
                )
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {what}: {why}" for what, why in self.skipped]
        flagged = m[m["status"] != "ok"] if n else m
        if len(flagged):
            lines.append("flagged (kept):")
            lines += [
                f"  {key}: {flags}"
                for key, flags in zip(flagged["study_key"][:max_flagged], flagged["flags"][:max_flagged])
            ]
            if len(flagged) > max_flagged:
                lines.append(f"  ... and {len(flagged) - max_flagged} more (see the manifest's flags column)")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
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


def _odd_path(path: Path) -> str | None:
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


def _resolved(path: Path) -> Path:
    """``path.resolve()``, or its absolute form when resolving fails (a symlink loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _dicom_rec(df: DicomFile) -> _FileRec:
    series = df.meta.get("series_number")
    instance = df.meta.get("instance_number")
    views = {}
    for view, img in df.views.items():
        views[view] = _ViewRec(
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
    return _FileRec(
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


def _raster_rec(path: Path, root: Path, spacing: tuple[float, float]) -> _FileRec:
    view = view_from_name(path.name)
    if view is None:
        raise InputError(path, "cannot tell the view: the file name does not end in ANT or POST")
    img, flags = read_raster(path)
    base = raster_base(path)
    group = (_rel(path.parent, root) + "/" + base).lstrip("./") if path.parent != root else base
    return _FileRec(
        path=path,
        group="raster:" + group,
        patient_id=base,
        study_ids=(base, path.stem, path.name),
        study_date=None,
        spacing=spacing,
        layout="png" if path.suffix.lower() == ".png" else "tiff",
        views={
            view: _ViewRec(
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


def _walk(source: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            files.append(Path(dirpath) / name)
    return files


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def read_labels(path: Path) -> pd.DataFrame:
    """Read a label sheet into columns ``row, patient_id, study_id, label`` (strings).

    Accepts the hospital layout ``patient_id, study_id, label`` and the public-dataset
    layout keyed by image name (column ``image``, ``filename`` or ``name``, read as a study
    id); column names are matched case-insensitively.

    Raises:
        InputError: the sheet cannot be read or has no label column / id column.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise InputError(path, "label sheet not found") from exc
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
        raise InputError(path, f"unreadable label sheet: {exc}") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    label_col = next((cols[c] for c in ("label", "class", "diagnosis", "category") if c in cols), None)
    if label_col is None:
        raise InputError(path, f"no label column (expected 'label'); columns: {list(raw.columns)}")
    pid = next((cols[c] for c in ("patient_id", "patientid", "patient", "patient_name") if c in cols), None)
    sid = next(
        (
            cols[c]
            for c in ("study_id", "studyid", "study", "study_uid", "image", "filename", "file", "image_name", "name")
            if c in cols
        ),
        None,
    )
    if pid is None and sid is None:
        raise InputError(path, "no id column (expected patient_id and/or study_id)")
    return pd.DataFrame(
        {
            "row": np.arange(2, len(raw) + 2),  # spreadsheet row numbers (header is row 1)
            "patient_id": raw[pid].str.strip() if pid else "",
            "study_id": raw[sid].str.strip() if sid else "",
            "label": raw[label_col].str.strip(),
        }
    )


def normalize_label(value: str) -> str | None:
    """``NoMet``/``ADMet``/``nADMet`` from a label cell (case-insensitive), else None."""
    return _LABEL_ALIASES.get(str(value).strip().lower())


def _join_labels(
    sheet: pd.DataFrame,
    studies: dict[str, dict[str, Any]],
    sheet_name: str,
    key: str | None,
    skipped: list[tuple[str, str]],
) -> dict[str, str | None]:
    """Label per study group; rows that match nothing or carry a bad label are reported."""
    by_study: dict[str, set[str]] = defaultdict(set)
    by_patient: dict[str, set[str]] = defaultdict(set)
    for group, info in studies.items():
        for sid in info["study_ids"]:
            by_study[sid.lower()].add(group)
        by_patient[info["patient_id"].lower()].add(group)
    study_labels: dict[str, set[str]] = defaultdict(set)
    patient_labels: dict[str, set[str]] = defaultdict(set)
    for row in sheet.itertuples():
        where = f"{sheet_name} row {row.row}"
        label = normalize_label(row.label)
        if label is None:
            skipped.append((where, f"label {row.label!r} is not one of {', '.join(CLASSES)}"))
            continue
        if row.study_id:
            groups = by_study.get(row.study_id.lower()) or by_study.get(Path(row.study_id).stem.lower())
            if not groups:
                skipped.append(
                    (
                        where,
                        f"names a study that is not in the folder ({_study_key(row.study_id, key)}): label not used",
                    )
                )
                continue
            if row.patient_id:
                # StudyID is often unique only per patient: keep the studies of this patient.
                groups = {g for g in groups if studies[g]["patient_id"].lower() == row.patient_id.lower()}
                if not groups:
                    skipped.append((where, "study id and patient id do not belong together: label not used"))
                    continue
            for g in groups:
                study_labels[g].add(label)
        elif row.patient_id:
            groups = by_patient.get(row.patient_id.lower())
            if not groups:
                skipped.append(
                    (
                        where,
                        f"names a patient that is not in the folder "
                        f"({_patient_key(row.patient_id, key)}): label not used",
                    )
                )
                continue
            for g in groups:
                patient_labels[g].add(label)
        else:
            skipped.append((where, "no patient or study id"))
    out: dict[str, str | None] = {}
    for group in studies:
        # A study-level label beats a patient-level one: patients change class over time.
        found = study_labels.get(group) or patient_labels.get(group) or set()
        by_pat = patient_labels.get(group) or set()
        if study_labels.get(group) and by_pat and by_pat != study_labels[group]:
            studies[group]["flags"].append(
                f"label sheet: the study's row says {'/'.join(sorted(study_labels[group]))}, the patient's row "
                f"says {'/'.join(sorted(by_pat))}: the study's row is used"
            )
        if len(found) > 1:
            studies[group]["flags"].append(
                f"conflicting labels in the label sheet ({'/'.join(sorted(found))}): left unlabelled"
            )
            out[group] = None
        else:
            out[group] = next(iter(found), None)
    return out


# --------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------


def _index_annotations(root: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = defaultdict(list)
    for path in _walk(root):
        if path.suffix.lower() == ".json" and _odd_path(path) is None:
            index[path.stem.lower()].append(path)
    return index


def _image_names(rec: _ViewRec, view: str, ann: Path) -> set[str]:
    """Names (lower-case stems) an annotation's ``imagePath`` may give for ``rec``'s view.

    The DICOM file itself, its raster base, either with the view appended (an annotated
    PNG export of one view), or the annotation's own name.
    """
    stem, base = rec.path.stem, raster_base(rec.path)
    return {n.lower() for n in (stem, base, f"{stem}_{view}", f"{base}_{view}", ann.stem)}


def _annotation_for(
    rec: _ViewRec, view: str, index: dict[str, list[Path]], source: Path, ann_root: Path | None
) -> Path | None:
    stem = rec.path.stem
    base = raster_base(rec.path)
    names = [f"{stem}_{view}", f"{base}_{view}"]
    if view_from_name(stem) == view:
        names.append(stem)
    for name in names:
        hits = index.get(name.lower(), [])
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1 and ann_root is not None:
            # Same name in several case folders: take the one mirroring the image's folder.
            rel_parent = _rel(rec.path.parent, source)
            for hit in hits:
                if _rel(hit.parent, ann_root) == rel_parent:
                    return hit
        if hits:
            return hits[0]
    return None


# --------------------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------------------


def _number(value: Any) -> int:
    """A SeriesNumber / InstanceNumber for ordering; a missing or garbled one counts as 0."""
    try:
        return int(str(value).strip() or 0)
    except (TypeError, ValueError):
        return 0


def _choose(cands: list[_ViewRec], view: str, flags: list[str]) -> _ViewRec:
    """Keep one image per view: lossless before lossy, then lowest series/instance."""
    cands = sorted(cands, key=lambda r: r.order)
    kept = cands[0]
    if len(cands) > 1:
        n_lossy = sum(c.lossy for c in cands[1:])
        if not kept.lossy and n_lossy:
            flags.append(f"{view}: lossless and lossy copies found; kept the lossless one, ignored {n_lossy} lossy")
        n_other = len(cands) - 1 - (n_lossy if not kept.lossy else 0)
        if n_other:
            same = all(c.shape == kept.shape and c.counts == kept.counts for c in cands[1:])
            flags.append(
                f"{view}: {n_other + 1} images of this view"
                + (" (identical), kept one" if same else ", kept the first series: check for mislabelled views")
            )
        # name the files left out (their names only: folders of exports can carry identity)
        unused = sorted({c.path.name for c in cands[1:] if c.path != kept.path})
        if unused:
            flags.append(
                f"{view}: kept {kept.path.name}, not used: {', '.join(unused[:20])}"
                + (f" and {len(unused) - 20} more" if len(unused) > 20 else "")
            )
    elif kept.lossy:
        flags.append(f"{view}: only a lossy copy")
    return kept


def _relpath(path: Path | None, base: Path | None) -> str:
    if path is None:
        return ""
    if base is None:
        return str(Path(path).resolve())
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:  # different drive on Windows
        return str(Path(path).resolve())


def _decide_pair(recs: list[_FileRec]) -> None:
    """Two one-view files of one study that only the image named: decide them together.

    One is anterior and the other posterior, so the difference of their log-odds decides
    (the patient's habitus and counts cancel); this overrules two separate calls, which
    may both have said the same view.
    """
    from scintilab.dicom_views import view_flag
    from scintilab.viewrec import CONFIDENCE

    if len(recs) != 2 or any(len(r.views) != 1 for r in recs):
        return
    (a,), (b,) = (r.views.values() for r in recs)
    if a.logit is None or b.logit is None:
        return
    p_a = float(1.0 / (1.0 + np.exp(-(a.logit - b.logit))))
    first = "ANT" if p_a >= 0.5 else "POST"
    p = max(p_a, 1.0 - p_a)
    flag = view_flag(first, p, p >= CONFIDENCE, pair=True)
    for rec, view in zip(recs, (first, "POST" if first == "ANT" else "ANT")):
        (old,) = rec.views.values()
        old.flags = [f for f in old.flags if not f.startswith(("view inferred", "view unknown"))]
        if view == first:  # one flag for the study, on the first file
            old.flags.append(flag)
        old.source = f"image, as a pair (p {p:.2f})"
        rec.views = {view: old}


def _view_sources(chosen: dict[str, _ViewRec]) -> str:
    """The manifest's ``view_source``: what named each kept view."""
    found = {v: chosen[v].source for v in VIEWS if v in chosen}
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return "; ".join(f"{v}: {src}" for v, src in found.items())


def ingest(
    source_dir: Path,
    labels: Path | None = None,
    annotations: Path | None = None,
    out: Path | None = None,
    *,
    key: str | None = None,
    progress: bool = True,
    raster_spacing: tuple[float, float] = (2.3, 2.3),
    overwrite: bool = True,
    assume_view: str | None = None,
) -> IngestResult:
    """Walk a folder of DICOM / PNG / TIFF bone scans and build the study manifest.

    Args:
        source_dir: folder tree holding the images (any depth, any folder names).
        labels: optional label sheet (``patient_id, study_id, label``; or image-name keyed).
        annotations: optional folder of LabelMe JSON files (``<stem>_ANT.json`` ...); when
            None, JSON files inside ``source_dir`` are used.
        out: manifest CSV to write; paths in it are then relative to its folder.
        key: pseudonym key (default ``$SCINTILAB_PSEUDONYM_KEY`` or the project default).
        progress: show a tqdm progress bar on stderr.
        raster_spacing: pixel spacing (mm) assumed for PNG/TIFF, which do not carry one.
        overwrite: replace an existing ``out`` (the command line passes ``--overwrite``).
        assume_view: ``"ANT"`` or ``"POST"`` for one-view files whose header and file name
            do not name the view (overrides the image recogniser; see
            :func:`scintilab.dicomio.read_file`).

    Returns:
        An :class:`IngestResult` (manifest, skipped items with reasons).

    Raises:
        InputError: ``source_dir`` is missing, or the label sheet cannot be read.
        ValueError: ``out`` would overwrite an input file.
        InputError: ``out`` exists and ``overwrite`` is False, is a folder, or cannot be
            written (see :class:`scintilab.outputs.OutputFile`).
    """
    source = Path(source_dir)
    if not source.is_dir():
        raise InputError(source, "source folder not found")
    sheet = read_labels(Path(labels)) if labels is not None else None
    files = _walk(source)
    if out is not None:
        out = Path(out)
        # Inputs are never written: the manifest may not land on the label sheet or an image.
        protected = {_resolved(Path(p)) for p in (labels,) if p is not None}
        protected |= {_resolved(f) for f in files if f.suffix.lower() not in SIDECAR_SUFFIXES}
        if _resolved(out) in protected:
            raise ValueError(f"refusing to overwrite an input file: {out}")

    skipped: list[tuple[str, str]] = []
    records: list[_FileRec] = []
    from tqdm.auto import tqdm  # lazy: only ingest shows a bar

    for path in tqdm(files, desc="ingest", unit="file", disable=not progress, file=sys.stderr):
        suffix = path.suffix.lower()
        if suffix in SIDECAR_SUFFIXES:
            continue
        if path.name.upper() == "DICOMDIR":
            skipped.append((_rel(path, source), "DICOMDIR index file, not an image"))
            continue
        odd = _odd_path(path)
        if odd is not None:
            skipped.append((_rel(path, source), odd))
            continue
        try:
            if is_raster(path):
                records.append(_raster_rec(path, source, raster_spacing))
            else:
                records.append(_dicom_rec(read_file(path, assume_view=assume_view)))
        except InputError as err:
            skipped.append((_rel(path, source), err.problem))

    groups: dict[str, list[_FileRec]] = defaultdict(list)
    for rec in records:
        groups[rec.group].append(rec)

    studies: dict[str, dict[str, Any]] = {}
    for group, recs in groups.items():
        patients = sorted({r.patient_id for r in recs})
        skey = _study_key(group, key)
        if len(patients) > 1:
            pkeys = ", ".join(_patient_key(p, key) for p in patients)
            for r in recs:
                skipped.append(
                    (_rel(r.path, source), f"study {skey} mixes two patients ({pkeys}): whole study skipped")
                )
            continue
        _decide_pair(recs)
        flags: list[str] = []
        chosen: dict[str, _ViewRec] = {}
        for view in VIEWS:
            cands = [r.views[view] for r in recs if view in r.views]
            if cands:
                chosen[view] = _choose(cands, view, flags)
                # a two-frame file's findings are said once, under its first view
                flags += [
                    f"{view}: {f}"
                    for f in chosen[view].flags
                    if not any(
                        chosen[v].path == chosen[view].path and f in chosen[v].flags for v in chosen if v != view
                    )
                ]
        present = [v for v in VIEWS if v in chosen]
        if len(present) == 1:
            flags.insert(0, f"one view only ({present[0]}; {'POST' if present[0] == 'ANT' else 'ANT'} missing)")
        shapes = {chosen[v].shape for v in present}
        if len(shapes) > 1:
            flags.append("views differ in matrix size")
        rec0 = recs[0]
        if not rec0.spacing_known:
            flags.append(f"pixel spacing unknown: assumed {rec0.spacing[0]:g} x {rec0.spacing[1]:g} mm")
        kept_paths = {c.path for c in chosen.values()}
        layouts = {r.layout for r in recs if r.path in kept_paths}
        if layouts == {"multiframe"} and len(kept_paths) == 1:
            layout = "multiframe"
        elif layouts <= {"multiframe", "pair"}:
            layout = "pair" if len(kept_paths) > 1 or layouts == {"pair"} else "multiframe"
        else:
            layout = sorted(layouts)[0]
        dates = sorted({r.study_date for r in recs if r.study_date is not None})
        studies[group] = {
            "study_key": skey,
            "patient_key": _patient_key(rec0.patient_id, key),
            "patient_id": rec0.patient_id,
            "study_ids": tuple(sorted({s for r in recs for s in r.study_ids})),
            "study_date": dates[0] if dates else None,
            "chosen": chosen,
            "spacing": rec0.spacing,
            "layout": layout,
            "flags": flags,
            "manufacturer": next((r.manufacturer for r in recs if r.manufacturer), ""),
            "model": next((r.model for r in recs if r.model), ""),
        }

    labels_by_group: dict[str, str | None] = {}
    if sheet is not None:
        labels_by_group = _join_labels(sheet, studies, Path(labels).name, key, skipped)  # type: ignore[arg-type]

    ann_root = Path(annotations) if annotations is not None else None
    if ann_root is not None and not ann_root.is_dir():
        skipped.append((str(ann_root.name), "annotation folder not found: no annotations joined"))
        ann_index: dict[str, list[Path]] = {}
    else:
        ann_index = _index_annotations(ann_root if ann_root is not None else source)
    used_annotations: set[Path] = set()

    base = out.parent if out is not None else None
    rows = []
    for group, info in studies.items():
        chosen, flags = info["chosen"], info["flags"]
        if sheet is not None:
            label = labels_by_group.get(group)
            if label is None and not any(f.startswith("conflicting labels") for f in flags):
                flags.append("no label in the label sheet")
        else:
            label = None
        ann_paths: dict[str, Path | None] = {}
        lesion_total: int | None = None
        for view in VIEWS:
            rec = chosen.get(view)
            ann = _annotation_for(rec, view, ann_index, source, ann_root) if rec is not None else None
            ann_paths[view] = None
            if ann is None:
                continue
            used_annotations.add(ann)
            try:
                shapes, problems = read_labelme(
                    ann, image_hw=rec.stored_shape, view=view, image_names=_image_names(rec, view, ann)
                )
            except InputError as err:
                skipped.append((_rel(ann, ann_root or source), err.problem))
                flags.append(f"{view}: annotation unreadable, not used")
                continue
            ann_paths[view] = ann
            flags += [f"{view} annotation: {p}" for p in problems]
            lesion_total = (lesion_total or 0) + sum(is_lesion(s) for s in shapes)
        ant, post = chosen.get("ANT"), chosen.get("POST")
        any_rec = ant or post
        rows.append(
            {
                "study_key": info["study_key"],
                "patient_key": info["patient_key"],
                "study_date": info["study_date"].isoformat() if info["study_date"] else "",
                "label": label or "",
                "views": "+".join(v for v in VIEWS if v in chosen),
                "layout": info["layout"],
                "rows": any_rec.shape[0],
                "cols": any_rec.shape[1],
                "spacing_row": float(info["spacing"][0]),
                "spacing_col": float(info["spacing"][1]),
                "counts_ant": ant.counts if ant else None,
                "counts_post": post.counts if post else None,
                "lesion_count": lesion_total,
                "ant_path": _relpath(ant.path if ant else None, base),
                "post_path": _relpath(post.path if post else None, base),
                "ant_frame": ant.frame if ant else None,
                "post_frame": post.frame if post else None,
                "annotation_ant": _relpath(ann_paths["ANT"], base),
                "annotation_post": _relpath(ann_paths["POST"], base),
                "status": "flagged" if flags else "ok",
                "flags": FLAG_SEP.join(f.replace(";", ",") for f in flags),
                # the scanner of the kept views' file (the data card counts studies per scanner)
                "manufacturer": info["manufacturer"],
                "model": info["model"],
                "view_source": _view_sources(chosen),
                "turned": format_turned({v: chosen[v].quarter_turns for v in VIEWS if v in chosen}),
            }
        )
    for _name, paths in sorted(ann_index.items()):
        for p in paths:
            if p not in used_annotations and ann_root is not None:
                skipped.append((_rel(p, ann_root), "annotation matches no kept study image: not used"))

    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for col in ("counts_ant", "counts_post", "lesion_count", "ant_frame", "post_frame"):
        manifest[col] = manifest[col].astype("Int64")
    manifest = manifest.sort_values(["patient_key", "study_date", "study_key"], kind="stable").reset_index(drop=True)
    # Where the relative paths start, so load_cohort(result.manifest) finds the files.
    manifest.attrs["root"] = str(base.resolve()) if base is not None else ""
    if out is not None:
        manifest.attrs["path"] = str(_resolved(out))
        side = [SKIPPED_FILE] if _resolved(out.parent / SKIPPED_FILE) not in protected else []
        inputs = {"source": source, "labels": labels, "annotations": annotations}
        # Written under temporary names and renamed, with a record tying skipped.csv to this
        # manifest (the audit reads it only then): no half-written manifest, no stale list.
        with OutputFile(out, "ingest", overwrite=overwrite, side=side, inputs=inputs):
            write_csv(manifest, out)
            if side:  # always written (header only when nothing was skipped)
                write_csv(pd.DataFrame(skipped, columns=["path", "reason"]), out.parent / SKIPPED_FILE)
    return IngestResult(manifest=manifest, skipped=skipped, out=out)


# --------------------------------------------------------------------------------------
# Lazy cohort
# --------------------------------------------------------------------------------------


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest CSV with the column types ingest wrote (a cohort folder: its manifest.csv)."""
    path = manifest_of(path)
    try:
        df = pd.read_csv(
            path,
            dtype={c: str for c in _STR_COLUMNS},
            keep_default_na=False,
            na_values={
                c: [""]
                for c in ("counts_ant", "counts_post", "lesion_count", "ant_frame", "post_frame", "rows", "cols")
            },
        )
    except FileNotFoundError as exc:
        raise InputError(path, "manifest not found") from exc
    missing = [c for c in ("study_key", "patient_key", "ant_path", "post_path") if c not in df.columns]
    if missing:
        raise InputError(path, f"not a scintilab manifest: missing columns {missing}")
    for col in ("counts_ant", "counts_post", "lesion_count", "ant_frame", "post_frame"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    return df


class Cohort(Sequence[Study]):
    """A lazy sequence of :class:`Study` backed by a manifest: pixels are read on access.

    ``len(cohort)``, ``cohort[i]`` (a Study), ``cohort[a:b]`` (a smaller Cohort) and
    iteration work; ``cohort.manifest`` is the manifest DataFrame (row ``i`` is study ``i``).
    """

    def __init__(self, manifest: pd.DataFrame, root: Path | None = None, *, with_shapes: bool = True) -> None:
        self.manifest = manifest.reset_index(drop=True)
        self.root = Path(root) if root is not None else None
        self.with_shapes = with_shapes

    def __len__(self) -> int:
        return len(self.manifest)

    @overload
    def __getitem__(self, index: int) -> Study: ...

    @overload
    def __getitem__(self, index: slice) -> Cohort: ...

    def __getitem__(self, index: int | slice) -> Study | Cohort:
        if isinstance(index, slice):
            return Cohort(self.manifest.iloc[index], self.root, with_shapes=self.with_shapes)
        if not -len(self) <= index < len(self):
            raise IndexError(f"study index {index} out of range for {len(self)} studies")
        return self.load_row(self.manifest.iloc[int(index)])

    def __iter__(self) -> Iterator[Study]:
        for i in range(len(self)):
            yield self[i]

    def subset(self, mask_or_index: Any) -> Cohort:
        """A Cohort of the manifest rows selected by a boolean mask or index list."""
        sub = (
            self.manifest[mask_or_index]
            if str(getattr(mask_or_index, "dtype", "")) == "bool"
            else self.manifest.iloc[list(mask_or_index)]
        )
        return Cohort(sub, self.root, with_shapes=self.with_shapes)

    def by_key(self, study_key: str) -> Study:
        """The study with this pseudonymous key."""
        hits = np.flatnonzero(self.manifest["study_key"].to_numpy() == study_key)
        if not len(hits):
            raise KeyError(study_key)
        return self[int(hits[0])]

    def _path(self, value: Any) -> Path | None:
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        if not text:
            return None
        p = Path(text)
        return p if p.is_absolute() or self.root is None else self.root / p

    def load_row(self, row: pd.Series) -> Study:
        """Read one manifest row into a :class:`Study` (pixels and, optionally, shapes)."""
        images: dict[str, np.ndarray | None] = {}
        cache: dict[Path, dict[str, np.ndarray]] = {}
        paths: list[Path] = []
        for view in VIEWS:
            path = self._path(row.get(f"{view.lower()}_path"))
            if path is None:
                images[view] = None
                continue
            if path not in cache:
                if is_raster(path):
                    cache[path] = {view: read_raster(path)[0]}
                else:
                    cache[path] = _views_as_ingested(read_file(path, orient=False), row)
                paths.append(path)
            if view not in cache[path]:
                raise InputError(path, f"the manifest says this file holds {view}, it does not")
            images[view] = cache[path][view]
        turns = parse_turned(row.get("turned", ""))
        for view, k in turns.items():
            if images.get(view) is not None:
                images[view] = rotate(images[view], k)
        shapes: list[Shape] = []
        if self.with_shapes:
            for view in VIEWS:
                ann = self._path(row.get(f"annotation_{view.lower()}"))
                img = images[view]
                if ann is None or img is None:
                    continue
                k = turns.get(view, 0)
                stored_hw = img.shape if k % 2 == 0 else img.shape[::-1]
                got, _ = read_labelme(ann, image_hw=stored_hw, view=view)
                if k:  # drawn on the stored image: turn them with it
                    got = [replace(s, points=rotate_points(s.points, stored_hw, k)) for s in got]
                shapes += got
        date_text = str(row.get("study_date") or "")
        flags_text = str(row.get("flags") or "")
        any_img = images["ANT"] if images["ANT"] is not None else images["POST"]
        return Study(
            study_key=str(row["study_key"]),
            patient_key=str(row["patient_key"]),
            anterior=images["ANT"],
            posterior=images["POST"],
            pixel_spacing=(float(row.get("spacing_row", 2.3)), float(row.get("spacing_col", 2.3))),
            label=normalize_label(row.get("label") or "") if row.get("label") else None,
            shapes=shapes,
            study_date=_dt.date.fromisoformat(date_text) if date_text else None,
            source_paths=paths,
            flags=[f for f in flags_text.split(FLAG_SEP) if f],
            meta={
                "matrix": tuple(int(s) for s in any_img.shape) if any_img is not None else None,
                "counts_ant": int(images["ANT"].sum(dtype=np.int64)) if images["ANT"] is not None else None,
                "counts_post": int(images["POST"].sum(dtype=np.int64)) if images["POST"] is not None else None,
                "layout": row.get("layout"),
                "lesion_count": None if pd.isna(row.get("lesion_count")) else int(row.get("lesion_count")),
                "status": row.get("status"),
                "quarter_turns": turns,
            },
        )


def _views_as_ingested(df: DicomFile, row: pd.Series) -> dict[str, np.ndarray]:
    """A file's views as the manifest names them.

    A file the header or its name named reads the same every time; one that only the image
    (or ``--assume-view``) named was decided at ingest, perhaps as a pair, so the manifest's
    view and frame are taken as they stand.
    """
    from scintilab.dicom_views import INFERRED_SOURCES

    if not str(df.meta.get("view_source", "")).startswith(INFERRED_SOURCES):
        return df.views
    frames = sorted(df.views.items(), key=lambda kv: df.frames[kv[0]])
    out: dict[str, np.ndarray] = {}
    for view in VIEWS:
        if df.path.name != Path(str(row.get(f"{view.lower()}_path") or "")).name:
            continue
        frame = row.get(f"{view.lower()}_frame")
        i = 0 if frame is None or pd.isna(frame) else int(frame)
        if i < len(frames):
            out[view] = frames[i][1]
    return out


def load_cohort(manifest: Path | str | pd.DataFrame, *, with_shapes: bool = True, root: Path | None = None) -> Cohort:
    """A lazy sequence of :class:`Study` from a manifest (pixels read on access).

    Args:
        manifest: the manifest CSV written by :func:`ingest`, its DataFrame, or a cohort
            folder (its ``manifest.csv``; ingested on the spot when it has none, see
            :func:`resolve_manifest`).
        with_shapes: also read the LabelMe annotations into ``Study.shapes``.
        root: folder the manifest's relative paths start from (default: the CSV's folder;
            for a DataFrame, ``manifest.attrs["root"]`` as set by :func:`ingest`, else the
            current folder).

    Returns:
        A :class:`Cohort`.
    """
    if isinstance(manifest, pd.DataFrame):
        if root is None and manifest.attrs.get("root"):
            root = Path(manifest.attrs["root"])
        return Cohort(manifest, root, with_shapes=with_shapes)
    path = resolve_manifest(manifest)
    return Cohort(read_manifest(path), root if root is not None else path.parent, with_shapes=with_shapes)


def resolve_manifest(
    path: str | os.PathLike[str], *, progress: bool = False, note: Callable[[str], None] | None = print
) -> Path:
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
        raise InputError(
            p,
            f"holds no {MANIFEST_NAME} and is read-only: run 'scintilab ingest {p} --out "
            f"ELSEWHERE/{MANIFEST_NAME}' and pass that manifest",
        )
    labels, annotations = p / "labels.csv", p / "annotations"
    if note is not None:
        note(f"{p}: no {MANIFEST_NAME}; ingesting {source} into {manifest} (the images are only read)")
    ingest(
        source,
        labels if labels.is_file() else None,
        annotations if annotations.is_dir() else None,
        manifest,
        progress=progress,
    )
    return manifest


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def cli_main(argv: list[str]) -> int:
    """``scintilab ingest DICOM_DIR [--labels CSV] [--annotations DIR] --out manifest.csv``."""
    parser = argparse.ArgumentParser(
        prog="scintilab ingest",
        description="Walk a folder of DICOM (or 16-bit PNG/TIFF) bone scans, group files into "
        "studies, join labels and LabelMe annotations, and write a manifest with "
        "pseudonymous ids. Set SCINTILAB_PSEUDONYM_KEY to your own secret for real data.",
    )
    parser.add_argument("source", type=Path, help="folder holding the images (any depth)")
    parser.add_argument("--labels", type=Path, default=None, help="label sheet CSV: patient_id, study_id, label")
    parser.add_argument("--annotations", type=Path, default=None, help="folder of LabelMe JSON files")
    parser.add_argument("--out", type=Path, required=True, help="manifest CSV to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing manifest at --out")
    parser.add_argument(
        "--assume-view",
        choices=VIEWS,
        default=None,
        help="the view of one-view files whose header and file name do not name it "
        "(default: recognised from the image, flagged with its probability)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        result = ingest(
            args.source,
            args.labels,
            args.annotations,
            args.out,
            progress=not args.quiet,
            overwrite=args.overwrite,
            assume_view=args.assume_view,
        )
    except (InputError, ValueError) as err:
        print(f"scintilab ingest: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary())
    print(f"manifest: {args.out} ({len(result.manifest)} studies)")
    if not len(result.manifest):
        return EXIT_FAILED
    return partial_exit("ingest", len(result.skipped), "item(s) skipped", args.out.parent / SKIPPED_FILE)
