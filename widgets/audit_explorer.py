"""Review the audit's findings one by one: look, then accept or dismiss.

``AuditExplorer(flags, lookup, review_csv).widget`` shows a dropdown of findings, the
studies of the chosen one side by side (:func:`scintilab.audit.figures.flag_figure_static`,
shown as a PNG: light enough for headless runs and rendered reports), a
note box and *accept* / *dismiss* buttons. Each decision is appended to the review CSV
(:func:`scintilab.audit.record_decision`); later audits drop dismissed findings and
:func:`scintilab.audit.split_groups` stops merging dismissed pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from scintilab.audit import read_review, record_decision
from scintilab.audit.figures import flag_figure_static
from scintilab.pages import figure_png
from scintilab.study import Study


def _label(i: int, row: pd.Series) -> str:
    b = f" / {row['study_b']}" if str(row.get("study_b") or "") else ""
    return f"{i + 1}. {row['kind']}: {row['study_a']}{b}"


class AuditExplorer:
    """Step through findings; accept or dismiss each into a review CSV.

    Controls: ``finding`` (Dropdown over the flags), ``note`` (Text), ``accept`` and
    ``dismiss`` (Buttons), ``status`` (HTML: the decision recorded so far for the finding),
    ``image`` (the studies side by side, PNG). ``figure`` holds the current matplotlib
    figure (closed once drawn into ``image``).

    Args:
        flags: the audit's flags table (or a filtered part of it).
        lookup: study key -> :class:`Study` (e.g. ``load_cohort(manifest).by_key``).
        review_csv: where decisions are appended (created on the first decision).
    """

    def __init__(self, flags: pd.DataFrame, lookup: Callable[[str], Study], review_csv: str | Path) -> None:
        self.flags = flags.reset_index(drop=True).copy()
        self.flags["study_b"] = self.flags["study_b"].fillna("").astype(str)
        self.lookup = lookup
        self.review_csv = Path(review_csv)
        options = [(_label(i, r), i) for i, r in self.flags.iterrows()] or [("(no findings)", -1)]
        self.finding = widgets.Dropdown(
            options=options, value=options[0][1], description="finding", layout=widgets.Layout(width="720px")
        )
        self.note = widgets.Text(
            value="", placeholder="why (optional)", description="note", layout=widgets.Layout(width="720px")
        )
        self.accept = widgets.Button(
            description="accept", button_style="danger", tooltip="the finding is real: keep it (pairs stay grouped)"
        )
        self.dismiss = widgets.Button(
            description="dismiss", button_style="success", tooltip="false alarm: drop it from later audits and splits"
        )
        self.status = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.figure: Any = None
        self.finding.observe(lambda _: self.refresh(), names="value")
        self.accept.on_click(lambda _: self.decide("accept"))
        self.dismiss.on_click(lambda _: self.decide("dismiss"))
        self.refresh()

    @property
    def current(self) -> pd.Series | None:
        """The finding shown, or None when there are none."""
        i = self.finding.value
        return None if i is None or i < 0 else self.flags.iloc[int(i)]

    def decision(self) -> str:
        """The latest decision recorded for the current finding (``""`` when none)."""
        row = self.current
        if row is None:
            return ""
        rv = read_review(self.review_csv)
        pair = sorted((str(row["study_a"]), str(row["study_b"])))
        hit = (
            rv[(rv["kind"] == row["kind"]) & rv.apply(lambda r: sorted((r["study_a"], r["study_b"])) == pair, axis=1)]
            if len(rv)
            else rv
        )
        return "" if hit.empty else str(hit["decision"].iloc[-1])

    def refresh(self) -> None:
        """Redraw the figure and the status for the current finding."""
        row = self.current
        if row is None:
            self.figure = None
            self.image.value = b""
            self.status.value = "<i>nothing to review</i>"
            return
        self.figure = flag_figure_static(row, self.lookup)
        self.image.value = figure_png(self.figure)
        d = self.decision()
        self.status.value = f"decision so far: <b>{d}</b>" if d else "no decision yet"

    def decide(self, decision: str) -> None:
        """Record ``accept`` or ``dismiss`` for the current finding and move to the next."""
        row = self.current
        if row is None:
            return
        record_decision(
            self.review_csv, str(row["kind"]), str(row["study_a"]), str(row["study_b"]), decision, self.note.value
        )
        self.note.value = ""
        nxt = int(self.finding.value) + 1
        if nxt < len(self.flags):
            self.finding.value = nxt
        else:
            self.refresh()

    @functools.cached_property
    def widget(self) -> widgets.VBox:
        """The explorer to display (built once: displaying it twice shows one live box)."""
        return widgets.VBox(
            [self.finding, widgets.HBox([self.accept, self.dismiss, self.status]), self.note, self.image]
        )
