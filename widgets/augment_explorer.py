"""Tune r_T and t_T: a live grid of augmented copies and the uptake distribution.

``AugmentExplorer(images).widget`` shows sliders for r_T and t_T, the number of copies and
the seed; ``.grid_figure`` and ``.hist_figure`` are rebuilt on every change (pure builders in
:mod:`scintilab.figures_fusion`); the *save* button writes ``augmentation.json`` for
training into ``out_dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from scintilab.augment import DEFAULT_R_T, DEFAULT_T_T, augment_copies, count_retention, save_augmentation_config
from scintilab.figures_fusion import augment_grid_figure, uptake_distribution_figure
from scintilab_widgets._display import show_in


class AugmentExplorer:
    """Sliders for r_T and t_T with the augmented copies they produce.

    Controls: ``image`` (IntSlider over the given images), ``r_t`` (FloatSlider, degrees),
    ``t_t`` (IntSlider, pixels), ``n_copies``, ``seed``, ``save`` (Button writing
    ``out_dir/augmentation.json``). ``info`` (HTML) reports the worst-case fraction of counts
    kept in the field at the chosen limits.

    Args:
        images: (name, image) pairs in anterior orientation (names: pseudonymous keys).
        out_dir: where the save button writes ``augmentation.json``.
        r_t: initial maximum rotation (degrees).
        t_t: initial maximum translation (pixels).
        n_copies: initial number of copies in the grid.
        seed: initial seed.
        extra: more fields stored in the JSON (e.g. the data-driven suggestion).
        render_on_init: draw into the output area at once. Off by default: headless runs
            (papermill/nbclient) stall on large figures sent into an Output widget, so the
            first drawing waits for the first change; show ``.grid_figure`` in a cell.
    """

    def __init__(
        self,
        images: Sequence[tuple[str, np.ndarray]],
        out_dir: str | Path = "augmentation",
        r_t: float = DEFAULT_R_T,
        t_t: int = DEFAULT_T_T,
        n_copies: int = 5,
        seed: int = 0,
        extra: dict[str, Any] | None = None,
        render_on_init: bool = False,
    ) -> None:
        if not images:
            raise ValueError("no images to augment")
        self.images = list(images)
        self.out_dir = Path(out_dir)
        self.extra = dict(extra or {})
        self.image = widgets.IntSlider(
            value=0, min=0, max=len(self.images) - 1, description="image", continuous_update=False
        )
        self.r_t = widgets.FloatSlider(
            value=float(r_t), min=0.0, max=15.0, step=0.5, description="r_T (°)", continuous_update=False
        )
        self.t_t = widgets.IntSlider(value=int(t_t), min=0, max=30, description="t_T (px)", continuous_update=False)
        self.n_copies = widgets.IntSlider(
            value=int(n_copies), min=1, max=11, description="copies", continuous_update=False
        )
        self.seed = widgets.IntText(value=int(seed), description="seed")
        self.save = widgets.Button(description="save for training", icon="save", button_style="primary")
        self.info = widgets.HTML()
        self.output = widgets.Output()
        self.grid_figure: go.Figure = go.Figure()
        self.hist_figure: go.Figure = go.Figure()
        self.saved_path: Path | None = None
        self.copies: list[tuple[np.ndarray, dict]] = []
        for w in (self.image, self.r_t, self.t_t, self.n_copies, self.seed):
            w.observe(lambda _c: self.update(), names="value")
        self.save.on_click(lambda _b: self.write())
        self._render = render_on_init
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.image, self.r_t, self.t_t]),
                widgets.HBox([self.n_copies, self.seed, self.save]),
                self.info,
                self.output,
            ]
        )
        self.update()
        self._render = True

    def values(self) -> dict[str, Any]:
        """The limits currently chosen: ``{"r_t": float, "t_t": int}``."""
        return {"r_t": float(self.r_t.value), "t_t": int(self.t_t.value)}

    def update(self) -> None:
        """Redraw the copies and the uptake distribution for the current sliders."""
        name, img = self.images[self.image.value]
        v = self.values()
        self.copies = augment_copies(img, self.n_copies.value, v["r_t"], v["t_t"], rng=int(self.seed.value))
        self.grid_figure = augment_grid_figure(
            img, self.copies, title=f"{name}: r_T {v['r_t']:.1f}°, t_T {v['t_t']} px"
        )
        self.hist_figure = uptake_distribution_figure([img], [c for c, _ in self.copies])
        kept = count_retention(img, v["r_t"], v["t_t"])
        self.info.value = (
            f"r_T {v['r_t']:.1f}°, t_T {v['t_t']} px: at the extremes {100 * kept:.2f} % of this image's "
            f"counts stay in the field"
        )
        if self._render:
            show_in(self.output, self.grid_figure, self.hist_figure)

    def write(self) -> Path:
        """Write ``augmentation.json`` with the current limits (the save button does this)."""
        v = self.values()
        self.saved_path = save_augmentation_config(self.out_dir / "augmentation.json", v["r_t"], v["t_t"], **self.extra)
        self.info.value = f"saved r_T {v['r_t']:.1f}°, t_T {v['t_t']} px to {self.saved_path.name}"
        return self.saved_path


def augment_explorer(images: Sequence[tuple[str, np.ndarray]], **kw: Any) -> widgets.VBox:
    """Factory: the :class:`AugmentExplorer` box (the explorer is ``.explorer``)."""
    ex = AugmentExplorer(images, **kw)
    ex.widget.explorer = ex
    return ex.widget
