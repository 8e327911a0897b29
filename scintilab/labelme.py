"""Read and write LabelMe annotations (one JSON per view image).

Clinicians draw lesions with LabelMe: polygon, rectangle, circle and point shapes, a label
string per shape, one JSON per image holding ``imagePath``, ``imageHeight`` and
``imageWidth``. Points are (x, y) = (column, row) in the stored orientation of the view.

The reader never drops a shape silently: anything odd (a size that does not match the
DICOM, a shape outside the image, a degenerate polygon, an unknown shape type) comes back
as a plain-words problem next to the shapes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from scintilab.errors import InputError
from scintilab.study import VIEWS, Shape

#: Label kinds scintilab counts (``lesion[:shape:region]``, ``benign:<kind>[:region]``).
LABEL_KINDS = ("lesion", "benign")
#: Shape types scintilab understands, with the number of points each needs.
SHAPE_TYPES: dict[str, int] = {"polygon": 3, "rectangle": 2, "circle": 2, "point": 1}
#: LabelMe format version written (5.x keeps unknown shape keys such as ``attributes``).
LABELME_VERSION = "5.4.1"
# Keys of a LabelMe shape that map to Shape fields; any other key goes to attributes.
_SHAPE_KEYS = {"label", "points", "shape_type"}


def view_from_name(name: str) -> str | None:
    """The view a file or image name ends with (``x_ANT.json`` -> ``ANT``), else None."""
    tokens = [t for t in re.split(r"[^A-Z0-9]+", Path(str(name)).stem.upper()) if t]
    for token in reversed(tokens):
        if token in ("ANT", "ANTERIOR"):
            return "ANT"
        if token in ("POST", "POSTERIOR"):
            return "POST"
    return None


def shape_to_dict(shape: Shape) -> dict[str, Any]:
    """One :class:`Shape` as a LabelMe shape dict."""
    attrs = dict(shape.attributes)
    out: dict[str, Any] = {
        "label": shape.label,
        "points": [[float(x), float(y)] for x, y in np.asarray(shape.points, dtype=float).reshape(-1, 2)],
        "group_id": attrs.pop("group_id", None),
        "description": attrs.pop("description", ""),
        "shape_type": shape.shape_type,
        "flags": attrs.pop("flags", {}),
    }
    if attrs:
        # LabelMe 5 round-trips unknown keys, so extra attributes survive an edit.
        out["attributes"] = attrs
    return out


def write_labelme(path: Path, shapes: list[Shape], *, image_path: str, image_hw: tuple[int, int]) -> None:
    """Write shapes as a LabelMe JSON file.

    Args:
        path: the JSON file to write (its folder is created).
        shapes: the shapes, in (x=column, y=row) pixel coordinates.
        image_path: ``imagePath``: the image file name (for DICOM, the DICOM basename).
        image_hw: (rows, columns) of the image: ``imageHeight``, ``imageWidth``.

    Raises:
        ValueError: a shape type LabelMe/scintilab does not know.
    """
    for shape in shapes:
        if shape.shape_type not in SHAPE_TYPES:
            raise ValueError(f"unsupported shape type {shape.shape_type!r}; expected one of {list(SHAPE_TYPES)}")
    doc = {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": [shape_to_dict(s) for s in shapes],
        "imagePath": str(image_path),
        "imageData": None,
        "imageHeight": int(image_hw[0]),
        "imageWidth": int(image_hw[1]),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _check_geometry(shape_type: str, pts: np.ndarray) -> str | None:
    """Why a shape is degenerate, or None when it is fine."""
    need = SHAPE_TYPES[shape_type]
    if len(pts) < need:
        return f"{shape_type} with {len(pts)} point(s), needs {need}"
    if not np.all(np.isfinite(pts)):
        return f"{shape_type} with non-finite coordinates"
    if shape_type == "polygon":
        x, y = pts[:, 0], pts[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        if area <= 1e-9:
            return "degenerate polygon (zero area)"
    elif shape_type == "rectangle":
        if len(pts) != 2:
            return f"rectangle with {len(pts)} points, needs 2 corners"
        if abs(pts[0, 0] - pts[1, 0]) <= 1e-9 or abs(pts[0, 1] - pts[1, 1]) <= 1e-9:
            return "degenerate rectangle (zero width or height)"
    elif shape_type == "circle":
        if len(pts) != 2:
            return f"circle with {len(pts)} points, needs centre and rim"
        if float(np.hypot(*(pts[1] - pts[0]))) <= 1e-9:
            return "degenerate circle (zero radius)"
    elif shape_type == "point" and len(pts) != 1:
        return f"point with {len(pts)} points"
    return None


def _extent(shape_type: str, pts: np.ndarray) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) covered by the shape."""
    if shape_type == "circle":
        r = float(np.hypot(*(pts[1] - pts[0])))
        cx, cy = pts[0]
        return cx - r, cy - r, cx + r, cy + r
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def read_labelme(
    path: Path,
    image_hw: tuple[int, int] | None = None,
    view: str | None = None,
    image_names: set[str] | None = None,
) -> tuple[list[Shape], list[str]]:
    """Read a LabelMe JSON file into shapes plus the problems found.

    Shapes wholly outside the image, degenerate shapes and unknown shape types are left
    out *and* reported; shapes that only cross the border are kept and reported.

    Args:
        path: the LabelMe JSON file (opened read-only).
        image_hw: (rows, columns) of the image it annotates (e.g. the DICOM matrix); when
            given, ``imageHeight``/``imageWidth`` are checked against it and shapes are
            checked against it; otherwise the JSON's own size is used.
        view: ``ANT`` or ``POST``; by default taken from the file name or ``imagePath``.
        image_names: lower-case file stems ``imagePath`` may name for the image this file
            was joined to; another name (another study's image, a file that is not there)
            is reported.

    Returns:
        (shapes, problems): problems are plain-words strings, each naming the shape.

    Raises:
        InputError: the file cannot be read or is not a LabelMe document.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "annotation file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable annotation (not valid JSON: {exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise InputError(path, "not a LabelMe annotation (no 'shapes' list)")
    problems: list[str] = []
    named = str(doc.get("imagePath") or "").replace("\\", "/").rsplit("/", 1)[-1]
    if image_names is not None and named and Path(named).stem.lower() not in image_names:
        problems.append(
            f"imagePath names {named!r}, not the image this annotation was joined to (check it belongs to this study)"
        )
    if view is None:
        view = view_from_name(path.name) or view_from_name(str(doc.get("imagePath", "")))
        if view is None:
            problems.append("view not named in file name or imagePath: assumed ANT")
            view = "ANT"
    view = view.upper()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    doc_hw: tuple[int, int] | None = None
    try:
        if doc.get("imageHeight") is not None and doc.get("imageWidth") is not None:
            doc_hw = (int(doc["imageHeight"]), int(doc["imageWidth"]))
    except (TypeError, ValueError):
        problems.append("imageHeight/imageWidth are not numbers")
    if image_hw is not None and doc_hw is not None and tuple(image_hw) != doc_hw:
        problems.append(
            f"image size mismatch: annotation says {doc_hw[0]}x{doc_hw[1]}, image is {image_hw[0]}x{image_hw[1]}"
        )
    bounds = tuple(image_hw) if image_hw is not None else doc_hw
    shapes: list[Shape] = []
    for i, raw in enumerate(doc["shapes"]):
        if not isinstance(raw, dict):
            problems.append(f"shape {i}: not an object, skipped")
            continue
        label = str(raw.get("label", ""))
        name = f"shape {i} ({label!r})"
        shape_type = str(raw.get("shape_type") or "polygon")
        if shape_type not in SHAPE_TYPES:
            problems.append(f"{name}: unsupported shape type {shape_type!r}, skipped")
            continue
        try:
            pts = np.asarray(raw.get("points", []), dtype=float).reshape(-1, 2)
        except (TypeError, ValueError):
            problems.append(f"{name}: points are not (x, y) pairs, skipped")
            continue
        why = _check_geometry(shape_type, pts)
        if why:
            problems.append(f"{name}: {why}, skipped")
            continue
        if bounds is not None:
            h, w = bounds
            x0, y0, x1, y1 = _extent(shape_type, pts)
            # LabelMe coordinates run over the pixel area [0, w] x [0, h].
            if x1 < 0 or y1 < 0 or x0 > w or y0 > h:
                problems.append(f"{name}: wholly outside the {h}x{w} image, skipped")
                continue
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                problems.append(f"{name}: extends outside the {h}x{w} image (kept)")
        attributes: dict[str, Any] = {k: v for k, v in raw.items() if k not in _SHAPE_KEYS and k != "attributes"}
        if isinstance(raw.get("attributes"), dict):
            attributes.update(raw["attributes"])
        if attributes.get("group_id") is None:
            attributes.pop("group_id", None)
        if not attributes.get("description"):
            attributes.pop("description", None)
        if not attributes.get("flags"):
            attributes.pop("flags", None)
        kind = label.split(":", 1)[0].strip().lower()
        if kind not in LABEL_KINDS:
            # kept (the user's drawing), but no table counts it: say so, or a lesion is lost unseen
            problems.append(f"{name}: label is neither 'lesion[:shape:region]' nor 'benign:<kind>': counted as neither")
        shapes.append(Shape(label=label, points=pts, shape_type=shape_type, view=view, attributes=attributes))
    return shapes, problems


def is_lesion(shape: Shape) -> bool:
    """True for lesion annotations (label ``lesion`` or ``lesion:<shape>:<region>``)."""
    return shape.label.split(":", 1)[0].strip().lower() == "lesion"
