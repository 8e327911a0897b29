"""A stick-figure pair of views with a known shift, for testing the fusion alignment.

Not a patient: two ellipses for a body, a spine and a bladder, the posterior mirrored and
moved by a chosen shift, so a test knows the answer the alignment must find.
"""

from __future__ import annotations

import numpy as np

from scintilab.fusion import shift_image
from scintilab.utils import as_rng


def synthetic_pair(
    shape: tuple[int, int] = (1024, 256),
    shift: tuple[int, int] = (0, 0),
    rng: np.random.Generator | int | None = 0,
    counts_scale: float = 1.0,
    noise: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A stick-figure phantom pair (ANT, POST as stored) with a known view shift.

    For tests, benchmarks and demos when no cohort is at hand: a skull, a bright vertical
    spine, a pelvis, two legs, two arms and a few hot blobs, with Poisson noise. The
    posterior is the same body mirrored left-right and translated by ``shift`` (rows, cols
    in the *flipped* frame), and brighter along the spine as real posterior views are.
    :func:`align_views` should therefore report ``shift == (-shift[0], -shift[1])``.

    Args:
        shape: (rows, cols) matrix, any size (proportions scale with it).
        shift: translation of the flipped posterior relative to the anterior.
        rng: randomness for the noise and blob positions.
        counts_scale: multiplies all expected counts.
        noise: draw Poisson counts (True) or keep expected values.

    Returns:
        (anterior, posterior) uint16 arrays.
    """
    gen = as_rng(rng)
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float32)
    r = rr / h  # relative coordinates keep the figure the same on every matrix
    c = cc / w

    def box(r0: float, r1: float, c0: float, c1: float) -> np.ndarray:
        return ((r >= r0) & (r < r1) & (c >= c0) & (c < c1)).astype(np.float32)

    body = (
        box(0.08, 0.92, 0.35, 0.65) * 3.0  # soft tissue of trunk and legs
        + box(0.20, 0.55, 0.12, 0.88) * 2.0  # arms/shoulders
    )
    bone = (
        (((r - 0.10) / 0.05) ** 2 + ((c - 0.5) / 0.12) ** 2 < 1).astype(np.float32) * 40  # skull
        + box(0.16, 0.52, 0.47, 0.53) * 45  # spine
        + box(0.52, 0.60, 0.38, 0.62) * 35  # pelvis
        + box(0.60, 0.90, 0.40, 0.44) * 30  # left leg
        + box(0.60, 0.90, 0.56, 0.60) * 30  # right leg
        + box(0.20, 0.52, 0.15, 0.18) * 25  # arm
        + box(0.20, 0.52, 0.82, 0.85) * 25  # arm
    )
    blobs = np.zeros_like(r)
    for _ in range(4):
        br, bc = gen.uniform(0.2, 0.8), gen.uniform(0.42, 0.58)
        blobs += 120 * np.exp(-(((r - br) * h) ** 2 + ((c - bc) * w) ** 2) / (2 * (0.004 * h) ** 2))
    ant_mean = (0.2 + body + bone + blobs) * counts_scale
    # posterior: spine brighter (near the back), then mirrored and shifted as stored
    post_mean_flipped = (0.2 + body + bone * (1.0 + box(0.16, 0.52, 0.47, 0.53)) + 0.6 * blobs) * counts_scale
    post_mean_flipped = shift_image(post_mean_flipped, shift[0], shift[1])
    post_mean_flipped[post_mean_flipped == 0] = 0.2 * counts_scale  # background, not a hole
    post_mean = post_mean_flipped[:, ::-1]
    if noise:
        ant = gen.poisson(ant_mean)
        post = gen.poisson(post_mean)
    else:
        ant, post = np.rint(ant_mean), np.rint(post_mean)
    return (np.clip(ant, 0, 65535).astype(np.uint16), np.clip(post, 0, 65535).astype(np.uint16))
