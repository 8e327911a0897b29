"""Name the views of a whole-body DICOM file: ANT or POST, from its header, its name or its image.

A whole-body study arrives in one of two layouts:

* ``multiframe``: one NM Image Storage file with two frames, one per detector/view. The
  view of each frame is named by DetectorVector (0054,0020) pointing into
  DetectorInformationSequence (0054,0022), whose items carry ViewCodeSequence
  (0054,0220); vendors that skip this name the frames in the per-frame functional groups,
  in a private tag, or in SeriesDescription (0008,103E) / ImageComments (0020,4000)
  ("ANT/POST", frame order).
* ``pair``: two single-frame files whose ViewCodeSequence, ImageID (0054,0400),
  SeriesDescription, ImageComments, a private tag or, failing all, the file name says
  ANT or POST.

:func:`identify_views` tries these sources in order of trust; when none names the views,
:func:`views_from_image` asks the image recogniser (:mod:`scintilab.viewrec`) or takes
``--assume-view``, and :func:`view_flag` words the manifest flag of such a decision.
:func:`scintilab.dicomio.read_file` is the caller.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from scintilab.dicom_codes import CODE_TO_VIEW, VIEW_WORDS
from scintilab.errors import InputError
from scintilab.viewrec import CONFIDENCE, default_recogniser


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^A-Z0-9]+", str(text).upper()) if t]


def views_named_in(text: str) -> list[str]:
    """Views named in free text, in order of appearance (``"WB ANT/POST"`` -> [ANT, POST])."""
    found: list[str] = []
    for token in _tokens(text):
        view = VIEW_WORDS.get(token)
        if view is not None and view not in found:
            found.append(view)
    return found


def _view_from_code(item: Dataset) -> str | None:
    """The view a ViewCodeSequence item names, by code value or meaning."""
    value = str(item.get("CodeValue", "")).strip()
    if value in CODE_TO_VIEW:
        return CODE_TO_VIEW[value]
    named = views_named_in(str(item.get("CodeMeaning", "")))
    return named[0] if len(named) == 1 else None


def _views_from_codes(ds: Dataset, n_frames: int) -> list[str] | None:
    """Per-frame views from DetectorVector -> DetectorInformationSequence -> ViewCodeSequence."""
    det_seq = ds.get("DetectorInformationSequence")
    if det_seq:
        det_views: list[str | None] = []
        for item in det_seq:
            codes = item.get("ViewCodeSequence")
            det_views.append(_view_from_code(codes[0]) if codes else None)
        vector = ds.get("DetectorVector")
        if vector is None:
            vector = list(range(1, n_frames + 1)) if len(det_seq) == n_frames else [1] * n_frames
        vector = [int(v) for v in (vector if isinstance(vector, (list, pydicom.multival.MultiValue)) else [vector])]
        if len(vector) == n_frames and all(1 <= v <= len(det_views) for v in vector):
            views = [det_views[v - 1] for v in vector]
            if all(views):
                return views  # type: ignore[return-value]
    codes = ds.get("ViewCodeSequence")
    if codes and n_frames == 1:
        view = _view_from_code(codes[0])
        if view:
            return [view]
    return None


def _views_from_frame_labels(ds: Dataset, n_frames: int) -> list[str] | None:
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups or len(groups) != n_frames:
        return None
    views = []
    for group in groups:
        texts = []
        for content in group.get("FrameContentSequence", []):
            texts += [str(content.get("FrameLabel", "")), str(content.get("FrameComments", ""))]
        named = views_named_in(" ".join(texts))
        if len(named) != 1:
            return None
        views.append(named[0])
    return views


def _views_from_private(ds: Dataset, n_frames: int) -> list[str] | None:
    """A view name stored only in a vendor private tag: a string element whose values are
    exactly view words, one per frame."""
    for elem in ds.iterall():
        if not elem.tag.is_private or elem.VR not in ("CS", "LO", "SH", "ST", "LT", "UT", "UC"):
            continue
        values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
        words = [str(v).strip().upper() for v in values]
        if words and all(w in VIEW_WORDS for w in words):
            if len(words) == n_frames:
                return [VIEW_WORDS[w] for w in words]
            if n_frames > 1 and len(words) == 1:
                order = views_named_in(words[0])
                if len(order) == n_frames:
                    return order
    return None


def _views_from_text(texts: list[str], n_frames: int) -> tuple[list[str], str] | None:
    for source, text in texts:
        named = views_named_in(text)
        if len(named) == n_frames:
            return named, source
    return None


def identify_views(ds: Dataset, path: Path, n_frames: int) -> tuple[list[str], str]:
    """Name every frame, trying the sources in order of trust; returns (views, source)."""
    attempts = [
        ("ViewCodeSequence", _views_from_codes(ds, n_frames)),
        ("FrameLabel", _views_from_frame_labels(ds, n_frames)),
    ]
    for source, views in attempts:
        if views:
            return views, source
    texts = [
        ("ImageID", str(ds.get("ImageID", "") or "")),
        ("SeriesDescription", str(ds.get("SeriesDescription", "") or "")),
        ("ImageComments", str(ds.get("ImageComments", "") or "")),
    ]
    found = _views_from_text(texts, n_frames)
    if found:
        return found
    private = _views_from_private(ds, n_frames)
    if private:
        return private, "private tag"
    if n_frames == 1:
        named = views_named_in(path.stem)
        if len(named) == 1:
            return named, "file name"
    return None, ""


#: The view sources that are a decision from outside the header (the image, the user):
#: the manifest's word on such a file is final (a pair may overrule two single calls).
INFERRED_SOURCES = ("image", "--assume-view")


def unnamed(n_frames: int) -> str:
    """The part of a message saying that nothing in the file names its views, and where that was looked for."""
    return (
        "nothing names " + ("the two frames" if n_frames > 1 else "the view") + " ANT or POST "
        "(no ViewCodeSequence in DetectorInformationSequence, no frame label, ImageID, "
        "SeriesDescription, ImageComments or private tag naming them"
        + (", nor the file name)" if n_frames == 1 else ")")
    )


def view_flag(call_view: str, p: float, confident: bool, *, pair: bool = False, typical: bool = True) -> str:
    """The manifest flag of a view decided from the image."""
    what = "views inferred from the image, as a pair" if pair else "view inferred from the image"
    if confident:
        return f"{what} (p {p:.2f})"
    why = (
        f"p {p:.2f}, below {CONFIDENCE:.2f}"
        if typical
        else "the image is unlike every view the recogniser was trained on"
    )
    return (
        f"view unknown: the image suggests {call_view} ({why}); "
        f"analysed as {call_view}, set --assume-view ANT|POST to decide"
    )


def views_from_image(
    arr: np.ndarray,
    path: Path,
    spacing: tuple[float, float],
    n_frames: int,
    assume_view: str | None,
    flags: list[str],
    meta: dict[str, Any],
) -> list[str]:
    """Name unnamed frames: ``assume_view`` for one frame, else the image recogniser."""
    if n_frames == 1 and assume_view:
        flags.append(f"view set by --assume-view {assume_view} (nothing in the file names it)")
        return [assume_view]
    if n_frames > 2:
        raise InputError(path, f"cannot tell the views apart: {unnamed(n_frames)}, and {n_frames} frames")
    rec = default_recogniser()
    try:
        if n_frames == 1:
            call = rec.recognise(arr[0], spacing)
            views, p, typical = [call.view], call.p, call.typical
            if typical:  # a pair may overrule it at ingest; not from an image unlike the training
                meta["view_logit"] = rec.logit(arr[0], spacing)
        else:
            pair, p = rec.recognise_pair(arr[0], arr[1], spacing)
            views, typical = list(pair), rec.typical(arr[0], spacing) and rec.typical(arr[1], spacing)
    except ValueError as err:
        raise InputError(
            path, f"cannot tell the views apart: {unnamed(n_frames)}, and the image cannot say: {err}"
        ) from err
    meta["view_p"] = round(p, 4)
    flags.append(view_flag(views[0], p, typical and p >= CONFIDENCE, pair=n_frames > 1, typical=typical))
    return views
