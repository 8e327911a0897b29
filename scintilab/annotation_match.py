"""Matching LabelMe annotation files to the views ingest keeps.

:func:`index_annotations` indexes a folder tree's JSON files by name;
:func:`annotation_for` finds the one drawn on a kept view, and
:func:`annotation_image_names` lists the names its ``imagePath`` may give for that view.
Reading the shapes is :func:`scintilab.labelme.read_labelme`'s.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from scintilab.labelme import view_from_name
from scintilab.scan_files import ViewRec, display_path, odd_path, raster_base, walk_files


def index_annotations(root: Path) -> dict[str, list[Path]]:
    """The readable ``.json`` files under ``root`` by lower-case stem (several where folders repeat a name)."""
    index: dict[str, list[Path]] = defaultdict(list)
    for path in walk_files(root):
        if path.suffix.lower() == ".json" and odd_path(path) is None:
            index[path.stem.lower()].append(path)
    return index


def annotation_image_names(rec: ViewRec, view: str, ann: Path) -> set[str]:
    """Names (lower-case stems) an annotation's ``imagePath`` may give for ``rec``'s view.

    The DICOM file itself, its raster base, either with the view appended (an annotated
    PNG export of one view), or the annotation's own name.
    """
    stem, base = rec.path.stem, raster_base(rec.path)
    return {n.lower() for n in (stem, base, f"{stem}_{view}", f"{base}_{view}", ann.stem)}


def annotation_for(
    rec: ViewRec, view: str, index: dict[str, list[Path]], source: Path, ann_root: Path | None
) -> Path | None:
    """The annotation file drawn on ``rec``'s view, or None.

    Looks up ``<stem>_<VIEW>``, ``<raster base>_<VIEW>`` and, when the file's name names
    this view, the stem itself, in that order. Where several folders hold the name, the
    one mirroring the image's folder (under ``source``) inside ``ann_root`` is taken, else
    the first.
    """
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
            rel_parent = display_path(rec.path.parent, source)
            for hit in hits:
                if display_path(hit.parent, ann_root) == rel_parent:
                    return hit
        if hits:
            return hits[0]
    return None
