"""Head up or head down: a whole-body view's orientation from the image, and the turn.

A patient scanned feet first (PatientPosition (0018,5100) ``FFS``/``FFP``) and exported
without the camera's correction, or a view exported upside down, reaches the analysis with
the head at the bottom; every step after ingest assumes the head at the top. Ingest decides
per file:

- The image decides when it is sure: a logistic model on the view recogniser's band
  features (:func:`scintilab.viewrec.view_features`, bands of the body's own height,
  distances in mm, mirror-invariant) taken on the image and on the image turned 180°. The
  logit is a weighted sum of their difference, so turning an image turns the call exactly
  (p becomes 1 - p); skull and face at one end, feet and the bladder's pelvis at the other
  tell the ends apart.
- Below :data:`CONFIDENCE`, or on an image unlike the training views, PatientPosition decides:
  feet first is turned, head first is kept; with neither, the view is kept as stored and
  flagged "orientation unsure".
- A confident head-up image whose header says feet first is kept as stored, and flagged:
  many cameras already store feet-first sweeps head up.

The turn is 180° (rows and columns reversed): a feet-first patient lies the other way round
on the table, so their right and left swap sides as well as head and feet. LabelMe shapes
drawn on the stored image turn with it (:func:`turn_points`), and DICOM results are written
back on the stored grid.

The weights (``orientation_weights.json`` beside this module) were trained by
``benchmarks/train_orientation.py``; the accuracy on held-out seeds and varieties is in
``docs/orientation_model_card.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from scintilab.viewrec import FEATURE_NAMES, view_features

#: The trained weights shipped with the package.
WEIGHTS_PATH = Path(__file__).with_name("orientation_weights.json")
#: Below this probability the image does not decide the orientation.
CONFIDENCE = 0.90
#: PatientPosition values of a patient who went in feet first.
FEET_FIRST = frozenset({"FFS", "FFP", "FFDR", "FFDL"})
#: Every flag of a turned view starts so (the audit's head-down check reads it).
TURNED_FLAG = "turned head-up"


def rotate(image: np.ndarray, quarter_turns: int) -> np.ndarray:
    """The image (or a stack of frames: the last two axes) turned by ``quarter_turns`` x 90°
    counter-clockwise, as :func:`numpy.rot90`; negative turns go back."""
    return np.ascontiguousarray(np.rot90(np.asarray(image), quarter_turns % 4, axes=(-2, -1)))


def turn(image: np.ndarray) -> np.ndarray:
    """The image turned 180° (head and feet, right and left swapped)."""
    return rotate(image, 2)


def rotate_points(points: np.ndarray, stored_hw: tuple[int, int], quarter_turns: int) -> np.ndarray:
    """LabelMe (x, y) points drawn on the stored image, on the image :func:`rotate` makes of
    it (pixel centres at integers)."""
    h, w = stored_hw
    pts = np.asarray(points, float).reshape(-1, 2)
    for _ in range(quarter_turns % 4):
        # one turn counter-clockwise: column x becomes row w-1-x, row y becomes column y
        pts = np.column_stack([pts[:, 1], (w - 1) - pts[:, 0]])
        h, w = w, h
    return pts


def turn_points(points: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """LabelMe (x, y) points of the stored image on the image turned 180°."""
    return rotate_points(points, image_hw, 2)


def parse_turned(text: str) -> dict[str, int]:
    """The manifest's ``turned`` (``"ANT 180, POST 180"``, degrees counter-clockwise) as
    view -> quarter turns; empty or missing: nothing turned."""
    out: dict[str, int] = {}
    for part in str(text or "").split(","):
        words = part.split()
        if len(words) == 2 and words[1].lstrip("-").isdigit():
            out[words[0]] = (int(words[1]) // 90) % 4
    return out


def format_turned(turns: dict[str, int]) -> str:
    """Inverse of :func:`parse_turned` (views not turned left out)."""
    return ", ".join(f"{v} {90 * (k % 4)}" for v, k in turns.items() if k % 4)


@dataclass(frozen=True)
class OrientationCall:
    """What the image says: head up or not, with what probability, and whether the image
    is like the views the model was trained on."""

    head_up: bool
    p: float
    typical: bool = True

    @property
    def confident(self) -> bool:
        """True when ``p`` reaches :data:`CONFIDENCE` on a typical image."""
        return self.typical and self.p >= CONFIDENCE


@dataclass(frozen=True)
class OrientationModel:
    """Logistic weights on standardised feature differences (positive logit: head up)."""

    scale: np.ndarray
    weights: np.ndarray
    info: dict
    #: RMS of the standardised difference above which an image is unlike the training views.
    rms_limit: float = float("inf")

    def _difference(self, image: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
        return (view_features(image, spacing) - view_features(turn(image), spacing)) / self.scale

    def logit(self, image: np.ndarray, spacing: tuple[float, float]) -> float:
        """Log-odds that ``image`` is stored head up."""
        return float(self._difference(image, spacing) @ self.weights)

    def call(self, images: list[np.ndarray], spacing: tuple[float, float]) -> OrientationCall:
        """One call for the views of one file (they were stored the same way round).

        Raises:
            ValueError: a view holds no counts or too few body rows.
        """
        diffs = [self._difference(im, spacing) for im in images]
        z = float(sum(d @ self.weights for d in diffs))
        p_up = float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))
        typical = all(float(np.sqrt(np.mean(d**2))) <= self.rms_limit for d in diffs)
        return OrientationCall(p_up >= 0.5, max(p_up, 1.0 - p_up), typical)

    def to_json(self, path: str | Path) -> Path:
        """Write the weights (and the training facts in ``info``) as JSON."""
        path = Path(path)
        path.write_text(
            json.dumps(
                {
                    "features": list(FEATURE_NAMES),
                    "scale": self.scale.tolist(),
                    "weights": self.weights.tolist(),
                    "rms_limit": self.rms_limit,
                    "info": self.info,
                },
                indent=1,
            )
            + "\n"
        )
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> OrientationModel:
        """Read weights written by :meth:`to_json`."""
        d = json.loads(Path(path).read_text())
        if tuple(d["features"]) != FEATURE_NAMES:
            raise ValueError(f"{path}: its features are not this version's")
        return cls(
            np.asarray(d["scale"]), np.asarray(d["weights"]), dict(d.get("info", {})), float(d.get("rms_limit", "inf"))
        )


def fit(
    upright: np.ndarray, turned: np.ndarray, *, l2: float = 1e-2, steps: int = 4000, info: dict | None = None
) -> OrientationModel:
    """Fit on features of head-up views and of the same views turned (row by row).

    Each pair gives the difference ``upright - turned`` labelled head up and its negative
    labelled head down, so the model has no bias and turning an image flips its call.
    """
    D = np.asarray(upright, np.float64) - np.asarray(turned, np.float64)
    scale = np.sqrt((D**2).mean(0)) + 1e-9
    A = np.concatenate([D / scale, -D / scale])
    y = np.concatenate([np.ones(len(D)), np.zeros(len(D))])
    w = np.zeros(A.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(A @ w)))
        w -= 0.5 * (A.T @ (p - y) / len(y) + l2 * w)
    rms_limit = 1.5 * float(np.sqrt((A**2).mean(1)).max())
    return OrientationModel(scale, w, dict(info or {}), rms_limit)


@lru_cache(maxsize=1)
def default_model() -> OrientationModel:
    """The shipped model (``orientation_weights.json``)."""
    return OrientationModel.from_json(WEIGHTS_PATH)


def decide(call: OrientationCall | None, patient_position: str = "") -> tuple[bool, str]:
    """Whether to turn a file's views, and the flag that says why (empty: nothing to say).

    Args:
        call: the image's call (None: the image could not be read for it).
        patient_position: PatientPosition (0018,5100) as stored (may be empty).
    """
    position = patient_position.strip().upper()
    feet_first = position in FEET_FIRST
    said = f"PatientPosition {position}"
    if call is not None and call.confident:
        if not call.head_up:
            return True, (
                f"{TURNED_FLAG}: the image shows the head at the bottom (p {call.p:.2f})"
                + (f"; {said} agrees" if feet_first else "")
            )
        if feet_first:
            return False, f"{said} (feet first), but the image is head-up (p {call.p:.2f}): kept as stored"
        return False, ""
    if feet_first:
        unsure = (
            ""
            if call is None
            else (
                f"; the image cannot tell (p {call.p:.2f}"
                + (", unlike the training views" if not call.typical else "")
                + ")"
            )
        )
        return True, f"{TURNED_FLAG}: {said} (feet first){unsure}"
    if call is not None and not position.startswith("HF"):
        return False, (
            f"orientation unsure: the image cannot tell head from feet (p {call.p:.2f} head-"
            + ("up" if call.head_up else "down")
            + (", unlike the training views" if not call.typical else "")
            + ") and no PatientPosition says: kept as stored; check it"
        )
    return False, ""
