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

:func:`load_cohort` turns a manifest, or a cohort folder (ingested on the spot by
:func:`resolve_manifest` when it has none), back into a lazy sequence of
:class:`~scintilab.study.Study` whose pixels are read when a study is accessed.

The parts live beside it: :mod:`scintilab.scan_files` (the folder walk, one record per
file), :mod:`scintilab.labels_csv` (the label sheet), :mod:`scintilab.annotation_match`
(which LabelMe file belongs to which view) and :mod:`scintilab.manifest` (the manifest's
columns, reading it back, the lazy :class:`~scintilab.manifest.Cohort`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scintilab.annotation_match import annotation_for, annotation_image_names, index_annotations
from scintilab.cohorts import EXPECTED, MANIFEST_NAME, SIDECAR_SUFFIXES, has_images, manifest_of
from scintilab.dicom_views import view_flag
from scintilab.dicomio import read_file
from scintilab.errors import EXIT_FAILED, EXIT_USAGE, InputError, partial_exit
from scintilab.labelme import is_lesion, read_labelme
from scintilab.labels_csv import join_labels, read_labels

# Re-exported (see __all__) besides their use here: MANIFEST_COLUMNS, Cohort and read_manifest,
# which tests import from scintilab.ingest (test_ingest, test_audit); load_cohort, which the
# notebooks import, is defined here.
from scintilab.manifest import FLAG_SEP, MANIFEST_COLUMNS, SKIPPED_FILE, Cohort, read_manifest
from scintilab.orientation import format_turned
from scintilab.outputs import OutputFile, write_csv
from scintilab.pseudonym import patient_key as _patient_key
from scintilab.pseudonym import study_key as _study_key
from scintilab.raster import is_raster
from scintilab.scan_files import (
    FileRec,
    ViewRec,
    dicom_rec,
    display_path,
    odd_path,
    raster_rec,
    resolved_path,
    walk_files,
)
from scintilab.study import CLASSES, VIEWS
from scintilab.viewrec import CONFIDENCE


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
# Ingest
# --------------------------------------------------------------------------------------


def _choose(cands: list[ViewRec], view: str, flags: list[str]) -> ViewRec:
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


def _decide_pair(recs: list[FileRec]) -> None:
    """Two one-view files of one study that only the image named: decide them together.

    One is anterior and the other posterior, so the difference of their log-odds decides
    (the patient's habitus and counts cancel); this overrules two separate calls, which
    may both have said the same view.
    """
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


def _view_sources(chosen: dict[str, ViewRec]) -> str:
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
    files = walk_files(source)
    if out is not None:
        out = Path(out)
        # Inputs are never written: the manifest may not land on the label sheet or an image.
        protected = {resolved_path(Path(p)) for p in (labels,) if p is not None}
        protected |= {resolved_path(f) for f in files if f.suffix.lower() not in SIDECAR_SUFFIXES}
        if resolved_path(out) in protected:
            raise ValueError(f"refusing to overwrite an input file: {out}")

    skipped: list[tuple[str, str]] = []
    records: list[FileRec] = []
    from tqdm.auto import tqdm  # lazy: only ingest shows a bar

    for path in tqdm(files, desc="ingest", unit="file", disable=not progress, file=sys.stderr):
        suffix = path.suffix.lower()
        if suffix in SIDECAR_SUFFIXES:
            continue
        if path.name.upper() == "DICOMDIR":
            skipped.append((display_path(path, source), "DICOMDIR index file, not an image"))
            continue
        odd = odd_path(path)
        if odd is not None:
            skipped.append((display_path(path, source), odd))
            continue
        try:
            if is_raster(path):
                records.append(raster_rec(path, source, raster_spacing))
            else:
                records.append(dicom_rec(read_file(path, assume_view=assume_view)))
        except InputError as err:
            skipped.append((display_path(path, source), err.problem))

    groups: dict[str, list[FileRec]] = defaultdict(list)
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
                    (display_path(r.path, source), f"study {skey} mixes two patients ({pkeys}): whole study skipped")
                )
            continue
        _decide_pair(recs)
        flags: list[str] = []
        chosen: dict[str, ViewRec] = {}
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
        labels_by_group = join_labels(sheet, studies, Path(labels).name, key, skipped)  # type: ignore[arg-type]

    ann_root = Path(annotations) if annotations is not None else None
    if ann_root is not None and not ann_root.is_dir():
        skipped.append((str(ann_root.name), "annotation folder not found: no annotations joined"))
        ann_index: dict[str, list[Path]] = {}
    else:
        ann_index = index_annotations(ann_root if ann_root is not None else source)
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
            ann = annotation_for(rec, view, ann_index, source, ann_root) if rec is not None else None
            ann_paths[view] = None
            if ann is None:
                continue
            used_annotations.add(ann)
            try:
                shapes, problems = read_labelme(
                    ann, image_hw=rec.stored_shape, view=view, image_names=annotation_image_names(rec, view, ann)
                )
            except InputError as err:
                skipped.append((display_path(ann, ann_root or source), err.problem))
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
                skipped.append((display_path(p, ann_root), "annotation matches no kept study image: not used"))

    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for col in ("counts_ant", "counts_post", "lesion_count", "ant_frame", "post_frame"):
        manifest[col] = manifest[col].astype("Int64")
    manifest = manifest.sort_values(["patient_key", "study_date", "study_key"], kind="stable").reset_index(drop=True)
    # Where the relative paths start, so load_cohort(result.manifest) finds the files.
    manifest.attrs["root"] = str(base.resolve()) if base is not None else ""
    if out is not None:
        manifest.attrs["path"] = str(resolved_path(out))
        side = [SKIPPED_FILE] if resolved_path(out.parent / SKIPPED_FILE) not in protected else []
        inputs = {"source": source, "labels": labels, "annotations": annotations}
        # Written under temporary names and renamed, with a record tying skipped.csv to this
        # manifest (the audit reads it only then): no half-written manifest, no stale list.
        with OutputFile(out, "ingest", overwrite=overwrite, side=side, inputs=inputs):
            write_csv(manifest, out)
            if side:  # always written (header only when nothing was skipped)
                write_csv(pd.DataFrame(skipped, columns=["path", "reason"]), out.parent / SKIPPED_FILE)
    return IngestResult(manifest=manifest, skipped=skipped, out=out)


# --------------------------------------------------------------------------------------
# Cohort folders
# --------------------------------------------------------------------------------------


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


__all__ = [
    "MANIFEST_COLUMNS",
    "Cohort",
    "IngestResult",
    "cli_main",
    "ingest",
    "load_cohort",
    "read_manifest",
    "resolve_manifest",
]
