"""Figures for the audit: a finding's studies side by side (plotly)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from scintilab.study import Study

#: Panels are shown at most this many rows high (block-averaged): enough for a 260-px panel,
#: and it keeps the figure's JSON small enough for widgets and rendered reports.
MAX_ROWS = 384


def _display(img: np.ndarray | None) -> np.ndarray:
    """Square-root counts clipped at the 99.5th percentile (bone detail without the bladder),
    block-averaged to at most :data:`MAX_ROWS` rows, as uint8."""
    if img is None:
        return np.zeros((8, 4), np.uint8)
    x = img.astype(np.float32)
    f = int(np.ceil(x.shape[0] / MAX_ROWS))
    if f > 1:
        r, c = x.shape[0] // f * f, x.shape[1] // f * f
        x = x[:r, :c].reshape(r // f, f, c // f, f).mean(axis=(1, 3))
    x = np.sqrt(x)
    hi = float(np.percentile(x, 99.5)) or 1.0
    return np.round(np.clip(x / hi, 0, 1) * 255).astype(np.uint8)


def flag_figure(flag: Mapping[str, Any], lookup: Callable[[str], Study]) -> Any:
    """The studies of one finding, ANT and POST as stored, side by side.

    Args:
        flag: a row of the flags table (``kind, study_a, study_b, score, detail``).
        lookup: study key -> :class:`Study` (e.g. ``Cohort.by_key``).

    Returns:
        A plotly Figure: 2 panels for a one-study finding, 4 for a pair. Titles carry
        pseudonymous keys only.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = [str(flag["study_a"])] + ([str(flag["study_b"])] if str(flag.get("study_b") or "") else [])
    studies = []
    for k in keys:
        try:
            studies.append(lookup(k))
        except (KeyError, IndexError):
            studies.append(None)
    titles = [f"{k} {v}" for k in keys for v in ("ANT", "POST")]
    fig = make_subplots(rows=1, cols=2 * len(keys), subplot_titles=titles, horizontal_spacing=0.02)
    for i, s in enumerate(studies):
        for j, view in enumerate(("ANT", "POST")):
            img = None if s is None else s.view(view)
            fig.add_trace(
                go.Heatmap(
                    z=_display(img),
                    colorscale="Greys",
                    showscale=False,
                    zmin=0,
                    zmax=255,
                    hovertemplate=f"{keys[i]} {view}<br>row %{{y}} col %{{x}}<extra></extra>",
                ),
                row=1,
                col=2 * i + j + 1,
            )
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x", constrain="domain")
    for n in range(2, 2 * len(keys) + 1):
        fig.update_yaxes(scaleanchor=f"x{n}", row=1, col=n)
    fig.update_xaxes(showticklabels=False, constrain="domain")
    detail = "<br>".join(textwrap.wrap(str(flag.get("detail", "")), 110))
    fig.update_layout(
        title=dict(
            text=f"<b>{flag['kind']}</b> (score {float(flag.get('score', 0)):.2f})<br>"
            f"<span style='font-size:11px'>{detail}</span>",
            x=0.01,
        ),
        height=560,
        width=260 * len(keys) * 2 + 40,
        margin=dict(l=10, r=10, t=110, b=10),
    )
    for ann in fig.layout.annotations:
        ann.font.size = 10
    return fig


def pair_figures(
    flags: Any,
    lookup: Callable[[str], Study],
    n: int = 4,
    kinds: tuple[str, ...] = ("exact_duplicate", "near_duplicate", "same_patient", "split_leak"),
    static: bool = True,
) -> list:
    """Figures of the first ``n`` pair findings of each kind in ``kinds``, in table order.

    Args:
        flags: the audit's flags table.
        lookup: study key -> :class:`Study`.
        n: at most this many figures per kind.
        kinds: which pair findings to show.
        static: matplotlib figures (render in every exported report) or plotly (interactive).
    """
    make = flag_figure_static if static else flag_figure
    rows = flags[flags["kind"].isin(kinds) & (flags["study_b"].fillna("").astype(str) != "")]
    rows = rows.groupby("kind", sort=False).head(n)
    return [make(r, lookup) for _, r in rows.iterrows()]


def flag_figure_static(flag: Mapping[str, Any], lookup: Callable[[str], Study]) -> Any:
    """Matplotlib version of :func:`flag_figure` (for PNG images and static reports).

    Returns:
        A matplotlib Figure with one axis per view shown (2 or 4).
    """
    import matplotlib.pyplot as plt

    keys = [str(flag["study_a"])] + ([str(flag["study_b"])] if str(flag.get("study_b") or "") else [])
    fig, axes = plt.subplots(1, 2 * len(keys), figsize=(2.2 * 2 * len(keys), 6.2), dpi=80)
    for i, k in enumerate(keys):
        try:
            s = lookup(k)
        except (KeyError, IndexError):
            s = None
        for j, view in enumerate(("ANT", "POST")):
            ax = axes[2 * i + j]
            ax.imshow(_display(None if s is None else s.view(view)), cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(f"{k}\n{view}", fontsize=8)
            ax.set_axis_off()
    fig.suptitle(
        f"{flag['kind']} (score {float(flag.get('score', 0)):.2f})\n"
        + "\n".join(textwrap.wrap(str(flag.get("detail", "")), 30 * len(keys))),
        fontsize=8,
    )
    fig.tight_layout()
    return fig
