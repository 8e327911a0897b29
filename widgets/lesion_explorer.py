"""Pick a study and see its lesions outlined, numbered and described.

``LesionExplorer(cohort, table).widget`` shows a study dropdown (studies with lesions
first), a view toggle and an atlas switch above the figure drawn by
:func:`scintilab.lesion_figures.lesion_figure` (pure, importable without ipywidgets): the view
with each lesion's outline (dashed when carried over from the other view) and a table of
its shape, region, area, uptake, anterior/posterior ratio and contrast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd

from scintilab.lesion_figures import lesion_figure
from scintilab.lesion_stats import study_counts
from scintilab.study import Study
from scintilab_widgets._display import show_in

__all__ = ["LesionExplorer", "lesion_figure"]


class LesionExplorer:
    """Browse a cohort's lesions study by study.

    Controls: ``study`` (Dropdown of study keys with class and lesion count), ``view``
    (ToggleButtons ANT/POST), ``atlas`` (Checkbox: tint the body regions). ``figure``
    holds the current matplotlib figure; ``rows`` the shown study's table rows.

    Args:
        cohort: the studies (e.g. ``load_cohort(manifest)``; must offer ``by_key`` or be
            a sequence of :class:`Study`).
        table: the lesion table (:func:`scintilab.lesions.lesion_table`).
    """

    def __init__(self, cohort: Sequence[Study] | Any, table: pd.DataFrame) -> None:
        self.cohort = cohort
        self.table = table
        counts = study_counts(table)
        counts = counts.sort_values(["n_lesions", "study_key"], ascending=[False, True])
        options = [
            (f"{r.study_key} ({r.label}, {int(r.n_lesions)} lesions)", r.study_key) for r in counts.itertuples()
        ] or [("(no studies)", "")]
        self.study = widgets.Dropdown(
            options=options, value=options[0][1], description="study", layout=widgets.Layout(width="420px")
        )
        self.view = widgets.ToggleButtons(options=["ANT", "POST"], value="ANT", description="view")
        self.atlas = widgets.Checkbox(value=True, description="atlas regions")
        self.output = widgets.Output()
        self.figure: Any = None
        self.rows: pd.DataFrame = table.iloc[0:0]
        for w in (self.study, self.view, self.atlas):
            w.observe(lambda _: self.refresh(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.study, self.view, self.atlas]), self.output])
        self.refresh()

    def _lookup(self, key: str) -> Study:
        if hasattr(self.cohort, "by_key"):
            return self.cohort.by_key(key)
        for st in self.cohort:
            if st.study_key == key:
                return st
        raise KeyError(key)

    def refresh(self) -> None:
        """Redraw the figure for the current study, view and atlas switch."""
        import matplotlib.pyplot as plt

        key = self.study.value
        if not key:
            return
        study = self._lookup(key)
        view = self.view.value if study.view(self.view.value) is not None else study.views[0]
        self.rows = self.table[self.table["study_key"] == key] if len(self.table) else self.table
        self.figure = lesion_figure(study, self.rows, view=view, show_atlas=self.atlas.value)
        show_in(self.output, self.figure)
        # Shown in the output area already: closing keeps the inline backend from
        # drawing it a second time under the cell (the object stays readable).
        plt.close(self.figure)
