"""Scrub through studies and move the sweep threshold: critical points, overlay, fusions.

``FusionExplorer(studies).widget`` is the ipywidgets box to display; the figure it shows is
built by :func:`scintilab.figures_fusion.fusion_figure`, kept in ``.figure`` so tests can set
``.study.value`` / ``.threshold.value`` and assert on it without a kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from scintilab.errors import InputError
from scintilab.figures_fusion import fusion_figure
from scintilab.fusion import DEFAULT_SMOOTH, DEFAULT_THRESHOLD_FRACTION, METHODS, FusionResult, fuse, single_view_result
from scintilab.study import Study
from scintilab_widgets._display import show_in


class FusionExplorer:
    """Explorer over a cohort's studies.

    Controls: ``study`` (IntSlider over the studies holding both views), ``threshold``
    (FloatSlider: fraction of each view's 99th percentile), ``smooth`` (IntSlider, box size),
    ``method`` (Dropdown of aggregations), ``scale`` (Checkbox), ``compare`` (Checkbox: show
    all four aggregations). ``info`` (HTML) states key, label, shift and overlap.

    Args:
        studies: any sequence of :class:`~scintilab.study.Study` (a lazy cohort is fine:
            only the selected study's pixels are read).
        start: index of the first study shown.
        max_rows: display budget per panel (block averaging).
        render_on_init: draw into the output area at once. Off by default: headless runs
            (papermill/nbclient) stall on large figures sent into an Output widget, so the
            first drawing waits for the first change; show ``.figure`` in a cell.
    """

    def __init__(
        self, studies: Sequence[Study], start: int = 0, max_rows: int = 384, render_on_init: bool = False
    ) -> None:
        self.studies = studies
        self.max_rows = max_rows
        n = len(studies)
        if n == 0:
            raise ValueError("no studies to explore")
        self.study = widgets.IntSlider(
            value=min(start, n - 1), min=0, max=n - 1, description="study", continuous_update=False
        )
        self.threshold = widgets.FloatSlider(
            value=DEFAULT_THRESHOLD_FRACTION,
            min=0.01,
            max=0.6,
            step=0.01,
            description="threshold",
            readout_format=".2f",
            continuous_update=False,
        )
        self.smooth = widgets.IntSlider(
            value=DEFAULT_SMOOTH, min=1, max=15, step=2, description="smooth", continuous_update=False
        )
        self.method = widgets.Dropdown(options=list(METHODS), value="add", description="method")
        self.scale = widgets.Checkbox(value=False, description="scale")
        self.compare = widgets.Checkbox(value=False, description="all methods")
        self.info = widgets.HTML()
        self.output = widgets.Output()
        self.figure: go.Figure = go.Figure()
        self.result: FusionResult | None = None
        self.error: str | None = None
        for w in (self.study, self.threshold, self.smooth, self.method, self.scale, self.compare):
            w.observe(self._on_change, names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.study, self.threshold, self.smooth]),
                widgets.HBox([self.method, self.scale, self.compare]),
                self.info,
                self.output,
            ]
        )
        self._render = render_on_init
        self.update()
        self._render = True

    def _on_change(self, _change: Any) -> None:
        self.update()

    def update(self) -> go.Figure:
        """Recompute the fusion for the current controls and rebuild the figure."""
        s = self.studies[self.study.value]
        self.error = None
        try:
            if s.anterior is None and s.posterior is None:
                raise InputError(s.study_key, "holds no view")
            if s.anterior is None or s.posterior is None:  # one view: shown alone, and said so below
                view = "ANT" if s.anterior is not None else "POST"
                self.result = single_view_result(
                    s.view(view),
                    view,
                    method=self.method.value,
                    smooth=self.smooth.value,
                    threshold_fraction=self.threshold.value,
                )
            else:
                self.result = fuse(
                    s.anterior,
                    s.posterior,
                    method=self.method.value,
                    smooth=self.smooth.value,
                    scale=self.scale.value,
                    threshold_fraction=self.threshold.value,
                )
        except InputError as err:
            self.result = None
            self.error = err.problem
            self.info.value = f"<b>{s.study_key}</b> ({s.label}): cannot fuse: {err.problem}"
            self.figure = go.Figure(layout=dict(title=f"{s.study_key}: {err.problem}"))
            if self._render:
                show_in(self.output, self.figure)
            return self.figure
        r = self.result
        methods = list(METHODS) if self.compare.value else [self.method.value]
        self.figure = fusion_figure(r, methods, title=f"{s.study_key} ({s.label})", max_rows=self.max_rows)
        if r.single_view:
            self.info.value = f"<b>{s.study_key}</b> patient {s.patient_key}, label {s.label}: {r.flags[0]}"
            if self._render:
                show_in(self.output, self.figure)
            return self.figure
        self.info.value = (
            f"<b>{s.study_key}</b> patient {s.patient_key}, label {s.label}: shift rows {r.shift[0]:+.1f}, "
            f"cols {r.shift[1]:+.1f}; overlap {r.overlap:.2f}; thresholds {r.threshold_ant:.1f} / {r.threshold_post:.1f} counts"
        )
        if self._render:
            show_in(self.output, self.figure)
        return self.figure


def fusion_explorer(studies: Sequence[Study], **kw: Any) -> widgets.VBox:
    """Factory: the :class:`FusionExplorer` box, ready to display (the explorer is ``.explorer``)."""
    ex = FusionExplorer(studies, **kw)
    ex.widget.explorer = ex  # keep a handle for notebooks that only hold the box
    return ex.widget
