"""The one pixel grid a study's two views share, and every map into and out of it.

The frame is the stored anterior grid. The posterior enters it mirrored left-right (the
patient's right on the image left, as in the anterior view) and moved by the fusion
alignment's ``shift = (dr, dc)``::

    flipped[r, c] = stored_post[r, w - 1 - c]
    frame[r, c]   = flipped[r - dr, c - dc]

A study with a posterior view only has the mirrored posterior as its frame (``name``
``POST``, no shift). Images, masks and LabelMe points (x = column, y = row) all go through
the same two steps, so a mask carried from one view to the other, a hot spot drawn back on
the stored posterior and an annotation moved into the frame agree to the pixel. The
alignment itself is estimated once, by :func:`scintilab.fusion.align_views`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scintilab.errors import InputError
from scintilab.fusion import align_views, shift_image

VIEWS = ("ANT", "POST")


@dataclass(frozen=True)
class ViewFrame:
    """The shared grid of a study's views (see the module docstring).

    Attributes:
        shape: (rows, cols) of every view.
        shift: (rows, cols) that moves the mirrored posterior onto the anterior; (0, 0)
            without both views.
        name: ``ANT`` (the stored anterior grid) or ``POST`` (the mirrored posterior, for a
            study without an anterior view).
        views: the views the study holds, anterior first.
    """

    shape: tuple[int, int]
    shift: tuple[float, float] = (0.0, 0.0)
    name: str = "ANT"
    views: tuple[str, ...] = VIEWS

    def __post_init__(self) -> None:
        if self.name not in VIEWS:
            raise ValueError(f"frame name must be ANT or POST, not {self.name!r}")
        if self.name == "POST" and self.shift != (0.0, 0.0):
            raise ValueError("a posterior-only frame has no shift")

    # ----------------------------------------------------------------------- construction

    @classmethod
    def of_views(cls, anterior: np.ndarray | None, posterior: np.ndarray | None) -> ViewFrame:
        """Align the two stored views (either may be None) and return their frame.

        Raises:
            InputError: no view, or views of different matrix sizes (no file named: the
                caller knows the study; see :meth:`of_study`).
        """
        if anterior is None and posterior is None:
            raise InputError(None, "study holds no view")
        if anterior is None:
            return cls(shape=tuple(np.shape(posterior)), name="POST", views=("POST",))  # type: ignore[arg-type]
        if posterior is None:
            return cls(shape=tuple(np.shape(anterior)), views=("ANT",))  # type: ignore[arg-type]
        if np.shape(anterior) != np.shape(posterior):
            raise InputError(None, f"ANT {np.shape(anterior)} and POST {np.shape(posterior)} differ in matrix size")
        res = align_views(anterior, posterior)
        return cls(shape=tuple(np.shape(anterior)), shift=(float(res.shift[0]), float(res.shift[1])))  # type: ignore[arg-type]

    @classmethod
    def of_study(cls, study: Any) -> ViewFrame:
        """The frame of a :class:`~scintilab.study.Study` (errors name its pseudonymous key)."""
        try:
            return cls.of_views(study.anterior, study.posterior)
        except InputError as err:
            raise InputError(study.study_key, err.problem) from None

    # ----------------------------------------------------------------------- images

    def _check(self, view: str) -> str:
        v = view.upper()
        if v not in VIEWS:
            raise ValueError(f"view must be ANT or POST, not {view!r}")
        if v == "ANT" and self.name == "POST":
            raise ValueError("a posterior-only frame has no anterior view")
        return v

    def to_frame(self, image: np.ndarray, view: str) -> np.ndarray:
        """A stored view's image in the frame (float32; the posterior mirrored and moved)."""
        img = np.asarray(image, np.float32)
        if self._check(view) == "ANT":
            return img
        mirrored = np.ascontiguousarray(img[:, ::-1])
        return shift_image(mirrored, *self.shift) if self.shift != (0.0, 0.0) else mirrored

    def from_frame(self, image: np.ndarray, view: str) -> np.ndarray:
        """A frame image on the stored ``view`` (the inverse of :meth:`to_frame`)."""
        img = np.asarray(image, np.float32)
        if self._check(view) == "ANT":
            return img
        back = shift_image(img, -self.shift[0], -self.shift[1]) if self.shift != (0.0, 0.0) else img
        return np.ascontiguousarray(back[:, ::-1])

    def other_view(self, image: np.ndarray, from_view: str, to_view: str) -> np.ndarray:
        """A stored ``from_view`` image on the stored ``to_view`` grid (through the frame)."""
        return self.from_frame(self.to_frame(image, from_view), to_view)

    # ----------------------------------------------------------------------- masks

    def mask_to_frame(self, mask: np.ndarray, view: str) -> np.ndarray:
        """A boolean mask of a stored view in the frame (a moved pixel counts when half in)."""
        if self._check(view) == "ANT":
            return np.asarray(mask, bool)
        return self.to_frame(np.asarray(mask, np.float32), view) >= 0.5

    def mask_from_frame(self, mask: np.ndarray, view: str) -> np.ndarray:
        """A boolean frame mask on the stored ``view``."""
        if self._check(view) == "ANT":
            return np.asarray(mask, bool)
        return self.from_frame(np.asarray(mask, np.float32), view) >= 0.5

    def map_mask(self, mask: np.ndarray, from_view: str, to_view: str) -> np.ndarray:
        """A mask drawn on stored ``from_view`` carried onto stored ``to_view``."""
        if from_view.upper() == to_view.upper():
            return np.asarray(mask, bool)
        return self.mask_from_frame(self.mask_to_frame(mask, from_view), to_view)

    # ----------------------------------------------------------------------- points

    def points_to_frame(self, xy: np.ndarray, view: str) -> np.ndarray:
        """(N, 2) points of a stored view as LabelMe gives them (x = column, y = row) in the frame."""
        pts = np.asarray(xy, float).reshape(-1, 2)
        if self._check(view) == "ANT":
            return pts.copy()
        w = self.shape[1]
        return np.stack([w - 1 - pts[:, 0] + self.shift[1], pts[:, 1] + self.shift[0]], axis=1)

    def points_from_frame(self, xy: np.ndarray, view: str) -> np.ndarray:
        """(N, 2) frame points (x, y) on the stored ``view`` (the inverse of :meth:`points_to_frame`)."""
        pts = np.asarray(xy, float).reshape(-1, 2)
        if self._check(view) == "ANT":
            return pts.copy()
        w = self.shape[1]
        return np.stack([w - 1 - (pts[:, 0] - self.shift[1]), pts[:, 1] - self.shift[0]], axis=1)
