"""The manifest: its columns, reading it back, and the lazy cohort it describes.

One row per study, columns :data:`MANIFEST_COLUMNS` (``docs/CONVENTIONS.md``), written by
:func:`scintilab.ingest.ingest` with the skipped items beside it (:data:`SKIPPED_FILE`).
:func:`read_manifest` reads the CSV back with the column types ingest wrote, and
:class:`Cohort` is a lazy sequence of :class:`~scintilab.study.Study` over its rows whose
pixels (and LabelMe shapes) are read when a study is accessed.

:func:`scintilab.ingest.load_cohort` makes a Cohort from a manifest CSV, its DataFrame or a
cohort folder. It lives in ingest because a folder without a manifest is ingested on the
spot, and this module never imports ingest (ingest writes what this module reads).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from scintilab.cohorts import manifest_of
from scintilab.dicom_views import INFERRED_SOURCES
from scintilab.dicomio import DicomFile, read_file
from scintilab.errors import InputError
from scintilab.labelme import read_labelme
from scintilab.labels_csv import normalize_label
from scintilab.orientation import parse_turned, rotate, rotate_points
from scintilab.raster import is_raster, read_raster
from scintilab.study import VIEWS, Shape, Study

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
# Text columns: read as strings, so ids and paths that look like numbers stay as written.
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
