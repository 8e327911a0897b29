"""How one scan image becomes a network input: orientation, resampling, normalisation.

Training (:mod:`scintilab.datasets` builds D1/D2/D3 with these) and scoring
(:class:`scintilab.quantify.Classifier` prepares a study for a trained run) share this module,
so a model sees at prediction time what it saw in training: each view in anterior orientation
(:func:`oriented_views`; the posterior view flipped by :func:`scintilab.fusion.flip_posterior`),
resampled to the run's input size (:func:`resample`), then scaled per image
(:func:`normalize`); :func:`preprocess` is the last two, in that order.
"""

from __future__ import annotations

import numpy as np

from scintilab.fusion import flip_posterior
from scintilab.study import Study

#: Percentile of the nonzero pixels that maps to 1.0 in :func:`normalize`.
NORM_PERCENTILE = 99.5
#: Upper clip of normalised values (a full bladder or injection site must not set the scale).
NORM_CLIP = 4.0
#: The normalisation, as recorded in :attr:`scintilab.image_set.ImageSet.normalization`.
NORMALIZATION = f"counts / p{NORM_PERCENTILE:g}(nonzero pixels of the image), clipped to [0, {NORM_CLIP:g}]"


def normalize(image: np.ndarray) -> np.ndarray:
    """Scale counts into a unit range the network can use, per image.

    ``x = counts / q`` with q the 99.5th percentile of the image's nonzero pixels, clipped
    to [0, 4]. Why per image: total counts differ several-fold between scans (dose, time
    since injection, body habitus), while the diagnosis lives in the *pattern* of uptake.
    Why a high percentile rather than the maximum: the maximum is usually the bladder or the
    injection site; q sits in the bright bone, so normal bone maps near 1 and hot lesions a
    little above. The clip keeps a full bladder (tens of times bone) from dominating.

    Args:
        image: (rows, cols) counts (any real dtype).

    Returns:
        float32 image in [0, 4]; all zeros for an empty image.
    """
    img = np.asarray(image, dtype=np.float32)
    pos = img[img > 0]
    if pos.size == 0:
        return np.zeros_like(img)
    q = float(np.percentile(pos, NORM_PERCENTILE))
    if q <= 0:
        q = float(pos.max())
    return np.clip(img / np.float32(q), 0.0, NORM_CLIP).astype(np.float32, copy=False)


def resample(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resample to (rows, cols): bilinear, anti-aliased when shrinking (keeps mean counts).

    Args:
        image: (rows, cols) array.
        image_size: target (rows, cols).

    Returns:
        float32 array of the target size (the input itself, as float32, if sizes agree).
    """
    img = np.asarray(image, dtype=np.float32)
    if tuple(img.shape) == tuple(image_size):
        return img
    from skimage.transform import resize  # lazy: only needed when resampling

    shrink = image_size[0] < img.shape[0] or image_size[1] < img.shape[1]
    return resize(img, image_size, order=1, anti_aliasing=shrink, preserve_range=True, mode="constant").astype(
        np.float32
    )


def preprocess(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resample then :func:`normalize` (the order every dataset image goes through)."""
    return normalize(resample(image, image_size))


def oriented_views(study: Study) -> list[tuple[str, np.ndarray]]:
    """The study's views in anterior orientation: [("ANT", ant), ("POST", flipped post)]."""
    out: list[tuple[str, np.ndarray]] = []
    if study.anterior is not None:
        out.append(("ANT", np.asarray(study.anterior, dtype=np.float32)))
    if study.posterior is not None:
        out.append(("POST", flip_posterior(study.posterior)))
    return out
