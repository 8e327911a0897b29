"""Browse a run's test predictions with their Grad-CAM or attention maps.

``PredictionsExplorer(run_dir).widget`` shows a dropdown of case groups (the paper's
Fig. 11 groups: NoMet called metastatic, ADMet called nADMet, correct ADMet, ...), a
dropdown of the cases in the chosen group (most confident first), and a toggle for the
map (Grad-CAM, CBAM attention, none). The figure comes from the pure function
:func:`scintilab.explain.case_figure`, so tests can set ``.value`` and look at
``explorer.figure`` without a kernel. Only pseudonymous study keys are shown.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from scintilab import explain
from scintilab.runs import load_run
from scintilab_widgets._display import show_in

ALL = "all test images"
METHODS = {"Grad-CAM": "gradcam", "CBAM attention": "attention", "none": "none"}


class PredictionsExplorer:
    """Step through a run's test cases by group; see each with its explanation map.

    Controls: ``group`` (Dropdown), ``case`` (Dropdown of row indices), ``method``
    (ToggleButtons: Grad-CAM, CBAM attention, none). ``figure`` holds the current
    matplotlib figure, ``row`` the current predictions row.

    Args:
        run_dir: a finished run folder (with ``test_images.npy``).
        model: the loaded model (default: loaded from the run on first use of a map).
        layer_name: Grad-CAM layer (default: the last convolutional stage).
    """

    def __init__(self, run_dir: str | Path, model: Any = None, layer_name: str | None = None) -> None:
        self.run = load_run(run_dir)
        preds = self.run.predictions
        self.test = (
            preds[preds["split"] == "test"].reset_index(drop=True) if "split" in preds else preds.reset_index(drop=True)
        )
        self.images = explain.load_test_images(run_dir)
        self._model = model
        self.layer_name = layer_name
        self._cache: dict[tuple[int, str], np.ndarray | None] = {}
        self.groups = {ALL: self.test, **explain.case_groups(self.test)}
        self.group = widgets.Dropdown(
            options=[f"{k} ({len(v)})" for k, v in self.groups.items()],
            description="group",
            layout=widgets.Layout(width="420px"),
        )
        self.case = widgets.Dropdown(options=[], description="case", layout=widgets.Layout(width="420px"))
        self.method = widgets.ToggleButtons(options=list(METHODS), value="Grad-CAM", description="map")
        self.output = widgets.Output()
        self.figure: Any = None
        self.row: pd.Series | None = None
        self.group.observe(lambda _: self._fill_cases(), names="value")
        self.case.observe(lambda _: self.refresh(), names="value")
        self.method.observe(lambda _: self.refresh(), names="value")
        self._fill_cases()

    @property
    def model(self) -> Any:
        """The run's model, loaded on first use."""
        if self._model is None:
            self._model = self.run.load_model()
        return self._model

    def _group_frame(self) -> pd.DataFrame:
        name = str(self.group.value).rsplit(" (", 1)[0]
        return self.groups[name]

    def _fill_cases(self) -> None:
        frame = self._group_frame()
        options = [
            (f"{r['study_key']} {r['kind']} {r['aug']}: {r['true']} -> {r['pred']}", int(i))
            for i, r in frame.iterrows()
        ]
        # setting options fires a value change, which redraws
        self.case.options = options
        if options and self.case.value is None:
            self.case.value = options[0][1]

    def heat(self, index: int, method: str) -> np.ndarray | None:
        """The map of test row ``index`` for ``method`` (gradcam / attention / none), cached."""
        key = (index, method)
        if key not in self._cache:
            if method == "none":
                self._cache[key] = None
            else:
                img = self.images[index : index + 1]
                classes = self.run.classes
                if method == "gradcam":
                    cls = classes.index(self.test.loc[index, "pred"])
                    self._cache[key] = explain.grad_cam(self.model, img, cls, layer_name=self.layer_name)[0]
                else:
                    self._cache[key] = explain.mean_attention(self.model, img)[0]
        return self._cache[key]

    def refresh(self) -> None:
        """Redraw the figure for the current case and map."""
        import matplotlib.pyplot as plt

        if self.case.value is None:
            return
        index = int(self.case.value)
        self.row = self.test.loc[index]
        method = METHODS[self.method.value]
        if self.figure is not None:
            plt.close(self.figure)
        self.figure = explain.case_figure(
            self.images[index], self.heat(index, method), self.row, method=self.method.value
        )
        show_in(self.output, self.figure)

    @functools.cached_property
    def widget(self) -> widgets.VBox:
        """The explorer to display (built once: displaying it twice shows one live box)."""
        return widgets.VBox([widgets.HBox([self.group, self.case]), self.method, self.output])
