"""Explorers for quantification: a per-study report viewer and a follow-up explorer.

``ReportViewer(manifest, studies)``: pick a study, toggle hot spots and atlas regions.
``FollowupExplorer(manifest, followup, studies)``: pick a follow-up pair and see baseline |
follow-up with new lesions boxed, beside the patient's BSI over time. Detections are
recomputed for the studies shown (about a second each), so nothing large is kept; give both
the ``params`` and ``hotspot_model`` the quantification used, so what they show is what the
tables say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from scintilab import quant_params as qp
from scintilab.followup import compare
from scintilab.hotspots import HotspotModel, detect_hotspots
from scintilab.ingest import load_cohort
from scintilab.quantify import bsi_over_time, draw_one_view, draw_views
from scintilab_widgets._display import show_in


class _Detector:
    """Detections of one cohort's studies under the quantification's parameters and model."""

    def __init__(self, manifest: str | Path, params: qp.QuantParams | None, hotspot_model: Any) -> None:
        self.cohort = load_cohort(manifest, with_shapes=False)
        self.params = qp.active() if params is None else params
        self.model = HotspotModel.load(hotspot_model) if isinstance(hotspot_model, (str, Path)) else hotspot_model

    def detect(self, key: str) -> Any:
        with qp.using(self.params):
            return detect_hotspots(self.cohort.by_key(key), model=self.model)

    def compare(self, base: Any, fu: Any) -> Any:
        with qp.using(self.params):
            return compare(base, fu)


class ReportViewer:
    """Pick a study; show both views with hot spots (by probability) and/or regions."""

    def __init__(
        self,
        manifest: str | Path,
        studies: pd.DataFrame,
        *,
        params: qp.QuantParams | None = None,
        hotspot_model: Any = None,
    ) -> None:
        self.detector = _Detector(manifest, params, hotspot_model)
        keys = list(studies["study_key"])
        labels = dict(zip(studies["study_key"], studies.get("label", pd.Series([""] * len(studies)))))
        self.study = W.Dropdown(options=[(f"{k} ({labels.get(k, '')})", k) for k in keys], description="study")
        self.hot = W.Checkbox(value=True, description="hot spots")
        self.reg = W.Checkbox(value=False, description="regions")
        self.out = W.Output()
        self._cache: dict[str, Any] = {}
        for w in (self.study, self.hot, self.reg):
            w.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([W.HBox([self.study, self.hot, self.reg]), self.out])

    def detection(self, key: str) -> Any:
        """The (cached) detection of one study."""
        if key not in self._cache:
            self._cache = {key: self.detector.detect(key)}
        return self._cache[key]

    def figure(self) -> Any:
        """The current choice as a matplotlib figure (a still for an HTML report, where
        widgets do not survive); None when there is no study."""
        if self.study.value is None:
            return None
        return draw_views(self.detection(self.study.value), hotspots=self.hot.value, regions=self.reg.value)

    def draw(self) -> None:
        """Redraw for the current choices."""
        fig = self.figure()
        if fig is not None:
            show_in(self.out, fig)

    def show(self) -> ReportViewer:
        """Display the explorer and draw the first study."""
        display(self.widget)
        self.draw()
        return self


class FollowupExplorer:
    """Pick a follow-up pair; show baseline | follow-up (new lesions boxed) and BSI over time."""

    def __init__(
        self,
        manifest: str | Path,
        followup: pd.DataFrame,
        studies: pd.DataFrame,
        *,
        params: qp.QuantParams | None = None,
        hotspot_model: Any = None,
    ) -> None:
        self.detector = _Detector(manifest, params, hotspot_model)
        self.followup = followup.reset_index(drop=True)
        self.studies = studies
        opts = [
            (f"{r.patient_key}: +{r.days} d, {r.new_lesions} new, {r.pcwg3}", i) for i, r in self.followup.iterrows()
        ]
        # start on the pair with the most new lesions: the first pairs are often unchanged
        first = int(self.followup["new_lesions"].idxmax()) if len(self.followup) else None
        self.pair = W.Dropdown(options=opts, value=first, description="follow-up", layout=W.Layout(width="480px"))
        self.out = W.Output()
        self._cache: tuple[Any, ...] | None = None
        self.pair.observe(lambda _: self.draw(), names="value")
        self.widget = W.VBox([self.pair, self.out])

    def figure(self) -> Any:
        """The chosen pair as a matplotlib figure (a still for an HTML report, where
        widgets do not survive); None when there is no pair."""
        if self.pair.value is None:
            return None
        row = self.followup.loc[self.pair.value]  # the options carry index labels
        pair = (row["baseline_study_key"], row["study_key"])
        if self._cache is None or self._cache[0] != pair:
            # only the pair shown is kept: a still after the widget's own drawing reuses it
            base, fu = (self.detector.detect(k) for k in pair)
            self._cache = (pair, base, fu, self.detector.compare(base, fu))
        _, base, fu, comp = self._cache
        fig, ax = plt.subplots(1, 3, figsize=(10, 5), gridspec_kw={"width_ratios": [1, 1, 1.6]})
        # each detection drawn at its own classifier's operating threshold, as quantified
        draw_one_view(base, ax[0], "baseline", ())
        draw_one_view(fu, ax[1], f"+{row['days']} d, new boxed", comp.new)
        t = bsi_over_time(self.studies)
        t = t[t["patient_key"] == row["patient_key"]]
        ax[2].plot(t["days"], t["bsi"], "o-")
        ax[2].set_xlabel("days since the first study")
        ax[2].set_ylabel("BSI (%)")
        # from zero: a change of a few thousandths of a point must not fill the panel
        ax[2].set_ylim(0, max(0.5, 1.25 * float(t["bsi"].max() if len(t) else 0)))
        ax[2].set_title(f"PCWG3: {row['pcwg3']}", fontsize=9)
        fig.tight_layout()
        return fig

    def draw(self) -> None:
        """Redraw for the chosen pair."""
        fig = self.figure()
        if fig is not None:
            show_in(self.out, fig)

    def show(self) -> FollowupExplorer:
        """Display the explorer and draw the first pair."""
        display(self.widget)
        self.draw()
        return self
