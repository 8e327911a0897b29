"""The record every part of scintilab passes around: one whole-body study.

Data flows one way: DICOM/PNG/TIFF folder -> :class:`Study` records -> fusion ->
augmentation -> datasets -> model -> run directory. Nothing downstream knows whether a
study came from a hospital export or the synthetic generator.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The paper's three classes, in the order used for model outputs.
CLASSES: tuple[str, ...] = ("NoMet", "ADMet", "nADMet")
#: View names as stored in a :class:`Study`.
VIEWS: tuple[str, ...] = ("ANT", "POST")
#: The paper's lesion shape vocabulary (Fig. 12a).
SHAPE_CLASSES: tuple[str, ...] = ("punctate", "patchy", "mottled", "strip", "flake")


@dataclass
class Shape:
    """One LabelMe shape (a lesion or other annotated region) in pixel coordinates.

    Attributes:
        label: the annotation's label string (e.g. ``"lesion:patchy:thoracic_spine"``).
        points: (N, 2) float array of (x, y) = (column, row) points as LabelMe stores them.
        shape_type: ``polygon``, ``rectangle``, ``circle`` or ``point``.
        view: ``ANT`` or ``POST`` (the view the shape was drawn on, in stored orientation).
        attributes: anything else the annotation carried (group_id, flags, description).
    """

    label: str
    points: np.ndarray
    shape_type: str = "polygon"
    view: str = "ANT"
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Study:
    """One whole-body bone scan: anterior and posterior views plus what is known of it.

    Attributes:
        study_key: pseudonymous study id (``S-...``), stable across runs.
        patient_key: pseudonymous patient id (``P-...``).
        anterior: ANT view, uint16 (rows, columns) as stored, or None if missing.
        posterior: POST view, uint16 (rows, columns) as stored (NOT flipped), or None.
        pixel_spacing: (row, column) spacing in mm, from PixelSpacing (0028,0030).
        label: one of :data:`CLASSES`, or None when unlabelled.
        shapes: annotations, each carrying its view.
        study_date: StudyDate (0008,0020) when known.
        source_paths: the files this study was read from (never shown in reports).
        flags: plain-words findings (``"one view only"``, ...).
        meta: acquisition facts: matrix, total counts per view, manufacturer, layout, ...
    """

    study_key: str
    patient_key: str
    anterior: np.ndarray | None
    posterior: np.ndarray | None
    pixel_spacing: tuple[float, float] = (2.3, 2.3)
    label: str | None = None
    shapes: list[Shape] = field(default_factory=list)
    study_date: _dt.date | None = None
    source_paths: list[Path] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def views(self) -> tuple[str, ...]:
        """Views present, in :data:`VIEWS` order."""
        return tuple(v for v, img in zip(VIEWS, (self.anterior, self.posterior)) if img is not None)

    @property
    def shape_hw(self) -> tuple[int, int]:
        """(rows, columns) of the stored matrix."""
        img = self.anterior if self.anterior is not None else self.posterior
        if img is None:
            raise ValueError(f"study {self.study_key} holds no view")
        return int(img.shape[0]), int(img.shape[1])

    def view(self, name: str) -> np.ndarray | None:
        """Return the ``ANT`` or ``POST`` image as stored."""
        name = name.upper()
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}; expected one of {VIEWS}")
        return self.anterior if name == "ANT" else self.posterior

    def shapes_for(self, view: str) -> list[Shape]:
        """Annotations drawn on one view."""
        return [s for s in self.shapes if s.view == view.upper()]

    @property
    def label_index(self) -> int | None:
        """Index of :attr:`label` in :data:`CLASSES` (None when unlabelled)."""
        return None if self.label is None else CLASSES.index(self.label)
