"""Tell an anterior from a posterior whole-body view by the image alone.

Used when nothing in a file names its view (no ViewCodeSequence, frame label, ImageID,
description, comment, private tag or file name): the case of many Secondary Capture
exports. The recogniser is a logistic regression on features with an anatomical reason:

- Attenuation: the camera facing the back sees the spine, the posterior ribs and the
  scapulae from a few centimetres, the one facing the front sees them through the whole
  trunk; the sternum, the face and the anterior pelvis go the other way. So the share of a
  body band's counts that lies within 20 mm and 60 mm of the band's own midline, and how
  far the band's peak rises above its mean, differ between the views band by band.
- How the counts are spread along the body (log share per band), which the same
  attenuation shapes (skull vs face, bladder, knees).

Bands are fractions of the body's own height and distances are millimetres (the study's
own pixel spacing), so the features do not depend on the matrix. They are mirror-invariant
(the midline is found per band and distances folded), so a posterior stored mirrored or
not reads the same: the recogniser decides which camera, never which side.

The weights (``viewrec_weights.json`` beside this module) were trained by
``benchmarks/train_viewrec.py`` on synthetic cohorts of several seeds and matrices, with
cut fields of view, low counts and mirrored copies; its model card is
``docs/viewrec_model_card.md``, with the accuracy on held-out seeds and varieties.
Below :data:`CONFIDENCE` a view is not trusted: ingest keeps the study, flags "view
unknown" and analyses it as the likelier view until ``--assume-view`` decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

#: The trained weights shipped with the package.
WEIGHTS_PATH = Path(__file__).with_name("viewrec_weights.json")
#: Below this probability of the chosen view, the view counts as unknown.
CONFIDENCE = 0.90
#: Body bands along the height.
N_BANDS = 12
#: Smoothing before the features (mm, Gaussian sigma): counts noise, not anatomy.
SMOOTH_MM = 8.0
#: Folded distances from a band's midline (mm) whose count shares are features.
NEAR_MM, MID_MM = 20.0, 60.0
#: A row belongs to the body when its sum exceeds this share of the 90th-percentile row.
BODY_ROW_SHARE = 0.08

#: Quantiles over the body's rows of the per-row features (position-free: a cut field of
#: view moves the bands, not these).
ROW_QUANTILES = (0.25, 0.5, 0.75, 0.9)

FEATURE_NAMES: tuple[str, ...] = tuple(
    f"band{b:02d}_{k}" for b in range(N_BANDS) for k in ("log_share", "near20", "mid60", "log_peak")
) + tuple(f"rows_{k}_q{int(q * 100)}" for k in ("near20", "log_peak") for q in ROW_QUANTILES)


def view_features(image: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """The recogniser's features of one view (stored orientation, head up).

    Args:
        image: (rows, columns) counts.
        spacing: (row, column) pixel spacing in mm.

    Returns:
        ``len(FEATURE_NAMES)`` floats.

    Raises:
        ValueError: an empty image (no counts), or one too short to hold the bands.
    """
    x = np.asarray(image, np.float64)
    if x.ndim != 2 or not np.isfinite(x).all() or x.sum() <= 0:
        raise ValueError("the view holds no counts")
    sr, sc = float(spacing[0]), float(spacing[1])
    x = gaussian_filter(x, (SMOOTH_MM / sr, SMOOTH_MM / sc))
    rows = x.sum(1)
    on = np.flatnonzero(rows > BODY_ROW_SHARE * np.percentile(rows, 90))
    r0, r1 = int(on[0]), int(on[-1]) + 1
    if r1 - r0 < N_BANDS:
        raise ValueError(f"the body covers {r1 - r0} rows: too few to recognise the view")
    total = x[r0:r1].sum() + 1e-12
    cols = np.arange(x.shape[1])
    out: list[float] = []
    for a, b in zip(
        np.linspace(r0, r1, N_BANDS + 1).astype(int)[:-1], np.linspace(r0, r1, N_BANDS + 1).astype(int)[1:]
    ):
        band = x[a:b]
        profile = band.sum(0)
        s = profile.sum() + 1e-12
        centre = float((profile * cols).sum() / s)
        dist = np.abs(cols - centre) * sc
        out += [
            float(np.log(s / total)),
            float(profile[dist < NEAR_MM].sum() / s),
            float(profile[dist < MID_MM].sum() / s),
            float(np.log(band.max() / (band.mean() + 1e-12))),
        ]
    body = x[r0:r1]
    rs = body.sum(1) + 1e-12
    centres = (body * cols).sum(1) / rs
    near = (body * (np.abs(cols[None, :] - centres[:, None]) * sc < NEAR_MM)).sum(1) / rs
    peak = np.log(body.max(1) / (body.mean(1) + 1e-12))
    out += [float(np.quantile(v, q)) for v in (near, peak) for q in ROW_QUANTILES]
    return np.asarray(out)


@dataclass(frozen=True)
class ViewCall:
    """What the image says: the likelier view, its probability, and whether the image is
    like the views the recogniser was trained on (a logistic model is sure of anything far
    from its data, so ``p`` alone cannot be trusted there)."""

    view: str
    p: float
    typical: bool = True

    @property
    def confident(self) -> bool:
        """True when ``p`` reaches :data:`CONFIDENCE` on a typical image."""
        return self.typical and self.p >= CONFIDENCE


@dataclass(frozen=True)
class ViewRecogniser:
    """Standardisation and logistic weights (positive logit: anterior)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    info: dict
    #: RMS of the standardised features above which an image is unlike the training views.
    rms_limit: float = float("inf")

    def _standardised(self, image: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
        return (view_features(image, spacing) - self.mean) / self.scale

    def logit(self, image: np.ndarray, spacing: tuple[float, float]) -> float:
        """Log-odds that ``image`` is an anterior view."""
        return float(self._standardised(image, spacing) @ self.weights + self.bias)

    def recognise(self, image: np.ndarray, spacing: tuple[float, float]) -> ViewCall:
        """The likelier view of one image."""
        f = self._standardised(image, spacing)
        p_ant = _sigmoid(float(f @ self.weights + self.bias))
        typical = bool(np.sqrt(np.mean(f**2)) <= self.rms_limit)
        return ViewCall("ANT", p_ant, typical) if p_ant >= 0.5 else ViewCall("POST", 1.0 - p_ant, typical)

    def typical(self, image: np.ndarray, spacing: tuple[float, float]) -> bool:
        """True when the image's features lie within the training views' spread."""
        return bool(np.sqrt(np.mean(self._standardised(image, spacing) ** 2)) <= self.rms_limit)

    def recognise_pair(
        self, first: np.ndarray, second: np.ndarray, spacing: tuple[float, float]
    ) -> tuple[tuple[str, str], float]:
        """Two views of one study, one of each: which is anterior.

        The two images share a patient, so the difference of their log-odds cancels much of
        what the patient adds (habitus, counts); returns the views in order and the
        probability of that assignment.
        """
        p = _sigmoid(self.logit(first, spacing) - self.logit(second, spacing))
        return (("ANT", "POST"), p) if p >= 0.5 else (("POST", "ANT"), 1.0 - p)

    def to_json(self, path: str | Path) -> Path:
        """Write the weights (and the training facts in ``info``) as JSON."""
        path = Path(path)
        path.write_text(
            json.dumps(
                {
                    "features": list(FEATURE_NAMES),
                    "mean": self.mean.tolist(),
                    "scale": self.scale.tolist(),
                    "weights": self.weights.tolist(),
                    "bias": self.bias,
                    "rms_limit": self.rms_limit,
                    "info": self.info,
                },
                indent=1,
            )
            + "\n"
        )
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> ViewRecogniser:
        """Read weights written by :meth:`to_json`."""
        d = json.loads(Path(path).read_text())
        if tuple(d["features"]) != FEATURE_NAMES:
            raise ValueError(
                f"{path}: its features are not this version's ({len(d['features'])} vs {len(FEATURE_NAMES)})"
            )
        return cls(
            np.asarray(d["mean"]),
            np.asarray(d["scale"]),
            np.asarray(d["weights"]),
            float(d["bias"]),
            dict(d.get("info", {})),
            float(d.get("rms_limit", "inf")),
        )


def fit(
    features: np.ndarray, is_anterior: np.ndarray, *, l2: float = 1e-2, steps: int = 4000, info: dict | None = None
) -> ViewRecogniser:
    """Fit the logistic regression by gradient descent on standardised features."""
    X = np.asarray(features, np.float64)
    y = np.asarray(is_anterior, np.float64)
    mean, scale = X.mean(0), X.std(0) + 1e-9
    A = (X - mean) / scale
    w, b = np.zeros(A.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(A @ w + b)))
        w -= 0.5 * (A.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float((p - y).mean())
    # Half as far again as the farthest training view: beyond, the image is unlike them all.
    rms_limit = 1.5 * float(np.sqrt((A**2).mean(1)).max())
    return ViewRecogniser(mean, scale, w, b, dict(info or {}), rms_limit)


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


@lru_cache(maxsize=1)
def default_recogniser() -> ViewRecogniser:
    """The shipped recogniser (``viewrec_weights.json``)."""
    return ViewRecogniser.from_json(WEIGHTS_PATH)
