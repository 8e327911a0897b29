"""The atlas drawn over a scan, by region or bone group, so a user can check the fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scintilab.anatomy import BONES, REGIONS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

    from scintilab.atlas import Atlas

# ---------------------------------------------------------------------------------------
BONE_COLOURS = (
    "#1f77b4",
    "#aec7e8",
    "#ff7f0e",
    "#ffbb78",
    "#2ca02c",
    "#98df8a",
    "#d62728",
    "#ff9896",
    "#9467bd",
    "#c5b0d5",
    "#8c564b",
    "#c49c94",
    "#e377c2",
    "#f7b6d2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def draw_atlas(
    image: np.ndarray, atlas: Atlas, *, level: str = "region", ax: Any = None, title: str | None = None
) -> Figure:
    """Draw the atlas over the image so a user can check the fit.

    Args:
        image: the view the atlas was fitted to.
        atlas: the fitted atlas.
        level: ``"region"`` (coarse) or ``"bone"`` (fine groups).
        ax: an existing matplotlib Axes to draw into; a new figure otherwise.
        title: axes title (never put patient identity here).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    names = REGIONS if level == "region" else BONES
    lab = atlas.region_map() if level == "region" else atlas.bone_map()
    if ax is None:
        h, w = atlas.shape
        fig, ax = plt.subplots(figsize=(3.2 + 2.2, 3.2 * h / max(w, 1) / 1.6 + 1.0))
    else:
        fig = ax.figure
    img = np.asarray(image, float)
    vmax = float(np.percentile(img[atlas.body], 99.5)) if atlas.body.any() else float(img.max())
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=max(vmax, 1e-6), interpolation="nearest")
    cmap = ListedColormap(BONE_COLOURS[: len(names)])
    over = np.ma.masked_equal(lab, 0)
    ax.imshow(over - 1, cmap=cmap, vmin=0, vmax=len(names) - 1, alpha=0.45, interpolation="nearest")
    lm = atlas.landmarks
    for key in ("top", "neck", "shoulder", "bladder", "knee", "sole"):
        r = getattr(lm, key)
        ax.axhline(r, color="k" if lm.found.get(key) else "0.6", lw=0.6, ls="-" if lm.found.get(key) else "--")
        ax.text(atlas.shape[1] - 1, r, key, fontsize=6, ha="right", va="bottom")
    rr = np.array([0, atlas.shape[0] - 1], float)
    ax.plot(lm.midline(rr), rr, color="k", lw=0.5, ls=":")
    if lm.spine_rows.size:
        ax.plot(lm.spine(lm.spine_rows), lm.spine_rows, color="k", lw=0.6)
    pad = 0.03 * (lm.sole - lm.top)
    ax.set_ylim(min(lm.sole + pad, atlas.shape[0] - 0.5), max(lm.top - pad, -0.5))  # the body only
    present = sorted(set(np.unique(lab)) - {0})
    ax.legend(
        handles=[Patch(color=BONE_COLOURS[i - 1], label=names[i - 1]) for i in present],
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize=6,
        frameon=False,
    )
    ax.set_title(title or f"atlas ({atlas.view}{', mirrored' if atlas.mirrored else ''})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig
